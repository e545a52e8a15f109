//! `dmarcdb prune`: delete what is older than the retention period.

use super::{print, say, Failure, Global};

#[derive(Debug, clap::Args)]
#[command(after_help = "Exit codes: 0 success, 1 database error, 2 usage error (no period given)")]
pub struct Args {
    /// Remove reports that ended more than N days ago (e.g. 400d) with their
    /// records, the inputs they came from (with their raw bytes), and inputs
    /// without reports of their own received before then [default: the
    /// config's prune.older_than].
    #[arg(long, value_name = "Nd", value_parser = dmarcdb::config::parse_days)]
    older_than: Option<i64>,
    /// Only say what would be removed.
    #[arg(long)]
    dry_run: bool,
    /// Print the counts as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(g: &Global, a: &Args) -> Result<u8, Failure> {
    let config = g.config()?;
    let days = match (a.older_than, &config.prune.older_than) {
        (Some(d), _) => d,
        (None, Some(d)) => dmarcdb::config::parse_days(d).map_err(Failure::usage)?,
        (None, None) => {
            return Err(Failure::usage(
                "prune needs --older-than Nd (or prune.older_than in the config)",
            ))
        }
    };
    let cutoff = chrono::Utc::now().timestamp() - days * 86_400;
    let mut store = g.existing_store()?;
    let _lock = g.lock(true)?;
    let p = store
        .prune(cutoff, a.dry_run)
        .map_err(|e| Failure::operational(e.to_string()))?;
    if a.json {
        let mut v = serde_json::to_value(&p).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("dry_run".into(), a.dry_run.into());
            o.insert("before".into(), dmarcdb::summary::utc(cutoff).into());
        }
        print(&format!("{v}\n"))?;
    }
    if !g.quiet {
        say(&format!(
            "{} {} reports ({} records) and {} inputs ({} raw bytes) from before {} UTC",
            if a.dry_run { "would remove" } else { "removed" },
            p.reports,
            p.records,
            p.inputs,
            p.raw_bytes,
            dmarcdb::summary::utc(cutoff)
        ));
    }
    Ok(0)
}
