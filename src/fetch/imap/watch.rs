//! `ingest --imap --watch`: keep every account's folder drained until stopped.
//!
//! One future per account, all joined on the caller's runtime (the binary
//! uses a current-thread one), so the store needs no locking: the one
//! [`MailSink`] sits in a `RefCell` and is borrowed for a single call at a
//! time. Sink calls are synchronous, so two accounts can never hold it at
//! once, and a batch is committed before its account moves it — the same
//! [`Run::poll`] as `ingest --imap`, so the exactly-once rules are the same.
//!
//! An account's connection goes round:
//!
//! 1. log in, ask for the capabilities;
//! 2. poll: fetch a batch, the sink commits it, move it, next batch;
//! 3. wait: IDLE where the server advertises it, until the server reports new
//!    mail (EXISTS), `idle_timeout` has passed (RFC 2177: re-issue at least
//!    every 29 minutes) or a stop is asked for; without IDLE, sleep
//!    `poll_interval` (with a NOOP every `idle_timeout` to keep the
//!    connection);
//! 4. back to 2. Mail that the server announced during a poll (an EXISTS
//!    among the responses) is polled for at once instead of waiting.
//!
//! Any error ends that connection (with LOGOUT where it still works) and the
//! account reconnects after an exponential backoff with jitter
//! ([`WatchOptions::backoff_min`] doubling up to `backoff_max`, ±20 %). A
//! refused login (or a password that cannot be read) waits `backoff_max`
//! straight away: retrying a wrong password quickly only gets the address
//! locked out. The backoff starts again from the minimum once a connection
//! has polled successfully and stayed up for a minute (a server that drops
//! every connection right after the poll must not be hammered). Accounts are
//! independent: one failing never stops or delays the others, except that if
//! every account's first login is refused, [`watch`] ends with
//! [`Ended::AllRefused`] (a wrong configuration, best reported at once).
//!
//! A [`Stop`] ends everything cleanly: a poll finishes the batch in hand
//! (committed and moved) and asks for no more; an IDLE is ended with DONE; a
//! backoff sleep or a connection attempt is abandoned. Then LOGOUT.

use super::{open, Conn, Ctx, FetchError, MailSink, PollOptions, PollStats, Run, SinkError};
use super::{Destination, FetchedMail, MailboxRef};
use crate::config::{ImapAccount, Limits};
use async_imap::extensions::idle::IdleResponse;
use async_imap::imap_proto::{MailboxDatum, Response, Status};
use async_imap::types::UnsolicitedResponse;
use async_imap::Session;
use std::cell::{Cell, RefCell, RefMut};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Knobs of [`watch`].
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// The per-operation timeout of every poll, login and command. The IDLE
    /// wait has its own, `idle_timeout` of the account.
    pub poll: PollOptions,
    /// The first reconnect delay after a failure (default 1 s).
    pub backoff_min: Duration,
    /// The longest reconnect delay, and the delay after a refused login
    /// (default 5 minutes).
    pub backoff_max: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            poll: PollOptions::default(),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// A connection that polled and stayed up this long resets the backoff.
const STABLE: Duration = Duration::from_secs(60);

/// DONE and LOGOUT when stopping get at most this long.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The switch that ends [`watch`]; cheap to clone, shared with whoever
/// handles the signals.
#[derive(Debug, Clone)]
pub struct Stop(Arc<tokio::sync::watch::Sender<bool>>);

impl Default for Stop {
    fn default() -> Self {
        Stop::new()
    }
}

impl Stop {
    /// Not stopped yet.
    pub fn new() -> Stop {
        Stop(Arc::new(tokio::sync::watch::channel(false).0))
    }

    /// Ask everything to stop (idempotent).
    pub fn stop(&self) {
        self.0.send_replace(true);
    }

    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once a stop is asked for (at once if it was already).
    pub async fn stopped(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so this cannot fail.
        let _ = rx.wait_for(|stopped| *stopped).await;
    }
}

/// What happened, for the caller to print.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// Logged in. `idle`: the server has IDLE (else it is polled every
    /// `poll_interval`); `reconnected`: after a failure.
    Connected {
        account: &'a ImapAccount,
        idle: bool,
        reconnected: bool,
    },
    /// One poll of the folder finished.
    Polled {
        account: &'a ImapAccount,
        stats: &'a PollStats,
    },
    /// The connection (or the attempt to make one) failed. The next attempt
    /// is in `retry_in`; `None` when stopping anyway.
    Failed {
        account: &'a ImapAccount,
        error: &'a FetchError,
        retry_in: Option<Duration>,
    },
    /// The account is done (after LOGOUT).
    Stopped { account: &'a ImapAccount },
}

