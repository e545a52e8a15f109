//! IMAP fetch against a private Dovecot (tests/support/dovecot.rs), plus a
//! few scripted fake servers for what Dovecot will not do on request.

mod support;

use dmarcdb::config::{Config, ImapAccount, Limits, TlsMode};
use dmarcdb::fetch::imap::{
    poll, poll_with, resolve_password, Destination, FetchError, FetchedMail, MailSink, MailboxRef,
    PollOptions, PollStats, SinkError,
};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};
use support::dovecot::{self, Dovecot, CAPS_WITHOUT_MOVE_UIDPLUS};

/// Mails containing this go to Invalid.
const MARKER: &str = "X-TEST-INVALID";

type Hook<'a> = Box<dyn FnMut(&[u32]) + 'a>;
type Tweak<'a> = Box<dyn Fn(&mut ImapAccount) + 'a>;

/// An in-memory sink that records everything it is given.
#[derive(Default)]
struct TestSink<'a> {
    /// What `stored` reports as already stored.
    already: HashMap<u32, Destination>,
    /// `store` fails from this call on (1 = the first).
    fail_from_call: Option<usize>,
    /// Run inside `stored`, i.e. after SEARCH, before any FETCH.
    on_stored: Option<Hook<'a>>,
    mailbox: Option<MailboxRef>,
    asked: Vec<u32>,
    batches: Vec<Vec<u32>>,
    got: Vec<FetchedMail>,
    oversize: Vec<(u32, u64, Vec<u8>)>,
    /// What `record_copies` was told: UID → (folder, UID there).
    copies: HashMap<u32, (String, Option<u32>)>,
    /// `record_copies` records, then fails (a run killed before EXPUNGE).
    fail_after_copy: bool,
}

impl MailSink for TestSink<'_> {
    fn stored(
        &mut self,
        mb: &MailboxRef,
        uids: &[u32],
    ) -> Result<Vec<(u32, Destination)>, SinkError> {
        self.mailbox = Some(mb.clone());
        self.asked.extend_from_slice(uids);
        if let Some(hook) = &mut self.on_stored {
            hook(uids);
        }
        Ok(uids
            .iter()
            .filter_map(|u| self.already.get(u).map(|d| (*u, *d)))
            .collect())
    }

    fn store(
        &mut self,
        _mb: &MailboxRef,
        mails: Vec<FetchedMail>,
    ) -> Result<Vec<(u32, Destination)>, SinkError> {
        let call = self.batches.len() + 1;
        if self.fail_from_call.is_some_and(|n| call >= n) {
            return Err("disk full (test)".into());
        }
        self.batches.push(mails.iter().map(|m| m.uid).collect());
        let placed = mails
            .iter()
            .map(|m| {
                let invalid = String::from_utf8_lossy(&m.bytes).contains(MARKER);
                let dest = if invalid {
                    Destination::Invalid
                } else {
                    Destination::Archive
                };
                (m.uid, dest)
            })
            .collect();
        self.got.extend(mails);
        Ok(placed)
    }

    fn copied(
        &mut self,
        _mb: &MailboxRef,
        folder: &str,
        uids: &[u32],
    ) -> Result<Vec<u32>, SinkError> {
        Ok(uids
            .iter()
            .copied()
            .filter(|u| self.copies.get(u).is_some_and(|(f, _)| f == folder))
            .collect())
    }

    fn record_copies(
        &mut self,
        _mb: &MailboxRef,
        folder: &str,
        copies: &[(u32, Option<u32>)],
    ) -> Result<(), SinkError> {
        for (uid, dest) in copies {
            self.copies.insert(*uid, (folder.to_string(), *dest));
        }
        if self.fail_after_copy {
            return Err("killed between COPY and EXPUNGE (test)".into());
        }
        Ok(())
    }

    fn oversize(
        &mut self,
        _mb: &MailboxRef,
        uid: u32,
        size: u64,
        header: Vec<u8>,
    ) -> Result<(), SinkError> {
        self.oversize.push((uid, size, header));
        Ok(())
    }
}

fn mail(i: usize, invalid: bool) -> Vec<u8> {
    format!(
        "From: reports@example.net\r\nTo: dmarc@example.com\r\nSubject: Report {i}\r\n\
         Message-ID: <{i}.test@example.net>\r\n\r\nbody {i}{}\r\n",
        if invalid {
            format!(" {MARKER}")
        } else {
            String::new()
        }
    )
    .into_bytes()
}

