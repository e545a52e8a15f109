//! End to end against a real Dovecot: APPEND fixture mails, run the built
//! binary with `ingest --imap`, then check the database and the folders.

mod support;

use std::path::Path;
use support::bin::Run;
use support::dovecot::Dovecot;

const REPORT_EML: &str =
    "fixtures/wrappings/mail.example.net!example.com!1700006400!1700092799.eml";

fn report_eml() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(REPORT_EML)).unwrap()
}

/// A second, different report as a bare text/xml attachment.
fn second_report(id: &str) -> Vec<u8> {
    let xml = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(REPORT_EML.replace(".eml", ".xml")),
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

fn plain_mail() -> Vec<u8> {
    b"From: someone@example.org\r\nTo: dmarc@example.com\r\nSubject: lunch?\r\n\
      Message-ID: <lunch@example.org>\r\n\r\nAre you free at noon?\r\n"
        .to_vec()
}

fn broken_report() -> Vec<u8> {
    b"From: reports@broken.example.net\r\nTo: dmarc@example.com\r\n\
      Subject: Report Domain: example.com Submitter: broken.example.net Report-ID: 77\r\n\
      Message-ID: <77@broken.example.net>\r\nMIME-Version: 1.0\r\n\
      Content-Type: application/gzip; name=\"broken.example.net!example.com!1!2.xml.gz\"\r\n\
      Content-Transfer-Encoding: base64\r\n\r\nH4sIAAAAAAAAA/////////////////8=\r\n"
        .to_vec()
}

fn check_server(dv: &Dovecot, tls: &str) {
    let run = Run::new();
    dv.append_all(
        "INBOX",
        &[
            report_eml(),
            second_report("second-0002"),
            plain_mail(),
            broken_report(),
        ],
    );
    let config = dv.account_toml("reports", tls);
    let (out, stats) = run.ingest(&config);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{tls}: {err}");
    assert_eq!(stats["inputs"], 4, "{tls}: {stats} {err}");
    assert_eq!(stats["reports"], 2, "{tls}: {stats}");
    assert_eq!(stats["other"], 1, "{tls}: {stats}");
    assert_eq!(stats["invalid"], 1, "{tls}: {stats}");
    assert!(
        err.contains("invalid input imap reports/INBOX UID"),
        "{err}"
    );
    assert_eq!(dv.count("INBOX"), 0, "{tls}: inbox not empty");
    assert_eq!(dv.count("Archive"), 3, "{tls}");
    assert_eq!(dv.count("Invalid"), 1, "{tls}");
    assert_eq!(run.sql("SELECT count(*) FROM reports"), 2);
    assert_eq!(run.sql("SELECT count(*) FROM records"), 6);
    assert_eq!(
        run.sql(
            "SELECT count(*) FROM inputs WHERE origin = 'imap' AND account = 'reports'
             AND mailbox = 'INBOX' AND uidvalidity > 0 AND uid > 0"
        ),
        4
    );
    assert_eq!(run.sql("SELECT count(*) FROM imap_messages"), 4);
    assert_eq!(
        run.sql("SELECT count(*) FROM invalid_inputs WHERE subject LIKE 'Report Domain:%' AND reason <> ''"),
        1
    );
    // The archived mail is the one stored, byte for byte.
    let archived: Vec<Vec<u8>> = dv.messages("Archive").into_iter().map(|(_, b)| b).collect();
    assert!(archived.iter().any(|b| b == &report_eml()));

    // A second run finds nothing to do.
    let (out, stats) = run.ingest(&config);
    assert!(out.status.success());
    assert_eq!(stats["inputs"], 0, "{tls}: {stats}");
    assert_eq!(dv.count("Archive"), 3);

    // The same report arriving again is a duplicate, archived, not stored twice.
    dv.append("INBOX", &report_eml());
    let (_, stats) = run.ingest(&config);
    assert_eq!(stats["duplicate_inputs"], 1, "{tls}: {stats}");
    assert_eq!(run.sql("SELECT count(*) FROM reports"), 2);
    assert_eq!(dv.count("INBOX"), 0);
    assert_eq!(dv.count("Archive"), 4);
}

#[test]
fn starttls_and_implicit_tls_with_move() {
    let Some(dv) = Dovecot::start() else { return };
    check_server(&dv, "starttls");
    for f in ["Archive", "Invalid"] {
        for uid in dv.uids(f) {
            dv.expunge(f, uid);
        }
    }
    check_server(&dv, "implicit");
}

#[test]
fn server_without_move_uses_copy_and_expunge() {
    let Some(dv) = Dovecot::builder().without_move().start() else {
        return;
    };
    check_server(&dv, "starttls");
}

#[test]
fn refused_login_exits_1_and_moves_nothing() {
    let Some(dv) = Dovecot::start() else { return };
    dv.append("INBOX", &report_eml());
    let run = Run::new();
    let config = dv
        .account_toml("reports", "implicit")
        .replace("password = \"secret\"", "password = \"wrong-password-xyz\"");
    let (out, stats) = run.ingest(&config);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("reports"), "{err}");
    assert!(
        !err.contains("wrong-password-xyz"),
        "password leaked: {err}"
    );
    assert_eq!(stats["inputs"], 0);
    assert_eq!(dv.count("INBOX"), 1);
}

