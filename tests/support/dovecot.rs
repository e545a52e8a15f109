//! A private Dovecot IMAP server on loopback for tests.
//!
//! ```ignore
//! mod support;
//! use support::dovecot::Dovecot;
//!
//! let Some(dv) = Dovecot::start() else { return }; // skipped: no dovecot here
//! dv.append("INBOX", b"Subject: x\r\n\r\nbody\r\n");
//! // ... point the code under test at 127.0.0.1:dv.port (STARTTLS or plain)
//! // or dv.tls_port (implicit TLS), user dovecot::USER, password
//! // dovecot::PASSWORD, trusting dv.ca_file ...
//! assert_eq!(dv.count("Archive"), 1);
//! // dropped: the server is stopped and its directory removed.
//! ```
//!
//! Follows the verified recipe in `docs/dev-environment.md`: a short
//! `/tmp/dv.XXXXXX` directory (mode 755), mail owned by nobody:nogroup, a test
//! CA and a leaf certificate with IP SAN 127.0.0.1 made with openssl, free
//! loopback ports, one user `dmarc` / `secret`. Refused logins cost no delay
//! (`auth_failure_delay = 0`, anvil penalty off) so failure tests stay fast
//! and do not slow later logins.
//!
//! With [`Builder::oauth2`] the server also takes XOAUTH2 and OAUTHBEARER:
//! Dovecot's oauth2 passdb checks each bearer token with a small HTTP
//! token-introspection endpoint ([`TokenEndpoint`]) the harness runs in a
//! thread on another free loopback port; it accepts one token for `dmarc`.
//!
//! If `dovecot` is not installed (or the tests do not run as root), `start`
//! prints a loud message and returns `None` so the test can skip; with
//! `CI=true` in the environment it panics instead. `DOVECOT_KEEP=1` keeps the
//! directory (config, logs, mail) after the test for debugging;
//! `DOVECOT_BIN=/path/to/dovecot` picks the binary.
//!
//! The helpers (append, uids, messages, ...) talk IMAP over plaintext on
//! loopback with a tiny synchronous client ([`Imap`]); they panic on any
//! error, which is what a test wants.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The one user of the test server.
pub const USER: &str = "dmarc";
/// Its password.
pub const PASSWORD: &str = "secret";

/// Dovecot 2.3's post-login capabilities without MOVE (UIDPLUS stays).
pub const CAPS_WITHOUT_MOVE: &str = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT \
    SORT=DISPLAY THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL \
    CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC \
    ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY SNIPPET=FUZZY \
    PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY";

/// As [`CAPS_WITHOUT_MOVE`], without UIDPLUS as well.
pub const CAPS_WITHOUT_MOVE_UIDPLUS: &str =
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT \
    SORT=DISPLAY THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL \
    CATENATE UNSELECT CHILDREN NAMESPACE LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC \
    ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY SNIPPET=FUZZY \
    PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY";

/// Dovecot 2.3's post-login capabilities without IDLE (MOVE and UIDPLUS stay).
pub const CAPS_WITHOUT_IDLE: &str = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE SORT \
    SORT=DISPLAY THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL \
    CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC \
    ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY \
    PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY";

/// Options for [`Dovecot::builder`].
#[derive(Debug, Clone, Default)]
pub struct Builder {
    imap_capability: Option<String>,
    extra_config: String,
    oauth2_token: Option<String>,
}

impl Builder {
    /// Set `imap_capability` (the post-login capability list), e.g.
    /// [`CAPS_WITHOUT_MOVE`].
    pub fn imap_capability(mut self, caps: &str) -> Self {
        self.imap_capability = Some(caps.split_whitespace().collect::<Vec<_>>().join(" "));
        self
    }

    /// A server without the MOVE capability.
    pub fn without_move(self) -> Self {
        self.imap_capability(CAPS_WITHOUT_MOVE)
    }

    /// Also offer XOAUTH2 and OAUTHBEARER, accepting `token` (and no other)
    /// as an access token for [`USER`] (the password keeps working for LOGIN).
    pub fn oauth2(mut self, token: &str) -> Self {
        self.oauth2_token = Some(token.to_string());
        self
    }

