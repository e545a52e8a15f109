//! OAuth2 login (`auth = "xoauth2"` / `"oauthbearer"` with `token_command`):
//! end to end through the binary against a private Dovecot whose oauth2
//! passdb asks a local token-introspection endpoint (tests/support), plus
//! scripted fake servers for the exact SASL exchange and a server that stops
//! answering.

mod support;

use dmarcdb::config::{Config, ImapAccount, Limits};
use dmarcdb::fetch::imap::{
    poll_with, Destination, FetchError, FetchedMail, MailSink, MailboxRef, PollOptions, SinkError,
};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::dovecot::Dovecot;

const REPORT_EML: &str =
    "fixtures/wrappings/mail.example.net!example.com!1700006400!1700092799.eml";

fn report_eml() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(REPORT_EML)).unwrap()
}

fn plain_mail() -> Vec<u8> {
    b"From: someone@example.org\r\nTo: dmarc@example.com\r\nSubject: lunch?\r\n\
      Message-ID: <lunch@example.org>\r\n\r\nAre you free at noon?\r\n"
        .to_vec()
}

/// A token shaped and sized like a real one (a JWT of about 1.6 KB, as
/// Microsoft issues), different for each `seed`.
fn token(seed: &str) -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut x: u64 = seed.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut part = |n: usize| -> String {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(alphabet[(x % 64) as usize])
            })
            .collect()
    };
    format!(
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.{}.{}",
        part(1200),
        part(342)
    )
}

/// A scratch directory with a database, a config and token files; runs the
/// binary.
struct Run {
    dir: tempfile::TempDir,
}

impl Run {
    fn new() -> Run {
        Run {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("imap.sqlite")
    }

    /// Write `token` (with a line end) to a file; its path.
    fn token_file(&self, name: &str, token: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, format!("{token}\n")).unwrap();
        p
    }

    /// `dmarcdb --config <config> ingest --imap --json`, with how long it took.
    fn ingest(&self, config: &str) -> (Output, Duration) {
        let cfg = self.dir.path().join("config.toml");
        std::fs::write(&cfg, config).unwrap();
        let t = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_dmarcdb"))
            .args([
                "--config",
                cfg.to_str().unwrap(),
                "ingest",
                "--imap",
                "--json",
            ])
            .env("DMARCDB_DB", self.db())
            .env("HOME", self.dir.path())
            .output()
            .unwrap();
        (out, t.elapsed())
    }