#[test]
fn dry_run_fetches_and_reads_but_changes_nothing() {
    let Some(dv) = Dovecot::start() else { return };
    dv.append_all("INBOX", &[report_eml(), plain_mail(), broken_report()]);
    let run = Run::new();
    let config = dv.account_toml("reports", "implicit");
    let (out, stats) = run.ingest_with(&config, &["--dry-run"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        (
            stats["inputs"].as_u64(),
            stats["reports"].as_u64(),
            stats["invalid"].as_u64()
        ),
        (Some(3), Some(1), Some(1)),
        "{stats}"
    );
    assert!(err.contains("dry run: would move UID"), "{err}");
    assert!(
        err.contains("to Archive") && err.contains("to Invalid"),
        "{err}"
    );
    assert_eq!(dv.count("INBOX"), 3, "nothing moved");
    assert!(
        dv.imap().try_command("STATUS Archive (MESSAGES)").is_err(),
        "a folder was created"
    );
    assert_eq!(run.sql("SELECT count(*) FROM inputs"), 0);
    // Unseen stays unseen (BODY.PEEK): the real run afterwards does it all.
    let (_, stats) = run.ingest(&config);
    assert_eq!(stats["inputs"], 3, "{stats}");
    assert_eq!(dv.count("INBOX"), 0);
}

#[test]
fn trace_logging_never_shows_the_password() {
    let Some(dv) = Dovecot::start() else { return };
    dv.append("INBOX", &report_eml());
    let run = Run::new();
    let config = dv.account_toml("reports", "starttls");
    let out = run
        .command(&config, &["ingest", "--imap"])
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("logged in to 127.0.0.1"), "no detail: {err}");
    assert!(err.contains("moving 1 messages to Archive"), "{err}");
    // (rustls logs "extended_master_secret": look for the password as sent.)
    let pw = support::dovecot::PASSWORD;
    assert!(
        !err.contains(&format!("\"{pw}\"")) && !err.contains(&format!(" {pw}\\r")),
        "password in the log: {err}"
    );
    assert!(
        !err.contains("LOGIN"),
        "async-imap's command trace is shown: {err}"
    );
    // -v shows the same detail.
    dv.append("INBOX", &second_report("v-0001"));
    let out = run
        .command(&config, &["-v", "ingest", "--imap"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("batch of 1 messages"), "{err}");
}

#[test]
fn bounce_folder_is_read_beside_the_report_folder() {
    let Some(dv) = Dovecot::start() else { return };
    let bounce = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bounces/gmail-dmarc-policy.eml"),
    )
    .unwrap();
    dv.append("INBOX", &report_eml());
    dv.append("Bounces", &bounce);
    let run = Run::new();
    let config = format!(
        "{}bounce_folder = \"Bounces\"\n",
        dv.account_toml("reports", "implicit")
    );
    let (out, stats) = run.ingest(&config);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        (stats["reports"].as_i64(), stats["bounce"].as_i64()),
        (Some(1), Some(1)),
        "{stats}"
    );
    assert_eq!(run.sql("SELECT count(*) FROM bounces"), 1);
    assert_eq!(
        run.sql("SELECT count(*) FROM inputs WHERE mailbox = 'Bounces' AND kind = 'bounce'"),
        1
    );
    assert_eq!(
        (dv.count("INBOX"), dv.count("Bounces"), dv.count("Archive")),
        (0, 0, 2)
    );
    // Again: nothing new.
    let (_, stats) = run.ingest(&config);
    assert_eq!(stats["inputs"], 0, "{stats}");
}