/// Why [`watch`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// [`Stop::stop`] was called.
    Stopped,
    /// The first login of every account was refused (or its password could
    /// not be read); nothing was fetched.
    AllRefused,
}

/// Watch every account until `stop` (or until every account's first login
/// is refused). Each batch goes to `sink`, which is borrowed for one call
/// at a time; `on_event` hears about connections, polls and failures.
pub async fn watch(
    accounts: &[ImapAccount],
    limits: &Limits,
    sink: &RefCell<&mut dyn MailSink>,
    options: &WatchOptions,
    stop: &Stop,
    on_event: &dyn Fn(Event<'_>),
) -> Ended {
    let w = Watcher {
        limits,
        sink,
        options,
        stop,
        on_event,
        accounts: accounts.len(),
        first_pending: Cell::new(accounts.len()),
        first_refused: Cell::new(0),
        all_refused: Cell::new(false),
    };
    let loops = accounts
        .iter()
        .enumerate()
        .map(|(i, account)| w.account(account, i));
    futures::future::join_all(loops).await;
    if w.all_refused.get() {
        Ended::AllRefused
    } else {
        Ended::Stopped
    }
}

/// What the account futures share.
struct Watcher<'w, 's> {
    limits: &'w Limits,
    sink: &'w RefCell<&'s mut dyn MailSink>,
    options: &'w WatchOptions,
    stop: &'w Stop,
    on_event: &'w dyn Fn(Event<'_>),
    /// How many accounts there are.
    accounts: usize,
    /// Accounts whose first connection attempt has not ended yet.
    first_pending: Cell<usize>,
    /// Accounts whose first login was refused.
    first_refused: Cell<usize>,
    all_refused: Cell<bool>,
}

/// How one connection ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Woke {
    /// Poll again: new mail, or the wait is over.
    Poll,
    /// A stop was asked for.
    Stop,
}