/// 25 mails; numbers 3, 11 and 20 are invalid.
fn mails25() -> Vec<Vec<u8>> {
    (0..25).map(|i| mail(i, [3, 11, 20].contains(&i))).collect()
}

/// The account for `dv`, via the harness's TOML snippet.
fn account(dv: &Dovecot, tls: &str) -> ImapAccount {
    let toml = dv.account_toml("test", tls);
    let mut config = Config::from_toml(&toml).expect("harness TOML parses");
    let mut a = config.imap.remove(0);
    a.batch_size = 10;
    a
}

fn quick() -> PollOptions {
    PollOptions {
        timeout: Duration::from_secs(10),
        ..PollOptions::default()
    }
}

async fn poll_quick(a: &ImapAccount, sink: &mut TestSink<'_>) -> Result<PollStats, FetchError> {
    poll_with(a, &Limits::default(), sink, &quick()).await
}

/// Every appended mail reached the sink exactly once, byte for byte, in
/// batches of at most 10, and the folders hold what they should.
fn assert_all_delivered(dv: &Dovecot, sink: &TestSink<'_>, sent: &[Vec<u8>]) {
    let mut got: Vec<&[u8]> = sink.got.iter().map(|m| m.bytes.as_slice()).collect();
    let mut want: Vec<&[u8]> = sent.iter().map(Vec::as_slice).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "the sink got every mail exactly once");
    let uids: HashSet<u32> = sink.got.iter().map(|m| m.uid).collect();
    assert_eq!(uids.len(), sent.len(), "no UID twice");
    assert!(sink.batches.iter().all(|b| b.len() <= 10));
    let invalid = sent
        .iter()
        .filter(|m| String::from_utf8_lossy(m).contains(MARKER))
        .count();
    assert_eq!(dv.count("INBOX"), 0, "inbox empty");
    assert_eq!(dv.count("Archive"), sent.len() - invalid);
    assert_eq!(dv.count("Invalid"), invalid);
    let mut archived: Vec<Vec<u8>> = dv
        .messages("Archive")
        .into_iter()
        .chain(dv.messages("Invalid"))
        .map(|(_, b)| b)
        .collect();
    archived.sort();
    let mut sent = sent.to_vec();
    sent.sort();
    assert_eq!(archived, sent, "moved intact");
}

