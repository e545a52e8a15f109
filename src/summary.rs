//! Summary: who sends as each policy domain, who fails, and what receivers
//! did about it, over a period. Built from the store's queries; rendered as a
//! terminal table or as JSON carrying the same content.

use crate::store::query::{DomainTotals, FailingSender, Filter, ProviderBounces, ReporterTotals};
use crate::store::{Store, StoreError};
use serde::Serialize;
use std::fmt::Write;

const DAY: i64 = 86_400;

/// The default length of the period, in days.
pub const DEFAULT_DAYS: i64 = 30;

/// Everything `dmarcdb summary` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Period start and end (inclusive), Unix seconds and ISO dates.
    pub since: i64,
    pub until: i64,
    pub since_utc: String,
    pub until_utc: String,
    pub domain_filter: Option<String>,
    pub domains: Vec<DomainSummary>,
    /// Reports in the period that carried warnings.
    pub reports_with_warnings: i64,
    /// Inputs in the whole store by kind (invalid ones included).
    pub inputs_by_kind: std::collections::BTreeMap<String, i64>,
    /// Failing senders left out of each domain's list by `--top`.
    pub top: usize,
    /// Per provider: DMARC quarantine/reject counts beside bounces by reason
    /// (absent when the period holds no bounce).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bounce_patterns: Vec<ProviderBounces>,
}

/// One policy domain.
#[derive(Debug, Clone, Serialize)]
pub struct DomainSummary {
    #[serde(flatten)]
    pub totals: DomainTotals,
    pub dmarc_pass_pct: f64,
    pub spf_aligned_pct: f64,
    pub dkim_aligned_pct: f64,
    pub reporters: Vec<ReporterTotals>,
    pub failing_senders: Vec<FailingSender>,
    /// Failing senders beyond the `--top` shown.
    pub more_failing_senders: usize,
}

/// A period boundary as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    /// A calendar date, `YYYY-MM-DD` (UTC).
    Date(i64),
    /// `Nd`: N days before the end of the period.
    DaysBefore(i64),
}

impl When {
    /// As the start of a period that runs until `now` (`--since` without
    /// `--until`): Unix seconds.
    pub fn since(&self, now: i64) -> i64 {
        match self {
            When::Date(d) => *d,
            When::DaysBefore(n) => now - n * DAY,
        }
    }
}

/// Parse `YYYY-MM-DD` or `Nd`.
pub fn parse_when(s: &str) -> Result<When, String> {
    let s = s.trim();
    if let Some(n) = s.strip_suffix('d') {
        return n
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=100_000).contains(n))
            .map(When::DaysBefore)
            .ok_or_else(|| format!("{s:?}: expected a number of days from 1d to 100000d"));
    }
    parse_date(s)
        .map(When::Date)
        .ok_or_else(|| format!("{s:?}: expected a date YYYY-MM-DD or a number of days such as 30d"))
}

/// `YYYY-MM-DD` → Unix seconds at 00:00 UTC.
pub fn parse_date(s: &str) -> Option<i64> {
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp())
}

/// Unix seconds → `YYYY-MM-DD HH:MM:SS` UTC.
pub fn utc(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| ts.to_string())
}

/// Work out the period. Without `--until` it ends at the newest report in the
/// store when `--since` is not given either (so a demo shows data), else now.
pub fn period(
    since: Option<&When>,
    until: Option<&When>,
    newest: Option<i64>,
    now: i64,
) -> Result<(i64, i64), String> {
    let end = match until {
        Some(When::Date(d)) => d + DAY - 1,
        Some(When::DaysBefore(n)) => now - n * DAY,
        None if since.is_none() => newest.unwrap_or(now),
        None => now,
    };
    let start = match since {
        Some(When::Date(d)) => *d,
        Some(When::DaysBefore(n)) => end - n * DAY,
        None => end - DEFAULT_DAYS * DAY,
    };
    if start > end {
        return Err(format!(
            "the period starts ({}) after it ends ({})",
            utc(start),
            utc(end)
        ));
    }
    Ok((start, end))
}

fn pct(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 * 1000.0 / whole as f64).round() / 10.0
    }
}

