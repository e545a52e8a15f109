//! IMAP polling (async-imap on tokio, rustls with the ring provider).
//!
//! One [`poll`] is one connection: log in, SELECT the folder, UID SEARCH ALL,
//! move what the store already holds, then fetch the rest in batches. Each
//! batch is handed to the [`MailSink`], which commits it durably, and only
//! then moved out of the folder (to `archive_folder` or `invalid_folder`).
//! A crash between commit and move is repaired on the next run: the sink's
//! [`MailSink::stored`] names those UIDs and they are moved without being
//! fetched again.
//!
//! Every network operation has a timeout ([`PollOptions::timeout`]). The
//! password (or OAuth2 token) never appears in an error, a log line or a
//! process argument. Login is LOGIN with a password, or SASL XOAUTH2 /
//! OAUTHBEARER with a token from `token_command` (`sasl.rs`).
//!
//! [`watch`] (`ingest --imap --watch`) keeps one connection per account and
//! runs the same poll again whenever IDLE reports new mail.

mod sasl;
mod secret;
mod tls;
pub mod watch;

pub use secret::{resolve_password, resolve_secret, resolve_token, Secret};

use crate::config::{AuthMethod, ImapAccount, Limits, TlsMode};
use async_imap::error::Error as ImapError;
use async_imap::imap_proto::rfc4315::UidSetMember;
use async_imap::imap_proto::{Response, ResponseCode, Status};
use async_imap::{Client, Session};
use futures::{Stream, StreamExt};
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Where a mail goes after its batch is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// `archive_folder`: everything that was stored and is not invalid.
    Archive,
    /// `invalid_folder`: could not be read, or over a cap.
    Invalid,
}

/// One mailbox as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxRef {
    pub account: String,
    pub mailbox: String,
    pub uidvalidity: u32,
}

/// One fetched message.
#[derive(Debug, Clone)]
pub struct FetchedMail {
    pub uid: u32,
    pub bytes: Vec<u8>,
}

/// Errors the sink (the store side) reports; they stop the account's run.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// What the poller hands mails to. Implemented by the ingest pipeline.
pub trait MailSink {
    /// Of `uids`, the ones already in the store, with where each belongs.
    fn stored(
        &mut self,
        mb: &MailboxRef,
        uids: &[u32],
    ) -> Result<Vec<(u32, Destination)>, SinkError>;
    /// Store a batch durably and say where each mail goes. Nothing is moved
    /// before this returns.
    fn store(
        &mut self,
        mb: &MailboxRef,
        mails: Vec<FetchedMail>,
    ) -> Result<Vec<(u32, Destination)>, SinkError>;
    /// Of `uids`, the ones an earlier run already copied to `folder` (on a
    /// server without MOVE) but did not get to expunge.
    fn copied(
        &mut self,
        mb: &MailboxRef,
        folder: &str,
        uids: &[u32],
    ) -> Result<Vec<u32>, SinkError>;
    /// Record durably that `copies` (UID here, UID in `folder` if the server
    /// said) were copied to `folder`. Called between COPY and EXPUNGE.
    fn record_copies(
        &mut self,
        mb: &MailboxRef,
        folder: &str,
        copies: &[(u32, Option<u32>)],
    ) -> Result<(), SinkError>;
    /// Record a mail too large to fetch, from its header bytes; it goes to Invalid.
    fn oversize(
        &mut self,
        mb: &MailboxRef,
        uid: u32,
        size: u64,
        header: Vec<u8>,
    ) -> Result<(), SinkError>;
    /// Asked before each batch: true ends the poll there (what was
    /// committed is moved first). `--watch` says so after SIGTERM.
    fn stop_requested(&self) -> bool {
        false
    }
}

/// Errors polling one account. Each displays as one line naming the account
/// (and the host where there is one); none contains the password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The password could not be obtained (file, variable or command).
    #[error("account {account}: password: {message}")]
    Password { account: String, message: String },
    /// The OAuth2 access token could not be obtained (`token_command`).
    /// Like [`FetchError::Password`], not worth retrying.
    #[error("account {account}: OAuth2 token: {message}")]
    Token { account: String, message: String },
    /// The TCP connection could not be made.
    #[error("account {account}: cannot connect to {host}:{port}: {message}")]
    Connect {
        account: String,
        host: String,
        port: u16,
        message: String,
    },
    /// TLS failed: certificate not accepted, handshake error, no STARTTLS.
    #[error("account {account}: TLS with {host} failed: {message}")]
    Tls {
        account: String,
        host: String,
        message: String,
    },
    /// The server refused the login. Not retried.
    #[error("account {account}: login to {host} refused: {message}")]
    Login {
        account: String,
        host: String,
        message: String,
    },
    /// The server answered NO/BAD, or something that does not make sense.
    #[error("account {account}: {host}: {message}")]
    Protocol {
        account: String,
        host: String,
        message: String,
    },
    /// The connection broke after it was made.
    #[error("account {account}: connection to {host} lost while {what}: {message}")]
    Connection {
        account: String,
        host: String,
        what: String,
        message: String,
    },
    /// No answer within the per-operation timeout.
    #[error("account {account}: {host} did not answer within {after:?} while {what}")]
    Timeout {
        account: String,
        host: String,
        what: String,
        after: Duration,
    },
    /// The sink (the store) failed; the batch was not moved.
    #[error("account {account}: storing failed, nothing of the batch was moved: {error}")]
    Sink { account: String, error: SinkError },
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl FetchError {
    /// Whether the connection is still in a state where LOGOUT makes sense.
    fn connection_usable(&self) -> bool {
        matches!(self, FetchError::Protocol { .. } | FetchError::Sink { .. })
    }
}