/// The `deleted=` counters of Dovecot's logout lines: how many messages each
/// session flagged \Deleted (0 with MOVE).
fn deleted_counts(dv: &Dovecot) -> Vec<usize> {
    dv.log()
        .lines()
        .filter_map(|l| l.split(" deleted=").nth(1))
        .filter_map(|r| r.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .collect()
}

async fn full_run(dv: &Dovecot, tls: &str) {
    let sent = mails25();
    dv.append_all("INBOX", &sent);
    let a = account(dv, tls);
    let mut sink = TestSink::default();
    let t = Instant::now();
    let stats = poll_quick(&a, &mut sink).await.expect("poll");
    eprintln!("{tls}: 25 mails in {:?}: {stats:?}", t.elapsed());
    assert_eq!(
        stats,
        PollStats {
            messages: 25,
            fetched: 25,
            moved_archive: 22,
            moved_invalid: 3,
            ..PollStats::default()
        }
    );
    assert_eq!(
        sink.batches.iter().map(Vec::len).collect::<Vec<_>>(),
        [10, 10, 5]
    );
    let mb = sink.mailbox.clone().expect("mailbox");
    assert_eq!(
        (mb.account.as_str(), mb.mailbox.as_str()),
        ("test", "INBOX")
    );
    assert!(mb.uidvalidity > 0);
    assert_all_delivered(dv, &sink, &sent);

    let mut again = TestSink::default();
    let stats = poll_quick(&a, &mut again).await.expect("second poll");
    assert_eq!(stats, PollStats::default(), "second poll finds nothing");
    assert!(again.got.is_empty() && again.asked.is_empty());
}

#[tokio::test]
async fn starttls_fetches_stores_moves_once() {
    let Some(dv) = Dovecot::start() else { return };
    full_run(&dv, "starttls").await;
    let deleted = deleted_counts(&dv);
    assert!(
        !deleted.is_empty() && deleted.iter().all(|n| *n == 0),
        "MOVE used"
    );
}

#[tokio::test]
async fn implicit_tls_trusting_ca_file() {
    let Some(dv) = Dovecot::start() else { return };
    full_run(&dv, "implicit").await;
}

#[tokio::test]
async fn without_move_copies_flags_and_expunges() {
    let Some(dv) = Dovecot::builder().without_move().start() else {
        return;
    };
    full_run(&dv, "starttls").await;
    // The fallback really ran: sessions flagged 25 messages \Deleted.
    assert_eq!(
        deleted_counts(&dv).iter().sum::<usize>(),
        25,
        "{}",
        dv.log()
    );
}

#[tokio::test]
async fn without_move_or_uidplus_uses_plain_expunge() {
    let Some(dv) = Dovecot::builder()
        .imap_capability(CAPS_WITHOUT_MOVE_UIDPLUS)
        .start()
    else {
        return;
    };
    let sent: Vec<Vec<u8>> = (0..4).map(|i| mail(i, i == 2)).collect();
    dv.append_all("INBOX", &sent);
    let mut sink = TestSink::default();
    let stats = poll_quick(&account(&dv, "implicit"), &mut sink)
        .await
        .expect("poll");
    assert_eq!((stats.moved_archive, stats.moved_invalid), (3, 1));
    assert_all_delivered(&dv, &sink, &sent);
    assert_eq!(deleted_counts(&dv).iter().sum::<usize>(), 4);
}

#[tokio::test]
async fn without_move_a_run_stopped_between_copy_and_expunge_is_not_copied_twice() {
    let Some(dv) = Dovecot::builder().without_move().start() else {
        return;
    };
    let sent: Vec<Vec<u8>> = (0..6).map(|i| mail(i, false)).collect();
    dv.append_all("INBOX", &sent);
    let a = account(&dv, "implicit");
    let mut first = TestSink {
        fail_after_copy: true,
        ..TestSink::default()
    };
    let err = poll_quick(&a, &mut first).await.expect_err("stopped");
    assert!(matches!(err, FetchError::Sink { .. }), "{err}");
    assert_eq!((dv.count("INBOX"), dv.count("Archive")), (6, 6));
    // COPYUID told where each copy went.
    let archive: HashSet<u32> = dv.uids("Archive").into_iter().collect();
    assert_eq!(first.copies.len(), 6);
    assert!(
        first
            .copies
            .values()
            .all(|(f, u)| f == "Archive" && u.is_some_and(|u| archive.contains(&u))),
        "{:?}",
        first.copies
    );
    // The next run: everything is stored and copied; it only expunges.
    let mut next = TestSink {
        already: first
            .got
            .iter()
            .map(|m| (m.uid, Destination::Archive))
            .collect(),
        copies: first.copies.clone(),
        ..TestSink::default()
    };
    let stats = poll_quick(&a, &mut next).await.expect("second run");
    assert_eq!((stats.already_stored, stats.moved_archive), (6, 6));
    assert!(next.got.is_empty());
    assert_eq!(
        (dv.count("INBOX"), dv.count("Archive")),
        (0, 6),
        "no second copy"
    );
}

#[tokio::test]
async fn already_stored_is_moved_without_fetching() {
    let Some(dv) = Dovecot::start() else { return };
    let sent: Vec<Vec<u8>> = (0..6).map(|i| mail(i, false)).collect();
    let uids = dv.append_all("INBOX", &sent);
    let mut sink = TestSink::default();
    sink.already.insert(uids[1], Destination::Archive);
    sink.already.insert(uids[4], Destination::Invalid);
    let stats = poll_quick(&account(&dv, "starttls"), &mut sink)
        .await
        .expect("poll");
    assert_eq!(
        stats,
        PollStats {
            messages: 6,
            fetched: 4,
            already_stored: 2,
            moved_archive: 5,
            moved_invalid: 1,
            ..PollStats::default()
        }
    );
    let fetched: Vec<u32> = sink.got.iter().map(|m| m.uid).collect();
    assert_eq!(fetched, [uids[0], uids[2], uids[3], uids[5]]);
    assert_eq!(dv.count("INBOX"), 0);
    assert_eq!(dv.count("Archive"), 5);
    let invalid = dv.messages("Invalid");
    assert_eq!(invalid.len(), 1);
    assert_eq!(invalid[0].1, sent[4]);
}

#[tokio::test]
async fn oversize_goes_to_invalid_with_header_only() {
    let Some(dv) = Dovecot::start() else { return };
    let header = "From: big@example.net\r\nSubject: huge report\r\n\r\n";
    let big = format!("{header}{}\r\n", "x".repeat(20_000));
    let mut sent: Vec<Vec<u8>> = (0..3).map(|i| mail(i, false)).collect();
    sent.insert(1, big.clone().into_bytes());
    let uids = dv.append_all("INBOX", &sent);
    let limits = Limits {
        max_message_bytes: 4096,
        ..Limits::default()
    };
    let mut sink = TestSink::default();
    let stats = poll_with(&account(&dv, "starttls"), &limits, &mut sink, &quick())
        .await
        .expect("poll");
    assert_eq!(
        (
            stats.fetched,
            stats.oversize,
            stats.moved_archive,
            stats.moved_invalid
        ),
        (3, 1, 3, 1)
    );
    assert_eq!(sink.oversize.len(), 1);
    let (uid, size, got_header) = &sink.oversize[0];
    assert_eq!(*uid, uids[1]);
    assert_eq!(*size, big.len() as u64);
    assert_eq!(got_header, header.as_bytes());
    assert!(
        sink.got.iter().all(|m| m.uid != uids[1]),
        "not fetched whole"
    );
    assert_eq!(dv.messages("Invalid")[0].1, big.as_bytes());
    assert_eq!(dv.count("Archive"), 3);
}

#[tokio::test]
async fn wrong_password_is_a_login_error_at_once() {
    let Some(dv) = Dovecot::start() else { return };
    dv.append("INBOX", &mail(1, false));
    let mut a = account(&dv, "starttls");
    a.password = Some("not-the-password".into());
    let t = Instant::now();
    let err = poll_quick(&a, &mut TestSink::default())
        .await
        .expect_err("refused");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(matches!(err, FetchError::Login { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("account test") && msg.contains("127.0.0.1"),
        "{msg}"
    );
    assert!(!msg.contains("not-the-password") && !format!("{err:?}").contains("not-the-password"));
    assert!(!msg.contains('\n'));
    assert_eq!(dv.count("INBOX"), 1);
}

#[tokio::test]
async fn untrusted_certificate_is_a_tls_error_naming_the_host() {
    let Some(dv) = Dovecot::start() else { return };
    for tls in ["implicit", "starttls"] {
        let mut a = account(&dv, tls);
        a.ca_file = None;
        let err = poll_quick(&a, &mut TestSink::default())
            .await
            .expect_err("untrusted");
        assert!(matches!(err, FetchError::Tls { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("127.0.0.1") && msg.contains("account test"),
            "{msg}"
        );
        assert!(msg.to_lowercase().contains("certificate"), "{msg}");
        eprintln!("{tls}: {msg}");
    }
}

#[tokio::test]
async fn tls_verify_false_connects_anyway() {
    let Some(dv) = Dovecot::start() else { return };
    dv.append("INBOX", &mail(1, false));
    let mut a = account(&dv, "implicit");
    a.ca_file = None;
    a.tls_verify = false;
    let stats = poll_quick(&a, &mut TestSink::default())
        .await
        .expect("poll");
    assert_eq!(stats.moved_archive, 1);
}

#[tokio::test]
async fn password_file_env_and_command() {
    let Some(dv) = Dovecot::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, format!("{}\nsecond line\n", dovecot::PASSWORD)).unwrap();
    let var = "DMARCDB_TEST_IMAP_PASSWORD";
    // Only this test sets it; std serialises its own env access, and
    // nothing non-Rust reads the environment concurrently here.
    std::env::set_var(var, dovecot::PASSWORD);
    let base = account(&dv, "starttls");
    let sources: [(&str, Tweak); 3] = [
        ("file", Box::new(|a| a.password_file = Some(file.clone()))),
        ("env", Box::new(|a| a.password_env = Some(var.into()))),
        (
            "command",
            Box::new(|a| {
                a.password_command = Some(format!("echo '{}'; echo other", dovecot::PASSWORD))
            }),
        ),
    ];
    for (i, (what, set)) in sources.iter().enumerate() {
        dv.append("INBOX", &mail(i, false));
        let mut a = base.clone();
        a.password = None;
        set(&mut a);
        let stats = poll_quick(&a, &mut TestSink::default())
            .await
            .unwrap_or_else(|e| panic!("password_{what}: {e}"));
        assert_eq!(stats.moved_archive, 1, "password_{what}");
    }
    assert_eq!(dv.count("Archive"), 3);
}

#[test]
fn password_errors_name_the_account_not_the_secret() {
    let config = Config::from_toml(
        "[[imap]]\nname = 'acct'\nhost = '127.0.0.1'\nusername = 'u'\npassword = 'x'\n",
    )
    .unwrap();
    let base = config.imap[0].clone();
    let with = |f: &dyn Fn(&mut ImapAccount)| {
        let mut a = base.clone();
        a.password = None;
        f(&mut a);
        a
    };

    let a = with(&|a| a.password_command = Some("echo hunter2-out; echo oops >&2; exit 3".into()));
    let err = resolve_password(&a).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, FetchError::Password { .. }), "{err:?}");
    assert!(msg.contains("acct") && msg.contains("status 3"), "{msg}");
    assert!(!msg.contains("hunter2") && !msg.contains("oops"), "{msg}");

    let a = with(&|a| a.password_command = Some("printf 'p w\\r\\n'".into()));
    assert_eq!(resolve_password(&a).unwrap().expose(), "p w");
    assert_eq!(format!("{:?}", resolve_password(&a).unwrap()), "***");

    let a = with(&|a| a.password_env = Some("DMARCDB_TEST_SURELY_UNSET".into()));
    let msg = resolve_password(&a).unwrap_err().to_string();
    assert!(
        msg.contains("acct") && msg.contains("DMARCDB_TEST_SURELY_UNSET"),
        "{msg}"
    );

    let a = with(&|a| a.password_file = Some("/nonexistent/pw".into()));
    let msg = resolve_password(&a).unwrap_err().to_string();
    assert!(
        msg.contains("acct") && msg.contains("/nonexistent/pw"),
        "{msg}"
    );

    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let a = with(&|a| a.password_file = Some(empty.clone()));
    assert!(resolve_password(&a)
        .unwrap_err()
        .to_string()
        .contains("empty"));
}

#[tokio::test]
async fn sink_error_stops_before_moving_that_batch() {
    let Some(dv) = Dovecot::start() else { return };
    let sent = mails25();
    dv.append_all("INBOX", &sent);
    let mut sink = TestSink {
        fail_from_call: Some(2),
        ..TestSink::default()
    };
    let err = poll_quick(&account(&dv, "starttls"), &mut sink)
        .await
        .expect_err("sink fails");
    assert!(matches!(err, FetchError::Sink { .. }), "{err:?}");
    assert!(err.to_string().contains("disk full"), "{err}");
    // The first batch was committed and moved; the second was not.
    assert_eq!(sink.batches.len(), 1);
    assert_eq!(dv.count("INBOX"), 15);
    assert_eq!(dv.count("Archive") + dv.count("Invalid"), 10);

    let mut all_fail = TestSink {
        fail_from_call: Some(1),
        ..TestSink::default()
    };
    poll_quick(&account(&dv, "starttls"), &mut all_fail)
        .await
        .expect_err("sink fails");
    assert_eq!(dv.count("INBOX"), 15, "nothing moved");
}

#[tokio::test]
async fn message_expunged_between_search_and_fetch_is_skipped() {
    let Some(dv) = Dovecot::start() else { return };
    let sent: Vec<Vec<u8>> = (0..5).map(|i| mail(i, false)).collect();
    let uids = dv.append_all("INBOX", &sent);
    let gone = uids[2];
    let mut sink = TestSink {
        on_stored: Some(Box::new(|_| dv.expunge("INBOX", gone))),
        ..TestSink::default()
    };
    let stats = poll_quick(&account(&dv, "starttls"), &mut sink)
        .await
        .expect("poll");
    assert_eq!((stats.messages, stats.vanished, stats.fetched), (5, 1, 4));
    assert!(sink.got.iter().all(|m| m.uid != gone));
    assert_eq!(dv.count("INBOX"), 0);
    assert_eq!(dv.count("Archive"), 4);
}

// ---- scripted fake servers (no Dovecot needed) ----

/// A one-connection IMAP server on loopback that answers each tagged
/// command line with `answer(command)` (untagged lines, then the tagged
/// result as `OK ...`/`NO ...`). Returns the port and a handle yielding the
/// command lines it received.
fn fake_server(
    greeting: Option<&'static str>,
    answer: fn(&str) -> (Vec<String>, String),
) -> (u16, std::thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = BufReader::new(s);
        let mut seen = Vec::new();
        let Some(greeting) = greeting else {
            // Say nothing; wait for the client to give up.
            let mut buf = String::new();
            let _ = r.read_line(&mut buf);
            return seen;
        };
        let _ = r.get_mut().write_all(format!("{greeting}\r\n").as_bytes());
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return seen,
                Ok(_) => {}
            }
            let line = line.trim_end().to_string();
            let (tag, cmd) = line.split_once(' ').unwrap_or((&line, ""));
            let (untagged, result) = answer(cmd);
            let mut out = String::new();
            for u in untagged {
                out.push_str(&u);
                out.push_str("\r\n");
            }
            out.push_str(&format!("{tag} {result}\r\n"));
            seen.push(cmd.to_string());
            if r.get_mut().write_all(out.as_bytes()).is_err() || cmd == "LOGOUT" {
                return seen;
            }
        }
    });
    (port, handle)
}

