//! Shared test support. Use from a test file with `mod support;`.
//! Not every test file uses every helper.
#![allow(dead_code)]

pub mod bin;
pub mod dovecot;
pub mod golden;
pub mod proxy;

/// Write a file only its owner can read (a config with an inline password
/// that others can read is refused).
#[allow(dead_code)]
pub fn write_private(path: &std::path::Path, contents: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}