impl Watcher<'_, '_> {
    /// One account, until stopped.
    async fn account(&self, account: &ImapAccount, index: usize) {
        let ctx = Ctx {
            account,
            timeout: self.options.poll.timeout,
        };
        let mut backoff = Backoff::new(self.options, account, index);
        let mut first = true;
        let mut reconnected = false;
        while !self.stop.is_stopped() {
            let opened = tokio::select! {
                r = open(&ctx) => r,
                () = self.stop.stopped() => break,
            };
            if first {
                first = false;
                self.first_attempt(matches!(&opened, Err(e) if refused(e)));
            }
            let (error, stable) = match opened {
                Err(e) => (e, false),
                Ok(session) => {
                    let since = Instant::now();
                    let mut polled = false;
                    match self.serve(ctx, session, reconnected, &mut polled).await {
                        Ok(()) => break,
                        Err(e) => (e, polled && since.elapsed() >= STABLE),
                    }
                }
            };
            if stable {
                backoff.reset();
            }
            let retry_in = if self.stop.is_stopped() {
                None
            } else if refused(&error) {
                Some(backoff.longest())
            } else {
                Some(backoff.next())
            };
            (self.on_event)(Event::Failed {
                account,
                error: &error,
                retry_in,
            });
            let Some(delay) = retry_in else { break };
            reconnected = true;
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.stop.stopped() => break,
            }
        }
        (self.on_event)(Event::Stopped { account });
    }

    /// The first connection attempt of an account ended; if it was the last
    /// one to, and every one was refused, stop.
    fn first_attempt(&self, was_refused: bool) {
        self.first_pending
            .set(self.first_pending.get().saturating_sub(1));
        if was_refused {
            self.first_refused.set(self.first_refused.get() + 1);
        }
        if self.first_pending.get() == 0 && self.first_refused.get() == self.accounts {
            self.all_refused.set(true);
            self.stop.stop();
        }
    }

    /// One logged-in connection: poll, wait, poll, ... Ok when stopped.
    async fn serve(
        &self,
        ctx: Ctx<'_>,
        mut session: Session<Conn>,
        reconnected: bool,
        polled: &mut bool,
    ) -> Result<(), FetchError> {
        let account = ctx.account;
        let caps = ctx
            .timed("asking for capabilities", session.capabilities())
            .await?;
        let idle = caps.has_str("IDLE");
        drop(caps);
        (self.on_event)(Event::Connected {
            account,
            idle,
            reconnected,
        });
        loop {
            // The poll's SELECT and SEARCH see everything announced so far.
            while session.unsolicited_responses.try_recv().is_ok() {}
            let mut run = Run::new(ctx, session, self.limits);
            let mut sink = Shared {
                sink: self.sink,
                stop: self.stop,
            };
            let result = run.poll(&mut sink).await;
            let Run {
                session: s, stats, ..
            } = run;
            session = s;
            if let Err(e) = result {
                if e.connection_usable() {
                    logout(ctx, session).await;
                }
                return Err(e);
            }
            *polled = true;
            (self.on_event)(Event::Polled {
                account,
                stats: &stats,
            });
            if self.stop.is_stopped() {
                break;
            }
            if announced_new_mail(&mut session) {
                continue;
            }
            let woke = if idle {
                let (s, woke) = self.idle(ctx, session).await?;
                session = s;
                woke
            } else {
                self.sleep(ctx, &mut session).await?
            };
            if woke == Woke::Stop {
                break;
            }
        }
        logout(ctx, session).await;
        Ok(())
    }

    /// IDLE until new mail, `idle_timeout`, or a stop; then DONE.
    async fn idle(
        &self,
        ctx: Ctx<'_>,
        session: Session<Conn>,
    ) -> Result<(Session<Conn>, Woke), FetchError> {
        let what = "idling";
        let limit = ctx.account.idle_timeout;
        let mut handle = session.idle();
        ctx.timed("starting IDLE", handle.init()).await?;
        let deadline = Instant::now() + limit;
        let woke = loop {
            // The stop source must live while waiting: dropped, it ends the
            // wait at once (async-imap reports that as ManualInterrupt, the
            // same as the server closing the connection).
            let (wait, _interrupt) = handle.wait_with_timeout(limit);
            let answer = tokio::select! {
                r = wait => r,
                () = tokio::time::sleep_until(deadline) => break Woke::Poll,
                () = self.stop.stopped() => break Woke::Stop,
            };
            match answer {
                Err(e) => return Err(ctx.imap(what, e)),
                Ok(IdleResponse::Timeout) => break Woke::Poll,
                Ok(IdleResponse::ManualInterrupt) => {
                    return Err(ctx.lost(what, "the server closed the connection".into()))
                }
                Ok(IdleResponse::NewData(data)) => match data.parsed() {
                    Response::MailboxData(MailboxDatum::Exists(_)) => break Woke::Poll,
                    Response::Data {
                        status: Status::Bye,
                        outcome,
                    } => {
                        let why = outcome.information.as_deref().unwrap_or("");
                        return Err(ctx.lost(what, format!("the server said BYE: {why}")));
                    }
                    // EXPUNGE, flag changes, RECENT: nothing to fetch.
                    _ => continue,
                },
            }
        };
        let done_ctx = if woke == Woke::Stop {
            Ctx {
                timeout: ctx.timeout.min(STOP_TIMEOUT),
                ..ctx
            }
        } else {
            ctx
        };
        let session = done_ctx.timed("ending IDLE", handle.done()).await?;
        Ok((session, woke))
    }

    /// No IDLE: wait `poll_interval`, with a NOOP every `idle_timeout` so
    /// that the server does not log the connection out.
    async fn sleep(&self, ctx: Ctx<'_>, session: &mut Session<Conn>) -> Result<Woke, FetchError> {
        let due = Instant::now() + ctx.account.poll_interval;
        loop {
            let next = due.min(Instant::now() + ctx.account.idle_timeout);
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                () = self.stop.stopped() => return Ok(Woke::Stop),
            }
            if Instant::now() >= due {
                return Ok(Woke::Poll);
            }
            ctx.timed("keeping the connection open (NOOP)", session.noop())
                .await?;
        }
    }
}

/// Whether an EXISTS arrived among the responses of the last commands: mail
/// that came in during the poll, which IDLE would not announce again.
fn announced_new_mail(session: &mut Session<Conn>) -> bool {
    let mut new = false;
    while let Ok(r) = session.unsolicited_responses.try_recv() {
        new |= matches!(r, UnsolicitedResponse::Exists(_));
    }
    new
}

/// LOGOUT, briefly; the connection is given up either way.
async fn logout(ctx: Ctx<'_>, mut session: Session<Conn>) {
    let t = ctx.timeout.min(STOP_TIMEOUT);
    let _ = tokio::time::timeout(t, session.logout()).await;
}

/// A refusal that retrying soon will not change.
fn refused(e: &FetchError) -> bool {
    matches!(
        e,
        FetchError::Login { .. } | FetchError::Password { .. } | FetchError::Token { .. }
    )
}

/// The shared sink, borrowed for each call, and the stop switch.
struct Shared<'w, 's> {
    sink: &'w RefCell<&'s mut dyn MailSink>,
    stop: &'w Stop,
}