    fn sql(&self, sql: &str) -> i64 {
        rusqlite::Connection::open(self.db())
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap()
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn stats(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Neither the token nor its base64 form (as sent on the wire) in the output.
fn assert_no_token(out: &Output, token: &str) {
    let (stdout, stderr) = text(out);
    for s in [&stdout, &stderr] {
        assert!(!s.contains(token), "token leaked: {s}");
        assert!(!s.contains(&token[40..80]), "part of the token leaked: {s}");
    }
}

/// A token_command that prints the token from `file`, but first fails
/// (exit 7) if the token is in the arguments or environment of its parent,
/// dmarcdb (exit 8 if that is not dmarcdb or cannot be read, so the check
/// cannot pass vacuously). `grep -f` reads the token from the file, so it is
/// not in any command line either.
fn checking_token_command(file: &Path) -> String {
    let f = file.display();
    format!(
        "grep -qa dmarcdb /proc/$PPID/cmdline || exit 8; \
         test -r /proc/$PPID/environ || exit 8; \
         ! grep -qaFf '{f}' /proc/$PPID/cmdline /proc/$PPID/environ || exit 7; \
         cat '{f}'"
    )
}

fn good_run(dv: &Dovecot, run: &Run, config: &str, good: &str) {
    dv.append_all("INBOX", &[report_eml(), plain_mail()]);
    let before = dv.introspected().len();
    let (out, took) = run.ingest(config);
    let (_, err) = text(&out);
    assert!(out.status.success(), "{err}\n{}", dv.log());
    let s = stats(&out);
    assert_eq!(
        (s["inputs"].as_i64(), s["reports"].as_i64()),
        (Some(2), Some(1)),
        "{s} {err}"
    );
    assert_eq!(dv.count("INBOX"), 0);
    assert_eq!(dv.count("Archive"), 2);
    assert_eq!(run.sql("SELECT count(*) FROM reports"), 1);
    assert_eq!(run.sql("SELECT count(*) FROM imap_messages"), 2);
    // Dovecot really checked this token with the endpoint.
    assert_eq!(dv.introspected()[before..], [good.to_string()]);
    assert_no_token(&out, good);
    eprintln!("good token: {took:?}");
}

#[test]
fn xoauth2_good_token_ingests() {
    let good = token("good-xoauth2");
    let Some(dv) = Dovecot::builder().oauth2(&good).start() else {
        return;
    };
    let run = Run::new();
    let file = run.token_file("token", &good);
    let config = dv.oauth_account_toml(
        "reports",
        "implicit",
        "xoauth2",
        &checking_token_command(&file),
    );
    good_run(&dv, &run, &config, &good);
    assert!(dv.log().contains("method=XOAUTH2"), "{}", dv.log());

    // The token is read afresh on every run: replaced by an expired one in
    // the file, it is that one the server sees (and refuses).
    let expired = token("expired");
    std::fs::write(&file, format!("{expired}\n")).unwrap();
    dv.append("INBOX", &plain_mail());
    let (out, _) = run.ingest(&config);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out).1);
    assert_eq!(dv.introspected().last(), Some(&expired));
    assert_no_token(&out, &expired);
    assert_eq!(dv.count("INBOX"), 1);
}

#[test]
fn oauthbearer_good_token_ingests() {
    let good = token("good-oauthbearer");
    let Some(dv) = Dovecot::builder().oauth2(&good).start() else {
        return;
    };
    let run = Run::new();
    // printf, with surrounding blanks and a second line that is ignored.
    let config = dv.oauth_account_toml(
        "reports",
        "starttls",
        "oauthbearer",
        &format!("printf '  {good} \\nsecond line\\n'"),
    );
    good_run(&dv, &run, &config, &good);
    assert!(dv.log().contains("method=OAUTHBEARER"), "{}", dv.log());
}

#[test]
fn rejected_token_exits_1_at_once_for_both_mechanisms() {
    let good = token("the-good-one");
    let Some(dv) = Dovecot::builder().oauth2(&good).start() else {
        return;
    };
    dv.append("INBOX", &report_eml());
    for (auth, tls, status) in [
        ("xoauth2", "implicit", "token rejected: status 401"),
        ("oauthbearer", "starttls", "token rejected: invalid_token"),
        ("xoauth2", "starttls", "token rejected: status 401"),
        ("oauthbearer", "implicit", "token rejected: invalid_token"),
    ] {
        let bad = token(&format!("expired-{auth}-{tls}"));
        let run = Run::new();
        let file = run.token_file("token", &bad);
        let config =
            dv.oauth_account_toml("reports", tls, auth, &format!("cat '{}'", file.display()));
        let (out, took) = run.ingest(&config);
        let (_, err) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{auth}/{tls}: {err}");
        // The default timeout is 60 s: this is an answer, not a timeout.
        assert!(
            took < Duration::from_secs(10),
            "{auth}/{tls}: took {took:?}"
        );
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("dmarcdb: ")).collect();
        assert_eq!(lines.len(), 1, "{auth}/{tls}: {err}");
        let line = lines[0];
        let mech = auth.to_uppercase();
        assert!(
            line.contains("account reports: login to 127.0.0.1 refused")
                && line.contains(&format!("user dmarc ({mech})"))
                && line.contains("AUTHENTICATIONFAILED")
                && line.contains(status),
            "{auth}/{tls}: {line}"
        );
        assert_no_token(&out, &bad);
        assert_eq!(stats(&out)["inputs"], 0);
        assert_eq!(dv.introspected().last(), Some(&bad), "{auth}/{tls}");
        eprintln!("{auth}/{tls} in {took:?}: {line}");
    }
    assert_eq!(dv.count("INBOX"), 1, "nothing moved");
}

#[test]
fn failing_token_command_is_a_clear_error() {
    // Fails before connecting: the port has nobody listening, and nothing
    // ever tries it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (command, want) in [
        ("exit 1", "token_command exited with status 1"),
        (
            "echo half-a-token-4711; exit 1",
            "token_command exited with status 1",
        ),
        ("true", "token_command printed no token"),
        ("printf '\\n\\n'", "token_command printed no token"),
        (
            "echo 'two words'",
            "the first line of token_command's output contains spaces",
        ),
    ] {
        let run = Run::new();
        let config = format!(
            "[[imap]]\nname = \"m365\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
             username = \"dmarc@example.com\"\nauth = \"xoauth2\"\ntoken_command = {command:?}\n"
        );
        let (out, took) = run.ingest(&config);
        let (_, err) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{command}: {err}");
        assert!(took < Duration::from_secs(10));
        assert!(
            err.contains(&format!("dmarcdb: account m365: OAuth2 token: {want}")),
            "{command}: {err}"
        );
        assert!(
            !err.contains("half-a-token") && !err.contains("two words"),
            "{err}"
        );
        assert!(!err.contains("connect"), "{command}: {err}");
    }
}