/// Counts from polling one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollStats {
    /// Messages in the folder when it was searched.
    pub messages: usize,
    /// Fetched whole and handed to [`MailSink::store`].
    pub fetched: usize,
    /// Over `max_message_bytes`: only the header was fetched, handed to
    /// [`MailSink::oversize`].
    pub oversize: usize,
    /// Stored by an earlier run ([`MailSink::stored`]) and only moved now.
    pub already_stored: usize,
    /// Gone between SEARCH and FETCH (expunged by another client); skipped.
    pub vanished: usize,
    /// Moved to `archive_folder`.
    pub moved_archive: usize,
    /// Moved to `invalid_folder`.
    pub moved_invalid: usize,
}

/// The default per-operation timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// UIDs per MOVE (or COPY/STORE/EXPUNGE) command when moving many at once,
/// to bound the command line.
const MOVE_CHUNK: usize = 500;

/// Knobs of [`poll_with`].
#[derive(Debug, Clone)]
pub struct PollOptions {
    /// Limit for each network operation: connect, TLS handshake, greeting,
    /// login, each command, and each response of a FETCH (so a large FETCH
    /// may take longer in total as long as data keeps arriving).
    pub timeout: Duration,
    /// Fetch and hand to the sink, but create no folder and move nothing;
    /// say what would be moved instead.
    pub dry_run: bool,
}

impl Default for PollOptions {
    fn default() -> Self {
        PollOptions {
            timeout: DEFAULT_TIMEOUT,
            dry_run: false,
        }
    }
}

/// A warning (shown unless the binary's logging is turned off).
pub(crate) fn warn(message: &str) {
    log::warn!("{message}");
}

/// A note: something unusual that is handled (hidden by -q).
fn note(message: &str) {
    log::info!("{message}");
}

/// Poll one account once: fetch new mail in batches, hand each batch to the
/// sink, then move what was committed.
pub async fn poll(
    account: &ImapAccount,
    limits: &Limits,
    sink: &mut dyn MailSink,
) -> Result<PollStats, FetchError> {
    poll_with(account, limits, sink, &PollOptions::default()).await
}

/// [`poll`] with options (a shorter timeout in tests).
pub async fn poll_with(
    account: &ImapAccount,
    limits: &Limits,
    sink: &mut dyn MailSink,
    options: &PollOptions,
) -> Result<PollStats, FetchError> {
    let ctx = Ctx {
        account,
        timeout: options.timeout,
    };
    let session = open(&ctx).await?;
    let mut run = Run::new(ctx, session, limits);
    run.dry_run = options.dry_run;
    let result = run.poll(sink).await;
    let logout = match &result {
        Ok(_) => true,
        Err(e) => e.connection_usable(),
    };
    if logout {
        let t = ctx.timeout.min(Duration::from_secs(10));
        // The work is done (or has failed already): a failed LOGOUT changes nothing.
        let _ = tokio::time::timeout(t, run.session.logout()).await;
    }
    result.map(|()| run.stats)
}

/// Password, connection, login: a session ready for [`Run::poll`].
async fn open(ctx: &Ctx<'_>) -> Result<Session<Conn>, FetchError> {
    // A password or token command may take its time (up to its 60 s limit):
    // on a thread of its own, so that other accounts and signals go on.
    let account = ctx.account.clone();
    let secret = tokio::task::spawn_blocking(move || resolve_secret(&account))
        .await
        .map_err(|e| FetchError::Other(format!("account {}: {e}", ctx.account.name)))??;
    let client = connect(ctx).await?;
    let session = login(ctx, client, &secret).await?;
    drop(secret);
    let account = ctx.account;
    log::debug!(
        "account {}: logged in to {}:{} as {}",
        account.name,
        account.host,
        account.port(),
        account.username
    );
    Ok(session)
}

/// The account and the timeout, for errors.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    account: &'a ImapAccount,
    timeout: Duration,
}

