//! The IMAP poller under faults, through the built binary against a real
//! Dovecot: killed with SIGKILL at random moments, a connection cut in the
//! middle of a FETCH, the server going away between batches, an archive
//! folder that cannot be created, a failing account beside a good one.
//! Each ends consistent, and a later run completes the work exactly once.
//!
//! `DMARCDB_KILL_ROUNDS=200 cargo test --release --test imap_faults kill`
//! runs many more kill rounds than the default.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};
use support::bin::Run;
use support::dovecot::Dovecot;
use support::proxy::Proxy;

/// A distinct report mail (its own report id), `pad` bytes of padding
/// records making it larger.
fn report(i: usize, records: usize) -> Vec<u8> {
    let mut xml = dmarcdb::synthetic::head(&format!("fault-{i:05}"));
    let mut body = Vec::new();
    for r in 0..records as u64 {
        dmarcdb::synthetic::record(r + i as u64, &mut body);
    }
    xml.push_str(&String::from_utf8(body).unwrap());
    xml.push_str("</feedback>\n");
    format!(
        "From: reports@receiver.example.org\r\nTo: dmarc@example.com\r\n\
         Subject: Report Domain: example.com Submitter: receiver.example.org Report-ID: fault-{i:05}\r\n\
         Message-ID: <fault-{i:05}@receiver.example.org>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/xml; charset=utf-8\r\n\r\n{}",
        xml.replace('\n', "\r\n")
    )
    .into_bytes()
}

fn config(dv: &Dovecot, port: Option<u16>, batch: usize) -> String {
    let mut c = dv.account_toml("faults", "implicit");
    if let Some(p) = port {
        c = c.replace(&format!("port = {}", dv.tls_port), &format!("port = {p}"));
    }
    format!("{c}batch_size = {batch}\n")
}

/// Everything is stored exactly once and every mail is in exactly one folder.
fn assert_complete(dv: &Dovecot, run: &Run, n: usize) {
    assert_eq!(dv.count("INBOX"), 0, "inbox not empty");
    assert_eq!(run.sql("SELECT count(*) FROM inputs") as usize, n);
    assert_eq!(run.sql("SELECT count(*) FROM reports") as usize, n);
    assert_eq!(run.sql("SELECT count(*) FROM imap_messages") as usize, n);
    assert_eq!(
        run.sql("SELECT count(DISTINCT report_id) FROM reports") as usize,
        n
    );
}

/// A small deterministic generator (the seed is printed).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

fn kill_rounds(dv: &Dovecot, exact: bool) {
    // 200 mails at first, and 60 more before each round, so that every
    // round has work to be killed in.
    const FIRST: usize = 200;
    const PER_ROUND: usize = 200;
    let rounds: usize = std::env::var("DMARCDB_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let seed = std::env::var("DMARCDB_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("kill test: {rounds} rounds, DMARCDB_KILL_SEED={seed}");
    let mut rng = Lcg(seed);
    let n = FIRST + rounds * PER_ROUND;
    let mails: Vec<Vec<u8>> = (0..n).map(|i| report(i, 3)).collect();
    dv.append_all("INBOX", &mails[..FIRST]);
    let run = Run::new();
    let cfg = config(dv, None, 20);
    let mut killed = 0;
    let mut typical = Duration::from_millis(300);
    for round in 0..rounds {
        let new = FIRST + round * PER_ROUND;
        dv.append_all("INBOX", &mails[new..new + PER_ROUND]);
        let mut child = run
            .command(&cfg, &["-q", "ingest", "--imap"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // A moment within how long a whole run took last time (machines and
        // builds differ by 10x): login, fetch, commit or move.
        let wait = Duration::from_millis(2 + rng.next(typical.as_millis().max(4) as u64));
        let t = Instant::now();
        while t.elapsed() < wait && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        } else {
            typical = t.elapsed() * 3 / 4;
        }
        child.wait().unwrap();
        eprintln!(
            "round {round}: after {wait:?}: inbox {}, archive {}",
            dv.count("INBOX"),
            dv.count("Archive")
        );
    }
    let (out, stats) = run.ingest(&cfg);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{killed} of {rounds} runs killed; the last run: {stats}");
    assert!(
        killed > 0 || rounds == 0,
        "no run was killed: the test tested nothing"
    );
    assert_complete(dv, &run, n);
    let archived = dv.count("Archive");
    if exact {
        assert_eq!(archived, n, "every mail in exactly one folder");
    } else {
        // COPY fallback: a kill between a COPY and the commit of its record
        // can leave one extra copy of that batch; never a lost mail.
        assert!(
            (n..=n + killed * 20).contains(&archived),
            "archive holds {archived}"
        );
    }
    let mut bodies: Vec<Vec<u8>> = dv.messages("Archive").into_iter().map(|(_, b)| b).collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), n, "every mail arrived in the archive");
}

