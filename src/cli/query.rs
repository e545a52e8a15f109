//! `dmarcdb query`: run a shipped query or a user's .sql file, read-only.

use super::{print, Failure, Global};
use dmarcdb::store::query::{run_readonly, Table};
use rusqlite::types::Value;

/// The queries shipped in `sql/queries/`, compiled in so an installed binary has them.
const SHIPPED: &[(&str, &str)] = &[
    (
        "daily-volume",
        include_str!("../../sql/queries/daily-volume.sql"),
    ),
    (
        "failing-senders",
        include_str!("../../sql/queries/failing-senders.sql"),
    ),
    (
        "invalid-inputs",
        include_str!("../../sql/queries/invalid-inputs.sql"),
    ),
    (
        "receiver-actions",
        include_str!("../../sql/queries/receiver-actions.sql"),
    ),
];

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Csv,
    Json,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Shipped queries: daily-volume, failing-senders, invalid-inputs, receiver-actions"
)]
pub struct Args {
    /// A shipped query's name, or a file holding one SQL statement.
    #[arg(value_name = "NAME|FILE.sql")]
    query: String,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub fn run(g: &Global, a: &Args) -> Result<u8, Failure> {
    let sql = match SHIPPED.iter().find(|(n, _)| *n == a.query) {
        Some((_, sql)) => sql.to_string(),
        None if std::path::Path::new(&a.query).is_file() => std::fs::read_to_string(&a.query)
            .map_err(|e| Failure::operational(format!("cannot read {}: {e}", a.query)))?,
        None => {
            let names: Vec<&str> = SHIPPED.iter().map(|(n, _)| *n).collect();
            return Err(Failure::usage(format!(
                "{:?} is neither a shipped query ({}) nor a file",
                a.query,
                names.join(", ")
            )));
        }
    };
    // Opening it once brings the schema up to date; the query then runs on a
    // read-only connection of its own.
    drop(g.existing_store()?);
    let path = g.db.display().to_string();
    let table = run_readonly(&path, &sql).map_err(|e| {
        Failure::operational(format!("{}: {}", a.query, e.to_string().replace('\n', " ")))
    })?;
    let out = match a.format {
        Format::Text => text(&table),
        Format::Csv => csv(&table),
        Format::Json => json(&table),
    };
    print(&out)?;
    Ok(0)
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(t) => t.clone(),
        Value::Blob(b) => dmarcdb::ingest::hex(b),
    }
}

fn text(t: &Table) -> String {
    let headers: Vec<&str> = t.columns.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = t
        .rows
        .iter()
        .map(|r| r.iter().map(cell).collect())
        .collect();
    let mut out = dmarcdb::summary::table(&headers, &rows);
    out.push_str(&format!("({} rows)\n", t.rows.len()));
    out
}

fn csv(t: &Table) -> String {
    fn field(s: &str) -> String {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>| cells.iter().map(|c| field(c)).collect::<Vec<_>>().join(",");
    out.push_str(&line(t.columns.clone()));
    out.push_str("\r\n");
    for r in &t.rows {
        out.push_str(&line(r.iter().map(cell).collect()));
        out.push_str("\r\n");
    }
    out
}

fn json(t: &Table) -> String {
    let rows: Vec<serde_json::Value> = t
        .rows
        .iter()
        .map(|r| {
            let mut o = serde_json::Map::new();
            for (c, v) in t.columns.iter().zip(r) {
                let j = match v {
                    Value::Null => serde_json::Value::Null,
                    Value::Integer(i) => (*i).into(),
                    Value::Real(f) => serde_json::Number::from_f64(*f)
                        .map(serde_json::Value::Number)
                        .unwrap_or(serde_json::Value::Null),
                    other => cell(other).into(),
                };
                o.insert(c.clone(), j);
            }
            serde_json::Value::Object(o)
        })
        .collect();
    format!(
        "{}\n",
        serde_json::to_string_pretty(&rows).unwrap_or_default()
    )
}