impl Ctx<'_> {
    fn name(&self) -> String {
        self.account.name.clone()
    }

    fn host(&self) -> String {
        self.account.host.clone()
    }

    fn protocol(&self, message: String) -> FetchError {
        FetchError::Protocol {
            account: self.name(),
            host: self.host(),
            message: one_line(&message),
        }
    }

    fn tls(&self, message: String) -> FetchError {
        FetchError::Tls {
            account: self.name(),
            host: self.host(),
            message: one_line(&message),
        }
    }

    fn lost(&self, what: &str, message: String) -> FetchError {
        FetchError::Connection {
            account: self.name(),
            host: self.host(),
            what: what.to_string(),
            message: one_line(&message),
        }
    }

    fn timed_out(&self, what: &str) -> FetchError {
        FetchError::Timeout {
            account: self.name(),
            host: self.host(),
            what: what.to_string(),
            after: self.timeout,
        }
    }

    fn imap(&self, what: &str, e: ImapError) -> FetchError {
        match e {
            ImapError::Io(e) => self.lost(what, e.to_string()),
            ImapError::ConnectionLost => self.lost(what, "the server closed the connection".into()),
            ImapError::No(m) => {
                self.protocol(format!("{what}: the server said NO: {}", server_text(&m)))
            }
            ImapError::Bad(m) => {
                self.protocol(format!("{what}: the server said BAD: {}", server_text(&m)))
            }
            e => self.protocol(format!("{what}: {e}")),
        }
    }

    fn sink(&self, error: SinkError) -> FetchError {
        FetchError::Sink {
            account: self.name(),
            error,
        }
    }

    /// Run one IMAP operation under the timeout.
    async fn timed<T>(
        &self,
        what: &str,
        f: impl Future<Output = Result<T, ImapError>>,
    ) -> Result<T, FetchError> {
        match tokio::time::timeout(self.timeout, f).await {
            Err(_) => Err(self.timed_out(what)),
            Ok(Err(e)) => Err(self.imap(what, e)),
            Ok(Ok(v)) => Ok(v),
        }
    }

    /// Drain a response stream fully, each item under the timeout, keeping
    /// what `keep` maps to `Some`.
    async fn drain<T, U>(
        &self,
        what: &str,
        stream: impl Stream<Item = Result<T, ImapError>>,
        mut keep: impl FnMut(T) -> Option<U>,
    ) -> Result<Vec<U>, FetchError> {
        let mut stream = std::pin::pin!(stream);
        let mut out = Vec::new();
        loop {
            match tokio::time::timeout(self.timeout, stream.next()).await {
                Err(_) => return Err(self.timed_out(what)),
                Ok(None) => return Ok(out),
                Ok(Some(Err(e))) => return Err(self.imap(what, e)),
                Ok(Some(Ok(item))) => out.extend(keep(item)),
            }
        }
    }
}

/// The server's own words from async-imap's NO/BAD text, which is Rust debug
/// output (`code: None, info: Some("[AUTHENTICATIONFAILED] ...")`,
/// `outcome: Outcome { ... information: Some("...") }`).
fn server_text(m: &str) -> String {
    for key in ["info: Some(\"", "information: Some(\""] {
        if let Some(start) = m.find(key) {
            let rest = &m[start + key.len()..];
            if let Some(end) = rest.find("\")") {
                return rest[..end].replace("\\\"", "\"");
            }
        }
    }
    m.to_string()
}

/// Control characters out, so an error stays one line.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// One stream type for plain TCP and TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Io for T {}
type Conn = Box<dyn Io>;

/// TCP, TLS as configured, greeting read: a client ready for LOGIN.
async fn connect(ctx: &Ctx<'_>) -> Result<Client<Conn>, FetchError> {
    let account = ctx.account;
    let host = account.host.trim_start_matches('[').trim_end_matches(']');
    let port = account.port();
    let tcp = match tokio::time::timeout(ctx.timeout, TcpStream::connect((host, port))).await {
        Err(_) => return Err(ctx.timed_out("connecting")),
        Ok(Err(e)) => {
            return Err(FetchError::Connect {
                account: ctx.name(),
                host: ctx.host(),
                port,
                message: one_line(&e.to_string()),
            })
        }
        Ok(Ok(tcp)) => tcp,
    };
    let _ = tcp.set_nodelay(true);
    match account.tls {
        TlsMode::Implicit => {
            let tls = handshake(ctx, tcp).await?;
            let mut client = Client::new(Box::new(tls) as Conn);
            greeting(ctx, &mut client).await?;
            Ok(client)
        }
        TlsMode::Starttls => {
            let tcp = starttls(ctx, tcp).await?;
            let tls = handshake(ctx, tcp).await?;
            // No second greeting after STARTTLS.
            Ok(Client::new(Box::new(tls) as Conn))
        }
        TlsMode::None => {
            let mut client = Client::new(Box::new(tcp) as Conn);
            greeting(ctx, &mut client).await?;
            Ok(client)
        }
    }
}

async fn handshake(
    ctx: &Ctx<'_>,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, FetchError> {
    let config = tls::client_config(ctx.account)?;
    let name = tls::server_name(ctx.account)?;
    let connector = tokio_rustls::TlsConnector::from(config);
    match tokio::time::timeout(ctx.timeout, connector.connect(name, tcp)).await {
        Err(_) => Err(ctx.timed_out("in the TLS handshake")),
        Ok(Err(e)) => Err(ctx.tls(tls::describe(&e))),
        Ok(Ok(s)) => Ok(s),
    }
}

