//! `dmarcdb ingest --imap --watch`: the daemon around
//! [`dmarcdb::fetch::imap::watch`] — the runtime, SIGTERM/SIGINT, and the
//! lines it prints.

use super::{say, Failure, Global};
use dmarcdb::config::Config;
use dmarcdb::fetch::imap::watch::{self, Ended, Event, Stop, WatchOptions};
use dmarcdb::fetch::imap::MailSink;
use std::cell::RefCell;
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// Not documented for users: the reconnect backoff as `MIN_MS,MAX_MS`, so
/// that tests need not wait seconds for a reconnect.
const BACKOFF_ENV: &str = "DMARCDB_WATCH_BACKOFF_MS";

/// Watch every account until SIGTERM or SIGINT. Ok(true) when every
/// account's first login was refused (exit 1).
pub fn run(g: &Global, config: &Config, sink: &mut dyn MailSink) -> Result<bool, Failure> {
    let options = options()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::operational(format!("cannot start the async runtime: {e}")))?;
    let (quiet, verbose) = (g.quiet, g.verbose);
    let stop = Stop::new();
    let signalled = Arc::new(OnceLock::new());
    listen_for_signals(&stop, &signalled, quiet)?;
    if !quiet {
        say(&format!(
            "watching {} account{}; stop with SIGTERM or Ctrl-C",
            config.imap.len(),
            if config.imap.len() == 1 { "" } else { "s" }
        ));
    }
    let sink = RefCell::new(sink);
    let on_event = |e: Event<'_>| print(&e, quiet, verbose);
    let ended = rt.block_on(watch::watch(
        &config
            .imap
            .iter()
            .flat_map(|a| a.mailboxes())
            .collect::<Vec<_>>(),
        &config.limits,
        &sink,
        &options,
        &stop,
        &on_event,
    ));
    // A password or token command still running on its thread must not hold
    // the exit up (it is killed at its own time limit anyway).
    rt.shutdown_timeout(Duration::from_millis(200));
    match ended {
        Ended::AllRefused => {
            say("dmarcdb: every account refused the login at start; exiting");
            Ok(true)
        }
        Ended::Stopped => {
            if !quiet {
                let name = signalled.get().copied().unwrap_or("a signal");
                say(&format!("stopped on {name}"));
            }
            Ok(false)
        }
    }
}

/// On a thread of its own, so that a second signal is acted on even while
/// the watcher's thread is busy storing a batch: the first SIGTERM or
/// SIGINT stops `stop` (the batch in hand is finished), the second exits
/// at once.
fn listen_for_signals(
    stop: &Stop,
    signalled: &Arc<OnceLock<&'static str>>,
    quiet: bool,
) -> Result<(), Failure> {
    let (stop, signalled) = (stop.clone(), Arc::clone(signalled));
    let (ready, listening) = mpsc::channel();
    let listen = move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => return drop(ready.send(Err(e))),
        };
        rt.block_on(async {
            let (mut term, mut int) = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(t), Ok(i)) => (t, i),
                (Err(e), _) | (_, Err(e)) => return drop(ready.send(Err(e))),
            };
            let _ = ready.send(Ok(()));
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            let _ = signalled.set(name);
            if !quiet {
                say(&format!(
                    "{name}: finishing the batch in hand, then stopping (a second signal stops at once)"
                ));
            }
            stop.stop();
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            // Safe at any point: a batch not committed is fetched again by
            // the next run, one committed but not moved is only moved.
            say(&format!(
                "dmarcdb: {name} again: stopping at once; the next run completes what was in hand"
            ));
            std::process::exit(1);
        })
    };
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(listen)
        .map_err(|e| Failure::operational(format!("cannot start the signal thread: {e}")))?;
    match listening.recv() {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Failure::operational(format!(
            "cannot listen for SIGTERM and SIGINT: {e}"
        ))),
        Err(_) => Err(Failure::operational(
            "cannot listen for SIGTERM and SIGINT: the signal thread ended",
        )),
    }
}

/// The defaults, or the backoff from [`BACKOFF_ENV`].
fn options() -> Result<WatchOptions, Failure> {
    let mut options = WatchOptions::default();
    if let Ok(v) = std::env::var(BACKOFF_ENV) {
        let ms: Vec<u64> = v.split(',').filter_map(|n| n.trim().parse().ok()).collect();
        let [min, max] = ms[..] else {
            return Err(Failure::usage(format!(
                "{BACKOFF_ENV}={v:?}: expected MIN_MS,MAX_MS"
            )));
        };
        options.backoff_min = Duration::from_millis(min.max(1));
        options.backoff_max = Duration::from_millis(max.max(min).max(1));
    }
    Ok(options)
}

/// One line per event on stderr: failures always (they are errors), the
/// rest unless -q; with -v every poll, else polls that did something.
fn print(e: &Event<'_>, quiet: bool, verbose: bool) {
    match e {
        Event::Failed {
            error,
            retry_in: Some(d),
            ..
        } => say(&format!("dmarcdb: {error}; retrying in {}", human(*d))),
        Event::Failed { error, .. } => say(&format!("dmarcdb: {error}")),
        _ if quiet => {}
        Event::Connected {
            account,
            idle,
            reconnected,
        } => {
            let how = if *idle {
                format!("waiting for mail in {} (IDLE)", account.folder)
            } else {
                format!(
                    "polling {} every {} (the server has no IDLE)",
                    account.folder,
                    human(account.poll_interval)
                )
            };
            let verb = if *reconnected {
                "reconnected"
            } else {
                "connected"
            };
            say(&format!(
                "account {}: {verb} to {}; {how}",
                account.name, account.host
            ));
        }
        Event::Polled { account, stats } => {
            let busy = stats.fetched
                + stats.oversize
                + stats.already_stored
                + stats.moved_archive
                + stats.moved_invalid
                > 0;
            if busy || verbose {
                say(&format!(
                    "account {}: {} messages in {}, {} fetched, {} moved to {}, {} to {}",
                    account.name,
                    stats.messages,
                    account.folder,
                    stats.fetched + stats.oversize,
                    stats.moved_archive,
                    account.archive_folder,
                    stats.moved_invalid,
                    account.invalid_folder
                ));
            }
        }
        Event::Stopped { account } if verbose => {
            say(&format!("account {}: logged out", account.name));
        }
        _ => {}
    }
}

/// "0.8 s", "12 s", "4.8 min".
fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{s:.1} s")
    } else if s < 120.0 {
        format!("{s:.0} s")
    } else {
        format!("{:.1} min", s / 60.0)
    }
}

#[cfg(test)]
mod tests {
    use super::human;
    use std::time::Duration;

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_millis(830)), "0.8 s");
        assert_eq!(human(Duration::from_secs(12)), "12 s");
        assert_eq!(human(Duration::from_secs(288)), "4.8 min");
    }
}