impl<'s> Shared<'_, 's> {
    fn get(&self) -> Result<RefMut<'_, &'s mut dyn MailSink>, SinkError> {
        // Never fails: borrows do not outlive a (synchronous) sink call.
        self.sink
            .try_borrow_mut()
            .map_err(|_| "the store is in use by another account".into())
    }
}

impl MailSink for Shared<'_, '_> {
    fn stored(
        &mut self,
        mb: &MailboxRef,
        uids: &[u32],
    ) -> Result<Vec<(u32, Destination)>, SinkError> {
        self.get()?.stored(mb, uids)
    }

    fn store(
        &mut self,
        mb: &MailboxRef,
        mails: Vec<FetchedMail>,
    ) -> Result<Vec<(u32, Destination)>, SinkError> {
        self.get()?.store(mb, mails)
    }

    fn copied(
        &mut self,
        mb: &MailboxRef,
        folder: &str,
        uids: &[u32],
    ) -> Result<Vec<u32>, SinkError> {
        self.get()?.copied(mb, folder, uids)
    }

    fn record_copies(
        &mut self,
        mb: &MailboxRef,
        folder: &str,
        copies: &[(u32, Option<u32>)],
    ) -> Result<(), SinkError> {
        self.get()?.record_copies(mb, folder, copies)
    }

    fn oversize(
        &mut self,
        mb: &MailboxRef,
        uid: u32,
        size: u64,
        header: Vec<u8>,
    ) -> Result<(), SinkError> {
        self.get()?.oversize(mb, uid, size, header)
    }

    fn stop_requested(&self) -> bool {
        self.stop.is_stopped() || self.sink.try_borrow().is_ok_and(|s| s.stop_requested())
    }
}

/// Reconnect delays: `min` doubling up to `max`, each ±20 %.
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    rng: u64,
}

impl Backoff {
    fn new(options: &WatchOptions, account: &ImapAccount, index: usize) -> Backoff {
        use std::hash::BuildHasher;
        // Seeded per process and account, so that accounts (and processes)
        // that fail together do not retry in step.
        let seed = std::collections::hash_map::RandomState::new().hash_one((&account.name, index));
        let max = options.backoff_max.max(options.backoff_min);
        Backoff {
            min: options.backoff_min,
            max,
            next: options.backoff_min,
            rng: seed | 1,
        }
    }

    /// The delay after another failure.
    fn next(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        self.jitter(d)
    }

    /// The longest delay (after a refused login); later failures stay there.
    fn longest(&mut self) -> Duration {
        self.next = self.max;
        self.jitter(self.max)
    }

    fn reset(&mut self) {
        self.next = self.min;
    }

    /// `d` times a factor from 0.8 to 1.2.
    fn jitter(&mut self, d: Duration) -> Duration {
        // xorshift64*: plenty for spreading retries.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
        d.mul_f64(0.8 + 0.4 * r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> ImapAccount {
        crate::config::Config::from_toml(
            "[[imap]]\nname='a'\nhost='h'\nusername='u'\npassword='p'\n",
        )
        .unwrap()
        .imap
        .remove(0)
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(&WatchOptions::default(), &account(), 0);
        let within = |d: Duration, base: f64| {
            let s = d.as_secs_f64();
            assert!(
                s >= base * 0.8 - 1e-9 && s <= base * 1.2 + 1e-9,
                "{s} vs {base}"
            );
        };
        for base in [
            1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 300.0, 300.0,
        ] {
            within(b.next(), base);
        }
        b.reset();
        within(b.next(), 1.0);
        within(b.longest(), 300.0);
        within(b.next(), 300.0);
        // The jitter varies.
        let delays: std::collections::HashSet<u128> =
            (0..20).map(|_| b.next().as_millis()).collect();
        assert!(delays.len() > 10, "{delays:?}");
    }

    #[test]
    fn refusals_are_not_retried_soon() {
        let login = FetchError::Login {
            account: "a".into(),
            host: "h".into(),
            message: "no".into(),
        };
        let connect = FetchError::Connect {
            account: "a".into(),
            host: "h".into(),
            port: 1,
            message: "refused".into(),
        };
        assert!(refused(&login));
        assert!(!refused(&connect));
    }

    #[tokio::test]
    async fn stop_wakes_waiters_and_stays_stopped() {
        let stop = Stop::new();
        assert!(!stop.is_stopped());
        let s2 = stop.clone();
        let waiter = async move { s2.stopped().await };
        stop.stop();
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .unwrap();
        assert!(stop.is_stopped());
        // Already stopped: resolves at once.
        tokio::time::timeout(Duration::from_secs(1), stop.stopped())
            .await
            .unwrap();
    }
}