/// Read the server greeting: `* OK` continues; `* BYE` is a refusal;
/// `* PREAUTH` is refused too (we always log in ourselves).
async fn greeting(ctx: &Ctx<'_>, client: &mut Client<Conn>) -> Result<(), FetchError> {
    let what = "reading the greeting";
    let response = match tokio::time::timeout(ctx.timeout, client.read_response()).await {
        Err(_) => return Err(ctx.timed_out(what)),
        Ok(Err(e)) => return Err(ctx.lost(what, e.to_string())),
        Ok(Ok(None)) => return Err(ctx.lost(what, "the server closed the connection".into())),
        Ok(Ok(Some(r))) => r,
    };
    match response.parsed() {
        Response::Data {
            status: Status::Ok, ..
        } => Ok(()),
        Response::Data { status, outcome } => Err(ctx.protocol(format!(
            "unexpected greeting {status:?}: {}",
            outcome.information.as_deref().unwrap_or("")
        ))),
        other => Err(ctx.protocol(format!("unexpected greeting {other:?}"))),
    }
}

/// The plaintext part of STARTTLS, by hand: greeting, CAPABILITY (STARTTLS
/// must be offered; there is no fallback to plaintext), STARTTLS. Returns the
/// TCP stream ready for the TLS handshake.
async fn starttls(ctx: &Ctx<'_>, tcp: TcpStream) -> Result<TcpStream, FetchError> {
    let mut r = BufReader::new(tcp);
    let greeting = read_line(ctx, &mut r, "reading the greeting").await?;
    if !starts_with_ci(&greeting, "* OK") {
        return Err(ctx.protocol(format!("unexpected greeting: {greeting}")));
    }
    send_line(ctx, &mut r, "s1 CAPABILITY").await?;
    let mut starttls_offered = false;
    loop {
        let line = read_line(ctx, &mut r, "reading the capabilities").await?;
        if starts_with_ci(&line, "* CAPABILITY ") {
            starttls_offered |= line
                .split_ascii_whitespace()
                .any(|c| c.eq_ignore_ascii_case("STARTTLS"));
        } else if starts_with_ci(&line, "s1 ") {
            if !starts_with_ci(&line, "s1 OK") {
                return Err(ctx.protocol(format!("CAPABILITY failed: {line}")));
            }
            break;
        }
    }
    if !starttls_offered {
        return Err(ctx.tls(
            "the server does not offer STARTTLS (tls = \"starttls\"; not falling back to plaintext)"
                .into(),
        ));
    }
    send_line(ctx, &mut r, "s2 STARTTLS").await?;
    loop {
        let line = read_line(ctx, &mut r, "starting TLS").await?;
        if starts_with_ci(&line, "s2 ") {
            if !starts_with_ci(&line, "s2 OK") {
                return Err(ctx.tls(format!("the server refused STARTTLS: {line}")));
            }
            break;
        }
    }
    if !r.buffer().is_empty() {
        // Anything here was sent before the TLS handshake: it could have been
        // injected by a man in the middle (CVE-2011-0411 style).
        return Err(ctx.tls("the server sent data after accepting STARTTLS".into()));
    }
    Ok(r.into_inner())
}

fn starts_with_ci(line: &str, prefix: &str) -> bool {
    line.len() >= prefix.len()
        && line.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// One line (at most 64 KiB) without the line end.
async fn read_line(
    ctx: &Ctx<'_>,
    r: &mut BufReader<TcpStream>,
    what: &str,
) -> Result<String, FetchError> {
    let mut buf = Vec::new();
    let mut limited = (&mut *r).take(64 * 1024);
    let read = limited.read_until(b'\n', &mut buf);
    match tokio::time::timeout(ctx.timeout, read).await {
        Err(_) => Err(ctx.timed_out(what)),
        Ok(Err(e)) => Err(ctx.lost(what, e.to_string())),
        Ok(Ok(0)) => Err(ctx.lost(what, "the server closed the connection".into())),
        Ok(Ok(_)) if !buf.ends_with(b"\n") => {
            Err(ctx.protocol(format!("{what}: response line too long or cut off")))
        }
        Ok(Ok(_)) => {
            let line = String::from_utf8_lossy(&buf);
            Ok(one_line(line.trim_end_matches(['\r', '\n'])))
        }
    }
}

async fn send_line(
    ctx: &Ctx<'_>,
    r: &mut BufReader<TcpStream>,
    line: &str,
) -> Result<(), FetchError> {
    let w = r.get_mut();
    let send = async {
        w.write_all(format!("{line}\r\n").as_bytes()).await?;
        w.flush().await
    };
    match tokio::time::timeout(ctx.timeout, send).await {
        Err(_) => Err(ctx.timed_out(line)),
        Ok(Err(e)) => Err(ctx.lost(line, e.to_string())),
        Ok(Ok(())) => Ok(()),
    }
}

/// LOGIN, or AUTHENTICATE XOAUTH2/OAUTHBEARER with a token as `auth` says.
/// A refusal is [`FetchError::Login`] at once.
async fn login(
    ctx: &Ctx<'_>,
    client: Client<Conn>,
    secret: &Secret,
) -> Result<Session<Conn>, FetchError> {
    if ctx.account.auth != AuthMethod::Login {
        return sasl::authenticate(ctx, client, secret).await;
    }
    let what = "logging in";
    let login = client.login(&ctx.account.username, secret.expose());
    match tokio::time::timeout(ctx.timeout, login).await {
        Err(_) => Err(ctx.timed_out(what)),
        Ok(Ok(session)) => Ok(session),
        Ok(Err((e, mut client))) => {
            if matches!(e, ImapError::No(_) | ImapError::Bad(_)) {
                // Say goodbye (servers log a dropped connection as an abort);
                // the refusal is what matters, so the outcome is ignored.
                let t = ctx.timeout.min(Duration::from_secs(2));
                let logout = client.run_command_and_check_ok("LOGOUT", None);
                let _ = tokio::time::timeout(t, logout).await;
            }
            let message = match e {
                ImapError::No(m) | ImapError::Bad(m) => server_text(&m),
                ImapError::Validate(_) => {
                    "the username or password contains a line break, which LOGIN cannot send".into()
                }
                e => return Err(ctx.imap(what, e)),
            };
            Err(FetchError::Login {
                account: ctx.name(),
                host: ctx.host(),
                message: one_line(&format!("user {}: {message}", ctx.account.username)),
            })
        }
    }
}

/// One logged-in session being worked through.
struct Run<'a> {
    ctx: Ctx<'a>,
    session: Session<Conn>,
    limits: &'a Limits,
    has_move: bool,
    has_uidplus: bool,
    dry_run: bool,
    /// Folders known to exist (created or found) in this run.
    folders_ok: HashSet<String>,
    stats: PollStats,
}

