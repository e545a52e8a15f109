//! `dmarcdb ingest --imap --watch` against a real Dovecot: the built binary
//! runs as a child process while the test appends mail, restarts the
//! server and sends signals. `WATCH_DEBUG=1 cargo test --test imap_watch --
//! --nocapture` prints each watcher's stderr.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::dovecot::{Dovecot, CAPS_WITHOUT_IDLE};

/// A report mail whose report id (and Message-ID) is `id`.
fn report(id: &str) -> Vec<u8> {
    let xml = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/wrappings/mail.example.net!example.com!1700006400!1700092799.xml"),
    )
    .unwrap()
    .replace("wrapping-test-0001", id);
    format!(
        "From: reports@receiver.example.org\r\nTo: dmarc@example.com\r\n\
         Subject: Report Domain: example.com Submitter: receiver.example.org Report-ID: {id}\r\n\
         Message-ID: <{id}@receiver.example.org>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/xml; charset=utf-8\r\n\r\n{}",
        xml.replace('\n', "\r\n")
    )
    .into_bytes()
}

/// A report of `n` synthetic records, gzipped, as a base64 attachment.
fn big_report(id: &str, n: u64) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::copy(
        &mut dmarcdb::synthetic::SyntheticReport::new(id, n),
        &mut gz,
    )
    .unwrap();
    let b64 = base64(&gz.finish().unwrap());
    let mut mail = format!(
        "From: reports@synthetic.example.org\r\nTo: dmarc@example.com\r\n\
         Subject: Report Domain: example.com Report-ID: {id}\r\n\
         Message-ID: <{id}@synthetic.example.org>\r\nMIME-Version: 1.0\r\n\
         Content-Type: application/gzip; name=\"{id}.xml.gz\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n"
    );
    for line in b64.as_bytes().chunks(76) {
        mail.push_str(std::str::from_utf8(line).unwrap());
        mail.push_str("\r\n");
    }
    mail.into_bytes()
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= c.len() {
                A[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

fn plain_mail(id: &str) -> Vec<u8> {
    format!(
        "From: someone@example.org\r\nTo: dmarc@example.com\r\nSubject: lunch?\r\n\
         Message-ID: <{id}@example.org>\r\n\r\nAre you free at noon?\r\n"
    )
    .into_bytes()
}

/// The Message-ID of a raw mail, without the angle brackets.
fn message_id(mail: &[u8]) -> String {
    let text = String::from_utf8_lossy(mail);
    text.lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .map(|v| v.trim().trim_matches(['<', '>']).to_string())
        .expect("a Message-ID")
}

/// Wait up to `limit` for `cond`; false if it never held.
fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One database and config, and the watcher running on them.
struct Watch {
    dir: tempfile::TempDir,
    child: Option<Child>,
    stderr: Arc<Mutex<String>>,
}

impl Watch {
    /// A config with `accounts` (TOML) written, nothing started.
    fn new(accounts: &str) -> Watch {
        let dir = tempfile::tempdir().unwrap();
        support::write_private(&dir.path().join("config.toml"), accounts);
        Watch {
            dir,
            child: None,
            stderr: Arc::default(),
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("watch.sqlite")
    }

    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dmarcdb"));
        c.arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .env("DMARCDB_DB", self.db())
            .env("HOME", self.dir.path())
            // Reconnect after 100 ms, at most 400 ms apart.
            .env("DMARCDB_WATCH_BACKOFF_MS", "100,400");
        c
    }

    /// Start `dmarcdb -v ingest --imap --watch`; its stderr is collected.
    fn start(&mut self) {
        let mut child = self
            .command()
            .args(["-v", "ingest", "--imap", "--watch"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take().unwrap();
        let sink = Arc::clone(&self.stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        self.child = Some(child);
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Wait until stderr contains `text` `n` times; panics with stderr if not.
    fn wait_for(&self, text: &str, n: usize, limit: Duration) {
        if !wait_until(limit, || self.stderr().matches(text).count() >= n) {
            panic!(
                "no {n}× {text:?} within {limit:?}; stderr:\n{}",
                self.stderr()
            );
        }
    }

    /// Send a signal by name (TERM, INT).
    fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("started").id().to_string();
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name} {pid}");
    }

    /// Wait up to `limit` for the watcher to exit; how long it took.
    fn exit(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let start = Instant::now();
        let child = self.child.as_mut().expect("started");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return (status, start.elapsed());
            }
            if start.elapsed() > limit {
                panic!(
                    "the watcher did not exit within {limit:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One number from the database (read while the watcher may be writing).
    fn sql(&self, sql: &str) -> i64 {
        let c = rusqlite::Connection::open(self.db()).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// The Message-IDs of the stored inputs.
    fn stored_ids(&self) -> Vec<String> {
        let c = rusqlite::Connection::open(self.db()).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        let mut st = c
            .prepare("SELECT message_id FROM inputs ORDER BY message_id")
            .unwrap();
        let ids = st
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(|r| r.unwrap().trim_matches(['<', '>']).to_string())
            .collect();
        ids
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if std::env::var("WATCH_DEBUG").is_ok() {
            eprintln!("----- stderr -----\n{}", self.stderr());
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The harness account with `extra` TOML lines added.
fn account(dv: &Dovecot, name: &str, extra: &str) -> String {
    format!("{}{extra}\n", dv.account_toml(name, "starttls"))
}

/// The first poll is done when its -v line is there.
const POLLED: &str = "messages in INBOX";

#[test]
fn idle_fetches_new_mail_within_seconds_and_sigterm_stops_cleanly() {
    let Some(dv) = Dovecot::start() else { return };
    // The periodic re-IDLE (and its poll) is 10 minutes away: only IDLE can
    // bring the mail in within seconds.
    let mut w = Watch::new(&account(&dv, "reports", "idle_timeout = \"10m\""));
    w.start();
    w.wait_for(
        "waiting for mail in INBOX (IDLE)",
        1,
        Duration::from_secs(20),
    );
    w.wait_for(POLLED, 1, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(300));

    dv.append_all(
        "INBOX",
        &[report("idle-1"), report("idle-2"), plain_mail("idle-3")],
    );
    let done = || dv.count("INBOX") == 0 && dv.count("Archive") == 3;
    assert!(
        wait_until(Duration::from_secs(10), done),
        "not fetched: INBOX {} Archive {}; stderr:\n{}",
        dv.count("INBOX"),
        dv.count("Archive"),
        w.stderr()
    );
    assert_eq!(w.sql("SELECT count(*) FROM reports"), 2);
    assert_eq!(w.sql("SELECT count(*) FROM inputs"), 3);

    // And again: the watcher went back to IDLE.
    dv.append("INBOX", &report("idle-4"));
    assert!(
        wait_until(Duration::from_secs(10), || dv.count("Archive") == 4),
        "second mail not fetched; stderr:\n{}",
        w.stderr()
    );
    assert_eq!(w.sql("SELECT count(*) FROM reports"), 3);

    // SIGTERM while idle: DONE, LOGOUT, exit 0, promptly.
    std::thread::sleep(Duration::from_millis(300));
    w.signal("TERM");
    let (status, took) = w.exit(Duration::from_secs(10));
    let err = w.stderr();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(took < Duration::from_secs(3), "took {took:?}: {err}");
    assert!(err.contains("stopped on SIGTERM"), "{err}");
    assert!(err.contains("4 inputs seen, 3 reports stored"), "{err}");
    assert!(!err.contains("dmarcdb: account"), "a failure: {err}");
    // Dovecot saw a LOGOUT, not a connection dropped in the middle of IDLE.
    let log = dv.log();
    assert!(!log.contains("IDLE running"), "{log}");
}

#[test]
fn a_file_ingest_and_a_cron_poll_run_while_the_daemon_idles() {
    let Some(dv) = Dovecot::start() else { return };
    let mut w = Watch::new(&account(&dv, "reports", "idle_timeout = \"10m\""));
    w.start();
    w.wait_for(POLLED, 1, Duration::from_secs(20));
    // The daemon does not hold the run lock while it idles.
    let file = w
        .command()
        .args(["ingest", "fixtures/wrappings"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        file.status.success(),
        "{}",
        String::from_utf8_lossy(&file.stderr)
    );
    assert_eq!(w.sql("SELECT count(*) FROM reports"), 1);
    let cron = w.command().args(["ingest", "--imap"]).output().unwrap();
    let err = String::from_utf8_lossy(&cron.stderr);
    assert!(cron.status.success() && !err.contains("holds"), "{err}");
    // And it still works afterwards.
    dv.append("INBOX", &report("after-1"));
    assert!(
        wait_until(Duration::from_secs(10), || dv.count("Archive") == 1),
        "not fetched; stderr:\n{}",
        w.stderr()
    );
    assert_eq!(w.sql("SELECT count(*) FROM reports"), 2);
}

#[test]
fn idle_is_reissued_every_idle_timeout_on_the_same_connection() {
    let Some(dv) = Dovecot::start() else { return };
    let mut w = Watch::new(&account(&dv, "reports", "idle_timeout = \"1s\""));
    w.start();
    // Each re-IDLE polls (a -v line each time).
    w.wait_for(POLLED, 4, Duration::from_secs(15));
    // (The harness logs in without TLS; the watcher uses STARTTLS.)
    let logins = dv
        .log()
        .lines()
        .filter(|l| l.contains("imap-login: Info: Login: user=<") && l.contains(", TLS,"))
        .count();
    assert_eq!(logins, 1, "re-IDLE must not reconnect:\n{}", dv.log());
    dv.append("INBOX", &report("reidle-1"));
    assert!(
        wait_until(Duration::from_secs(10), || dv.count("Archive") == 1),
        "not fetched; stderr:\n{}",
        w.stderr()
    );
}

#[test]
fn sigint_while_idle_exits_0_promptly() {
    let Some(dv) = Dovecot::start() else { return };
    let mut w = Watch::new(&account(&dv, "reports", ""));
    w.start();
    w.wait_for(POLLED, 1, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(300));
    w.signal("INT");
    let (status, took) = w.exit(Duration::from_secs(10));
    let err = w.stderr();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(took < Duration::from_secs(3), "took {took:?}: {err}");
    assert!(err.contains("stopped on SIGINT"), "{err}");
    assert!(!dv.log().contains("IDLE running"), "{}", dv.log());
}

#[test]
fn without_idle_polls_every_poll_interval() {
    let Some(dv) = Dovecot::builder()
        .imap_capability(CAPS_WITHOUT_IDLE)
        .start()
    else {
        return;
    };
    let mut w = Watch::new(&account(&dv, "reports", "poll_interval = 1"));
    w.start();
    w.wait_for(
        "polling INBOX every 1.0 s (the server has no IDLE)",
        1,
        Duration::from_secs(20),
    );
    w.wait_for(POLLED, 1, Duration::from_secs(20));
    dv.append_all("INBOX", &[report("poll-1"), plain_mail("poll-2")]);
    assert!(
        wait_until(Duration::from_secs(10), || dv.count("INBOX") == 0
            && dv.count("Archive") == 2),
        "not fetched; stderr:\n{}",
        w.stderr()
    );
    assert_eq!(w.sql("SELECT count(*) FROM inputs"), 2);
    // It keeps polling (about once a second).
    let polls = w.stderr().matches(POLLED).count();
    w.wait_for(POLLED, polls + 2, Duration::from_secs(10));
    assert!(!dv.log().contains("IDLE"), "IDLE used: {}", dv.log());
    w.signal("TERM");
    let (status, took) = w.exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", w.stderr());
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(w.stderr().contains("stopped on SIGTERM"));
}

#[test]
fn reconnects_after_a_server_restart() {
    let Some(mut dv) = Dovecot::start() else {
        return;
    };
    let mut w = Watch::new(&account(&dv, "reports", ""));
    w.start();
    w.wait_for(POLLED, 1, Duration::from_secs(20));
    dv.append("INBOX", &report("before-restart"));
    assert!(wait_until(Duration::from_secs(10), || dv.count("Archive") == 1));

    dv.restart();
    w.wait_for(
        "account reports: reconnected to 127.0.0.1",
        1,
        Duration::from_secs(20),
    );
    dv.append("INBOX", &report("after-restart"));
    assert!(
        wait_until(Duration::from_secs(10), || dv.count("INBOX") == 0
            && dv.count("Archive") == 2),
        "not fetched after the restart; stderr:\n{}",
        w.stderr()
    );
    assert_eq!(w.sql("SELECT count(*) FROM reports"), 2);

    let err = w.stderr();
    // One line per failure, naming the account, with the delay; no storm
    // (the restart takes a few seconds, the backoff doubles to 400 ms).
    let failures: Vec<&str> = err.lines().filter(|l| l.starts_with("dmarcdb:")).collect();
    assert!(!failures.is_empty(), "{err}");
    assert!(failures.len() <= 20, "{} failures: {err}", failures.len());
    for f in &failures {
        assert!(f.starts_with("dmarcdb: account reports: "), "{f}");
        assert!(f.contains("; retrying in "), "{f}");
    }
    w.signal("TERM");
    let (status, _) = w.exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", w.stderr());
}

#[test]
fn sigterm_in_a_large_poll_finishes_the_batch_then_a_normal_run_completes() {
    let Some(dv) = Dovecot::start() else { return };
    let mails: Vec<Vec<u8>> = (0..400).map(|i| report(&format!("bulk-{i:03}"))).collect();
    dv.append_all("INBOX", &mails);
    let mut w = Watch::new(&account(&dv, "reports", "batch_size = 5"));
    w.start();
    assert!(
        wait_until(Duration::from_secs(20), || dv.count("Archive") > 0),
        "nothing moved; stderr:\n{}",
        w.stderr()
    );
    w.signal("TERM");
    let (status, took) = w.exit(Duration::from_secs(20));
    let err = w.stderr();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(took < Duration::from_secs(5), "took {took:?}: {err}");
    assert!(err.contains("stopped on SIGTERM"), "{err}");

    // Every mail is either stored and moved, or in the inbox and not stored.
    let ids = |folder: &str| -> Vec<String> {
        let mut v: Vec<String> = dv
            .messages(folder)
            .iter()
            .map(|(_, m)| message_id(m))
            .collect();
        v.sort();
        v
    };
    let (inbox, archive) = (ids("INBOX"), ids("Archive"));
    let stored = w.stored_ids();
    assert!(!inbox.is_empty(), "the stop came too late to test anything");
    assert_eq!(inbox.len() + archive.len(), 400);
    assert_eq!(stored, archive, "stored = moved");
    assert_eq!(dv.count("Invalid"), 0);

    // A normal run does the rest, each mail once.
    let out = w
        .command()
        .args(["ingest", "--imap", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["inputs"], inbox.len(), "{stats}");
    assert_eq!(stats["duplicate_inputs"], 0, "{stats}");
    assert_eq!(stats["reports"], inbox.len(), "{stats}");
    assert_eq!(dv.count("INBOX"), 0);
    assert_eq!(dv.count("Archive"), 400);
    assert_eq!(w.sql("SELECT count(*) FROM inputs"), 400);
    assert_eq!(w.sql("SELECT count(*) FROM reports"), 400);
    assert_eq!(w.sql("SELECT count(*) FROM imap_messages"), 400);
}

#[test]
fn a_second_signal_exits_at_once_even_while_storing_and_loses_nothing() {
    let Some(dv) = Dovecot::start() else { return };
    // A batch that takes seconds to store: a report of 150,000 records.
    let mut mails = vec![big_report("big-1", 150_000)];
    mails.extend((0..5).map(|i| report(&format!("small-{i}"))));
    dv.append_all("INBOX", &mails);
    let mut w = Watch::new(&account(&dv, "reports", "batch_size = 2"));
    w.start();
    let wal = w.db().with_extension("sqlite-wal");
    let storing =
        || std::fs::metadata(&wal).is_ok_and(|m| m.len() > 1 << 20) && dv.count("Archive") == 0;
    assert!(
        wait_until(Duration::from_secs(30), storing),
        "never caught the first batch being stored; stderr:\n{}",
        w.stderr()
    );
    w.signal("TERM");
    w.wait_for(
        "SIGTERM: finishing the batch in hand",
        1,
        Duration::from_secs(5),
    );
    w.signal("TERM");
    let (status, took) = w.exit(Duration::from_secs(10));
    let err = w.stderr();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(took < Duration::from_secs(2), "took {took:?}: {err}");
    assert!(err.contains("SIGTERM again: stopping at once"), "{err}");

    // Cut in the middle of a transaction: nothing of it is stored, nothing moved.
    assert_eq!(dv.count("INBOX"), 6);
    assert_eq!(w.sql("SELECT count(*) FROM inputs"), 0);
    let out = w
        .command()
        .args(["ingest", "--imap", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(dv.count("INBOX"), 0);
    assert_eq!(dv.count("Archive"), 6);
    assert_eq!(w.sql("SELECT count(*) FROM inputs"), 6);
    assert_eq!(w.sql("SELECT count(*) FROM reports"), 6);
    assert_eq!(w.sql("SELECT count(*) FROM records"), 150_000 + 5 * 3);
}

#[test]
fn mail_arriving_during_a_poll_is_fetched_without_waiting_for_idle() {
    let Some(dv) = Dovecot::start() else { return };
    let mails: Vec<Vec<u8>> = (0..150)
        .map(|i| report(&format!("during-{i:03}")))
        .collect();
    dv.append_all("INBOX", &mails);
    // The server announces the late mail (EXISTS) during the poll, not
    // again in the IDLE after it; the re-IDLE is 10 minutes away.
    let mut w = Watch::new(&account(
        &dv,
        "reports",
        "batch_size = 5\nidle_timeout = \"10m\"",
    ));
    w.start();
    assert!(
        wait_until(Duration::from_secs(20), || dv.count("Archive") > 0),
        "nothing moved; stderr:\n{}",
        w.stderr()
    );
    dv.append("INBOX", &report("late"));
    assert!(
        wait_until(Duration::from_secs(15), || dv.count("INBOX") == 0
            && dv.count("Archive") == 151),
        "the late mail stayed: INBOX {}; stderr:\n{}",
        dv.count("INBOX"),
        w.stderr()
    );
    // It came in the first poll's tail or a second poll, not by chance
    // later: the first poll did not see it.
    let err = w.stderr();
    assert!(err.contains("150 messages in INBOX"), "{err}");
    w.signal("TERM");
    let (status, _) = w.exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", w.stderr());
}

#[test]
fn a_failing_account_does_not_stop_the_others() {
    let Some(dv) = Dovecot::start() else { return };
    let wrong = dv
        .account_toml("wrong-password", "starttls")
        .replace("password = \"secret\"", "password = \"not-the-password\"");
    // Nothing listens on port 1.
    let down = dv
        .account_toml("down", "starttls")
        .replace(&format!("port = {}", dv.port), "port = 1");
    let good = account(&dv, "good", "");
    let mut w = Watch::new(&format!("{wrong}{down}{good}"));
    w.start();
    w.wait_for("account good: connected", 1, Duration::from_secs(20));
    dv.append("INBOX", &report("isolated-1"));
    assert!(
        wait_until(Duration::from_secs(10), || dv.count("Archive") == 1),
        "not fetched; stderr:\n{}",
        w.stderr()
    );
    // The unreachable account retries with a growing delay; the refused
    // one waits the longest delay at once.
    w.wait_for(
        "dmarcdb: account down: cannot connect",
        3,
        Duration::from_secs(10),
    );
    w.wait_for(
        "dmarcdb: account wrong-password: login to 127.0.0.1 refused",
        1,
        Duration::from_secs(10),
    );
    let err = w.stderr();
    assert!(!err.contains("not-the-password"), "password leaked: {err}");
    w.signal("TERM");
    let (status, _) = w.exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", w.stderr());
}

#[test]
fn every_account_refused_at_start_exits_1() {
    let Some(dv) = Dovecot::start() else { return };
    dv.append("INBOX", &report("refused-1"));
    let config = dv
        .account_toml("reports", "starttls")
        .replace("password = \"secret\"", "password = \"not-the-password\"");
    let mut w = Watch::new(&config);
    w.start();
    let (status, took) = w.exit(Duration::from_secs(20));
    let err = w.stderr();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(took < Duration::from_secs(5), "took {took:?}: {err}");
    assert!(
        err.contains("dmarcdb: account reports: login to 127.0.0.1 refused"),
        "{err}"
    );
    assert!(err.contains("every account refused the login"), "{err}");
    assert!(!err.contains("retrying"), "{err}");
    assert_eq!(dv.count("INBOX"), 1);
}

#[test]
fn watch_needs_imap() {
    let w = Watch::new("");
    let out = w.command().args(["ingest", "--watch"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--imap"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_hanging_password_command_slows_neither_the_other_accounts_nor_sigterm() {
    let Some(dv) = Dovecot::start() else { return };
    let slow = dv.account_toml("slow", "starttls").replace(
        "password = \"secret\"",
        "password_command = \"sleep 30; echo secret\"",
    );
    let good = account(&dv, "good", "");
    let mut w = Watch::new(&format!("{slow}\n{good}"));
    w.start();
    w.wait_for(POLLED, 1, Duration::from_secs(20));
    dv.append("INBOX", &report("beside-slow-1"));
    assert!(
        wait_until(Duration::from_secs(10), || dv.count("Archive") == 1),
        "the good account waited for the slow one; stderr:\n{}",
        w.stderr()
    );
    w.signal("TERM");
    let (status, took) = w.exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{}", w.stderr());
    assert!(
        took < Duration::from_secs(3),
        "SIGTERM took {took:?}: {}",
        w.stderr()
    );
}