/// Build the summary for `filter`, listing at most `top` failing senders per domain.
pub fn build(store: &Store, filter: &Filter, top: usize) -> Result<Summary, StoreError> {
    let mut domains = Vec::new();
    for totals in store.domain_totals(filter)? {
        let reporters = store.reporter_totals(filter, &totals.domain)?;
        let (failing, all) = store.failing_senders(filter, &totals.domain, top)?;
        let more = all.saturating_sub(failing.len());
        domains.push(DomainSummary {
            dmarc_pass_pct: pct(totals.dmarc_pass, totals.messages),
            spf_aligned_pct: pct(totals.spf_aligned, totals.messages),
            dkim_aligned_pct: pct(totals.dkim_aligned, totals.messages),
            totals,
            reporters,
            failing_senders: failing,
            more_failing_senders: more,
        });
    }
    Ok(Summary {
        since: filter.since,
        until: filter.until,
        since_utc: utc(filter.since),
        until_utc: utc(filter.until),
        domain_filter: filter.domain.clone(),
        domains,
        reports_with_warnings: store.reports_with_warnings(filter)?,
        inputs_by_kind: store.inputs_by_kind()?.into_iter().collect(),
        top,
        bounce_patterns: store.provider_bounces(filter)?,
    })
}

/// A plain text table: columns padded to their widest cell, numbers right-aligned.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    const MAX: usize = 60;
    let cell = |s: &str| -> String {
        // One line per row, and no terminal escapes from report or bounce text.
        let s = crate::extract::printable_name(&s.replace(['\n', '\r', '\t'], " "));
        if s.chars().count() > MAX {
            let cut: String = s.chars().take(MAX - 1).collect();
            format!("{cut}…")
        } else {
            s
        }
    };
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| cell(c)).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let numeric: Vec<bool> = (0..headers.len())
        .map(|i| {
            !rows.is_empty()
                && rows.iter().all(|r| {
                    r.get(i).is_some_and(|c| {
                        !c.is_empty()
                            && c.trim_end_matches('%')
                                .chars()
                                .all(|ch| ch.is_ascii_digit() || ch == '.' || ch == '-')
                    })
                })
        })
        .collect();
    let mut out = String::new();
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = (usize, &str)>| {
        let mut parts = Vec::new();
        for (i, c) in cells {
            let w = widths.get(i).copied().unwrap_or(0);
            let pad = w.saturating_sub(c.chars().count());
            if numeric.get(i).copied().unwrap_or(false) {
                parts.push(format!("{}{c}", " ".repeat(pad)));
            } else {
                parts.push(format!("{c}{}", " ".repeat(pad)));
            }
        }
        let _ = writeln!(out, "  {}", parts.join("  ").trim_end());
    };
    line(&mut out, &mut headers.iter().copied().enumerate());
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    let _ = writeln!(out, "  {}", rule.join("  "));
    for r in &rows {
        line(&mut out, &mut r.iter().map(String::as_str).enumerate());
    }
    out
}