impl<'a> Run<'a> {
    fn new(ctx: Ctx<'a>, session: Session<Conn>, limits: &'a Limits) -> Self {
        Run {
            ctx,
            session,
            limits,
            has_move: false,
            has_uidplus: false,
            dry_run: false,
            folders_ok: HashSet::new(),
            stats: PollStats::default(),
        }
    }

    async fn poll(&mut self, sink: &mut dyn MailSink) -> Result<(), FetchError> {
        let ctx = self.ctx;
        let account = ctx.account;
        // MOVE is advertised only after login: ask now.
        let caps = ctx
            .timed("asking for capabilities", self.session.capabilities())
            .await?;
        self.has_move = caps.has_str("MOVE");
        self.has_uidplus = caps.has_str("UIDPLUS");
        drop(caps);

        let what = format!("selecting {}", account.folder);
        let mailbox = ctx
            .timed(&what, self.session.select(&account.folder))
            .await?;
        let uidvalidity = mailbox.uid_validity.ok_or_else(|| {
            ctx.protocol(format!(
                "{}: the server sent no UIDVALIDITY",
                account.folder
            ))
        })?;
        let mb = MailboxRef {
            account: account.name.clone(),
            mailbox: account.folder.clone(),
            uidvalidity,
        };
        let mut uids: Vec<u32> = ctx
            .timed("searching the folder", self.session.uid_search("ALL"))
            .await?
            .into_iter()
            .collect();
        uids.sort_unstable();
        self.stats.messages = uids.len();
        log::debug!(
            "account {}: {} has {} messages (UIDVALIDITY {uidvalidity}; MOVE {}, UIDPLUS {})",
            account.name,
            account.folder,
            uids.len(),
            self.has_move,
            self.has_uidplus
        );
        if uids.is_empty() {
            return Ok(());
        }

        // Committed by an earlier run that stopped before moving: move only.
        let present: HashSet<u32> = uids.iter().copied().collect();
        let mut done = HashSet::new();
        let mut moves = Vec::new();
        for (uid, dest) in sink.stored(&mb, &uids).map_err(|e| ctx.sink(e))? {
            if present.contains(&uid) && done.insert(uid) {
                moves.push((uid, dest));
            }
        }
        self.stats.already_stored = moves.len();
        self.move_all(sink, &mb, moves).await?;

        let new: Vec<u32> = uids.into_iter().filter(|u| !done.contains(u)).collect();
        for batch in new.chunks(account.batch_size.max(1)) {
            if sink.stop_requested() {
                break;
            }
            self.batch(sink, &mb, batch).await?;
        }
        Ok(())
    }