    /// Extra lines appended to `dovecot.conf`.
    pub fn extra_config(mut self, lines: &str) -> Self {
        self.extra_config.push_str(lines);
        self.extra_config.push('\n');
        self
    }

    /// Start the server; `None` (after a loud message) if Dovecot cannot run
    /// here. Panics with `CI=true`, or if Dovecot is there but fails to start.
    pub fn start(self) -> Option<Dovecot> {
        if let Err(why) = prerequisites() {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "Dovecot tests cannot run and CI=true: {why} (apt-get install dovecot-imapd)"
                );
            }
            // Straight to stderr: eprintln! would be captured by the test
            // harness and never shown for a (skipped, so passing) test.
            let bar = "!".repeat(72);
            let _ = writeln!(
                std::io::stderr(),
                "\n{bar}\n!!! SKIPPING a Dovecot test: {why}\n\
                 !!! (apt-get install dovecot-imapd; with CI=true this is a failure)\n{bar}\n"
            );
            return None;
        }
        let mut last = String::new();
        // Free ports are found by binding port 0 and letting go; another
        // process may take one in between, so try a few times.
        for _ in 0..4 {
            match Dovecot::try_start(&self) {
                Ok(d) => return Some(d),
                Err(e) => last = e,
            }
        }
        panic!("Dovecot did not start: {last}");
    }
}

/// A running private Dovecot. Stopped (and its directory removed) on drop.
pub struct Dovecot {
    /// IMAP port (plaintext, STARTTLS offered) on 127.0.0.1.
    pub port: u16,
    /// IMAPS port (implicit TLS) on 127.0.0.1.
    pub tls_port: u16,
    /// The test CA certificate (PEM) that signed the server certificate.
    pub ca_file: PathBuf,
    dir: PathBuf,
    tmp: Option<tempfile::TempDir>,
    master: Child,
    watchdog: Option<(Child, ChildStdin)>,
    /// With [`Builder::oauth2`]: the introspection endpoint (dropped after
    /// the server has stopped).
    tokens: Option<TokenEndpoint>,
}

impl Dovecot {
    /// Start a server with the defaults (see [`Builder::start`]).
    pub fn start() -> Option<Dovecot> {
        Builder::default().start()
    }