#[test]
fn killed_at_random_moments_then_a_normal_run_stores_everything_once() {
    let Some(dv) = Dovecot::start() else { return };
    kill_rounds(&dv, true);
}

#[test]
fn killed_at_random_moments_without_move() {
    let Some(dv) = Dovecot::builder().without_move().start() else {
        return;
    };
    kill_rounds(&dv, false);
}

#[test]
fn connection_cut_in_the_middle_of_a_fetch() {
    let Some(dv) = Dovecot::start() else { return };
    let proxy = Proxy::start(dv.tls_port);
    // 30 mails of ~40 KB, batches of 10: the cut falls in the second FETCH.
    let mails: Vec<Vec<u8>> = (0..30).map(|i| report(i, 100)).collect();
    dv.append_all("INBOX", &mails);
    let run = Run::new();
    let cfg = config(&dv, Some(proxy.port), 10);
    proxy.cut_next_after(mails[0].len() as u64 * 15);
    let (out, stats) = run.ingest(&cfg);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("account faults: connection to 127.0.0.1 lost while fetching messages"),
        "{err}"
    );
    // The first batch was committed and moved; nothing of the second.
    assert_eq!(stats["inputs"], 10, "{stats}");
    assert_eq!(run.sql("SELECT count(*) FROM inputs"), 10);
    assert_eq!((dv.count("INBOX"), dv.count("Archive")), (20, 10));
    let (out, stats) = run.ingest(&cfg);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stats["inputs"], 20, "{stats}");
    assert_complete(&dv, &run, 30);
    assert_eq!(dv.count("Archive"), 30);
}

#[test]
fn server_unreachable_between_batches_then_back() {
    let Some(dv) = Dovecot::start() else { return };
    let proxy = Proxy::start(dv.tls_port);
    let mails: Vec<Vec<u8>> = (0..30).map(|i| report(i, 2)).collect();
    dv.append_all("INBOX", &mails);
    let run = Run::new();
    let cfg = config(&dv, Some(proxy.port), 10);
    let child = run
        .command(&cfg, &["-v", "ingest", "--imap"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first batch to be archived, then take the server away.
    let t = Instant::now();
    while dv.count("Archive") < 10 && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(2));
    }
    proxy.refuse(true);
    proxy.cut_all();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let archived = dv.count("Archive");
    if out.status.success() {
        // It was faster than us: nothing to check but completeness.
        assert_complete(&dv, &run, 30);
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("account faults:"), "{err}");
    // Consistent: what is archived is stored; the rest is still in the inbox.
    assert_eq!(dv.count("INBOX") + archived, 30);
    assert!(run.sql("SELECT count(*) FROM inputs") as usize >= archived);
    // While it is down: a clear error, nothing changes.
    let (out, _) = run.ingest(&cfg);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("account faults: connection to 127.0.0.1 lost while reading the greeting")
            || err.contains("account faults: TLS with 127.0.0.1 failed"),
        "{err}"
    );
    // Back: the next run completes the work exactly once.
    proxy.refuse(false);
    let (out, _) = run.ingest(&cfg);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_complete(&dv, &run, 30);
    assert_eq!(dv.count("Archive"), 30);
}