    /// Fetch, store, then move one batch.
    async fn batch(
        &mut self,
        sink: &mut dyn MailSink,
        mb: &MailboxRef,
        batch: &[u32],
    ) -> Result<(), FetchError> {
        let ctx = self.ctx;
        log::debug!(
            "account {}: batch of {} messages, UID {}",
            mb.account,
            batch.len(),
            uid_set(batch)
        );
        let sizes = self
            .fetch_checked(batch, "(UID RFC822.SIZE)", "reading message sizes", |f| {
                f.size.map(u64::from)
            })
            .await?;
        let max = self.limits.max_message_bytes;
        let (big, small): (BTreeMap<u32, u64>, BTreeMap<u32, u64>) =
            sizes.into_iter().partition(|(_, size)| *size > max);
        let mut moves = Vec::new();

        if !big.is_empty() {
            let uids: Vec<u32> = big.keys().copied().collect();
            let headers = self
                .fetch_checked(
                    &uids,
                    "(UID BODY.PEEK[HEADER])",
                    "fetching headers of oversize messages",
                    |f| f.header().map(<[u8]>::to_vec),
                )
                .await?;
            for (uid, header) in headers {
                let size = big.get(&uid).copied().unwrap_or_default();
                sink.oversize(mb, uid, size, header)
                    .map_err(|e| ctx.sink(e))?;
                self.stats.oversize += 1;
                moves.push((uid, Destination::Invalid));
            }
        }

        // Bodies in pieces of at most max_message_bytes in all (and at least
        // one mail), so that a batch of large mails is never held whole.
        let mut pieces: Vec<Vec<u32>> = Vec::new();
        let mut piece_bytes = 0u64;
        for (&uid, &size) in &small {
            match pieces.last_mut() {
                Some(p) if piece_bytes.saturating_add(size) <= max => {
                    p.push(uid);
                    piece_bytes = piece_bytes.saturating_add(size);
                }
                _ => {
                    pieces.push(vec![uid]);
                    piece_bytes = size;
                }
            }
        }
        for uids in pieces {
            let mails: Vec<FetchedMail> = self
                .fetch_checked(&uids, "(UID BODY.PEEK[])", "fetching messages", |f| {
                    f.body().map(<[u8]>::to_vec)
                })
                .await?
                .into_iter()
                .map(|(uid, bytes)| FetchedMail { uid, bytes })
                .collect();
            if !mails.is_empty() {
                let mut given: HashSet<u32> = mails.iter().map(|m| m.uid).collect();
                let n = mails.len();
                let placed = sink.store(mb, mails).map_err(|e| ctx.sink(e))?;
                self.stats.fetched += n;
                for (uid, dest) in placed {
                    if given.remove(&uid) {
                        moves.push((uid, dest));
                    } else {
                        note(&format!(
                            "account {}: the store placed UID {uid}, which was not in the batch; ignored",
                            mb.account
                        ));
                    }
                }
                if !given.is_empty() {
                    let mut left: Vec<u32> = given.into_iter().collect();
                    left.sort_unstable();
                    warn(&format!(
                        "account {}: the store gave no destination for UID {}; left in {}",
                        mb.account,
                        uid_set(&left),
                        mb.mailbox
                    ));
                }
            }
        }
        self.move_all(sink, mb, moves).await
    }

    /// `UID FETCH <uids> <query>`, drained fully; `extract` picks the data
    /// from each response (responses without it, like unsolicited FLAGS
    /// updates, are ignored). Every UID must come back: the missing ones are
    /// searched for, and if they still exist that is an error (a FETCH the
    /// server answered with NO or BAD also ends up here, as an empty answer);
    /// if they are gone (expunged by another client) they are skipped.
    async fn fetch_checked<T>(
        &mut self,
        uids: &[u32],
        query: &str,
        what: &str,
        mut extract: impl FnMut(&async_imap::types::Fetch) -> Option<T>,
    ) -> Result<BTreeMap<u32, T>, FetchError> {
        let ctx = self.ctx;
        let wanted: HashSet<u32> = uids.iter().copied().collect();
        let stream = ctx
            .timed(what, self.session.uid_fetch(uid_set(uids), query))
            .await?;
        let mut seen = HashSet::new();
        let items = ctx
            .drain(what, stream, |f| {
                let uid = f.uid.filter(|u| wanted.contains(u) && !seen.contains(u))?;
                let value = extract(&f)?;
                seen.insert(uid);
                Some((uid, value))
            })
            .await?;
        let got: BTreeMap<u32, T> = items.into_iter().collect();
        let missing: Vec<u32> = uids
            .iter()
            .copied()
            .filter(|u| !got.contains_key(u))
            .collect();
        if missing.is_empty() {
            return Ok(got);
        }
        let query = format!("UID {}", uid_set(&missing));
        let mut still: Vec<u32> = ctx
            .timed(
                "checking for vanished messages",
                self.session.uid_search(query),
            )
            .await?
            .into_iter()
            .filter(|u| missing.contains(u))
            .collect();
        if !still.is_empty() {
            still.sort_unstable();
            return Err(ctx.protocol(format!(
                "{what}: the server returned nothing for UID {} of {}, which still exist",
                uid_set(&still),
                ctx.account.folder
            )));
        }
        note(&format!(
            "account {}: UID {} in {} disappeared before it could be fetched (expunged by another client?); skipped",
            ctx.account.name,
            uid_set(&missing),
            ctx.account.folder
        ));
        self.stats.vanished += missing.len();
        Ok(got)
    }

