//! Bounce conformance over the shared corpus (`bounce/` of
//! `$DMARCDB_CORPUS`, else `../shared/corpus` or `../../shared/corpus`) and
//! over our own fixtures (`fixtures/bounces/`).
//!
//! The corpus MANIFEST gives, per mail, the reason a leading bounce
//! classifier (sisimai) expects and the status it reports. Its reason names
//! map onto ours as [`ours`] documents; at least 52 of the 58 bounces must
//! agree, every bounce must yield its recipient, and every status that the
//! mail itself carries must be extracted (sisimai's 5.0.9xx pseudo-codes are
//! not in the mails and are not required). The vacation reply and the
//! ordinary mail are not bounces: their kind is `other`.
//!
//! `BOUNCE_REPORT=1 cargo test --test bounces -- --nocapture` prints every mail's result.

mod support;

use dmarcdb::bounce::{self, Reason};
use std::path::{Path, PathBuf};
use support::golden::{describe, files};

fn corpus() -> Option<PathBuf> {
    support::shared_corpus("bounce", "the bounce conformance test")
}

/// The classifier's reason name → ours. Where sisimai splits finer than we
/// do, several of its names land on one of ours:
/// badreputation and requireptr are `blocked` (details reputation, ptr);
/// virusdetected and contenterror are `content_rejected`; rejected (the
/// envelope sender refused) is `policy_violation`; notaccept (a host that
/// takes no mail, null MX) is `host_unknown`; suspend (a disabled mailbox) is
/// `user_unknown`; toomanyconn is `rate_limited`; securityerror is
/// `tls_error`; mesgtoobig and exceedlimit are `too_large`; onhold,
/// mailererror, systemerror and undefined (sisimai could not decide) are
/// `other`.
fn ours(sisimai: &str) -> Option<Reason> {
    Some(match sisimai {
        "authfailure" => Reason::AuthFailure,
        "blocked" | "badreputation" | "requireptr" => Reason::Blocked,
        "spamdetected" => Reason::SpamDetected,
        "policyviolation" | "rejected" => Reason::PolicyViolation,
        "userunknown" | "suspend" => Reason::UserUnknown,
        "mailboxfull" => Reason::MailboxFull,
        "toomanyconn" => Reason::RateLimited,
        "hostunknown" | "notaccept" => Reason::HostUnknown,
        "expired" => Reason::Expired,
        "securityerror" => Reason::TlsError,
        "mesgtoobig" | "exceedlimit" => Reason::TooLarge,
        "virusdetected" | "contenterror" => Reason::ContentRejected,
        "onhold" | "mailererror" | "systemerror" | "undefined" => Reason::Other,
        _ => return None,
    })
}

struct Expect {
    reason: String,
    /// The status, when the mail carries it (not a 5.0.9xx pseudo-code).
    status: Option<String>,
    not_bounce: bool,
}

fn manifest(root: &Path) -> std::collections::HashMap<String, Expect> {
    let text = std::fs::read_to_string(root.join("MANIFEST.tsv")).unwrap();
    let mut out = std::collections::HashMap::new();
    for line in text.lines().filter(|l| l.starts_with("bounce/")) {
        let cols: Vec<&str> = line.split('\t').collect();
        let name = cols[0].trim_start_matches("bounce/").to_string();
        let what = cols.last().unwrap();
        let not_bounce = what.contains("not a bounce") || what.contains("negative:");
        let reason = what
            .split("reason=")
            .nth(1)
            .map(|r| {
                r.chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect::<String>()
            })
            .unwrap_or_default();
        let status = what.split("reason=").nth(1).and_then(|r| {
            let inner = r.split_once('(')?.1.split_once(')')?.0;
            let s = inner.split(',').next()?.trim().to_string();
            (!s.starts_with("5.0.9") && !s.starts_with("4.0.9")).then_some(s)
        });
        out.insert(
            name,
            Expect {
                reason,
                status,
                not_bounce,
            },
        );
    }
    out
}

