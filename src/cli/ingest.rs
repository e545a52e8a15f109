//! `dmarcdb ingest`: files, directories, mbox, stdin and IMAP into the store.

use super::{print, Failure, Global};
use dmarcdb::fetch::{imap, local};
use dmarcdb::ingest::{Ingester, Outcome};
use dmarcdb::kind::Kind;
use std::path::PathBuf;

/// Inputs per commit when ingesting files.
const FILE_BATCH: u64 = 500;
/// Raw bytes per commit when ingesting files.
const FILE_BATCH_BYTES: usize = 256 << 20;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files (.xml, .xml.gz, .gz, .zip, .eml, mbox), directories (recursively) or - for stdin.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Poll every [[imap]] account in the config once, then exit.
    #[arg(long)]
    imap: bool,
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
        if o.kind == Kind::Invalid && !o.duplicate {
            eprintln!(
                "dmarcdb: invalid input {origin}: {}",
                o.reason.as_deref().unwrap_or("unreadable")
            );
        } else if verbose && !quiet {
            let dup = if o.duplicate { " (duplicate)" } else { "" };
            eprintln!("{origin}: {}{dup}", o.kind.as_str());
        }
    }));
    let mut failed = false;

    if !a.paths.is_empty() {
        let mut pending = 0u64;
        let mut pending_bytes = 0usize;
        let result = local::visit(
            &a.paths,
            &mut |e| {
                eprintln!("dmarcdb: {e}");
                failed = true;
            },
            &mut |input| {
                pending += 1;
                pending_bytes += input.bytes.len();
                ingester.ingest(&input)?;
                if pending >= FILE_BATCH || pending_bytes >= FILE_BATCH_BYTES {
                    ingester.commit()?;
                    pending = 0;
                    pending_bytes = 0;
                }
                Ok::<(), dmarcdb::store::StoreError>(())
            },
        );
        if let Err(e) = result.and_then(|_| ingester.commit()) {
            // What committed before stays; the rest of the run cannot go on.
            let _ = ingester.rollback();
            finish(g, a, &ingester.stats)?;
            return Err(Failure::operational(e.to_string()));
        }
    }

    if a.imap {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::operational(format!("cannot start the async runtime: {e}")))?;
        for account in &config.imap {
            let polled = rt.block_on(imap::poll(account, &config.limits, &mut ingester));
            match polled {
                Ok(stats) => {
                    if verbose && !quiet {
                        eprintln!("account {}: {stats:?}", account.name);
                    }
                }
                Err(e) => {
                    eprintln!("dmarcdb: {e}");
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

fn finish(g: &Global, a: &Args, stats: &dmarcdb::ingest::Stats) -> Result<(), Failure> {
    if a.json {
        let mut v = serde_json::to_value(stats).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("duplicates".into(), stats.duplicates().into());
            o.insert("other_kinds".into(), stats.other_kinds().into());
        }
        print(&format!("{v}\n"))?;
    }
    if !g.quiet {
        eprintln!("{}", stats.line());
    }
    Ok(())
}
