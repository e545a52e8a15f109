//! The built binary on our own fixtures: ingest, dedup, summary, query, exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const WRAPPED: &str = "fixtures/wrappings";
const NAME: &str = "mail.example.net!example.com!1700006400!1700092799";

/// A private HOME and database per test.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("test.sqlite")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dmarcdb"));
        c.args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("HOME", self.dir.path())
            .env("DMARCDB_DB", self.db())
            .env_remove("DMARCDB_CONFIG")
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_CONFIG_HOME");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    fn sql(&self, sql: &str) -> i64 {
        let conn = rusqlite::Connection::open(self.db()).unwrap();
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn one_report_in_four_wrappings_is_stored_once() {
    let env = Env::new();
    let stats = env.json(&["ingest", "--json", WRAPPED]);
    assert_eq!(stats["inputs"], 4, "{stats}");
    assert_eq!(stats["reports"], 1, "{stats}");
    assert_eq!(stats["duplicate_reports"], 3, "{stats}");
    assert_eq!(stats["aggregate"], 4, "{stats}");
    assert_eq!(stats["invalid"], 0, "{stats}");
    assert_eq!(env.sql("SELECT count(*) FROM reports"), 1);
    assert_eq!(env.sql("SELECT count(*) FROM records"), 3);
    assert_eq!(env.sql("SELECT sum(count) FROM records"), 17);
    assert_eq!(env.sql("SELECT message_count FROM reports"), 17);
    assert_eq!(
        env.sql(
            "SELECT count(*) FROM reports WHERE reporter = 'mail receiver example'
             AND report_id = 'wrapping-test-0001' AND policy_domain = 'example.com'
             AND begin_date = 1700006400 AND end_date = 1700092799 AND p = 'quarantine'
             AND warnings IS NULL"
        ),
        1
    );
    // Identical copies carry no "different records" warning.
    assert_eq!(
        env.sql("SELECT count(*) FROM inputs WHERE warnings IS NOT NULL"),
        0
    );
    assert_eq!(
        env.sql("SELECT count(*) FROM raw_inputs r JOIN inputs i USING (sha256)"),
        4
    );
    assert_eq!(
        env.sql(
            "SELECT count(*) FROM inputs WHERE subject LIKE 'Report Domain: example.com%'
             AND message_id = '<wrapping-test-0001@mail.example.net>' OR message_id = 'wrapping-test-0001@mail.example.net'"
        ),
        1
    );

    // Running again changes nothing.
    let again = env.json(&["ingest", "--json", WRAPPED]);
    assert_eq!(again["duplicate_inputs"], 4, "{again}");
    assert_eq!(again["reports"], 0, "{again}");
    assert_eq!(env.sql("SELECT count(*) FROM inputs"), 4);
    assert_eq!(env.sql("SELECT count(*) FROM records"), 3);
}

#[test]
fn records_and_auth_results_are_stored_normalised() {
    let env = Env::new();
    let xml = format!("{WRAPPED}/{NAME}.xml");
    assert!(env.run(&["-q", "ingest", &xml]).status.success());
    assert_eq!(
        env.sql(
            "SELECT count(*) FROM records WHERE source_ip = '2001:db8::25'
             AND length(source_ip_bin) = 16 AND dkim = 'fail' AND spf = 'pass'"
        ),
        1
    );
    assert_eq!(
        env.sql("SELECT count(*) FROM records WHERE source_ip = '192.0.2.10' AND hex(source_ip_bin) = '00000000000000000000FFFFC000020A'"),
        1
    );
    assert_eq!(
        env.sql("SELECT count(*) FROM dkim_results WHERE human_result = 'body hash did not verify' AND selector = 's2023'"),
        1
    );
    assert_eq!(
        env.sql("SELECT count(*) FROM spf_results WHERE result = 'softfail' AND domain = 'bulk.example.org' AND scope = 'mfrom'"),
        1
    );
    assert_eq!(
        env.sql("SELECT count(*) FROM report_records WHERE dmarc_pass = 0"),
        1
    );
}

