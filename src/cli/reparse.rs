//! `dmarcdb reparse`: run the current code over every stored raw input again.

use super::{print, say, Failure, Global};
use dmarcdb::ingest::{Ingester, Outcome};
use dmarcdb::kind::Kind;

/// Inputs per commit.
const BATCH: usize = 200;

#[derive(Debug, clap::Args)]
#[command(after_help = "Exit codes: 0 success, 1 database error, 2 usage error")]
pub struct Args {
    /// Print the counts as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(g: &Global, a: &Args) -> Result<u8, Failure> {
    let config = g.config()?;
    let mut store = g.existing_store()?;
    let _lock = g.lock(true)?;
    let db = |e: dmarcdb::store::StoreError| Failure::operational(e.to_string());
    let ids = store.input_ids().map_err(db)?;
    let mut ingester = Ingester::new(&mut store, config.limits.clone());
    let (quiet, verbose) = (g.quiet, g.verbose);
    ingester.on_outcome(Box::new(move |origin, o: &Outcome| {
        if verbose && !quiet {
            say(&format!("{origin}: now {}", o.kind.as_str()));
        }
    }));
    let (mut changed, mut now_aggregate, mut now_invalid) = (0u64, 0u64, 0u64);
    for (i, id) in ids.iter().enumerate() {
        match ingester.reparse(*id) {
            Ok(Some(o)) => {
                changed += 1;
                match o.kind {
                    Kind::Aggregate => now_aggregate += 1,
                    Kind::Invalid => now_invalid += 1,
                    _ => {}
                }
            }
            Ok(None) => {}
            Err(e) => {
                let _ = ingester.commit();
                return Err(Failure::operational(format!("input {id}: {e}")));
            }
        }
        if (i + 1) % BATCH == 0 {
            ingester.commit().map_err(db)?;
        }
    }
    ingester.commit().map_err(db)?;
    let line = format!(
        "{} inputs re-read, {} changed ({} now hold reports, {} now invalid), {} reports stored anew",
        ids.len(),
        changed,
        now_aggregate,
        now_invalid,
        ingester.stats.reports
    );
    if a.json {
        print(&format!(
            "{}\n",
            serde_json::json!({
                "inputs": ids.len(),
                "changed": changed,
                "now_aggregate": now_aggregate,
                "now_invalid": now_invalid,
                "reports": ingester.stats.reports,
            })
        ))?;
    }
    if !g.quiet {
        say(&line);
    }
    Ok(0)
}