    /// Options.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The server's directory (`dovecot.conf`, `dovecot.log`, `mail/`, `tls/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The host to connect to.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// What Dovecot logged so far (logins, logouts with their counters).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default()
    }

    /// An `[[imap]]` section for a dmarcdb config file pointing at this
    /// server. `tls` is `"starttls"` (port), `"implicit"` (tls_port) or
    /// `"none"` (port, plaintext); the CA is trusted via `ca_file`.
    pub fn account_toml(&self, name: &str, tls: &str) -> String {
        let port = if tls == "implicit" {
            self.tls_port
        } else {
            self.port
        };
        format!(
            "[[imap]]\nname = {name:?}\nhost = \"127.0.0.1\"\nport = {port}\ntls = {tls:?}\n\
             ca_file = {ca:?}\nusername = {USER:?}\npassword = {PASSWORD:?}\n",
            ca = self.ca_file.display().to_string(),
        )
    }

    /// As [`Dovecot::account_toml`], logging in with `auth` (`"xoauth2"` or
    /// `"oauthbearer"`) and a token from `token_command` instead of a password.
    pub fn oauth_account_toml(
        &self,
        name: &str,
        tls: &str,
        auth: &str,
        token_command: &str,
    ) -> String {
        let login = self.account_toml(name, tls);
        let password_line = format!("password = {PASSWORD:?}\n");
        assert!(login.contains(&password_line));
        login.replace(
            &password_line,
            &format!("auth = {auth:?}\ntoken_command = {token_command:?}\n"),
        )
    }

    /// The tokens the introspection endpoint was asked about so far, in
    /// order (empty without [`Builder::oauth2`]).
    pub fn introspected(&self) -> Vec<String> {
        self.tokens
            .as_ref()
            .map(|t| t.asked.lock().unwrap().clone())
            .unwrap_or_default()
    }

    /// A logged-in plaintext connection for doing things by hand.
    pub fn imap(&self) -> Imap {
        // A loaded machine (parallel tests, several servers) now and then
        // drops a login: try again before failing the test.
        let mut last = None;
        for attempt in 0..5 {
            match Imap::login(self.port, USER, PASSWORD) {
                Ok(imap) => return imap,
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(100 << attempt));
        }
        panic!("harness IMAP login: {:?}\n{}", last, self.log())
    }

    /// APPEND one message to `folder` (created if missing); its UID.
    pub fn append(&self, folder: &str, message: &[u8]) -> u32 {
        self.imap().append(folder, message)
    }

    /// APPEND several messages over one connection; their UIDs.
    pub fn append_all<M: AsRef<[u8]>>(&self, folder: &str, messages: &[M]) -> Vec<u32> {
        let mut imap = self.imap();
        imap.create(folder);
        // MULTIAPPEND: Dovecot's maildir rewrites its UID list once per APPEND
        // command, which makes one command per message quadratic.
        messages
            .chunks(250)
            .flat_map(|chunk| imap.append_many(folder, chunk))
            .collect()
    }

    /// CREATE a folder (fine if it exists).
    pub fn create(&self, folder: &str) {
        self.imap().create(folder);
    }

    /// The UIDs in `folder`, sorted; empty if it does not exist.
    pub fn uids(&self, folder: &str) -> Vec<u32> {
        self.imap().uids(folder)
    }

    /// How many messages `folder` holds (0 if it does not exist).
    pub fn count(&self, folder: &str) -> usize {
        self.uids(folder).len()
    }

    /// Every message of `folder` as (UID, raw bytes), by UID.
    pub fn messages(&self, folder: &str) -> Vec<(u32, Vec<u8>)> {
        self.imap().messages(folder)
    }

    /// Expunge one message, as another client would.
    pub fn expunge(&self, folder: &str, uid: u32) {
        self.imap().expunge_uid(folder, uid);
    }

    fn try_start(opts: &Builder) -> Result<Dovecot, String> {
        let tmp = tempfile::Builder::new()
            .prefix("dv.")
            .tempdir_in("/tmp")
            .map_err(|e| format!("mkdtemp: {e}"))?;
        let d = tmp.path().to_path_buf();
        let tls = d.join("tls");
        for sub in ["run", "state", "mail", "tls"] {
            std::fs::create_dir_all(d.join(sub)).map_err(|e| format!("mkdir: {e}"))?;
        }
        run("chmod", &["755", path(&d)])?;
        run("chown", &["nobody:nogroup", path(&d.join("mail"))])?;
        let uid = output("id", &["-u", "nobody"])?;
        let gid = output("getent", &["group", "nogroup"])?
            .split(':')
            .nth(2)
            .map(str::to_string)
            .ok_or("no gid for nogroup")?;

        for (name, bytes) in certs()? {
            std::fs::write(tls.join(name), bytes).map_err(|e| format!("write {name}: {e}"))?;
        }
        write(
            &d.join("users"),
            &format!("{USER}:{{PLAIN}}{PASSWORD}::::::\n"),
        )?;
        run("chmod", &["644", path(&d.join("users"))])?;

        let port = free_port()?;
        let tls_port = free_port()?;
        if port == tls_port {
            return Err("the same port twice".into());
        }
        let tokens = match &opts.oauth2_token {
            Some(token) => Some(TokenEndpoint::start(token)?),
            None => None,
        };
        let dir = d.display();
        // The password for LOGIN; with oauth2 a second passdb for the tokens.
        let (mechanisms, passdb) = match &tokens {
            None => (
                "plain login",
                format!(
                    "passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/users
}}"
                ),
            ),
            Some(t) => {
                write(
                    &d.join("oauth2.conf.ext"),
                    &format!(
                        "introspection_mode = post
introspection_url = http://127.0.0.1:{}/introspect
username_attribute = username
active_attribute = active
active_value = true
",
                        t.port
                    ),
                )?;
                (
                    "plain login xoauth2 oauthbearer",
                    format!(
                        "passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {dir}/users
}}
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {dir}/oauth2.conf.ext
}}"
                    ),
                )
            }
        };
        let mut conf = format!(
            "base_dir = {dir}/run
state_dir = {dir}/state
instance_name = dovecot-test-{port}
log_path = {dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{dir}/tls/server.crt
ssl_key = <{dir}/tls/server.key
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
first_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_uid = 0
mail_uid = {uid}
mail_gid = {gid}
mail_home = {dir}/mail/%u
mail_location = maildir:~/Maildir
# Test mail need not survive a power cut: no fsync per APPEND.
mail_fsync = never
{passdb}
userdb {{
  driver = passwd-file
  args = username_format=%u {dir}/users
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
# Refused logins: no delay, no penalty for later logins from 127.0.0.1.
auth_failure_delay = 0
service anvil {{
  unix_listener anvil-auth-penalty {{
    path = anvil-auth-penalty-off
  }}
}}
"
        );
        if let Some(caps) = &opts.imap_capability {
            conf.push_str(&format!("imap_capability = {caps}\n"));
        }
        conf.push_str(&opts.extra_config);
        write(&d.join("dovecot.conf"), &conf)?;

        let (master, watchdog) = spawn_master(&d)?;
        let mut dv = Dovecot {
            port,
            tls_port,
            ca_file: tls.join("ca.crt"),
            dir: d,
            tmp: Some(tmp),
            master,
            watchdog,
            tokens,
        };
        dv.wait_ready().map_err(|e| dv.failed(&e))?;
        Ok(dv)
    }

    /// Stop the server (as a restart does: connected clients get BYE) and
    /// start it again with the same ports, config and mail.
    pub fn restart(&mut self) {
        // SIGTERM to the whole group, not just the master: an imap process
        // in IDLE outlives a master stopped alone by about 10 s.
        if let Ok(None) = self.master.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{}", self.master.id())])
                .stderr(Stdio::null())
                .status();
        }
        self.stop_master();
        let mut last = String::new();
        // The ports are free again at once (Dovecot binds with
        // SO_REUSEADDR), but retry a few times in case one is slow to go.
        for _ in 0..20 {
            let (master, watchdog) = spawn_master(&self.dir).expect("spawn dovecot again");
            self.master = master;
            self.watchdog = watchdog;
            match self.wait_ready() {
                Ok(()) => return,
                Err(e) => last = self.failed(&e),
            }
            self.stop_master();
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("Dovecot did not start again: {last}");
    }

    /// `e` with the logs, for a server that did not start.
    fn failed(&self, e: &str) -> String {
        let log = self.log();
        let out = std::fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default();
        format!("{e}\n--- dovecot.log ---\n{log}\n--- stdout ---\n{out}")
    }

    /// Alive, `run/master.pid` holds our pid, the port greets with `* OK`.
    fn wait_ready(&mut self) -> Result<(), String> {
        let pid = self.master.id().to_string();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.master.try_wait() {
                return Err(format!("dovecot exited at start: {status}"));
            }
            let pid_ok = std::fs::read_to_string(self.dir.join("run/master.pid"))
                .is_ok_and(|s| s.trim() == pid);
            if pid_ok && probe(self.port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("dovecot not ready after 15 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Dovecot {
    /// SIGTERM the master and wait for it (SIGKILL its group after 10 s).
    fn stop_master(&mut self) {
        // The watchdog first, so it cannot signal a reused pid later.
        if let Some((mut child, stdin)) = self.watchdog.take() {
            let _ = child.kill();
            drop(stdin);
            let _ = child.wait();
        }
        if let Ok(Some(_)) = self.master.try_wait() {
            // Gone already (and reaped): its pid may belong to another process now.
            return;
        }
        let pid = self.master.id().to_string();
        let _ = Command::new("kill")
            .args(["-TERM", &pid])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut exited = false;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.master.try_wait() {
                exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if !exited {
            eprintln!("dovecot {pid} did not stop on SIGTERM; killing its process group");
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
            let _ = self.master.wait();
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop_master();
        if std::env::var("DOVECOT_KEEP").is_ok_and(|v| v == "1") {
            if let Some(tmp) = self.tmp.take() {
                eprintln!("DOVECOT_KEEP=1: keeping {}", tmp.keep().display());
            }
        }
    }
}

/// Start the master of the server in `dir` (config `dir/dovecot.conf`,
/// output appended to `dir/stdout.log`) and its watchdog.
fn spawn_master(dir: &Path) -> Result<(Child, Option<(Child, ChildStdin)>), String> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("stdout.log"))
        .map_err(|e| e.to_string())?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    // `setsid`: its own session and process group (group id = master
    // pid) for a last-resort group kill, and no terminal signals.
    let master = Command::new("setsid")
        .arg(dovecot_bin().ok_or("dovecot not found")?)
        .args(["-F", "-c", path(&dir.join("dovecot.conf"))])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| format!("spawn dovecot: {e}"))?;
    let watchdog = watchdog(master.id());
    Ok((master, watchdog))
}

/// Stops the server if this process dies without running `Drop` (a panic
/// with abort, ^C, SIGKILL): `sh` waits for EOF on a pipe only we hold, then
/// sends SIGTERM, and after 10 s SIGKILL to the group. It ignores terminal
/// signals so ^C does not take it down first.
fn watchdog(pid: u32) -> Option<(Child, ChildStdin)> {
    let script = r#"trap '' INT HUP TERM QUIT
read _
kill -TERM "$0" 2>/dev/null || exit 0
i=0
while kill -0 "$0" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
kill -KILL -- "-$0" 2>/dev/null
exit 0"#;
    let mut child = Command::new("sh")
        .args(["-c", script, &pid.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let stdin = child.stdin.take()?;
    Some((child, stdin))
}

fn prerequisites() -> Result<(), String> {
    if dovecot_bin().is_none() {
        return Err("dovecot is not installed".into());
    }
    if Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        return Err("openssl is not installed".into());
    }
    if output("id", &["-u"]).as_deref() != Ok("0") {
        return Err("the Dovecot harness runs the server as root (mail as nobody)".into());
    }
    Ok(())
}

/// `DOVECOT_BIN` if set, else `dovecot` on PATH or in the usual sbin dirs.
fn dovecot_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("DOVECOT_BIN") {
        let bin = PathBuf::from(bin);
        return bin.is_file().then_some(bin);
    }
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"])
        .map(|d| Path::new(d).join("dovecot"))
        .find(|p| p.is_file());
    found
}

/// A file name in `tls/` and its contents.
type CertFile = (&'static str, Vec<u8>);

/// The CA certificate, the server certificate and its key: made once per
/// test process (RSA key generation takes about half a second), kept in
/// memory, written into each server's `tls/`.
fn certs() -> Result<&'static [CertFile], String> {
    static CERTS: std::sync::OnceLock<Result<Vec<CertFile>, String>> = std::sync::OnceLock::new();
    CERTS
        .get_or_init(|| {
            let tmp = tempfile::Builder::new()
                .prefix("dvca.")
                .tempdir_in("/tmp")
                .map_err(|e| format!("mkdtemp: {e}"))?;
            make_certs(tmp.path())?;
            ["ca.crt", "server.crt", "server.key"]
                .into_iter()
                .map(|name| {
                    std::fs::read(tmp.path().join(name))
                        .map(|b| (name, b))
                        .map_err(|e| format!("read {name}: {e}"))
                })
                .collect()
        })
        .as_ref()
        .map(Vec::as_slice)
        .map_err(Clone::clone)
}

/// The certificates of the recipe: a CA, and a leaf for localhost and
/// 127.0.0.1 signed by it (a self-signed CA:TRUE cert would be rejected by
/// rustls as CaUsedAsEndEntity).
fn make_certs(tls: &Path) -> Result<(), String> {
    let openssl = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(tls)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("openssl: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "3650",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ])?;
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ])?;
    write(
        &tls.join("leaf.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "3650",
        "-extfile",
        "leaf.ext",
        "-out",
        "server.crt",
    ])
}

/// A token-introspection endpoint (RFC 7662 style) for Dovecot's oauth2
/// passdb with `introspection_mode = post`: for `POST /introspect` with the
/// form body `token=...` it answers `{"active": true, "username": "dmarc"}`
/// for the one good token and `{"active": false}` for any other. One thread
/// accepts, one per connection answers; each connection gets one answer and
/// is closed. Stopped on drop.
pub struct TokenEndpoint {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Every token asked about, in order.
    asked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokenEndpoint {
    fn start(good: &str) -> Result<TokenEndpoint, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (asked, stop, good) = (asked.clone(), stop.clone(), good.to_string());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(conn) = conn else { continue };
                    let (asked, good) = (asked.clone(), good.clone());
                    std::thread::spawn(move || {
                        if let Err(e) = answer_introspection(conn, &good, &asked) {
                            eprintln!("token endpoint: {e}");
                        }
                    });
                }
            })
        };
        Ok(TokenEndpoint {
            port,
            asked,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for TokenEndpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Read one HTTP request, answer it, close.
fn answer_introspection(
    conn: TcpStream,
    good: &str,
    asked: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut r = BufReader::new(conn);
    let mut request_line = String::new();
    r.read_line(&mut request_line)?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length.min(1 << 20)];
    r.read_exact(&mut body)?;
    let body = String::from_utf8_lossy(&body);
    let token = body
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| form_decode(v));
    let (status, answer) = match token {
        _ if !request_line.starts_with("POST /introspect ") => ("404 Not Found", "{}".to_string()),
        Some(t) => {
            let active = t == good;
            asked.lock().unwrap().push(t);
            let answer = if active {
                format!("{{\"active\": true, \"username\": \"{USER}\"}}")
            } else {
                "{\"active\": false}".to_string()
            };
            ("200 OK", answer)
        }
        None => ("400 Bad Request", "{}".to_string()),
    };
    let w = r.get_mut();
    w.write_all(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{answer}",
            answer.len()
        )
        .as_bytes(),
    )?;
    w.flush()
}