/// Render for a terminal.
pub fn render_text(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "DMARC summary for {} to {} UTC{}",
        s.since_utc,
        s.until_utc,
        s.domain_filter
            .as_deref()
            .map(|d| format!(", policy domain {d} and its subdomains"))
            .unwrap_or_default()
    );
    if s.domains.is_empty() {
        let _ = writeln!(out, "\nNo reports in this period.");
    }
    for d in &s.domains {
        let t = &d.totals;
        let _ = writeln!(
            out,
            "\n== {} — {} messages in {} reports: DMARC pass {}%, SPF aligned {}%, DKIM aligned {}%",
            t.domain, t.messages, t.reports, d.dmarc_pass_pct, d.spf_aligned_pct, d.dkim_aligned_pct
        );
        let _ = writeln!(out, "\nReporters (what each receiver saw and did):");
        let rows: Vec<Vec<String>> = d
            .reporters
            .iter()
            .map(|r| {
                vec![
                    r.reporter.clone(),
                    r.reports.to_string(),
                    r.messages.to_string(),
                    r.quarantined.to_string(),
                    r.rejected.to_string(),
                ]
            })
            .collect();
        out.push_str(&table(
            &["reporter", "reports", "messages", "quarantined", "rejected"],
            &rows,
        ));
        if d.failing_senders.is_empty() {
            let _ = writeln!(
                out,
                "\nNo failing senders: every message passed SPF and DKIM alignment."
            );
            continue;
        }
        let _ = writeln!(
            out,
            "\nFailing senders (messages that failed DMARC, or aligned DKIM or SPF):"
        );
        let rows: Vec<Vec<String>> = d
            .failing_senders
            .iter()
            .map(|f| {
                vec![
                    if f.source_ip.is_empty() {
                        "(empty)".to_string()
                    } else {
                        f.source_ip.clone()
                    },
                    f.messages.to_string(),
                    f.dmarc_fail.to_string(),
                    f.dkim_fail.to_string(),
                    f.spf_fail.to_string(),
                    f.dispositions.join(" "),
                    f.header_from.join(" "),
                    f.envelope_from.join(" "),
                    f.dkim_results.join(" "),
                    f.spf_results.join(" "),
                    f.reporters.join(" "),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "source_ip",
                "messages",
                "dmarc_fail",
                "dkim_fail",
                "spf_fail",
                "dispositions",
                "header_from",
                "envelope_from",
                "dkim (domain=result)",
                "spf (domain=result)",
                "reporters",
            ],
            &rows,
        ));
        if d.more_failing_senders > 0 {
            let _ = writeln!(
                out,
                "  … and {} more (use --top N to list more)",
                d.more_failing_senders
            );
        }
    }
    if !s.bounce_patterns.is_empty() {
        let _ = writeln!(
            out,
            "\nBounce patterns (per provider: what its DMARC reports did with the mail, and why its servers bounced it; dmarcdb bounces for detail):"
        );
        let rows: Vec<Vec<String>> = s
            .bounce_patterns
            .iter()
            .map(|p| {
                vec![
                    p.provider.clone(),
                    p.quarantined.to_string(),
                    p.rejected.to_string(),
                    p.bounces.to_string(),
                    p.reasons
                        .iter()
                        .map(|(r, n)| format!("{r}={n}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "provider",
                "quarantined",
                "rejected",
                "bounces",
                "bounces by reason",
            ],
            &rows,
        ));
    }
    let _ = writeln!(out, "\nInputs in the store by kind:");
    let kinds: Vec<Vec<String>> = s
        .inputs_by_kind
        .iter()
        .map(|(k, n)| vec![k.clone(), n.to_string()])
        .collect();
    out.push_str(&table(&["kind", "inputs"], &kinds));
    if s.reports_with_warnings > 0 {
        let _ = writeln!(
            out,
            "\n{} report(s) in this period carried warnings (see reports.warnings).",
            s.reports_with_warnings
        );
    }
    if let Some(n) = s.inputs_by_kind.get("invalid").filter(|n| **n > 0) {
        let _ = writeln!(
            out,
            "{n} invalid input(s) are kept with their reason and raw bytes: dmarcdb invalid"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        let newest = parse_date("2024-03-31").unwrap();
        let now = parse_date("2026-01-01").unwrap();
        assert_eq!(
            period(None, None, Some(newest), now).unwrap(),
            (newest - 30 * DAY, newest)
        );
        let d7 = parse_when("7d").unwrap();
        assert_eq!(
            period(Some(&d7), None, Some(newest), now).unwrap(),
            (now - 7 * DAY, now)
        );
        let since = parse_when("2024-03-01").unwrap();
        let until = parse_when("2024-03-02").unwrap();
        assert_eq!(
            period(Some(&since), Some(&until), None, now).unwrap(),
            (
                parse_date("2024-03-01").unwrap(),
                parse_date("2024-03-03").unwrap() - 1
            )
        );
        assert!(period(Some(&until), Some(&since), None, now).is_err());
        assert!(parse_when("yesterday").is_err());
        assert!(parse_when("0d").is_err());
    }

    #[test]
    fn table_aligns() {
        let t = table(
            &["a", "n"],
            &[vec!["x".into(), "10".into()], vec!["yy".into(), "2".into()]],
        );
        assert_eq!(t, "  a    n\n  --  --\n  x   10\n  yy   2\n");
    }
}