#[test]
fn summary_shows_failing_senders_and_receiver_actions() {
    let env = Env::new();
    assert!(env.run(&["ingest", WRAPPED]).status.success());
    let s = env.json(&["summary", "--format", "json"]);
    assert_eq!(
        s["until"], 1700092799,
        "default period ends at the newest report"
    );
    assert_eq!(s["since"], 1700092799 - 30 * 86400);
    let d = &s["domains"][0];
    assert_eq!(d["domain"], "example.com");
    assert_eq!(d["messages"], 17);
    assert_eq!(d["dmarc_pass"], 14);
    assert_eq!(d["spf_aligned"], 14);
    assert_eq!(d["dkim_aligned"], 12);
    let r = &d["reporters"][0];
    assert_eq!(r["reporter"], "mail receiver example");
    assert_eq!(
        (r["messages"].as_i64(), r["quarantined"].as_i64()),
        (Some(17), Some(3))
    );
    let f = d["failing_senders"].as_array().unwrap();
    assert_eq!(f.len(), 2);
    assert_eq!(f[0]["source_ip"], "203.0.113.77");
    assert_eq!(f[0]["dmarc_fail"], 3);
    assert_eq!(f[0]["dispositions"][0], "quarantine=3");
    assert_eq!(f[0]["envelope_from"][0], "bulk.example.org");
    assert_eq!(f[0]["spf_results"][0], "bulk.example.org=softfail");
    assert_eq!(f[1]["source_ip"], "2001:db8::25");
    assert_eq!(
        (f[1]["dmarc_fail"].as_i64(), f[1]["dkim_fail"].as_i64()),
        (Some(0), Some(2))
    );
    assert_eq!(s["inputs_by_kind"]["aggregate"], 4);

    let text = env.run(&["summary"]);
    let out = String::from_utf8_lossy(&text.stdout);
    assert!(
        out.contains("2023-10-16 23:59:59 to 2023-11-15 23:59:59 UTC"),
        "{out}"
    );
    assert!(out.contains("203.0.113.77"), "{out}");
    assert!(out.contains("example.com — 17 messages"), "{out}");

    // Filters: subdomain matching, and a period with no reports.
    let none = env.json(&["summary", "--format", "json", "--domain", "example.org"]);
    assert_eq!(none["domains"].as_array().unwrap().len(), 0);
    let old = env.json(&[
        "summary",
        "--format",
        "json",
        "--since",
        "2020-01-01",
        "--until",
        "2020-01-31",
    ]);
    assert_eq!(old["domains"].as_array().unwrap().len(), 0);
    let exact = env.json(&[
        "summary",
        "--format",
        "json",
        "--since",
        "2023-11-15",
        "--until",
        "2023-11-15",
    ]);
    assert_eq!(exact["domains"][0]["messages"], 17);
    let bad = env.run(&["summary", "--since", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn shipped_queries_run_in_every_format() {
    let env = Env::new();
    assert!(env.run(&["-q", "ingest", WRAPPED]).status.success());
    let rows = env.json(&["query", "failing-senders", "--format", "json"]);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["source_ip"], "203.0.113.77");
    assert_eq!(rows[0]["failing_messages"], 3);
    let csv = env.run(&["query", "receiver-actions", "--format", "csv"]);
    let csv = String::from_utf8_lossy(&csv.stdout);
    assert!(
        csv.starts_with("reporter,policy_domain,messages,quarantined,rejected"),
        "{csv}"
    );
    assert!(
        csv.contains("mail receiver example,example.com,17,3,0"),
        "{csv}"
    );
    for q in ["daily-volume", "invalid-inputs"] {
        let o = env.run(&["query", q]);
        assert!(o.status.success(), "{q}: {}", stderr(&o));
    }
    // A user's file; writes are refused.
    let file = env.dir.path().join("mine.sql");
    std::fs::write(&file, "SELECT count(*) AS n FROM records").unwrap();
    let mine = env.json(&["query", file.to_str().unwrap(), "--format", "json"]);
    assert_eq!(mine[0]["n"], 3);
    std::fs::write(&file, "DELETE FROM records").unwrap();
    let del = env.run(&["query", file.to_str().unwrap()]);
    assert_eq!(del.status.code(), Some(1));
    assert_eq!(env.sql("SELECT count(*) FROM records"), 3);
    assert_eq!(env.run(&["query", "no-such-query"]).status.code(), Some(2));
}

#[test]
fn schema_and_queries_work_in_the_sqlite3_shell() {
    if Command::new("sqlite3").arg("-version").output().is_err() {
        assert!(std::env::var("CI").is_err(), "sqlite3 missing in CI");
        eprintln!("SKIPPED: no sqlite3 shell on this machine (apt-get install sqlite3)");
        return;
    }
    let env = Env::new();
    assert!(env.run(&["-q", "ingest", WRAPPED]).status.success());
    for entry in std::fs::read_dir("sql/queries").unwrap() {
        let path = entry.unwrap().path();
        let out = Command::new("sqlite3")
            .arg("-bail")
            .arg(env.db())
            .stdin(std::fs::File::open(&path).unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}: {}",
            path.display(),
            stderr(&out)
        );
    }
    let out = Command::new("sqlite3")
        .arg(env.db())
        .arg("SELECT source_ip, count FROM report_records ORDER BY count DESC LIMIT 1")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "192.0.2.10|12");
}

