//! Shared test support. Use from a test file with `mod support;`.
//! Not every test file uses every helper.
#![allow(dead_code)]

pub mod dovecot;
pub mod golden;
