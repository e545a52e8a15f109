//! `dmarcdb summary`: failing senders and receiver actions per policy domain.

use super::{print, Failure, Global};
use dmarcdb::store::query::Filter;
use dmarcdb::summary::{self, parse_when};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Exit codes: 0 success, 1 database error, 2 usage error")]
pub struct Args {
    /// Only this policy domain and its subdomains.
    #[arg(long, value_name = "DOMAIN")]
    domain: Option<String>,
    /// Start of the period: YYYY-MM-DD (UTC) or Nd (N days before its end)
    /// [default: 30 days before its end].
    #[arg(long, value_name = "DATE|Nd", value_parser = parse_when)]
    since: Option<summary::When>,
    /// Last day of the period, YYYY-MM-DD (UTC), included, or Nd (N days before
    /// now) [default: the newest report's end when --since is not given either,
    /// else now].
    #[arg(long, value_name = "DATE|Nd", value_parser = parse_when)]
    until: Option<summary::When>,
    /// Failing senders listed per domain.
    #[arg(long, default_value_t = 25, value_name = "N")]
    top: usize,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub fn run(g: &Global, a: &Args) -> Result<u8, Failure> {
    let domain = super::domain_arg(a.domain.as_deref())?;
    let store = g.existing_store()?;
    let db = |e: dmarcdb::store::StoreError| Failure::operational(e.to_string());
    let now = chrono::Utc::now().timestamp();
    let newest = store
        .newest_report_end(domain.as_deref(), now + 86_400)
        .map_err(db)?;
    let (since, until) =
        summary::period(a.since.as_ref(), a.until.as_ref(), newest, now).map_err(Failure::usage)?;
    let filter = Filter {
        since,
        until,
        domain,
    };
    let s = summary::build(&store, &filter, a.top).map_err(db)?;
    match a.format {
        Format::Text => print(&summary::render_text(&s))?,
        Format::Json => print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&s).unwrap_or_default()
        ))?,
    }
    Ok(0)
}