#[test]
fn oauth_config_errors_name_the_line_and_key() {
    let run = Run::new();
    let head = "[[imap]]\nname = \"m365\"\nhost = \"outlook.office365.com\"\n\
                username = \"dmarc@example.com\"\n";
    for (rest, want) in [
        (
            "auth = \"xoauth2\"\ntoken_command = \"oama access dmarc@example.com\"\npassword_env = \"PW\"\n",
            "line 7: account \"m365\": password_env cannot be used with auth = \"xoauth2\"",
        ),
        (
            "auth = \"oauthbearer\"\n",
            "line 5: account \"m365\": auth = \"oauthbearer\" needs token_command",
        ),
        (
            "password_env = \"PW\"\ntoken_command = \"x\"\n",
            "line 6: account \"m365\": token_command is only used with auth = \"xoauth2\" or \"oauthbearer\"",
        ),
        ("auth = \"cram-md5\"\npassword_env = \"PW\"\n", "line 5:"),
    ] {
        let (out, _) = run.ingest(&format!("{head}{rest}"));
        let (_, err) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{rest}: {err}");
        assert!(err.contains(want), "{rest}: {err}");
    }
}

// ---- scripted fake servers (no Dovecot needed) ----

struct NullSink;

impl MailSink for NullSink {
    fn stored(&mut self, _: &MailboxRef, _: &[u32]) -> Result<Vec<(u32, Destination)>, SinkError> {
        Ok(Vec::new())
    }
    fn store(
        &mut self,
        _: &MailboxRef,
        _: Vec<FetchedMail>,
    ) -> Result<Vec<(u32, Destination)>, SinkError> {
        Ok(Vec::new())
    }
    fn copied(&mut self, _: &MailboxRef, _: &str, _: &[u32]) -> Result<Vec<u32>, SinkError> {
        Ok(Vec::new())
    }
    fn record_copies(
        &mut self,
        _: &MailboxRef,
        _: &str,
        _: &[(u32, Option<u32>)],
    ) -> Result<(), SinkError> {
        Ok(())
    }
    fn oversize(&mut self, _: &MailboxRef, _: u32, _: u64, _: Vec<u8>) -> Result<(), SinkError> {
        Ok(())
    }
}

fn fake_account(port: u16, auth: &str, token_command: &str) -> ImapAccount {
    let toml = format!(
        "[[imap]]\nname = 'fake'\nhost = '127.0.0.1'\nport = {port}\ntls = 'none'\n\
         username = 'dmarc@example.com'\nauth = '{auth}'\ntoken_command = {token_command:?}\n"
    );
    let mut config = Config::from_toml(&toml).unwrap();
    config.imap.remove(0)
}

fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn unb64(s: &str) -> Vec<u8> {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let vals: Vec<u32> = s
        .bytes()
        .filter(|b| *b != b'=')
        .map(|b| A.iter().position(|a| *a == b).expect("base64") as u32)
        .collect();
    let mut out = Vec::new();
    for c in vals.chunks(4) {
        let n = c
            .iter()
            .enumerate()
            .fold(0, |n, (i, v)| n | v << (18 - 6 * i));
        out.extend(n.to_be_bytes()[1..c.len()].iter());
    }
    out
}

/// What a fake server does after the client's initial response.
#[derive(Clone, Copy)]
enum Then {
    /// Send an error challenge (base64 JSON), read the client's answer, say NO.
    Reject,
    /// Say nothing more (until the client hangs up).
    Silence,
}

