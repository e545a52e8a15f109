//! `dmarcdb ingest`: files, directories, mbox, stdin and IMAP into the store.

use super::{print, say, Failure, Global};
use dmarcdb::fetch::imap::{Destination, FetchedMail, MailSink, MailboxRef, SinkError};
use dmarcdb::fetch::{imap, local};
use dmarcdb::ingest::{Ingester, Outcome, Stats};
use dmarcdb::kind::Kind;
use dmarcdb::lock::RunLock;
use indicatif::ProgressBar;
use std::path::PathBuf;

/// Inputs per commit when ingesting files.
const FILE_BATCH: u64 = 500;
/// Raw bytes per commit when ingesting files.
const FILE_BATCH_BYTES: usize = 256 << 20;

#[derive(Debug, clap::Args)]
#[command(after_help = super::EXIT_CODES)]
pub struct Args {
    /// Files (.xml, .xml.gz, .gz, .zip, .eml, mbox), directories (recursively) or - for stdin.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Poll every [[imap]] account in the config once, then exit (may be combined with PATHs).
    #[arg(long)]
    imap: bool,
    /// With --imap: keep running and fetch new mail as it arrives (IDLE, or
    /// every poll_interval where the server has no IDLE) until SIGTERM or Ctrl-C.
    #[arg(long, requires = "imap")]
    watch: bool,
    /// Print the closing counts as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Fetch and read everything, print what would be stored and moved, and
    /// change nothing: not the database, not the mailbox.
    #[arg(long)]
    dry_run: bool,
    /// With --imap: wait for another running ingest to finish instead of
    /// exiting at once (file and stdin ingests always wait).
    #[arg(long)]
    wait: bool,
}

pub fn run(g: &Global, a: &Args) -> Result<u8, Failure> {
    if a.watch {
        // A daemon prints a line per event; a bar would only spin.
        return ingest(g, a, None);
    }
    super::with_progress(g, |bar| ingest(g, a, bar))
}