#[test]
fn corpus_conformance() {
    let Some(root) = corpus() else { return };
    let expect = manifest(&root);
    let report = std::env::var_os("BOUNCE_REPORT").is_some();
    let (mut bounces, mut agree, mut with_recipient) = (0, 0, 0);
    let (mut statuses, mut statuses_ok) = (0, 0);
    let mut problems = Vec::new();
    for f in files(&root.join("bounce")) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let e = expect
            .get(&name)
            .unwrap_or_else(|| panic!("{name} not in MANIFEST"));
        let kind = describe(&root, &f);
        let kind = kind.lines().next().unwrap().split('\t').nth(1).unwrap();
        if e.not_bounce {
            if kind != "other" {
                problems.push(format!("{name}: not a bounce, but kind {kind}"));
            }
            continue;
        }
        bounces += 1;
        if kind != "bounce" {
            problems.push(format!("{name}: kind {kind}"));
        }
        let parsed = bounce::parse(&std::fs::read(&f).unwrap());
        let Ok(b) = parsed else {
            problems.push(format!("{name}: {}", parsed.unwrap_err()));
            continue;
        };
        let first = b.recipients.first().unwrap();
        if !first.address.contains('@') {
            problems.push(format!("{name}: recipient {:?}", first.address));
        } else {
            with_recipient += 1;
        }
        let want = ours(&e.reason);
        let ok = want == Some(first.reason);
        agree += ok as usize;
        if let Some(s) = &e.status {
            statuses += 1;
            if first.status.as_deref() == Some(s.as_str()) {
                statuses_ok += 1;
            } else {
                problems.push(format!(
                    "{name}: status {:?}, the mail carries {s}",
                    first.status
                ));
            }
        }
        if report || !ok {
            eprintln!(
                "{} {name}: {} ({}) want {} ({:?}) | {} status={:?} code={:?} mta={:?} orig={:?} | {}",
                if ok { "ok " } else { "BAD" },
                first.reason.as_str(),
                first.detail.unwrap_or("-"),
                e.reason,
                e.status,
                first.address,
                first.status,
                first.smtp_code,
                first.remote_mta,
                b.original.message_id,
                first.diagnostic.as_deref().unwrap_or("").chars().take(160).collect::<String>()
            );
        }
    }
    eprintln!(
        "bounce conformance: {agree}/{bounces} reasons agree, {with_recipient}/{bounces} recipients, {statuses_ok}/{statuses} statuses"
    );
    assert_eq!(bounces, 58, "the corpus holds 58 bounces");
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(agree >= 52, "only {agree} of {bounces} reasons agree");
}