/// A one-connection server: greeting, then `AUTHENTICATE <mech>` answered
/// with an empty `+`, then [`Then`]. Returns the port and a handle yielding
/// the lines the client sent (the initial response base64-decoded).
fn sasl_server(then: Then) -> (u16, std::thread::JoinHandle<Vec<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = BufReader::new(s);
        let mut seen = Vec::new();
        let send = |r: &mut BufReader<std::net::TcpStream>, s: &str| {
            let _ = r.get_mut().write_all(format!("{s}\r\n").as_bytes());
        };
        let read = |r: &mut BufReader<std::net::TcpStream>| -> Option<String> {
            let mut l = String::new();
            match r.read_line(&mut l) {
                Ok(0) | Err(_) => None,
                Ok(_) => Some(l.trim_end_matches(['\r', '\n']).to_string()),
            }
        };
        send(
            &mut r,
            "* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2 AUTH=OAUTHBEARER] fake",
        );
        let Some(cmd) = read(&mut r) else { return seen };
        seen.push(cmd.clone().into_bytes());
        let tag = cmd.split(' ').next().unwrap_or("").to_string();
        send(&mut r, "+ ");
        let Some(initial) = read(&mut r) else {
            return seen;
        };
        seen.push(unb64(&initial));
        match then {
            Then::Silence => {
                let _ = read(&mut r);
            }
            Then::Reject => {
                let json =
                    r#"{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}"#;
                send(&mut r, &format!("+ {}", b64(json.as_bytes())));
                let Some(ack) = read(&mut r) else { return seen };
                seen.push(ack.into_bytes());
                send(
                    &mut r,
                    &format!("{tag} NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)"),
                );
                if let Some(l) = read(&mut r) {
                    let t = l.split(' ').next().unwrap_or("").to_string();
                    seen.push(l.into_bytes());
                    send(&mut r, "* BYE bye");
                    send(&mut r, &format!("{t} OK done"));
                }
            }
        }
        seen
    });
    (port, handle)
}

#[test]
fn base64_helpers_round_trip() {
    for s in ["", "a", "ab", "abc", "user=x\x01auth=Bearer t\x01\x01"] {
        assert_eq!(unb64(&b64(s.as_bytes())), s.as_bytes());
    }
    assert_eq!(b64(b"\x01"), "AQ==");
}

#[tokio::test]
async fn sasl_exchange_is_exactly_as_specified() {
    for (auth, initial, ack) in [
        (
            "xoauth2",
            "user=dmarc@example.com\x01auth=Bearer tok-123\x01\x01",
            "",
        ),
        (
            "oauthbearer",
            "n,a=dmarc@example.com,\x01host=127.0.0.1\x01port=PORT\x01auth=Bearer tok-123\x01\x01",
            "AQ==",
        ),
    ] {
        let (port, server) = sasl_server(Then::Reject);
        let a = fake_account(port, auth, "echo tok-123");
        let t = Instant::now();
        let err = poll_with(
            &a,
            &Limits::default(),
            &mut NullSink,
            &PollOptions {
                timeout: Duration::from_secs(10),
                ..PollOptions::default()
            },
        )
        .await
        .expect_err("rejected");
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "{auth}: {:?}",
            t.elapsed()
        );
        let seen = server.join().unwrap();
        let seen: Vec<String> = seen
            .into_iter()
            .map(|b| String::from_utf8(b).unwrap())
            .collect();
        let mech = auth.to_uppercase();
        assert!(
            seen[0].ends_with(&format!(" AUTHENTICATE {mech}")),
            "{seen:?}"
        );
        assert_eq!(
            seen[1],
            initial.replace("PORT", &port.to_string()),
            "{auth}"
        );
        assert_eq!(seen[2], ack, "{auth}: the answer to the error challenge");
        assert!(seen[3].ends_with(" LOGOUT"), "{seen:?}");
        assert!(matches!(err, FetchError::Login { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "account fake: login to 127.0.0.1 refused: user dmarc@example.com ({mech}): \
                 [AUTHENTICATIONFAILED] Invalid credentials (Failure) \
                 (token rejected: status 400, scope https://mail.google.com/)"
            )
        );
        assert!(!format!("{err:?}").contains("tok-123"));
    }
}

#[tokio::test]
async fn server_silent_after_the_token_times_out() {
    let (port, server) = sasl_server(Then::Silence);
    let t = Instant::now();
    let err = poll_with(
        &fake_account(port, "oauthbearer", "echo tok-123"),
        &Limits::default(),
        &mut NullSink,
        &PollOptions {
            timeout: Duration::from_millis(500),
            ..PollOptions::default()
        },
    )
    .await
    .expect_err("timeout");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(matches!(err, FetchError::Timeout { .. }), "{err:?}");
    assert!(
        err.to_string().contains("logging in with OAUTHBEARER"),
        "{err}"
    );
    drop(server); // it ends when the connection closes
}