fn ingest(g: &Global, a: &Args, bar: Option<&ProgressBar>) -> Result<u8, Failure> {
    if a.paths.is_empty() && !a.imap {
        return Err(Failure::usage(
            "ingest needs PATH arguments, - for stdin, or --imap (see dmarcdb ingest --help)",
        ));
    }
    let config = g.config()?;
    if a.imap && config.imap.is_empty() {
        return Err(Failure::usage(
            "ingest --imap: the config has no [[imap]] account (see README: IMAP)",
        ));
    }
    // Mail offered on stdin or in files must never be turned away: those
    // wait. A cron-started IMAP poll that finds the last one still running
    // has nothing to do.
    if a.watch && a.dry_run {
        return Err(Failure::usage("--dry-run cannot be combined with --watch"));
    }
    let wait = a.wait || a.watch || !a.paths.is_empty();
    let Some(lock) = g.lock(wait)? else {
        if !g.quiet {
            say(&format!(
                "dmarcdb: another dmarcdb run holds {}; nothing done (--wait waits for it)",
                RunLock::path_for(&g.db).display()
            ));
        }
        // Scripts reading --json get the (zero) counts as always.
        if a.json {
            print(&json_counts(&Stats::default()))?;
        }
        return Ok(0);
    };
    let mut store = g.store()?;
    let mut ingester = Ingester::new(&mut store, config.limits.clone());
    if a.dry_run {
        ingester.set_dry_run();
    }
    let (quiet, verbose) = (g.quiet, g.verbose || a.dry_run);
    ingester.on_outcome(Box::new(move |origin, o: &Outcome| {
        report(origin, o, quiet, verbose)
    }));
    let mut failed = false;

    if !a.paths.is_empty() {
        let skip = local::Skip {
            paths: ["", "-wal", "-shm", "-journal", ".lock"]
                .iter()
                .map(|s| PathBuf::from(format!("{}{s}", g.db.display())))
                .collect(),
        };
        let (mut pending, mut pending_bytes) = (0u64, 0usize);
        // The counts as of the last commit: what the closing line reports
        // should a commit fail (a full disk rolls the whole batch back).
        let mut committed = ingester.stats.clone();
        // Each file is read and parsed on the second core while the one
        // before it is stored.
        let result = dmarcdb::ingest::visit_prepared(
            &a.paths,
            &config.limits,
            &skip,
            &mut |e| {
                say(&format!("dmarcdb: {e}"));
                failed = true;
            },
            &mut |prepared| {
                if let Some(b) = bar {
                    b.inc(1);
                }
                pending += 1;
                pending_bytes += prepared.input().bytes.len();
                let origin = prepared.input().origin.clone();
                let before = ingester.stats.clone();
                if let Err(e) = ingester.ingest_prepared(prepared) {
                    // Rolled back: it is not counted.
                    ingester.stats = before;
                    return Err(format!("{origin}: {e}"));
                }
                if pending >= FILE_BATCH || pending_bytes >= FILE_BATCH_BYTES {
                    ingester.commit().map_err(|e| e.to_string())?;
                    committed = ingester.stats.clone();
                    (pending, pending_bytes) = (0, 0);
                }
                Ok::<(), String>(())
            },
        );
        // The input that failed was rolled back to its savepoint; what came
        // before it in the batch is kept.
        let last = ingester.commit().map_err(|e| e.to_string());
        if let Err(e) = result.and(last.clone()) {
            let _ = ingester.rollback();
            if last.is_err() {
                ingester.stats = committed;
                say(&format!(
                    "dmarcdb: the last {pending} inputs read were not stored (the counts below are what was); run again to store them"
                ));
            }
            finish(g, a, &ingester.stats)?;
            return Err(Failure::operational(e));
        }
    }

    if a.watch {
        // A daemon must not hold the lock while it idles (a mail piped in by
        // the MTA would wait for ever): it takes it for each store call.
        drop(lock);
        let mut sink = Sink {
            inner: &mut ingester,
            bar: None,
            lock_per_call: Some(g.db.clone()),
        };
        failed |= super::watch::run(g, &config, &mut sink)?;
        finish(g, a, &ingester.stats)?;
        return Ok(if failed { 1 } else { 0 });
    }

    if a.imap && !a.watch {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::operational(format!("cannot start the async runtime: {e}")))?;
        let options = imap::PollOptions {
            dry_run: a.dry_run,
            ..imap::PollOptions::default()
        };
        for account in config.imap.iter().flat_map(|a| a.mailboxes()) {
            let account = &account;
            let mut sink = Sink {
                inner: &mut ingester,
                bar,
                lock_per_call: None,
            };
            let poll = imap::poll_with(account, &config.limits, &mut sink, &options);
            match rt.block_on(poll) {
                Ok(s) if verbose && !quiet => say(&format!(
                    "account {}: {} messages in {}, {} fetched, {} moved to {}, {} to {}",
                    account.name,
                    s.messages,
                    account.folder,
                    s.fetched,
                    s.moved_archive,
                    account.archive_folder,
                    s.moved_invalid,
                    account.invalid_folder
                )),
                Ok(_) => {}
                Err(e) => {
                    say(&format!("dmarcdb: {e}"));
                    failed = true;
                }
            }
            // A failed batch was rolled back by the sink; nothing half-done
            // remains. (A dry run's open transaction stays until the end.)
            if !a.dry_run {
                let _ = ingester.rollback();
            }
        }
    }

    if a.dry_run {
        ingester
            .rollback()
            .map_err(|e| Failure::operational(e.to_string()))?;
        if !g.quiet {
            say("dmarcdb: dry run: nothing was stored and nothing was moved; a real run would have done this:");
        }
    }
    finish(g, a, &ingester.stats)?;
    Ok(if failed { 1 } else { 0 })
}