#[test]
fn stdin_and_mbox_inputs() {
    let env = Env::new();
    let eml = std::fs::read(format!("{WRAPPED}/{NAME}.eml")).unwrap();
    let mut child = env
        .cmd(&["ingest", "--json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&eml).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["reports"], 1);
    assert_eq!(
        env.sql("SELECT count(*) FROM inputs WHERE origin = 'stdin'"),
        1
    );

    // An mbox of two mails: the same report mail again (split back to the very
    // same bytes, so a duplicate input) and a plain mail.
    let mut mbox = b"From dmarc-reports@mail.example.net Thu Nov 16 01:02:03 2023\n".to_vec();
    mbox.extend_from_slice(&eml);
    mbox.extend_from_slice(b"\nFrom someone@example.org Thu Nov 16 01:02:04 2023\nFrom: someone@example.org\nSubject: hello\n\nJust a note.\n");
    let path = env.dir.path().join("inbox.mbox");
    std::fs::write(&path, mbox).unwrap();
    let stats = env.json(&["ingest", "--json", path.to_str().unwrap()]);
    assert_eq!(stats["inputs"], 2, "{stats}");
    assert_eq!(stats["duplicate_inputs"], 1, "{stats}");
    assert_eq!(stats["other"], 1, "{stats}");
    assert_eq!(
        env.sql("SELECT count(*) FROM inputs WHERE mbox_index = 2 AND kind = 'other'"),
        1
    );
}

#[test]
fn exit_codes() {
    let env = Env::new();
    // A path that cannot be read: exit 1, but the other inputs are processed first.
    let missing = env.dir.path().join("missing.xml");
    let out = env.run(&["ingest", missing.to_str().unwrap(), WRAPPED]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("missing.xml"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("4 inputs seen, 1 reports stored"),
        "{}",
        stderr(&out)
    );
    // Usage errors: exit 2, nothing done.
    assert_eq!(env.run(&["ingest"]).status.code(), Some(2));
    assert_eq!(env.run(&["bogus-command"]).status.code(), Some(2));
    assert_eq!(env.run(&["ingest", "--imap"]).status.code(), Some(2));
    let cfg = env.dir.path().join("bad.toml");
    std::fs::write(&cfg, "[[imap]]\nname = 'x'\nunknown_key = 1\n").unwrap();
    let out = env.run(&["--config", cfg.to_str().unwrap(), "ingest", "--imap"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("bad.toml"), "{}", stderr(&out));
    // -q prints nothing on success.
    let quiet = env.run(&["-q", "ingest", WRAPPED]);
    assert!(
        quiet.status.success() && quiet.stderr.is_empty(),
        "{}",
        stderr(&quiet)
    );
    assert!(Path::new(&env.db()).exists());
}

#[test]
fn same_key_with_other_records_keeps_the_first_and_warns() {
    let env = Env::new();
    let xml = std::fs::read_to_string(format!("{WRAPPED}/{NAME}.xml")).unwrap();
    let dir = env.dir.path().join("in");
    std::fs::create_dir(&dir).unwrap();
    // 1: the original. 2: same key, a record's count changed. 3: same report id
    // from another reporter. 4: same reporter and id, another date range.
    std::fs::write(dir.join("1.xml"), &xml).unwrap();
    std::fs::write(
        dir.join("2.xml"),
        xml.replace("<count>12</count>", "<count>99</count>"),
    )
    .unwrap();
    std::fs::write(
        dir.join("3.xml"),
        xml.replace("Mail Receiver Example", "Other Receiver Example"),
    )
    .unwrap();
    std::fs::write(
        dir.join("4.xml"),
        xml.replace("1700006400", "1700092800")
            .replace("1700092799", "1700179199"),
    )
    .unwrap();
    let stats = env.json(&["ingest", "--json", dir.to_str().unwrap()]);
    assert_eq!(stats["reports"], 3, "{stats}");
    assert_eq!(stats["duplicate_reports"], 1, "{stats}");
    assert_eq!(
        env.sql("SELECT count(*) FROM reports WHERE report_id = 'wrapping-test-0001'"),
        3
    );
    // The first copy's records were kept...
    assert_eq!(
        env.sql("SELECT message_count FROM reports WHERE reporter = 'mail receiver example' AND begin_date = 1700006400"),
        17
    );
    // ...and both the kept report and the second input say so, naming both inputs.
    let conn = rusqlite::Connection::open(env.db()).unwrap();
    let w: String = conn
        .query_row(
            "SELECT warnings FROM reports WHERE reporter = 'mail receiver example' AND begin_date = 1700006400",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        w.contains("different records") && w.contains("1.xml") && w.contains("2.xml"),
        "{w}"
    );
    let w2: String = conn
        .query_row(
            "SELECT warnings FROM inputs WHERE path LIKE '%2.xml'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(w, w2);
    assert_eq!(
        env.sql("SELECT count(*) FROM inputs"),
        4,
        "every input is kept"
    );
}

#[test]
fn caps_make_inputs_invalid_and_the_run_goes_on() {
    let env = Env::new();
    let cfg = env.dir.path().join("caps.toml");
    std::fs::write(
        &cfg,
        "[limits]\nmax_input_bytes = 2000\nmax_decompressed_bytes = 3000\n",
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    // The plain XML (2634 bytes) is over max_input_bytes; the .xml.gz is
    // small; the zip of two reports decompresses past max_decompressed_bytes.
    let xml = format!("{WRAPPED}/{NAME}.xml");
    let gz = format!("{WRAPPED}/{NAME}.xml.gz");
    let out = env.run(&[
        "--config",
        cfg,
        "ingest",
        "--json",
        &xml,
        &gz,
        "fixtures/archives/several.zip",
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (stats["reports"].as_i64(), stats["invalid"].as_i64()),
        (Some(1), Some(2)),
        "{stats} {err}"
    );
    assert!(err.contains("over max_input_bytes 2000"), "{err}");
    assert!(
        err.contains("several.zip") && err.contains("limit"),
        "{err}"
    );
    assert_eq!(
        env.sql("SELECT count(*) FROM inputs i JOIN raw_inputs r USING (sha256) WHERE i.kind = 'invalid' AND i.reason LIKE '%max_input_bytes%' AND length(r.bytes) <= 2000"),
        1
    );
    assert_eq!(
        env.sql("SELECT count(*) FROM reports"),
        1,
        "the zip's reports were not kept"
    );
}

#[test]
fn a_closed_stderr_does_not_abort_the_run() {
    let env = Env::new();
    let mut child = env
        .cmd(&["ingest", "fixtures"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(env.sql("SELECT count(*) FROM reports") > 20);
}

#[test]
fn reading_commands_never_create_or_write() {
    let env = Env::new();
    let out = env.run(&["summary"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no database at"), "{}", stderr(&out));
    assert!(!env.db().exists());
    assert_eq!(
        env.run(&["query", "failing-senders"]).status.code(),
        Some(1)
    );
    assert!(!env.db().exists());

    assert!(env.run(&["-q", "ingest", WRAPPED]).status.success());
    let attach = env.dir.path().join("attached.db");
    let file = env.dir.path().join("attach.sql");
    std::fs::write(
        &file,
        format!("ATTACH DATABASE '{}' AS x", attach.display()),
    )
    .unwrap();
    assert_eq!(
        env.run(&["query", file.to_str().unwrap()]).status.code(),
        Some(1)
    );
    assert!(!attach.exists(), "ATTACH created a file");
    // A LIKE wildcard is not a domain.
    let s = env.json(&["summary", "--format", "json", "--domain", "%"]);
    assert_eq!(s["domains"].as_array().unwrap().len(), 0);
    assert_eq!(env.run(&["summary", "--domain", ""]).status.code(), Some(2));
}

#[test]
fn invalid_lists_and_shows_with_raw_bytes() {
    let env = Env::new();
    let bad = "fixtures/malformed/archives/corrupt-deflate.xml.gz";
    assert!(env.run(&["-q", "ingest", WRAPPED, bad]).status.success());
    let list = env.run(&["invalid"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains(bad) && text.contains("gzip stream corrupt at byte"),
        "{text}"
    );
    let rows = env.json(&["invalid", "--json", "--since", "1d"]);
    let id = rows[0]["id"].as_i64().unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    let show = env.run(&["invalid", "show", &id.to_string()]);
    assert!(String::from_utf8_lossy(&show.stdout).contains("reason:   gzip stream corrupt"));
    let raw = env.run(&["invalid", "show", &id.to_string(), "--raw"]);
    assert_eq!(
        raw.stdout,
        std::fs::read(bad).unwrap(),
        "raw bytes as received"
    );
    assert_eq!(
        env.run(&["invalid", "show", "99999"]).status.code(),
        Some(1)
    );
    let old = env.json(&["invalid", "--json", "--since", "2000-01-01"]);
    assert_eq!(old.as_array().unwrap().len(), 1);
}

#[test]
fn reparse_turns_an_input_that_failed_before_into_reports_once() {
    let env = Env::new();
    assert!(env
        .run(&["-q", "ingest", "fixtures/archives", WRAPPED])
        .status
        .success());
    let reports = env.sql("SELECT count(*) FROM reports");
    let records = env.sql("SELECT count(*) FROM records");
    // Nothing changes when the code has not changed.
    let r = env.json(&["reparse", "--json"]);
    assert_eq!(r["changed"], 0, "{r}");
    // As if an older version had failed on the xml of the wrapped report.
    {
        let conn = rusqlite::Connection::open(env.db()).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA foreign_keys = ON;
             DELETE FROM reports WHERE input = (SELECT id FROM inputs WHERE path LIKE '%{NAME}.eml');
             UPDATE inputs SET kind = 'invalid', reason = 'old bug' WHERE path LIKE '%{NAME}.eml';"
        ))
        .unwrap();
    }
    assert_eq!(env.sql("SELECT count(*) FROM reports"), reports - 1);
    let r = env.json(&["reparse", "--json"]);
    assert_eq!(
        (r["changed"].as_i64(), r["now_aggregate"].as_i64()),
        (Some(1), Some(1)),
        "{r}"
    );
    assert_eq!(env.sql("SELECT count(*) FROM reports"), reports);
    assert_eq!(env.sql("SELECT count(*) FROM records"), records);
    assert_eq!(env.sql(&format!("SELECT count(*) FROM inputs WHERE path LIKE '%{NAME}.eml' AND kind = 'aggregate' AND reason IS NULL")), 1);
    // Idempotent.
    let r = env.json(&["reparse", "--json"]);
    assert_eq!(r["changed"], 0, "{r}");
    assert_eq!(env.sql("SELECT count(*) FROM reports"), reports);
}

#[test]
fn prune_removes_old_reports_and_their_inputs() {
    let env = Env::new();
    assert!(env.run(&["-q", "ingest", WRAPPED]).status.success());
    assert!(env
        .run(&["-q", "ingest", "fixtures/reports/rfc9990-full.xml"])
        .status
        .success());
    // Both reports are from November 2023; an old cap removes nothing.
    let none = env.json(&["prune", "--older-than", "100000d", "--json"]);
    assert_eq!(none["reports"], 0, "{none}");
    let dry = env.json(&["prune", "--older-than", "1d", "--dry-run", "--json"]);
    // The inputs that held the reports go with them; the three copies that
    // held no report of their own were received today and stay until they age.
    assert_eq!(
        (dry["reports"].as_i64(), dry["inputs"].as_i64()),
        (Some(2), Some(2)),
        "{dry}"
    );
    assert_eq!(
        env.sql("SELECT count(*) FROM reports"),
        2,
        "dry run changed nothing"
    );
    let cfg = env.dir.path().join("prune.toml");
    std::fs::write(&cfg, "[prune]\nolder_than = \"1d\"\n").unwrap();
    let done = env.json(&["--config", cfg.to_str().unwrap(), "prune", "--json"]);
    assert_eq!(done["records"], 5, "{done}");
    for t in ["reports", "records", "dkim_results", "spf_results"] {
        assert_eq!(env.sql(&format!("SELECT count(*) FROM {t}")), 0, "{t}");
    }
    assert_eq!(env.sql("SELECT count(*) FROM inputs"), 3);
    assert_eq!(env.sql("SELECT count(*) FROM raw_inputs"), 3);
    assert_eq!(env.run(&["prune"]).status.code(), Some(2));
}

#[test]
fn a_report_with_mismatched_end_tags_is_recovered_and_a_well_formed_copy_replaces_it() {
    let env = Env::new();
    let stats = env.json(&[
        "ingest",
        "--json",
        "fixtures/malformed/reports/mismatched-tags-recoverable.xml",
    ]);
    assert_eq!(
        (stats["reports"].as_i64(), stats["records"].as_i64()),
        (Some(1), Some(3)),
        "{stats}"
    );
    assert_eq!(
        env.sql("SELECT count(*) FROM reports WHERE salvaged = 1 AND record_count = 3 AND warnings LIKE '%not well-formed: <identifiers> not closed before <auth_results>%'"),
        1
    );
    let stats = env.json(&["ingest", "--json", "fixtures/reports/rfc7489-plain.xml"]);
    assert_eq!(stats["replaced_salvaged"], 1, "{stats}");
    assert_eq!(
        env.sql("SELECT count(*) FROM reports WHERE salvaged = 0 AND record_count = 3"),
        1
    );
    assert_eq!(env.sql("SELECT count(*) FROM reports"), 1);
    // The recovered copy arriving again (other bytes) does not displace it.
    let again = env.dir.path().join("again.xml");
    let mut bytes =
        std::fs::read("fixtures/malformed/reports/mismatched-tags-recoverable.xml").unwrap();
    bytes.extend_from_slice(b"\n");
    std::fs::write(&again, bytes).unwrap();
    let stats = env.json(&["ingest", "--json", again.to_str().unwrap()]);
    assert_eq!(stats["duplicate_reports"], 1, "{stats}");
    assert_eq!(
        env.sql("SELECT count(*) FROM reports WHERE salvaged = 0 AND record_count = 3"),
        1
    );
    assert_eq!(
        env.sql("SELECT count(*) FROM inputs WHERE warnings LIKE '%that is not well-formed, stored complete from input 2%'"),
        1
    );
}

#[test]
fn a_broken_report_is_salvaged_and_a_complete_copy_replaces_it() {
    let env = Env::new();
    let broken = "fixtures/malformed/reports/truncated.xml";
    let stats = env.json(&["ingest", "--json", broken]);
    assert_eq!(stats["reports"], 1, "{stats}");
    assert_eq!(
        env.sql(
            "SELECT count(*) FROM reports WHERE salvaged = 1 AND report_id = 'rfc7489-plain-0001'"
        ),
        1
    );
    assert_eq!(
        env.sql("SELECT count(*) FROM reports, json_each(reports.warnings) w WHERE w.value LIKE 'salvaged: the report breaks after 0 records (XML: document ends inside <row>)%'"),
        1
    );
    let stats = env.json(&["ingest", "--json", "fixtures/reports/rfc7489-plain.xml"]);
    assert_eq!(
        (
            stats["reports"].as_i64(),
            stats["replaced_salvaged"].as_i64(),
            stats["records"].as_i64()
        ),
        (Some(0), Some(1), Some(3)),
        "{stats}"
    );
    assert_eq!(
        env.sql("SELECT count(*) FROM reports"),
        1,
        "replaced, not added"
    );
    assert_eq!(
        env.sql("SELECT count(*) FROM reports WHERE salvaged = 0 AND record_count = 3 AND warnings LIKE '%replaces the salvaged copy from input 1 (fixtures/malformed/reports/truncated.xml)%'"),
        1
    );
    // The broken copy again, under another name: a duplicate, the complete one stays.
    let again = env.dir.path().join("again.xml");
    let mut bytes = std::fs::read(broken).unwrap();
    bytes.extend_from_slice(b"\n");
    std::fs::write(&again, bytes).unwrap();
    let stats = env.json(&["ingest", "--json", again.to_str().unwrap()]);
    assert_eq!(stats["duplicate_reports"], 1, "{stats}");
    assert_eq!(
        env.sql("SELECT count(*) FROM reports WHERE salvaged = 0 AND record_count = 3"),
        1
    );
}

/// A config whose one account cannot be reached (nothing listens on port 9).
fn unreachable_account(env: &Env) -> PathBuf {
    let cfg = env.dir.path().join("imap.toml");
    std::fs::write(
        &cfg,
        "[[imap]]\nname = 'down'\nhost = '127.0.0.1'\nport = 9\ntls = 'none'\nusername = 'u'\npassword_env = 'DMARCDB_TEST_PW'\n",
    )
    .unwrap();
    cfg
}

#[test]
fn an_overlapping_imap_run_does_nothing_and_file_ingests_wait() {
    use dmarcdb::lock::{Acquired, RunLock};
    let env = Env::new();
    let cfg = unreachable_account(&env);
    let cfg = cfg.to_str().unwrap();
    let Acquired::Held(held) = RunLock::try_acquire(&env.db()).unwrap() else {
        panic!("lock busy in a fresh directory");
    };
    // The second cron run: exit 0 at once, without connecting.
    let out = env.run(&["--config", cfg, "ingest", "--imap"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("another dmarcdb run holds") && !stderr(&out).contains("connect"),
        "{}",
        stderr(&out)
    );
    assert!(
        !env.db().exists(),
        "nothing done, not even the database made"
    );

    // A file ingest and `ingest --imap --wait` wait for the lock.
    let mut file = env
        .cmd(&["ingest", WRAPPED])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut imap = env
        .cmd(&["--config", cfg, "ingest", "--imap", "--wait"])
        .env("DMARCDB_TEST_PW", "x")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        file.try_wait().unwrap().is_none(),
        "the file ingest did not wait"
    );
    assert!(imap.try_wait().unwrap().is_none(), "--wait did not wait");
    drop(held);
    let file = file.wait_with_output().unwrap();
    assert!(file.status.success(), "{}", stderr(&file));
    assert!(
        stderr(&file).contains("waiting for another dmarcdb run"),
        "{}",
        stderr(&file)
    );
    assert_eq!(env.sql("SELECT count(*) FROM reports"), 1);
    // It got the lock and then failed to connect, as it should.
    let imap = imap.wait_with_output().unwrap();
    assert_eq!(imap.status.code(), Some(1), "{}", stderr(&imap));
    assert!(
        stderr(&imap).contains("account down: cannot connect"),
        "{}",
        stderr(&imap)
    );
}

#[test]
fn dry_run_reads_everything_and_changes_nothing() {
    let env = Env::new();
    env.json(&["ingest", "--json", &format!("{WRAPPED}/{NAME}.xml")]);
    let out = env.run(&[
        "ingest",
        "--dry-run",
        "--json",
        WRAPPED,
        "fixtures/malformed/reports",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // What a real run would do, duplicates included.
    assert_eq!(stats["duplicate_inputs"], 1, "{stats}");
    // 3 other wrappings; two broken copies of one report, one of them kept.
    assert_eq!(stats["duplicate_reports"], 4, "{stats}");
    assert!(stats["invalid"].as_u64().unwrap() > 3, "{stats}");
    let err = stderr(&out);
    assert!(err.contains("dry run: nothing was stored"), "{err}");
    assert!(
        err.contains("fixtures/malformed/reports/truncated.xml: aggregate"),
        "{err}"
    );
    assert_eq!(env.sql("SELECT count(*) FROM inputs"), 1);
    assert_eq!(env.sql("SELECT count(*) FROM reports"), 1);
}

#[test]
fn an_inline_password_in_a_config_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let cfg = env.dir.path().join("pw.toml");
    std::fs::write(
        &cfg,
        "[[imap]]\nname = 'a'\nhost = '127.0.0.1'\nport = 9\ntls = 'none'\nusername = 'u'\npassword = 'hunter2'\n",
    )
    .unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = env.run(&["--config", cfg.to_str().unwrap(), "ingest", "--imap"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("mode 644") && err.contains("chmod 600"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    // Mode 600: accepted (and then the server is down: exit 1).
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = env.run(&["--config", cfg.to_str().unwrap(), "ingest", "--imap"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn absurd_counts_and_future_dates_do_not_break_or_hide_the_summary() {
    let env = Env::new();
    let xml = std::fs::read_to_string(format!("{WRAPPED}/{NAME}.xml")).unwrap();
    let dir = env.dir.path().join("in");
    std::fs::create_dir(&dir).unwrap();
    let evil = xml
        .replace("wrapping-test-0001", "evil-1")
        .replace("<end>1700092799</end>", "<end>9223372036854775807</end>");
    let evil = regex_count(&evil);
    std::fs::write(dir.join("evil.xml"), evil).unwrap();
    std::fs::write(dir.join("good.xml"), &xml).unwrap();
    env.json(&["ingest", "--json", dir.to_str().unwrap()]);
    let out = env.run(&["summary", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The default period is the real report's, not the one dated in 292 billion years.
    assert_eq!(s["until"].as_i64(), Some(1700092799), "{s}");
    let out = env.run(&["summary", "--since", "2000-01-01", "--until", "2100-01-01"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(env.run(&["query", "receiver-actions"]).status.success());
}

/// Every <count> of a report made absurd.
fn regex_count(xml: &str) -> String {
    let mut out = String::new();
    let mut rest = xml;
    while let Some(i) = rest.find("<count>") {
        out.push_str(&rest[..i]);
        out.push_str("<count>9223372036854775807");
        let j = rest[i..].find("</count>").unwrap();
        rest = &rest[i + j..];
    }
    out.push_str(rest);
    out
}

#[test]
fn warnings_per_input_are_capped() {
    let env = Env::new();
    let mut m = String::from(
        "From: a@example.org\r\nTo: b@example.com\r\nSubject: junk\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=b\r\n\r\n",
    );
    for i in 0..300 {
        m.push_str(&format!(
            "--b\r\nContent-Type: application/gzip; name=\"r{i}.xml.gz\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n"
        ));
    }
    m.push_str("--b--\r\n");
    let path = env.dir.path().join("junk.eml");
    std::fs::write(&path, m).unwrap();
    let out = env.run(&["ingest", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).lines().count() <= 52, "{}", stderr(&out));
    assert_eq!(
        env.sql("SELECT json_array_length(warnings) FROM inputs"),
        50
    );
    assert_eq!(
        env.sql("SELECT count(*) FROM inputs, json_each(inputs.warnings) w WHERE w.value LIKE 'and % more warnings (not kept)'"),
        1
    );
}

#[test]
fn reparse_right_after_ingest_changes_nothing() {
    // The same code reads the same bytes: nothing may change, including the
    // warnings that record which copy of a report arrived first.
    let env = Env::new();
    env.run(&["-q", "ingest", "fixtures"]);
    let before = env.sql("SELECT count(*) FROM reports, json_each(reports.warnings)");
    let ids = env.sql("SELECT sum(id) FROM reports");
    let r = env.json(&["reparse", "--json"]);
    assert_eq!(r["changed"], 0, "{r}");
    assert_eq!(
        env.sql("SELECT count(*) FROM reports, json_each(reports.warnings)"),
        before
    );
    assert_eq!(
        env.sql("SELECT sum(id) FROM reports"),
        ids,
        "reports re-made"
    );
}

#[test]
fn reparse_does_not_bring_back_what_prune_removed() {
    let env = Env::new();
    // The same (2023) report twice, in two wrappings: the second input keeps
    // no report of its own, and is recent, so prune keeps it.
    env.json(&[
        "ingest",
        "--json",
        &format!("{WRAPPED}/{NAME}.xml"),
        &format!("{WRAPPED}/{NAME}.xml.gz"),
    ]);
    let p = env.json(&["prune", "--older-than", "400d", "--json"]);
    assert_eq!(p["reports"], 1, "{p}");
    assert_eq!(env.sql("SELECT count(*) FROM inputs"), 1);
    let r = env.json(&["reparse", "--json"]);
    assert_eq!(r["changed"], 0, "{r}");
    assert_eq!(
        env.sql("SELECT count(*) FROM reports"),
        0,
        "pruned report restored"
    );
    // Ingesting it again on purpose still works.
    env.json(&["ingest", "--json", &format!("{WRAPPED}/{NAME}.eml")]);
    assert_eq!(env.sql("SELECT count(*) FROM reports"), 1);
}

#[test]
fn control_characters_in_names_and_report_ids_never_reach_the_terminal() {
    let env = Env::new();
    let dir = env.dir.path().join("in");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("bad\nname\u{1b}[31m.xml"), "x").unwrap();
    // Two copies of one report whose id holds a line break and an escape,
    // the second with other records: its warning names the id.
    let xml = std::fs::read_to_string(format!("{WRAPPED}/{NAME}.xml"))
        .unwrap()
        .replace("wrapping-test-0001", "id&#x0A;\u{1b}[2J-1");
    std::fs::write(dir.join("a.xml"), &xml).unwrap();
    std::fs::write(dir.join("b.xml"), xml.replacen("<count>", "<count>1", 1)).unwrap();
    let out = env.run(&["ingest", dir.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains('\u{1b}'), "an escape reached stderr: {err:?}");
    assert!(err.contains("bad\\nname\\u{1b}[31m.xml"), "{err}");
    assert!(
        err.contains("arrived again with different records"),
        "{err}"
    );
    for line in err.lines() {
        assert!(
            line.starts_with("dmarcdb: ") || line.contains("inputs seen"),
            "torn line {line:?} in {err}"
        );
    }
    let out = env.run(&["invalid"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains('\u{1b}'));
}

/// `dmarcdb bounces`: the fixtures' bounces grouped, filtered by provider and
/// our domain, as text and JSON; `summary` shows them per provider.
#[test]
fn bounces_command() {
    let e = Env::new();
    assert!(e.run(&["ingest", "fixtures/bounces"]).status.success());
    let out = e.run(&["bounces"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("Bounce patterns: 3 bounced recipients in 3 groups"),
        "{text}"
    );
    assert!(
        text.contains("Microsoft") && text.contains("blocklist") && text.contains("5.7.606"),
        "{text}"
    );
    let j = e.json(&["bounces", "--to", "google", "--format", "json"]);
    let groups = j.as_array().unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["reason"], "auth_failure");
    assert_eq!(groups[0]["detail"], "dmarc");
    assert_eq!(groups[0]["count"], 1);
    // A remote MTA's domain, a recipient domain, any case.
    let j = e.json(&["bounces", "--to", "Outlook.COM", "--format", "json"]);
    assert_eq!(j.as_array().unwrap().len(), 1);
    assert_eq!(j[0]["provider"], "Microsoft");
    let j = e.json(&["bounces", "--to", "example.net", "--format", "json"]);
    assert_eq!(j.as_array().unwrap().len(), 3);
    assert_eq!(e.run(&["bounces", "--to", " "]).status.code(), Some(2));
    let j = e.json(&["bounces", "--domain", "example.com", "--format", "json"]);
    assert_eq!(j.as_array().unwrap().len(), 2);
    let j = e.json(&["bounces", "--since", "2025-03-06", "--format", "json"]);
    assert_eq!(j.as_array().unwrap().len(), 1);
    let out = e.run(&["summary", "--since", "2025-03-01", "--until", "2025-03-31"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Bounce patterns"), "{text}");
    assert!(text.contains("auth_failure/dmarc=1"), "{text}");
}