#[test]
fn server_restarts_between_batches() {
    let Some(mut dv) = Dovecot::start() else {
        return;
    };
    const N: usize = 300;
    let mails: Vec<Vec<u8>> = (0..N).map(|i| report(i, 2)).collect();
    dv.append_all("INBOX", &mails);
    let run = Run::new();
    let cfg = config(&dv, None, 10);
    let child = run
        .command(&cfg, &["ingest", "--imap"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while dv.count("Archive") < 10 && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(2));
    }
    dv.restart();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("run during the restart: {:?}: {err}", out.status);
    if !out.status.success() {
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("dmarcdb: account faults: "), "{err}");
        // Consistent: every mail in one folder; what is archived is stored.
        let archived = dv.count("Archive");
        assert_eq!(dv.count("INBOX") + archived, N);
        assert!(run.sql("SELECT count(*) FROM inputs") as usize >= archived);
    }
    let (out, _) = run.ingest(&cfg);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_complete(&dv, &run, N);
    assert_eq!(dv.count("Archive"), N);
}

#[test]
fn archive_folder_that_cannot_be_created() {
    let Some(dv) = Dovecot::start() else { return };
    let mails: Vec<Vec<u8>> = (0..5).map(|i| report(i, 2)).collect();
    dv.append_all("INBOX", &mails);
    let run = Run::new();
    // Dovecot refuses mailbox names that are too long (over 255 bytes a level).
    let bad = "A".repeat(300);
    let cfg = format!("{}archive_folder = {bad:?}\n", config(&dv, None, 10));
    let (out, stats) = run.ingest(&cfg);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("creating folder AAAA"), "{err}");
    // Stored (committed before any move) but left in the inbox.
    assert_eq!(stats["inputs"], 5, "{stats}");
    assert_eq!(dv.count("INBOX"), 5);
    // With a folder that works, the next run only moves them.
    let (out, stats) = run.ingest(&config(&dv, None, 10));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stats["inputs"], 0, "not fetched again: {stats}");
    assert_complete(&dv, &run, 5);
    assert_eq!(dv.count("Archive"), 5);
}

#[test]
fn a_failing_account_does_not_stop_the_others() {
    let Some(dv) = Dovecot::start() else { return };
    let mails: Vec<Vec<u8>> = (0..4).map(|i| report(i, 2)).collect();
    dv.append_all("INBOX", &mails);
    let run = Run::new();
    let good = config(&dv, None, 10);
    let refused = dv
        .account_toml("refused", "implicit")
        .replace("password = \"secret\"", "password = \"wrong\"");
    let down = "[[imap]]\nname = \"down\"\nhost = \"127.0.0.1\"\nport = 9\ntls = \"none\"\n\
                username = \"u\"\npassword = \"x\"\n";
    let cfg = format!("{refused}\n{down}\n{good}");
    let (out, stats) = run.ingest(&cfg);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("account refused: login to 127.0.0.1 refused"),
        "{err}"
    );
    assert!(
        err.contains("account down: cannot connect to 127.0.0.1:9"),
        "{err}"
    );
    assert!(!err.contains("wrong\""), "{err}");
    assert_eq!(stats["inputs"], 4, "{stats}");
    assert_complete(&dv, &run, 4);
}

#[test]
fn ten_thousand_messages_in_one_run_with_one_fetch_and_one_move_per_batch() {
    let Some(dv) = Dovecot::start() else { return };
    const N: usize = 10_000;
    let t = Instant::now();
    let mails: Vec<Vec<u8>> = (0..N).map(|i| report(i, 1)).collect();
    dv.append_all("INBOX", &mails);
    eprintln!("appended {N} in {:?}", t.elapsed());
    // Plaintext on loopback through the proxy, so the commands can be counted.
    let proxy = Proxy::start(dv.port);
    let cfg = dv.account_toml("big", "none").replace(
        &format!("port = {}", dv.port),
        &format!("port = {}", proxy.port),
    );
    let run = Run::new();
    let t = Instant::now();
    let (out, stats) = run.ingest(&cfg);
    eprintln!("ingested {N} in {:?}", t.elapsed());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stats["reports"], N, "{stats}");
    assert_complete(&dv, &run, N);
    assert_eq!(dv.count("Archive"), N);
    // batch_size 100: per batch one FETCH of sizes, one of bodies, one MOVE.
    let batches = N.div_ceil(100);
    assert_eq!(proxy.commands_with(" UID FETCH "), 2 * batches);
    assert_eq!(proxy.commands_with(" UID MOVE "), batches);
}
