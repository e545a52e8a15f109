//! Running the built binary with a private database, config and HOME.

use std::path::PathBuf;
use std::process::{Command, Output};

pub struct Run {
    pub dir: tempfile::TempDir,
}

impl Run {
    pub fn new() -> Run {
        Run {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("imap.sqlite")
    }

    /// `dmarcdb --config <config> ARGS` (the config written mode 600).
    pub fn command(&self, config: &str, args: &[&str]) -> Command {
        let cfg = self.dir.path().join("config.toml");
        super::write_private(&cfg, config);
        let mut c = Command::new(env!("CARGO_BIN_EXE_dmarcdb"));
        c.arg("--config")
            .arg(&cfg)
            .args(args)
            .env("DMARCDB_DB", self.db())
            .env("HOME", self.dir.path())
            .env_remove("DMARCDB_CONFIG");
        c
    }

    pub fn ingest(&self, config: &str) -> (Output, serde_json::Value) {
        self.ingest_with(config, &[])
    }

    /// `ingest --imap --json EXTRA`, with the closing counts parsed.
    pub fn ingest_with(&self, config: &str, extra: &[&str]) -> (Output, serde_json::Value) {
        let mut args = vec!["ingest", "--imap", "--json"];
        args.extend_from_slice(extra);
        let out = self.command(config, &args).output().unwrap();
        let stats = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "no JSON ({e}); stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out, stats)
    }

    pub fn sql(&self, sql: &str) -> i64 {
        rusqlite::Connection::open(self.db())
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap()
    }
}