    /// Move committed mails to their folders: one move per destination.
    async fn move_all(
        &mut self,
        sink: &mut dyn MailSink,
        mb: &MailboxRef,
        moves: Vec<(u32, Destination)>,
    ) -> Result<(), FetchError> {
        let account = self.ctx.account;
        for (dest, folder) in [
            (Destination::Archive, &account.archive_folder),
            (Destination::Invalid, &account.invalid_folder),
        ] {
            let mut uids: Vec<u32> = moves
                .iter()
                .filter(|(_, d)| *d == dest)
                .map(|(u, _)| *u)
                .collect();
            if uids.is_empty() {
                continue;
            }
            uids.sort_unstable();
            uids.dedup();
            if same_folder(folder, &account.folder) {
                note(&format!(
                    "account {}: the {dest:?} folder is the folder polled ({folder}); not moving",
                    account.name
                ));
                continue;
            }
            if self.dry_run {
                note(&format!(
                    "account {}: dry run: would move UID {} from {} to {folder}",
                    account.name,
                    uid_set(&uids),
                    account.folder
                ));
                continue;
            }
            self.ensure_folder(folder).await?;
            for chunk in uids.chunks(MOVE_CHUNK) {
                log::debug!(
                    "account {}: moving {} messages to {folder}",
                    account.name,
                    chunk.len()
                );
                self.move_uids(sink, mb, chunk, folder).await?;
                match dest {
                    Destination::Archive => self.stats.moved_archive += chunk.len(),
                    Destination::Invalid => self.stats.moved_invalid += chunk.len(),
                }
            }
        }
        Ok(())
    }

    /// UID MOVE, or without the MOVE capability UID COPY + \Deleted + UID
    /// EXPUNGE (plain EXPUNGE without UIDPLUS). The copy is recorded in the
    /// sink before the expunge, so that a run stopped in between does not
    /// copy again: the next one only expunges.
    async fn move_uids(
        &mut self,
        sink: &mut dyn MailSink,
        mb: &MailboxRef,
        uids: &[u32],
        folder: &str,
    ) -> Result<(), FetchError> {
        let ctx = self.ctx;
        let set = uid_set(uids);
        let what = format!("moving messages to {folder}");
        if self.has_move {
            return ctx.timed(&what, self.session.uid_mv(&set, folder)).await;
        }
        let done: HashSet<u32> = sink
            .copied(mb, folder, uids)
            .map_err(|e| ctx.sink(e))?
            .into_iter()
            .collect();
        let to_copy: Vec<u32> = uids.iter().copied().filter(|u| !done.contains(u)).collect();
        if !to_copy.is_empty() {
            let copies = self.uid_copy(&to_copy, folder, &what).await?;
            sink.record_copies(mb, folder, &copies)
                .map_err(|e| ctx.sink(e))?;
        }
        let stream = ctx
            .timed(
                &what,
                self.session.uid_store(&set, "+FLAGS.SILENT (\\Deleted)"),
            )
            .await?;
        ctx.drain(&what, stream, |_| Some(())).await?;
        if self.has_uidplus {
            let stream = ctx.timed(&what, self.session.uid_expunge(&set)).await?;
            ctx.drain(&what, stream, |_| Some(())).await?;
        } else {
            // RISK: without UIDPLUS there is no way to expunge only our
            // messages. Plain EXPUNGE also removes any other message in this
            // folder that another client has flagged \Deleted but not yet
            // expunged. For a folder that only receives DMARC reports this is
            // acceptable; the copies we made are already in `folder`.
            let stream = ctx.timed(&what, self.session.expunge()).await?;
            ctx.drain(&what, stream, |_| Some(())).await?;
        }
        Ok(())
    }

    /// `UID COPY`, returning each UID with its UID in `folder` where the
    /// server says (COPYUID, RFC 4315). Run by hand: async-imap drops the
    /// response code.
    async fn uid_copy(
        &mut self,
        uids: &[u32],
        folder: &str,
        what: &str,
    ) -> Result<Vec<(u32, Option<u32>)>, FetchError> {
        let ctx = self.ctx;
        let name = quoted(folder).ok_or_else(|| {
            ctx.protocol(format!("{what}: the folder name contains a line break"))
        })?;
        let tag = ctx
            .timed(
                what,
                self.session
                    .run_command(format!("UID COPY {} {name}", uid_set(uids))),
            )
            .await?;
        loop {
            let response =
                match tokio::time::timeout(ctx.timeout, self.session.read_response()).await {
                    Err(_) => return Err(ctx.timed_out(what)),
                    Ok(Err(e)) => return Err(ctx.lost(what, e.to_string())),
                    Ok(Ok(None)) => {
                        return Err(ctx.lost(what, "the server closed the connection".into()))
                    }
                    Ok(Ok(Some(r))) => r,
                };
            let Response::Done {
                tag: t,
                status,
                outcome,
            } = response.parsed()
            else {
                continue; // untagged EXISTS, EXPUNGE, FLAGS ...
            };
            if *t != tag {
                continue;
            }
            if *status != Status::Ok {
                return Err(ctx.protocol(format!(
                    "{what}: the server said {status:?}: {}",
                    outcome.information.as_deref().unwrap_or("")
                )));
            }
            let mapped = match &outcome.code {
                Some(ResponseCode::CopyUid(_, src, dst)) => {
                    let (src, dst) = (expand(src), expand(dst));
                    (src.len() == dst.len())
                        .then(|| src.into_iter().zip(dst).collect::<BTreeMap<u32, u32>>())
                }
                _ => None,
            };
            return Ok(uids
                .iter()
                .map(|u| (*u, mapped.as_ref().and_then(|m| m.get(u).copied())))
                .collect());
        }
    }

