//! dmarcdb: DMARC aggregate reports from IMAP and files into SQLite.
//!
//! # Layout
//! The pipeline is `fetch → extract → parse → store → summary`, one module each
//! (see `ARCHITECTURE.md`). [`ingest`] drives one input through the stages.
//! Only [`fetch`] does network IO; [`extract`], [`parse`] and [`bounce`] are
//! pure functions over bytes that never panic; only [`store`] sees SQL.

pub mod bounce;
pub mod config;
pub mod extract;
pub mod fetch;
pub mod ingest;
pub mod kind;
pub mod lock;
pub mod parse;
pub mod store;
pub mod summary;
pub mod synthetic;