/// `application/x-www-form-urlencoded` value: `+` is a space, `%XX` a byte.
fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Connects, expects `* OK`, then logs out cleanly (a probe that just hangs
/// up makes the next stop take seconds).
fn probe(port: u16) -> bool {
    let Ok(s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut r = BufReader::new(s);
    let mut line = String::new();
    if r.read_line(&mut line).is_err() || !line.starts_with("* OK") {
        return false;
    }
    let _ = r.get_mut().write_all(b"a LOGOUT\r\n");
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    true
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn write(p: &Path, text: &str) -> Result<(), String> {
    std::fs::write(p, text).map_err(|e| format!("write {}: {e}", p.display()))
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    output(cmd, args).map(drop)
}

fn output(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// One untagged response: its text, with each literal replaced by `{n}`, and
/// the literals' bytes in order.
#[derive(Debug, Clone)]
pub struct Untagged {
    pub text: String,
    pub literals: Vec<Vec<u8>>,
}

/// A minimal synchronous IMAP client for test setup and inspection, over
/// plaintext on loopback. Every method panics on failure.
pub struct Imap {
    r: BufReader<TcpStream>,
    tag: u32,
}

impl Imap {
    /// Connect to 127.0.0.1:`port`, read the greeting, LOGIN.
    pub fn login(port: u16, user: &str, password: &str) -> std::io::Result<Imap> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        let mut imap = Imap {
            r: BufReader::new(s),
            tag: 0,
        };
        let greeting = imap.line()?;
        if !greeting.starts_with(b"* OK") {
            return Err(std::io::Error::other(format!(
                "greeting {:?}",
                String::from_utf8_lossy(&greeting)
            )));
        }
        imap.try_command(&format!("LOGIN {} {}", quote(user), quote(password)))
            .map_err(std::io::Error::other)?;
        Ok(imap)
    }

    /// Run a command; its untagged responses. Panics unless it ends in OK.
    pub fn command(&mut self, cmd: &str) -> Vec<Untagged> {
        self.try_command(cmd)
            .unwrap_or_else(|e| panic!("IMAP {cmd:?}: {e}"))
    }

    /// Run a command; its untagged responses, or the tagged NO/BAD line.
    pub fn try_command(&mut self, cmd: &str) -> Result<Vec<Untagged>, String> {
        let tag = self.send(cmd).map_err(|e| e.to_string())?;
        self.finish(&tag)
    }

    /// APPEND (creating the folder first if needed); the new UID.
    pub fn append(&mut self, folder: &str, message: &[u8]) -> u32 {
        self.create(folder);
        let tag = self
            .send(&format!("APPEND {} {{{}}}", quote(folder), message.len()))
            .expect("send APPEND");
        let cont = self.line().expect("APPEND continuation");
        assert!(
            cont.starts_with(b"+"),
            "APPEND: {}",
            String::from_utf8_lossy(&cont)
        );
        let w = self.r.get_mut();
        w.write_all(message).expect("write literal");
        w.write_all(b"\r\n").expect("write CRLF");
        w.flush().expect("flush");
        let (_, tagged) = self.finish_raw(&tag).expect("APPEND result");
        let upper = tagged.to_ascii_uppercase();
        assert!(
            upper.starts_with(&format!("{} OK", tag.to_ascii_uppercase())),
            "APPEND: {tagged}"
        );
        // [APPENDUID <validity> <uid>] with UIDPLUS; else the highest UID.
        if let Some(i) = upper.find("[APPENDUID ") {
            let uid = tagged[i + 11..]
                .split([' ', ']'])
                .nth(1)
                .and_then(|u| u.parse().ok());
            if let Some(uid) = uid {
                return uid;
            }
        }
        *self.uids(folder).last().expect("appended message")
    }

    /// One MULTIAPPEND (RFC 3502) of `messages` to a folder that exists,
    /// with non-synchronizing literals (LITERAL+); their UIDs, in order.
    pub fn append_many<M: AsRef<[u8]>>(&mut self, folder: &str, messages: &[M]) -> Vec<u32> {
        self.tag += 1;
        let tag = format!("h{}", self.tag);
        let mut cmd = format!("{tag} APPEND {}", quote(folder)).into_bytes();
        for m in messages {
            let m = m.as_ref();
            cmd.extend_from_slice(format!(" {{{}+}}\r\n", m.len()).as_bytes());
            cmd.extend_from_slice(m);
        }
        cmd.extend_from_slice(b"\r\n");
        let w = self.r.get_mut();
        w.write_all(&cmd)
            .and_then(|_| w.flush())
            .expect("send APPEND");
        let (_, tagged) = self.finish_raw(&tag).expect("APPEND result");
        let upper = tagged.to_ascii_uppercase();
        assert!(
            upper.starts_with(&format!("{} OK", tag.to_ascii_uppercase())),
            "APPEND: {tagged}"
        );
        // [APPENDUID <validity> <uid-set>]
        let set = upper
            .find("[APPENDUID ")
            .and_then(|i| {
                tagged[i + 11..]
                    .split([' ', ']'])
                    .nth(1)
                    .map(str::to_string)
            })
            .expect("APPENDUID (UIDPLUS) in the APPEND answer");
        let mut uids = Vec::new();
        for part in set.split(',') {
            match part.split_once(':') {
                Some((a, b)) => uids.extend(a.parse::<u32>().unwrap()..=b.parse::<u32>().unwrap()),
                None => uids.push(part.parse().unwrap()),
            }
        }
        assert_eq!(uids.len(), messages.len(), "APPENDUID {set}");
        uids
    }

    /// CREATE, ignoring "already exists" (and INBOX).
    pub fn create(&mut self, folder: &str) {
        if folder.eq_ignore_ascii_case("INBOX") {
            return;
        }
        let _ = self.try_command(&format!("CREATE {}", quote(folder)));
    }

    /// Sorted UIDs of `folder`; empty if it does not exist.
    pub fn uids(&mut self, folder: &str) -> Vec<u32> {
        if self
            .try_command(&format!("EXAMINE {}", quote(folder)))
            .is_err()
        {
            return Vec::new();
        }
        let mut uids: Vec<u32> = self
            .command("UID SEARCH ALL")
            .iter()
            .filter(|u| u.text.to_ascii_uppercase().starts_with("* SEARCH"))
            .flat_map(|u| {
                u.text
                    .split_whitespace()
                    .skip(2)
                    .filter_map(|n| n.parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect();
        uids.sort_unstable();
        uids
    }

    /// (UID, bytes) of every message in `folder`, by UID.
    pub fn messages(&mut self, folder: &str) -> Vec<(u32, Vec<u8>)> {
        if self.uids(folder).is_empty() {
            return Vec::new();
        }
        let mut out: Vec<(u32, Vec<u8>)> = self
            .command("UID FETCH 1:* (UID BODY.PEEK[])")
            .into_iter()
            .filter_map(|u| {
                let words: Vec<&str> = u.text.split([' ', '(']).collect();
                let i = words.iter().position(|w| w.eq_ignore_ascii_case("UID"))?;
                let uid = words.get(i + 1)?.trim_end_matches(')').parse().ok()?;
                Some((uid, u.literals.into_iter().next()?))
            })
            .collect();
        out.sort_by_key(|(uid, _)| *uid);
        out
    }

    /// Flag one message \Deleted and expunge it.
    pub fn expunge_uid(&mut self, folder: &str, uid: u32) {
        self.command(&format!("SELECT {}", quote(folder)));
        self.command(&format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"));
        self.command("EXPUNGE");
    }

    fn send(&mut self, cmd: &str) -> std::io::Result<String> {
        self.tag += 1;
        let tag = format!("h{}", self.tag);
        let w = self.r.get_mut();
        w.write_all(format!("{tag} {cmd}\r\n").as_bytes())?;
        w.flush()?;
        Ok(tag)
    }

    fn finish(&mut self, tag: &str) -> Result<Vec<Untagged>, String> {
        let (untagged, tagged) = self.finish_raw(tag).map_err(|e| e.to_string())?;
        if tagged
            .to_ascii_uppercase()
            .starts_with(&format!("{} OK", tag.to_ascii_uppercase()))
        {
            Ok(untagged)
        } else {
            Err(tagged)
        }
    }

    /// Read responses up to the tagged one: (untagged, tagged line).
    fn finish_raw(&mut self, tag: &str) -> std::io::Result<(Vec<Untagged>, String)> {
        let mut untagged = Vec::new();
        loop {
            let resp = self.response()?;
            if resp.text.starts_with(&format!("{tag} ")) {
                return Ok((untagged, resp.text));
            }
            untagged.push(resp);
        }
    }

    /// One response, with its literals read.
    fn response(&mut self) -> std::io::Result<Untagged> {
        let mut text = String::new();
        let mut literals = Vec::new();
        loop {
            let line = self.line()?;
            let line = String::from_utf8_lossy(&line).into_owned();
            let literal = line
                .strip_suffix('}')
                .and_then(|l| l.rfind('{').map(|i| (i, &l[i + 1..])))
                .and_then(|(i, n)| {
                    n.trim_end_matches('+')
                        .parse::<usize>()
                        .ok()
                        .map(|n| (i, n))
                });
            match literal {
                Some((i, n)) => {
                    text.push_str(&line[..i]);
                    text.push_str(&format!("{{{n}}}"));
                    let mut buf = vec![0; n];
                    self.r.read_exact(&mut buf)?;
                    literals.push(buf);
                }
                None => {
                    text.push_str(&line);
                    return Ok(Untagged { text, literals });
                }
            }
        }
    }

    /// One line without CRLF.
    fn line(&mut self) -> std::io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.r.read_until(b'\n', &mut buf)?;
        if buf.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            ));
        }
        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            buf.pop();
        }
        Ok(buf)
    }
}

impl Drop for Imap {
    fn drop(&mut self) {
        // Log out cleanly; a connection that just drops makes stopping slow.
        if let Ok(tag) = self.send("LOGOUT") {
            let _ = self.finish_raw(&tag);
        }
    }
}

/// An IMAP quoted string.
pub fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
