//! Read-side queries: the summary's SQL and running users' queries.

use super::{Result, Store, StoreError};
use rusqlite::types::Value;
use rusqlite::{params, Connection};

/// A period and an optional policy domain (matching its subdomains too).
#[derive(Debug, Clone)]
pub struct Filter {
    /// Unix seconds, inclusive.
    pub since: i64,
    /// Unix seconds, inclusive.
    pub until: i64,
    pub domain: Option<String>,
}

/// Reports overlapping the period, as a CTE named `r`.
const PERIOD: &str = "WITH r AS (
    SELECT * FROM reports
    WHERE end_date >= ?1 AND begin_date <= ?2
      AND (?3 IS NULL OR policy_domain = ?3
           OR substr(policy_domain, -length(?3) - 1) = '.' || ?3))";

/// Totals for one policy domain.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DomainTotals {
    pub domain: String,
    pub reports: i64,
    pub messages: i64,
    pub dmarc_pass: i64,
    pub spf_aligned: i64,
    pub dkim_aligned: i64,
}

/// Messages one reporter saw for a domain, and what it did with them.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReporterTotals {
    pub reporter: String,
    pub reports: i64,
    pub messages: i64,
    pub quarantined: i64,
    pub rejected: i64,
}

/// A source IP with messages that failed DMARC or one of its aligned checks.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FailingSender {
    pub source_ip: String,
    pub messages: i64,
    pub dmarc_fail: i64,
    pub dkim_fail: i64,
    pub spf_fail: i64,
    pub header_from: Vec<String>,
    pub envelope_from: Vec<String>,
    pub reporters: Vec<String>,
    /// `disposition=messages`, e.g. `reject=12`.
    pub dispositions: Vec<String>,
    /// Raw DKIM results, `domain=result`.
    pub dkim_results: Vec<String>,
    /// Raw SPF results, `domain=result`.
    pub spf_results: Vec<String>,
}

impl Store {
    /// The end of the newest report that ends by `not_after`, if any (a
    /// report dated in the future, by mistake or malice, must not move the
    /// default period away from the real ones).
    pub fn newest_report_end(&self, domain: Option<&str>, not_after: i64) -> Result<Option<i64>> {
        Ok(self.conn.query_row(
            "SELECT max(end_date) FROM reports
             WHERE end_date <= ?2 AND (?1 IS NULL OR policy_domain = ?1
                OR substr(policy_domain, -length(?1) - 1) = '.' || ?1)",
            params![domain, not_after],
            |r| r.get(0),
        )?)
    }

