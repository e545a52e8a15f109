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

/// The shared corpus: `$DMARCDB_CORPUS`, else `../shared/corpus`, else
/// `../../shared/corpus` (a worktree one level deeper), holding `sub` (""
/// for the whole corpus). `None`, said loudly, when it is absent; in CI
/// (`CI` set) that is a failure. `what` names the test that then skips.
pub fn shared_corpus(sub: &str, what: &str) -> Option<std::path::PathBuf> {
    use std::path::{Path, PathBuf};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let found = std::env::var_os("DMARCDB_CORPUS")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            root.join("../shared/corpus"),
            root.join("../../shared/corpus"),
        ])
        .find(|p| p.join(sub).is_dir());
    if found.is_none() {
        assert!(
            std::env::var("CI").is_err(),
            "the shared corpus is missing in CI (set DMARCDB_CORPUS)"
        );
        eprintln!("\n*** SKIPPED: no corpus at $DMARCDB_CORPUS, ../shared/corpus or ../../shared/corpus; {what} did not run ***\n");
    }
    found
}