fn fake_account(port: u16, tls: TlsMode) -> ImapAccount {
    let mut a = Config::from_toml(
        "[[imap]]\nname = 'fake'\nhost = '127.0.0.1'\nusername = 'u'\npassword = 'pw-s3cret'\n",
    )
    .unwrap()
    .imap
    .remove(0);
    a.port = Some(port);
    a.tls = tls;
    a
}

#[tokio::test]
async fn starttls_not_offered_is_refused_before_login() {
    let (port, server) = fake_server(Some("* OK fake ready"), |cmd| match cmd {
        "CAPABILITY" => (
            vec!["* CAPABILITY IMAP4rev1 AUTH=PLAIN".into()],
            "OK done".into(),
        ),
        _ => (vec![], "BAD what".into()),
    });
    let err = poll_quick(
        &fake_account(port, TlsMode::Starttls),
        &mut TestSink::default(),
    )
    .await
    .expect_err("no STARTTLS");
    assert!(matches!(err, FetchError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("STARTTLS"), "{err}");
    let seen = server.join().unwrap();
    assert_eq!(seen, ["CAPABILITY"], "never sent LOGIN in plaintext");
}

#[tokio::test]
async fn silent_server_times_out() {
    let (port, server) = fake_server(None, |_| (vec![], String::new()));
    let opts = PollOptions {
        timeout: Duration::from_millis(300),
        ..PollOptions::default()
    };
    let t = Instant::now();
    let err = poll_with(
        &fake_account(port, TlsMode::None),
        &Limits::default(),
        &mut TestSink::default(),
        &opts,
    )
    .await
    .expect_err("timeout");
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(matches!(err, FetchError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("greeting"), "{err}");
    drop(server); // it ends when the connection closes
}

#[tokio::test]
async fn fetch_answered_no_is_an_error_not_an_empty_batch() {
    let (port, server) = fake_server(Some("* OK fake ready"), |cmd| {
        let ok = || "OK done".to_string();
        match cmd {
            c if c.starts_with("LOGIN") => (vec![], ok()),
            "CAPABILITY" => (vec!["* CAPABILITY IMAP4rev1 MOVE UIDPLUS".into()], ok()),
            c if c.starts_with("SELECT") => (
                vec![
                    "* 2 EXISTS".into(),
                    "* OK [UIDVALIDITY 42] ok".into(),
                    "* OK [UIDNEXT 3] ok".into(),
                ],
                "OK [READ-WRITE] selected".into(),
            ),
            "UID SEARCH ALL" | "UID SEARCH UID 1:2" => (vec!["* SEARCH 2 1".into()], ok()),
            c if c.starts_with("UID FETCH") => (vec![], "NO [SERVERBUG] cannot fetch".into()),
            "LOGOUT" => (vec!["* BYE bye".into()], ok()),
            _ => (vec![], "BAD unexpected".into()),
        }
    });
    let mut sink = TestSink::default();
    let err = poll_quick(&fake_account(port, TlsMode::None), &mut sink)
        .await
        .expect_err("FETCH NO");
    assert!(matches!(err, FetchError::Protocol { .. }), "{err:?}");
    assert!(err.to_string().contains("still exist"), "{err}");
    assert!(sink.batches.is_empty());
    let seen = server.join().unwrap();
    assert!(seen[0].starts_with("LOGIN"));
    assert!(!seen.iter().any(|c| c.contains("MOVE")), "{seen:?}");
    assert_eq!(seen.last().map(String::as_str), Some("LOGOUT"));
    assert_eq!(sink.asked, [1, 2], "UIDs sorted");
}

#[tokio::test]
async fn default_poll_works() {
    // `poll` (default options) end to end, once.
    let Some(dv) = Dovecot::start() else { return };
    dv.append("INBOX", &mail(1, false));
    let mut sink = TestSink::default();
    let stats = poll(&account(&dv, "implicit"), &Limits::default(), &mut sink)
        .await
        .expect("poll");
    assert_eq!(stats.fetched, 1);
}