    /// Totals per policy domain in the period, biggest first.
    pub fn domain_totals(&self, f: &Filter) -> Result<Vec<DomainTotals>> {
        let sql = format!(
            "{PERIOD}
            SELECT r.policy_domain,
                   count(DISTINCT r.id),
                   coalesce(sum(rec.count), 0),
                   coalesce(sum(CASE WHEN rec.dkim = 'pass' OR rec.spf = 'pass' THEN rec.count END), 0),
                   coalesce(sum(CASE WHEN rec.spf = 'pass' THEN rec.count END), 0),
                   coalesce(sum(CASE WHEN rec.dkim = 'pass' THEN rec.count END), 0)
            FROM r LEFT JOIN records rec ON rec.report = r.id
            GROUP BY r.policy_domain
            ORDER BY 3 DESC, 1"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(params![f.since, f.until, f.domain], |r| {
            Ok(DomainTotals {
                domain: r.get(0)?,
                reports: r.get(1)?,
                messages: r.get(2)?,
                dmarc_pass: r.get(3)?,
                spf_aligned: r.get(4)?,
                dkim_aligned: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Per reporter for one domain: messages, quarantined and rejected.
    pub fn reporter_totals(&self, f: &Filter, domain: &str) -> Result<Vec<ReporterTotals>> {
        let sql = format!(
            "{PERIOD}
            SELECT r.reporter,
                   count(DISTINCT r.id),
                   coalesce(sum(rec.count), 0),
                   coalesce(sum(CASE WHEN rec.disposition = 'quarantine' THEN rec.count END), 0),
                   coalesce(sum(CASE WHEN rec.disposition = 'reject' THEN rec.count END), 0)
            FROM r LEFT JOIN records rec ON rec.report = r.id
            WHERE r.policy_domain = ?4
            GROUP BY r.reporter
            ORDER BY 3 DESC, 1"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(params![f.since, f.until, f.domain, domain], |r| {
            Ok(ReporterTotals {
                reporter: r.get(0)?,
                reports: r.get(1)?,
                messages: r.get(2)?,
                quarantined: r.get(3)?,
                rejected: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Sources with failures for one domain, most DMARC failures first.
    /// The `top` failing senders of `domain` (most DMARC failures first),
    /// and how many failing senders there are in all. Only those `top` are
    /// held in memory, however many sources a report lists.
    pub fn failing_senders(
        &self,
        f: &Filter,
        domain: &str,
        top: usize,
    ) -> Result<(Vec<FailingSender>, usize)> {
        // Two passes over the failing records: totals per source, then the
        // distinct values per source and column, merged here. (Correlated
        // subqueries per source made this quadratic.)
        let failing = format!(
            "{PERIOD},
            fr AS MATERIALIZED (
                SELECT rec.*, r.reporter FROM records rec JOIN r ON r.id = rec.report
                WHERE r.policy_domain = ?4
                  AND (coalesce(rec.dkim, '') <> 'pass' OR coalesce(rec.spf, '') <> 'pass'))"
        );
        let totals = format!(
            "{failing}
            SELECT source_ip,
                   sum(count),
                   sum(CASE WHEN coalesce(dkim, '') <> 'pass' AND coalesce(spf, '') <> 'pass'
                            THEN count ELSE 0 END) AS dmarc_fail,
                   sum(CASE WHEN coalesce(dkim, '') <> 'pass' THEN count ELSE 0 END),
                   sum(CASE WHEN coalesce(spf, '') <> 'pass' THEN count ELSE 0 END)
            FROM fr GROUP BY source_ip
            ORDER BY dmarc_fail DESC, 2 DESC, 1
            LIMIT ?5"
        );
        let count = format!("{failing} SELECT count(DISTINCT source_ip) FROM fr");
        // The lists only for the senders shown (?5: their number).
        let lists = format!(
            "{failing},
            top AS (SELECT source_ip,
                       sum(CASE WHEN coalesce(dkim, '') <> 'pass' AND coalesce(spf, '') <> 'pass'
                                THEN count ELSE 0 END) AS dmarc_fail, sum(count) AS n
                    FROM fr GROUP BY source_ip ORDER BY dmarc_fail DESC, n DESC, source_ip LIMIT ?5),
            ft AS MATERIALIZED (SELECT * FROM fr WHERE source_ip IN (SELECT source_ip FROM top))
            SELECT source_ip, 'h', header_from FROM ft WHERE header_from IS NOT NULL
            UNION SELECT source_ip, 'e', envelope_from FROM ft WHERE envelope_from IS NOT NULL
            UNION SELECT source_ip, 'r', reporter FROM ft
            UNION SELECT source_ip, 'p', coalesce(disposition, '?') || '=' || sum(count)
                  FROM ft GROUP BY source_ip, disposition
            UNION SELECT ft.source_ip, 'd', coalesce(d.domain, '?') || '=' || coalesce(d.result, '?')
                  FROM ft JOIN dkim_results d ON d.record = ft.id
            UNION SELECT ft.source_ip, 's', coalesce(s.domain, '?') || '=' || coalesce(s.result, '?')
                  FROM ft JOIN spf_results s ON s.record = ft.id"
        );
        let limit = i64::try_from(top).unwrap_or(i64::MAX);
        let args = params![f.since, f.until, f.domain, domain, limit];
        let all: i64 =
            self.conn
                .query_row(&count, params![f.since, f.until, f.domain, domain], |r| {
                    r.get(0)
                })?;
        let mut senders: Vec<FailingSender> = self
            .conn
            .prepare(&totals)?
            .query_map(args, |r| {
                Ok(FailingSender {
                    source_ip: r.get(0)?,
                    messages: r.get(1)?,
                    dmarc_fail: r.get(2)?,
                    dkim_fail: r.get(3)?,
                    spf_fail: r.get(4)?,
                    ..FailingSender::default()
                })
            })?
            .collect::<std::result::Result<_, _>>()?;
        let index: std::collections::HashMap<String, usize> = senders
            .iter()
            .enumerate()
            .map(|(i, s)| (s.source_ip.clone(), i))
            .collect();
        let mut stmt = self.conn.prepare(&lists)?;
        let mut rows = stmt.query(args)?;
        while let Some(row) = rows.next()? {
            let ip: String = row.get(0)?;
            let column: String = row.get(1)?;
            let value: String = row.get(2)?;
            let Some(s) = index.get(&ip).and_then(|&i| senders.get_mut(i)) else {
                continue;
            };
            match column.as_str() {
                "h" => &mut s.header_from,
                "e" => &mut s.envelope_from,
                "r" => &mut s.reporters,
                "p" => &mut s.dispositions,
                "d" => &mut s.dkim_results,
                _ => &mut s.spf_results,
            }
            .push(value);
        }
        for s in &mut senders {
            for l in [
                &mut s.header_from,
                &mut s.envelope_from,
                &mut s.reporters,
                &mut s.dispositions,
                &mut s.dkim_results,
                &mut s.spf_results,
            ] {
                l.sort();
                l.dedup();
            }
        }
        Ok((senders, usize::try_from(all).unwrap_or(usize::MAX)))
    }

    /// How many inputs of each kind the store holds.
    pub fn inputs_by_kind(&self) -> Result<Vec<(String, i64)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT kind, count(*) FROM inputs GROUP BY kind ORDER BY kind")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Reports in the period that carry warnings.
    pub fn reports_with_warnings(&self, f: &Filter) -> Result<i64> {
        let sql = format!("{PERIOD} SELECT count(*) FROM r WHERE warnings IS NOT NULL");
        Ok(self
            .conn
            .query_row(&sql, params![f.since, f.until, f.domain], |r| r.get(0))?)
    }
}

/// Receives a query's result as it streams.
pub trait RowSink {
    /// The column names, before any row.
    fn columns(&mut self, columns: &[String]);
    /// One row; return false to stop reading.
    fn row(&mut self, row: &[Value]) -> bool;
}

/// Run one SQL statement on a read-only connection to the database at
/// `path`, streaming its rows into `sink`. Read-only at the SQLite level, so
/// no statement (ATTACH included) can write anything.
pub fn run_readonly(path: &str, sql: &str, sink: &mut dyn RowSink) -> Result<()> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.pragma_update(None, "query_only", "ON")?;
    let mut stmt = conn.prepare(sql)?;
    // VACUUM INTO would create its target file before the read-only
    // connection refuses it; refuse every statement that is not a read.
    if !stmt.readonly() {
        return Err(StoreError::NotReadOnly);
    }
    let columns: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
    sink.columns(&columns);
    let n = columns.len();
    let mut vals = Vec::with_capacity(n);
    let mut q = stmt.query([])?;
    while let Some(row) = q.next()? {
        vals.clear();
        for i in 0..n {
            vals.push(row.get::<_, Value>(i)?);
        }
        if !sink.row(&vals) {
            break;
        }
    }
    Ok(())
}

/// Which bounces `dmarcdb bounces` and the summary look at.
#[derive(Debug, Clone, Default)]
pub struct BounceFilter {
    /// Unix seconds, inclusive; `None`: from the first.
    pub since: Option<i64>,
    /// Unix seconds, inclusive; `None`: to the last.
    pub until: Option<i64>,
    /// The sending domain (ours) and its subdomains.
    pub domain: Option<String>,
    /// One provider (as `providers` names it, or a recipient domain), any case.
    pub provider: Option<String>,
}

/// Bounced recipients filtered, as a CTE named `f` over `bounce_rows`.
const BOUNCES: &str = "WITH f AS MATERIALIZED (
    SELECT * FROM bounce_rows
    WHERE (?1 IS NULL OR bounced_at >= ?1) AND (?2 IS NULL OR bounced_at <= ?2)
      AND (?3 IS NULL OR sender_domain = ?3
           OR substr(sender_domain, -length(?3) - 1) = '.' || ?3)
      AND (?4 IS NULL OR lower(provider) = lower(?4)
           OR domain = lower(?4) OR substr(domain, -length(?4) - 1) = '.' || lower(?4)
           OR remote_mta = lower(?4)
           OR substr(remote_mta, -length(?4) - 1) = '.' || lower(?4)))";

/// One bounce pattern: provider × reason × detail × status.
#[derive(Debug, Clone, Default, serde::Serialize, PartialEq, Eq)]
pub struct BouncePattern {
    pub provider: String,
    pub reason: String,
    pub detail: Option<String>,
    pub status: Option<String>,
    /// Bounced recipients.
    pub count: i64,
    /// Unix seconds.
    pub first_seen: i64,
    pub last_seen: i64,
    /// The newest diagnostic of the group.
    pub example: Option<String>,
}

/// Per provider: what its DMARC reports say it did with our mail, and why
/// its servers bounced it.
#[derive(Debug, Clone, Default, serde::Serialize, PartialEq, Eq)]
pub struct ProviderBounces {
    pub provider: String,
    /// Messages its DMARC reports quarantined and rejected.
    pub quarantined: i64,
    pub rejected: i64,
    /// Bounced recipients.
    pub bounces: i64,
    /// Bounced recipients by `reason` or `reason/detail`.
    pub reasons: std::collections::BTreeMap<String, i64>,
}

impl Store {
    /// Bounce patterns, most frequent first.
    pub fn bounce_patterns(&self, f: &BounceFilter) -> Result<Vec<BouncePattern>> {
        let sql = format!(
            "{BOUNCES},
            g AS (SELECT provider, reason, detail, status, count(*) AS n,
                         min(bounced_at) AS first, max(bounced_at) AS last
                  FROM f GROUP BY provider, reason, detail, status)
            SELECT g.provider, g.reason, g.detail, g.status, g.n, g.first, g.last,
                   (SELECT f.diagnostic FROM f
                     WHERE f.provider = g.provider AND f.reason = g.reason
                       AND f.detail IS g.detail AND f.status IS g.status
                       AND f.diagnostic IS NOT NULL
                     ORDER BY f.bounced_at DESC, f.recipient_row DESC LIMIT 1)
            FROM g
            ORDER BY g.n DESC, g.provider, g.reason, g.detail, g.status"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(params![f.since, f.until, f.domain, f.provider], |r| {
            Ok(BouncePattern {
                provider: r.get(0)?,
                reason: r.get(1)?,
                detail: r.get(2)?,
                status: r.get(3)?,
                count: r.get(4)?,
                first_seen: r.get(5)?,
                last_seen: r.get(6)?,
                example: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// The summary's bounce patterns: per provider with bounces in the
    /// period, its DMARC quarantine and reject counts beside its bounces by
    /// reason; providers whose reports quarantined or rejected mail are listed
    /// too. Empty when the period holds no bounce.
    pub fn provider_bounces(&self, f: &Filter) -> Result<Vec<ProviderBounces>> {
        let bf = BounceFilter {
            since: Some(f.since),
            until: Some(f.until),
            domain: f.domain.clone(),
            provider: None,
        };
        let mut out: Vec<ProviderBounces> = Vec::new();
        let sql = format!(
            "{BOUNCES}
            SELECT provider, reason || coalesce('/' || detail, ''), count(*)
            FROM f GROUP BY 1, 2 ORDER BY 1, 2"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows = stmt.query(params![bf.since, bf.until, bf.domain, bf.provider])?;
        while let Some(row) = rows.next()? {
            let provider: String = row.get(0)?;
            let reason: String = row.get(1)?;
            let n: i64 = row.get(2)?;
            let i = match out.iter().position(|p| p.provider == provider) {
                Some(i) => i,
                None => {
                    out.push(ProviderBounces {
                        provider,
                        ..ProviderBounces::default()
                    });
                    out.len() - 1
                }
            };
            if let Some(p) = out.get_mut(i) {
                p.bounces += n;
                p.reasons.insert(reason, n);
            }
        }
        if out.is_empty() {
            return Ok(out);
        }
        let sql = format!(
            "{PERIOD}
            SELECT rp.provider,
                   coalesce(sum(CASE WHEN rec.disposition = 'quarantine' THEN rec.count END), 0),
                   coalesce(sum(CASE WHEN rec.disposition = 'reject' THEN rec.count END), 0)
            FROM r JOIN report_providers rp ON rp.report = r.id
            JOIN records rec ON rec.report = r.id
            GROUP BY rp.provider"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows = stmt.query(params![f.since, f.until, f.domain])?;
        while let Some(row) = rows.next()? {
            let provider: String = row.get(0)?;
            let (q, rj): (i64, i64) = (row.get(1)?, row.get(2)?);
            match out.iter_mut().find(|p| p.provider == provider) {
                Some(p) => (p.quarantined, p.rejected) = (q, rj),
                None if q + rj > 0 => out.push(ProviderBounces {
                    provider,
                    quarantined: q,
                    rejected: rj,
                    ..ProviderBounces::default()
                }),
                None => {}
            }
        }
        out.sort_by(|a, b| {
            (b.bounces + b.quarantined + b.rejected)
                .cmp(&(a.bounces + a.quarantined + a.rejected))
                .then_with(|| a.provider.cmp(&b.provider))
        });
        Ok(out)
    }
}