/// Our own fixtures: each bounce's recipient, reason, detail, status and
/// provider; the vacation reply is not a bounce; reading them again changes
/// nothing.
#[test]
fn fixtures() {
    use dmarcdb::config::Limits;
    use dmarcdb::fetch::{Origin, RawInput};
    use dmarcdb::ingest::Ingester;
    use dmarcdb::store::Store;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bounces");
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("b.sqlite");
    let mut store = Store::open(&db).unwrap();
    let mut ing = Ingester::new(&mut store, Limits::default());
    let mut ids = Vec::new();
    for f in files(&dir) {
        let input = RawInput::new(
            Origin::Path {
                path: f.display().to_string(),
                mbox_index: None,
            },
            f.file_name().map(|n| n.to_string_lossy().into_owned()),
            std::fs::read(&f).unwrap(),
        );
        let o = ing.ingest(&input).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let want = if name.starts_with("vacation") {
            "other"
        } else {
            "bounce"
        };
        assert_eq!(o.kind.as_str(), want, "{name}");
        assert!(o.warnings.is_empty(), "{name}: {:?}", o.warnings);
        ids.push(o.input);
    }
    ing.commit().unwrap();
    // The same bytes again: nothing new. Reparse: nothing changes.
    for f in files(&dir) {
        let input = RawInput::new(Origin::Stdin, None, std::fs::read(&f).unwrap());
        assert!(ing.ingest(&input).unwrap().duplicate);
    }
    for id in &ids {
        assert_eq!(
            ing.reparse(*id).unwrap(),
            None,
            "input {id} changed on reparse"
        );
    }
    // The same bounce through a relay that adds a header: its input is kept,
    // its bounce is not counted again, and reparse leaves it so.
    let relayed = dir.join("gmail-dmarc-policy.eml");
    let mut bytes =
        b"Received: from relay.example.com by mx.example.com; Thu, 6 Mar 2025 10:00:00 +0000\r\n"
            .to_vec();
    bytes.extend(std::fs::read(&relayed).unwrap());
    let o = ing
        .ingest(&RawInput::new(Origin::Stdin, None, bytes))
        .unwrap();
    assert!(!o.duplicate);
    assert_eq!(o.kind.as_str(), "bounce");
    assert!(
        o.warnings.len() == 1 && o.warnings[0].starts_with("a copy of the bounce stored from"),
        "{:?}",
        o.warnings
    );
    assert_eq!(ing.stats.duplicate_bounces, 1);
    assert_eq!(ing.reparse(o.input).unwrap(), None);
    assert_eq!(ing.reparse(ids[0]).unwrap(), None);
    ing.commit().unwrap();
    drop(ing);
    let conn = store.connection();
    let rows: Vec<String> = conn
        .prepare(
            "SELECT recipient || ' ' || provider || ' ' || reason || '/' || coalesce(detail, '-')
                    || ' ' || coalesce(status, '-') || ' ' || coalesce(smtp_code, '-')
                    || ' ' || coalesce(sender_domain, '-') || ' ' || coalesce(original_message_id, '-')
             FROM bounce_rows ORDER BY recipient",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [
            "customer@example.net Google auth_failure/dmarc 5.7.26 550 example.org invoice-2025-0042@example.org",
            "leser@example.net Deutsche Telekom (T-Online) blocked/reputation - 554 example.com newsletter-2025-03@example.com",
            "ops@example.net Microsoft blocked/blocklist 5.7.606 550 example.com alert-20250306-0829@example.com",
        ]
    );
    let n: i64 = conn
        .query_row("SELECT count(*) FROM bounces", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3);
    // A provider pattern matches whatever case it is written in.
    conn.execute(
        "INSERT INTO providers (kind, pattern, provider) VALUES ('domain', ' MX00.T-Online.DE.', 'T-Online MX')",
        [],
    )
    .unwrap();
    let p: String = conn
        .query_row(
            "SELECT provider FROM bounce_rows WHERE recipient = 'leser@example.net'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(p, "T-Online MX");
}

