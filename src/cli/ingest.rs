//! `dmarcdb ingest`: files, directories, mbox, stdin and IMAP into the store.

use super::{print, say, Failure, Global};
use dmarcdb::fetch::{imap, local};
use dmarcdb::ingest::{Ingester, Outcome, Stats};
use dmarcdb::kind::Kind;
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
}

pub fn run(g: &Global, a: &Args) -> Result<u8, Failure> {
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
    let mut store = g.store()?;
    let mut ingester = Ingester::new(&mut store, config.limits.clone());
    let (quiet, verbose) = (g.quiet, g.verbose);
    ingester.on_outcome(Box::new(move |origin, o: &Outcome| {
        report(origin, o, quiet, verbose)
    }));
    let mut failed = false;

    if !a.paths.is_empty() {
        let skip = local::Skip {
            paths: ["", "-wal", "-shm", "-journal"]
                .iter()
                .map(|s| PathBuf::from(format!("{}{s}", g.db.display())))
                .collect(),
        };
        let (mut pending, mut pending_bytes) = (0u64, 0usize);
        let result = local::visit(
            &a.paths,
            config.limits.max_input_bytes,
            &skip,
            &mut |e| {
                say(&format!("dmarcdb: {e}"));
                failed = true;
            },
            &mut |input| {
                pending += 1;
                pending_bytes += input.bytes.len();
                ingester
                    .ingest(&input)
                    .map_err(|e| format!("{}: {e}", input.origin))?;
                if pending >= FILE_BATCH || pending_bytes >= FILE_BATCH_BYTES {
                    ingester.commit().map_err(|e| e.to_string())?;
                    (pending, pending_bytes) = (0, 0);
                }
                Ok::<(), String>(())
            },
        );
        // The input that failed was rolled back to its savepoint; what came
        // before it in the batch is kept.
        let committed = ingester.commit().map_err(|e| e.to_string());
        if let Err(e) = result.and(committed) {
            let _ = ingester.rollback();
            finish(g, a, &ingester.stats)?;
            return Err(Failure::operational(e));
        }
    }

    if a.watch {
        failed |= super::watch::run(g, &config, &mut ingester)?;
    }

    if a.imap && !a.watch {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::operational(format!("cannot start the async runtime: {e}")))?;
        for account in &config.imap {
            match rt.block_on(imap::poll(account, &config.limits, &mut ingester)) {
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
            // A failed batch was rolled back by the sink; nothing half-done remains.
            let _ = ingester.rollback();
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

fn finish(g: &Global, a: &Args, stats: &Stats) -> Result<(), Failure> {
    if a.json {
        let mut v = serde_json::to_value(stats).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("duplicates".into(), stats.duplicates().into());
            o.insert("other_kinds".into(), stats.other_kinds().into());
        }
        print(&format!("{v}\n"))?;
    }
    if !g.quiet {
        say(&stats.line());
    }
    Ok(())
}