/// One line per invalid input (even with -q: it is an error of that input),
/// its warnings unless -q, and with -v every input.
fn report(origin: &dmarcdb::fetch::Origin, o: &Outcome, quiet: bool, verbose: bool) {
    if o.kind == Kind::Invalid && o.duplicate {
        say(&format!(
            "dmarcdb: invalid input {origin}: the same bytes as input {}, which is invalid (dmarcdb invalid show {})",
            o.input, o.input
        ));
    } else if o.kind == Kind::Invalid {
        say(&format!(
            "dmarcdb: invalid input {origin}: {}",
            o.reason.as_deref().unwrap_or("unreadable")
        ));
    } else if verbose && !quiet {
        let dup = if o.duplicate { " (duplicate)" } else { "" };
        say(&format!("{origin}: {}{dup}", o.kind.as_str()));
    }
    if !quiet {
        for w in &o.warnings {
            say(&format!("dmarcdb: warning: {origin}: {w}"));
        }
    }
}

/// The closing counts as one line of JSON.
fn json_counts(stats: &Stats) -> String {
    let mut v = serde_json::to_value(stats).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("duplicates".into(), stats.duplicates().into());
        o.insert("other_kinds".into(), stats.other_kinds().into());
    }
    format!("{v}\n")
}

fn finish(g: &Global, a: &Args, stats: &Stats) -> Result<(), Failure> {
    if a.json {
        print(&json_counts(stats))?;
    }
    if !g.quiet {
        say(&stats.line());
    }
    Ok(())
}

/// The ingester as the poller's sink: moves the progress bar, and for
/// `--watch` takes the run lock for each call into the store and gives it
/// back at once, so that file ingests and cron runs get their turn while the
/// daemon idles.
struct Sink<'a, 's> {
    inner: &'a mut Ingester<'s>,
    bar: Option<&'a ProgressBar>,
    lock_per_call: Option<PathBuf>,
}

impl<'s> Sink<'_, 's> {
    /// Run `f` on the ingester, under the lock if so set.
    fn call<T>(
        &mut self,
        f: impl FnOnce(&mut Ingester<'s>) -> Result<T, SinkError>,
    ) -> Result<T, SinkError> {
        let _held = match &self.lock_per_call {
            Some(db) => Some(RunLock::acquire(db).map_err(|e| {
                format!(
                    "cannot take the lock {}: {e}",
                    RunLock::path_for(db).display()
                )
            })?),
            None => None,
        };
        f(self.inner)
    }

    fn advance(&self, n: u64) {
        if let Some(b) = self.bar {
            b.inc(n);
        }
    }
}

impl MailSink for Sink<'_, '_> {
    fn stored(
        &mut self,
        mb: &MailboxRef,
        uids: &[u32],
    ) -> Result<Vec<(u32, Destination)>, SinkError> {
        let known = self.call(|i| i.stored(mb, uids))?;
        if let Some(b) = self.bar {
            // SEARCH found `uids`; those stored before are only moved.
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} messages in {msg}, {per_sec}, eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b.set_message(format!("{}/{}", mb.account, mb.mailbox));
            b.set_position(0);
            b.set_length(uids.len().saturating_sub(known.len()) as u64);
            b.reset_eta();
        }
        Ok(known)
    }

    fn store(
        &mut self,
        mb: &MailboxRef,
        mails: Vec<FetchedMail>,
    ) -> Result<Vec<(u32, Destination)>, SinkError> {
        let n = mails.len() as u64;
        let placed = self.call(|i| MailSink::store(i, mb, mails))?;
        self.advance(n);
        Ok(placed)
    }

    fn copied(
        &mut self,
        mb: &MailboxRef,
        folder: &str,
        uids: &[u32],
    ) -> Result<Vec<u32>, SinkError> {
        self.call(|i| i.copied(mb, folder, uids))
    }

    fn record_copies(
        &mut self,
        mb: &MailboxRef,
        folder: &str,
        copies: &[(u32, Option<u32>)],
    ) -> Result<(), SinkError> {
        self.call(|i| i.record_copies(mb, folder, copies))
    }

    fn oversize(
        &mut self,
        mb: &MailboxRef,
        uid: u32,
        size: u64,
        header: Vec<u8>,
    ) -> Result<(), SinkError> {
        self.call(|i| i.oversize(mb, uid, size, header))?;
        self.advance(1);
        Ok(())
    }

    fn stop_requested(&self) -> bool {
        self.inner.stop_requested()
    }
}