/// A bounce that names no recipient is kept as invalid, with its reason,
/// and no bounce rows.
#[test]
fn unreadable_bounce_is_invalid() {
    use dmarcdb::config::Limits;
    use dmarcdb::fetch::{Origin, RawInput};
    use dmarcdb::ingest::Ingester;
    use dmarcdb::store::Store;
    let mail = b"From: Mail Delivery System <MAILER-DAEMON@example.com>\n\
        Subject: Undelivered Mail Returned to Sender\n\n\
        This is a permanent error; I gave up.\n";
    let mut store = Store::open_in_memory().unwrap();
    let mut ing = Ingester::new(&mut store, Limits::default());
    let o = ing
        .ingest(&RawInput::new(Origin::Stdin, None, mail.to_vec()))
        .unwrap();
    ing.commit().unwrap();
    assert_eq!(o.kind.as_str(), "invalid");
    assert_eq!(
        o.reason.as_deref(),
        Some("bounce not read: bounce names no recipient")
    );
    drop(ing);
    let n: i64 = store
        .connection()
        .query_row("SELECT count(*) FROM bounces", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
}

/// A store from before migration 5: two copies of one bounce, both counted,
/// neither with a key. The first reparse gives the first its key and takes
/// the second's rows away; the second reparse changes nothing.
#[test]
fn reparse_folds_copies_stored_before_keys() {
    use dmarcdb::config::Limits;
    use dmarcdb::fetch::{Origin, RawInput};
    use dmarcdb::ingest::Ingester;
    use dmarcdb::store::Store;
    let first = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bounces/gmail-dmarc-policy.eml"),
    )
    .unwrap();
    let mut relayed =
        b"Received: from relay.example.com; Thu, 6 Mar 2025 10:00:00 +0000\n".to_vec();
    relayed.extend_from_slice(&first);
    let mut store = Store::open_in_memory().unwrap();
    let mut ing = Ingester::new(&mut store, Limits::default());
    let a = ing
        .ingest(&RawInput::new(Origin::Stdin, None, first))
        .unwrap()
        .input;
    let b = ing
        .ingest(&RawInput::new(Origin::Stdin, None, relayed))
        .unwrap()
        .input;
    ing.commit().unwrap();
    drop(ing);
    // What an older version left: no keys, the copy counted too.
    store
        .connection()
        .execute_batch(&format!(
            "UPDATE bounces SET key = NULL;
             UPDATE inputs SET warnings = NULL WHERE id = {b};
             INSERT INTO bounces (input, format, bounced_at) VALUES ({b}, 'dsn', 0);
             INSERT INTO bounce_recipients (bounce, recipient, reason)
                 VALUES (last_insert_rowid(), 'customer@example.net', 'other');"
        ))
        .unwrap();
    let counts = |store: &mut Store| -> (i64, i64) {
        store
            .connection()
            .query_row(
                "SELECT (SELECT count(*) FROM bounce_recipients),
                        (SELECT count(*) FROM bounces WHERE key IS NOT NULL)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    };
    assert_eq!(counts(&mut store), (2, 0));
    let mut ing = Ingester::new(&mut store, Limits::default());
    assert!(
        ing.reparse(a).unwrap().is_some(),
        "the first copy gets its key"
    );
    let o = ing
        .reparse(b)
        .unwrap()
        .expect("the second copy loses its rows");
    assert!(o.warnings[0].starts_with("a copy of the bounce stored from"));
    assert_eq!(ing.reparse(a).unwrap(), None);
    assert_eq!(ing.reparse(b).unwrap(), None);
    ing.commit().unwrap();
    drop(ing);
    assert_eq!(counts(&mut store), (1, 1));
}

/// A bounce dated in 2100 would stay at the end of every period: it is
/// dated when it was stored, with a warning.
#[test]
fn future_bounce_date_is_not_believed() {
    use dmarcdb::config::Limits;
    use dmarcdb::fetch::{Origin, RawInput};
    use dmarcdb::ingest::Ingester;
    use dmarcdb::store::Store;
    let mail = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bounces/gmail-dmarc-policy.eml"),
    )
    .unwrap();
    let date = mail.lines().find(|l| l.starts_with("Date:")).unwrap();
    let mail = mail.replace(date, "Date: Fri, 01 Jan 2100 00:00:00 +0000");
    let mut store = Store::open_in_memory().unwrap();
    let mut ing = Ingester::new(&mut store, Limits::default());
    let o = ing
        .ingest(&RawInput::new(Origin::Stdin, None, mail.into_bytes()))
        .unwrap();
    ing.commit().unwrap();
    assert_eq!(
        o.warnings,
        ["the bounce's Date (2100-01-01) is implausible; it is dated when it was stored"]
    );
    drop(ing);
    let (at, received): (i64, i64) = store
        .connection()
        .query_row(
            "SELECT b.bounced_at, i.received_at FROM bounces b JOIN inputs i ON i.id = b.input",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(at, received);
}
