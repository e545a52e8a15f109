//! `dmarcdb invalid`: the inputs that could not be read, and why.

use super::{print, Failure, Global};
use dmarcdb::extract::printable_name;
use dmarcdb::summary::{parse_when, utc, When};
use std::io::Write;

#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Exit codes: 0 success, 1 database error or no such input, 2 usage error"
)]
pub struct Args {
    #[command(subcommand)]
    show: Option<Show>,
    /// Only inputs received since YYYY-MM-DD (UTC) or in the last N days (Nd).
    #[arg(long, value_name = "DATE|Nd", value_parser = parse_when)]
    since: Option<When>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Show {
    /// Print one invalid input: where it came from, why, and its headers.
    Show {
        /// The input's id (first column of `dmarcdb invalid`).
        id: i64,
        /// Write the input's raw bytes to stdout instead.
        #[arg(long)]
        raw: bool,
    },
}

pub fn run(g: &Global, a: &Args) -> Result<u8, Failure> {
    let store = g.existing_store()?;
    let db = |e: dmarcdb::store::StoreError| Failure::operational(e.to_string());
    if let Some(Show::Show { id, raw }) = &a.show {
        let Some(row) = store
            .invalid_inputs(i64::MIN)
            .map_err(db)?
            .into_iter()
            .find(|r| r.id == *id)
        else {
            return Err(Failure::operational(format!(
                "no invalid input with id {id}"
            )));
        };
        if *raw {
            let bytes = store
                .raw_input(*id)
                .map_err(db)?
                .map(|r| r.bytes)
                .unwrap_or_default();
            let mut out = std::io::stdout().lock();
            return match out.write_all(&bytes).and_then(|_| out.flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(Failure::operational(format!("cannot write output: {e}")))
                }
                _ => Ok(0),
            };
        }
        let mut text = format!(
            "input {}\nsource:   {}\nreceived: {} UTC\nsize:     {} bytes\nreason:   {}\n",
            row.id,
            printable_name(&row.source),
            utc(row.received_at),
            row.size,
            printable_name(&row.reason)
        );
        if let Some(s) = &row.subject {
            text.push_str(&format!("subject:  {}\n", printable_name(s)));
        }
        if let Some(f) = &row.from {
            text.push_str(&format!("from:     {}\n", printable_name(f)));
        }
        text.push_str(&format!(
            "(raw bytes: dmarcdb invalid show {} --raw)\n",
            row.id
        ));
        print(&text)?;
        return Ok(0);
    }
    let now = chrono::Utc::now().timestamp();
    let since = a.since.as_ref().map_or(i64::MIN, |w| w.since(now));
    let rows = store.invalid_inputs(since).map_err(db)?;
    if a.json {
        print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        ))?;
        return Ok(0);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                utc(r.received_at),
                printable_name(&r.source),
                printable_name(&r.reason),
            ]
        })
        .collect();
    let mut text = dmarcdb::summary::table(&["id", "received (UTC)", "source", "reason"], &table);
    text.push_str(&format!(
        "({} invalid inputs; `dmarcdb invalid show ID` for one)\n",
        rows.len()
    ));
    print(&text)?;
    Ok(0)
}