    /// CREATE the folder unless it exists (an "already exists" answer is fine).
    async fn ensure_folder(&mut self, folder: &str) -> Result<(), FetchError> {
        if self.folders_ok.contains(folder) {
            return Ok(());
        }
        let ctx = self.ctx;
        let what = format!("creating folder {folder}");
        match tokio::time::timeout(ctx.timeout, self.session.create(folder)).await {
            Err(_) => return Err(ctx.timed_out(&what)),
            Ok(Ok(())) => {}
            Ok(Err(ImapError::No(m))) => {
                // Usually "[ALREADYEXISTS]"; the code is not always sent, so look.
                if !m.contains("[ALREADYEXISTS]") && !self.folder_exists(folder).await? {
                    return Err(
                        ctx.protocol(format!("{what}: the server said NO ({})", server_text(&m)))
                    );
                }
            }
            Ok(Err(e)) => return Err(ctx.imap(&what, e)),
        }
        self.folders_ok.insert(folder.to_string());
        Ok(())
    }

    async fn folder_exists(&mut self, folder: &str) -> Result<bool, FetchError> {
        let ctx = self.ctx;
        let what = format!("looking for folder {folder}");
        let stream = ctx
            // async-imap quotes the reference but sends the pattern as it is.
            .timed(
                &what,
                self.session
                    .list(Some(""), Some(&quoted(folder).unwrap_or_default())),
            )
            .await?;
        let names = ctx
            .drain(&what, stream, |n| Some(n.name().to_string()))
            .await?;
        // The name as listed may keep the quoted string's escapes.
        Ok(names.iter().any(|n| {
            same_folder(n, folder)
                || same_folder(&n.replace("\\\"", "\"").replace("\\\\", "\\"), folder)
        }))
    }
}

/// An IMAP quoted string; `None` for a line break, which cannot be quoted.
fn quoted(s: &str) -> Option<String> {
    if s.contains(['\r', '\n']) {
        return None;
    }
    Some(format!(
        "\"{}\"",
        s.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// The UIDs of a COPYUID set, in order (bounded: a range wider than a
/// million is not expanded).
fn expand(set: &[UidSetMember]) -> Vec<u32> {
    let mut out = Vec::new();
    for m in set {
        match m {
            UidSetMember::Uid(u) => out.push(*u),
            UidSetMember::UidRange(r) if r.end().saturating_sub(*r.start()) < 1_000_000 => {
                out.extend(r.clone())
            }
            UidSetMember::UidRange(_) => return Vec::new(),
        }
    }
    out
}

/// Folder names compare exactly, except INBOX, which is case-insensitive.
fn same_folder(a: &str, b: &str) -> bool {
    a == b || (a.eq_ignore_ascii_case("INBOX") && b.eq_ignore_ascii_case("INBOX"))
}

/// A UID set in IMAP syntax with runs compressed: `1:3,7,9:10`.
fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_from_debug_output() {
        assert_eq!(
            server_text(
                r#"code: None, info: Some("[AUTHENTICATIONFAILED] Authentication failed.")"#
            ),
            "[AUTHENTICATIONFAILED] Authentication failed."
        );
        assert_eq!(
            server_text(
                r#"outcome: Outcome { tag: "a", status: No, code: None, information: Some("Mailbox doesn't exist: NoSuch") }"#
            ),
            "Mailbox doesn't exist: NoSuch"
        );
        assert_eq!(server_text("plain"), "plain");
    }

    #[test]
    fn uid_sets() {
        assert_eq!(uid_set(&[]), "");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[3, 1, 2, 7, 9, 10, 10]), "1:3,7,9:10");
        assert_eq!(
            uid_set(&[u32::MAX - 1, u32::MAX]),
            format!("{}:{}", u32::MAX - 1, u32::MAX)
        );
    }

    #[test]
    fn quoting_and_copyuid_sets() {
        assert_eq!(quoted("Arch\"iv\\e").unwrap(), "\"Arch\\\"iv\\\\e\"");
        assert_eq!(quoted("a\nb"), None);
        assert_eq!(
            expand(&[UidSetMember::Uid(4), UidSetMember::UidRange(7..=9)]),
            vec![4, 7, 8, 9]
        );
        assert!(expand(&[UidSetMember::UidRange(1..=u32::MAX)]).is_empty());
    }

    #[test]
    fn folders() {
        assert!(same_folder("INBOX", "inbox"));
        assert!(!same_folder("Archive", "archive"));
    }

    #[test]
    fn errors_are_one_line() {
        assert_eq!(one_line("a\r\nb"), "a  b");
    }
}