#[test]
fn archive_folder_with_a_space_and_a_quote_works_on_every_run() {
    let Some(dv) = Dovecot::start() else { return };
    let run = Run::new();
    let config = format!(
        "{}archive_folder = 'DMARC \"Archive\"'\n",
        dv.account_toml("reports", "implicit")
    );
    for (i, mail) in [report_eml(), second_report("space-0002")]
        .iter()
        .enumerate()
    {
        dv.append("INBOX", mail);
        let (out, stats) = run.ingest(&config);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "run {i}: {err}");
        assert_eq!(stats["inputs"], 1, "run {i}: {stats}");
        assert_eq!(dv.count("INBOX"), 0, "run {i}: {err}");
    }
    assert_eq!(dv.count("DMARC \"Archive\""), 2);
}

#[test]
fn an_overlapping_imap_run_against_the_server_does_nothing_and_nothing_is_doubled() {
    let Some(dv) = Dovecot::start() else { return };
    let mails: Vec<Vec<u8>> = (0..400)
        .map(|i| second_report(&format!("overlap-{i:04}")))
        .collect();
    dv.append_all("INBOX", &mails);
    let run = Run::new();
    let config = format!(
        "{}batch_size = 10\n",
        dv.account_toml("reports", "implicit")
    );
    let mut first = run
        .command(&config, &["ingest", "--imap"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The second starts while the first is fetching (its lock file exists).
    let lock = run.dir.path().join("imap.sqlite.lock");
    let t = std::time::Instant::now();
    while !lock.exists() && t.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let overlapped = first.try_wait().unwrap().is_none();
    let (second, stats) = run.ingest(&config);
    let first = first.wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(0), "{err}");
    if overlapped {
        assert!(err.contains("another dmarcdb run holds"), "{err}");
        assert_eq!(stats["inputs"], 0, "{stats}");
    }
    assert_eq!(run.sql("SELECT count(*) FROM reports"), 400);
    assert_eq!(run.sql("SELECT count(*) FROM inputs"), 400);
    assert_eq!((dv.count("INBOX"), dv.count("Archive")), (0, 400));
}

#[test]
fn tls_verify_false_warns_on_every_run_even_with_q() {
    let Some(dv) = Dovecot::start() else { return };
    let run = Run::new();
    let config = dv
        .account_toml("reports", "implicit")
        .lines()
        .filter(|l| !l.starts_with("ca_file"))
        .collect::<Vec<_>>()
        .join("\n")
        + "\ntls_verify = false\n";
    for args in [&["ingest", "--imap"][..], &["-q", "ingest", "--imap"][..]] {
        let out = run.command(&config, args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(
            err.contains("the certificate of 127.0.0.1 is NOT checked"),
            "{args:?}: {err}"
        );
    }
    // Without it, the same server's certificate (private CA) is refused, by name.
    let strict = config.replace("tls_verify = false", "");
    let out = run
        .command(&strict, &["ingest", "--imap"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("TLS with 127.0.0.1 failed") && err.contains("UnknownIssuer"),
        "{err}"
    );
}
