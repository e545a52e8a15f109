//! `dmarcdb bounces`: bounced recipients grouped by provider × reason ×
//! detail × status, with counts, first and last seen, and one example
//! diagnostic each.

use super::{print, Failure, Global};
use dmarcdb::store::query::{BounceFilter, BouncePattern};
use dmarcdb::summary::{parse_when, table, utc, When};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Exit codes: 0 success, 1 database error, 2 usage error")]
pub struct Args {
    /// Only bounces since YYYY-MM-DD (UTC) or the last Nd days [default: all].
    #[arg(long, value_name = "DATE|Nd", value_parser = parse_when)]
    since: Option<When>,
    /// Only bounces of mail sent from this domain (ours) and its subdomains.
    #[arg(long, value_name = "OUR_DOMAIN")]
    domain: Option<String>,
    /// Only bounces from this provider: a name from the `providers` table
    /// (Microsoft, Google), a recipient domain or a remote MTA's domain.
    #[arg(long, value_name = "PROVIDER")]
    to: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub fn run(g: &Global, a: &Args) -> Result<u8, Failure> {
    let domain = super::domain_arg(a.domain.as_deref())?;
    let to = a.to.as_deref().map(|t| t.trim().trim_end_matches('.'));
    if to == Some("") {
        return Err(Failure::usage("--to needs a provider name or a domain"));
    }
    let now = chrono::Utc::now().timestamp();
    let since = a.since.as_ref().map(|w| w.since(now));
    let filter = BounceFilter {
        since,
        until: None,
        domain,
        provider: to.map(str::to_string),
    };
    let store = g.existing_store()?;
    let patterns = store
        .bounce_patterns(&filter)
        .map_err(|e| Failure::operational(e.to_string()))?;
    match a.format {
        Format::Text => print(&render(&patterns))?,
        Format::Json => print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&patterns).unwrap_or_default()
        ))?,
    }
    Ok(0)
}

fn render(patterns: &[BouncePattern]) -> String {
    if patterns.is_empty() {
        return "No bounces.\n".to_string();
    }
    let total: i64 = patterns.iter().map(|p| p.count).sum();
    let rows: Vec<Vec<String>> = patterns
        .iter()
        .map(|p| {
            vec![
                p.provider.clone(),
                p.reason.clone(),
                p.detail.clone().unwrap_or_default(),
                p.status.clone().unwrap_or_default(),
                p.count.to_string(),
                day(p.first_seen),
                day(p.last_seen),
                p.example.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let groups = patterns.len();
    let mut out = format!(
        "Bounce patterns: {total} bounced {} in {groups} {}\n",
        if total == 1 {
            "recipient"
        } else {
            "recipients"
        },
        if groups == 1 { "group" } else { "groups" },
    );
    out.push_str(&table(
        &[
            "provider",
            "reason",
            "detail",
            "status",
            "count",
            "first_seen",
            "last_seen",
            "example diagnostic",
        ],
        &rows,
    ));
    out
}

/// The date part of `utc`.
fn day(ts: i64) -> String {
    let s = utc(ts);
    s.split(' ').next().unwrap_or(&s).to_string()
}
