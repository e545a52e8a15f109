//! Read-side queries: the summary's SQL and running users' queries.

use super::{Result, Store};
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
      AND (?3 IS NULL OR policy_domain = ?3 OR policy_domain LIKE '%.' || ?3))";

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

fn list(v: Option<String>) -> Vec<String> {
    v.map(|s| {
        let mut items: Vec<String> = s
            .split('\u{1f}')
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect();
        items.sort();
        items.dedup();
        items
    })
    .unwrap_or_default()
}

impl Store {
    /// The end of the newest report, if any report is stored.
    pub fn newest_report_end(&self, domain: Option<&str>) -> Result<Option<i64>> {
        Ok(self.conn.query_row(
            "SELECT max(end_date) FROM reports
             WHERE ?1 IS NULL OR policy_domain = ?1 OR policy_domain LIKE '%.' || ?1",
            [domain],
            |r| r.get(0),
        )?)
    }

    /// Totals per policy domain in the period, biggest first.
    pub fn domain_totals(&self, f: &Filter) -> Result<Vec<DomainTotals>> {
        let sql = format!(
            "{PERIOD}
            SELECT r.policy_domain,
                   (SELECT count(*) FROM r r2 WHERE r2.policy_domain = r.policy_domain),
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
    pub fn failing_senders(&self, f: &Filter, domain: &str) -> Result<Vec<FailingSender>> {
        // \x1f separates list items so that commas inside values survive.
        let sql = format!(
            "{PERIOD},
            fr AS (
                SELECT rec.*, r.reporter FROM records rec JOIN r ON r.id = rec.report
                WHERE r.policy_domain = ?4
                  AND (coalesce(rec.dkim, '') <> 'pass' OR coalesce(rec.spf, '') <> 'pass'))
            SELECT fr.source_ip,
                   sum(fr.count),
                   sum(CASE WHEN coalesce(fr.dkim, '') <> 'pass' AND coalesce(fr.spf, '') <> 'pass'
                            THEN fr.count ELSE 0 END) AS dmarc_fail,
                   sum(CASE WHEN coalesce(fr.dkim, '') <> 'pass' THEN fr.count ELSE 0 END),
                   sum(CASE WHEN coalesce(fr.spf, '') <> 'pass' THEN fr.count ELSE 0 END),
                   (SELECT group_concat(x, char(31)) FROM (
                        SELECT DISTINCT g.header_from AS x FROM fr g
                        WHERE g.source_ip = fr.source_ip AND g.header_from IS NOT NULL)),
                   (SELECT group_concat(x, char(31)) FROM (
                        SELECT DISTINCT g.envelope_from AS x FROM fr g
                        WHERE g.source_ip = fr.source_ip AND g.envelope_from IS NOT NULL)),
                   (SELECT group_concat(x, char(31)) FROM (
                        SELECT DISTINCT g.reporter AS x FROM fr g
                        WHERE g.source_ip = fr.source_ip AND g.reporter IS NOT NULL)),
                   (SELECT group_concat(x, char(31)) FROM (
                        SELECT coalesce(d2.disposition, '?') || '=' || sum(d2.count) AS x
                        FROM fr d2 WHERE d2.source_ip = fr.source_ip GROUP BY d2.disposition)),
                   (SELECT group_concat(x, char(31)) FROM (
                        SELECT DISTINCT coalesce(d.domain, '?') || '=' || coalesce(d.result, '?') AS x
                        FROM dkim_results d JOIN fr f2 ON d.record = f2.id
                        WHERE f2.source_ip = fr.source_ip)),
                   (SELECT group_concat(x, char(31)) FROM (
                        SELECT DISTINCT coalesce(s.domain, '?') || '=' || coalesce(s.result, '?') AS x
                        FROM spf_results s JOIN fr f3 ON s.record = f3.id
                        WHERE f3.source_ip = fr.source_ip))
            FROM fr
            GROUP BY fr.source_ip
            ORDER BY dmarc_fail DESC, 2 DESC, 1"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(params![f.since, f.until, f.domain, domain], |r| {
            Ok(FailingSender {
                source_ip: r.get(0)?,
                messages: r.get(1)?,
                dmarc_fail: r.get(2)?,
                dkim_fail: r.get(3)?,
                spf_fail: r.get(4)?,
                header_from: list(r.get(5)?),
                envelope_from: list(r.get(6)?),
                reporters: list(r.get(7)?),
                dispositions: list(r.get(8)?),
                dkim_results: list(r.get(9)?),
                spf_results: list(r.get(10)?),
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
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

/// The result of a user's query: column names and rows.
#[derive(Debug, Clone)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// Run one SQL statement read-only and collect its rows.
pub fn run_readonly(conn: &Connection, sql: &str) -> Result<Table> {
    conn.pragma_update(None, "query_only", "ON")?;
    let out = (|| {
        let mut stmt = conn.prepare(sql)?;
        let columns: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
        let n = columns.len();
        let mut rows = Vec::new();
        let mut q = stmt.query([])?;
        while let Some(row) = q.next()? {
            let mut vals = Vec::with_capacity(n);
            for i in 0..n {
                vals.push(row.get::<_, Value>(i)?);
            }
            rows.push(vals);
        }
        Ok(Table { columns, rows })
    })();
    conn.pragma_update(None, "query_only", "OFF")?;
    out
}
