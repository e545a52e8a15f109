//! `dmarcdb query`: run a shipped query or a user's .sql file, read-only.

use super::{Failure, Global};
use dmarcdb::store::query::{run_readonly, RowSink};
use rusqlite::types::Value;
use std::io::Write;

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
#[command(after_help = concat!(
    "Shipped queries: daily-volume, failing-senders, invalid-inputs, receiver-actions\n\n",
    "Exit codes: 0 success, 1 database or query error, 2 usage error"
))]
pub struct Args {
    /// A shipped query's name, or a file holding one SQL statement.
    #[arg(value_name = "NAME|FILE.sql")]
    query: String,
    /// text is a table (the whole result is held to size its columns); csv and
    /// json stream row by row.
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
    let mut out = Out::new(a.format);
    run_readonly(&path, &sql, &mut out).map_err(|e| {
        Failure::operational(format!("{}: {}", a.query, e.to_string().replace('\n', " ")))
    })?;
    out.finish()
}

/// Writes rows as they come (csv, json) or collects them (text).
struct Out {
    format: Format,
    w: std::io::BufWriter<std::io::Stdout>,
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
    n: usize,
    error: Option<std::io::Error>,
}

impl Out {
    fn new(format: Format) -> Out {
        Out {
            format,
            w: std::io::BufWriter::new(std::io::stdout()),
            columns: Vec::new(),
            rows: Vec::new(),
            n: 0,
            error: None,
        }
    }

    fn write(&mut self, s: &str) -> bool {
        if self.error.is_none() {
            if let Err(e) = self.w.write_all(s.as_bytes()) {
                self.error = Some(e);
            }
        }
        self.error.is_none()
    }

    fn finish(mut self) -> Result<u8, Failure> {
        match self.format {
            Format::Text => {
                let headers: Vec<&str> = self.columns.iter().map(String::as_str).collect();
                let mut t = dmarcdb::summary::table(&headers, &self.rows);
                t.push_str(&format!("({} rows)\n", self.rows.len()));
                self.write(&t);
            }
            Format::Json => {
                let end = if self.n == 0 { "[]\n" } else { "\n]\n" };
                self.write(end);
            }
            Format::Csv => {}
        }
        if self.error.is_none() {
            if let Err(e) = self.w.flush() {
                self.error = Some(e);
            }
        }
        match self.error {
            None => Ok(0),
            Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
            Some(e) => Err(Failure::operational(format!("cannot write output: {e}"))),
        }
    }
}

impl RowSink for Out {
    fn columns(&mut self, columns: &[String]) {
        self.columns = columns.to_vec();
        if let Format::Csv = self.format {
            let line = csv_line(columns.iter().map(String::as_str));
            self.write(&line);
        }
    }

    fn row(&mut self, row: &[Value]) -> bool {
        self.n += 1;
        match self.format {
            Format::Text => {
                self.rows.push(row.iter().map(cell).collect());
                true
            }
            Format::Csv => {
                let cells: Vec<String> = row.iter().map(cell).collect();
                let line = csv_line(cells.iter().map(String::as_str));
                self.write(&line)
            }
            Format::Json => {
                // Built by hand to keep the columns in the query's order.
                let fields: Vec<String> = self
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| {
                        format!("{}:{}", serde_json::Value::from(c.as_str()), json_value(v))
                    })
                    .collect();
                let sep = if self.n == 1 { "[\n  " } else { ",\n  " };
                let text = format!("{sep}{{{}}}", fields.join(","));
                self.write(&text)
            }
        }
    }
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

fn json_value(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Integer(i) => (*i).into(),
        Value::Real(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        other => cell(other).into(),
    }
}

/// One RFC 4180 line.
fn csv_line<'a>(cells: impl Iterator<Item = &'a str>) -> String {
    let fields: Vec<String> = cells
        .map(|s| {
            if s.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        })
        .collect();
    format!("{}\r\n", fields.join(","))
}
