//! `dmarcdb generate` (hidden): write a synthetic corpus for benchmarks and
//! side-by-side runs. The reports come from `dmarcdb::synthetic`; the same
//! seed gives byte-identical files.

use super::{print, say, Failure, Global};
use dmarcdb::synthetic::{self, CorpusSpec, Wrapping, WrappingChoice};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The directory to write into (created if missing; must be empty).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// How many reports (one file each).
    #[arg(long, default_value_t = 100, conflicts_with = "big")]
    reports: u64,
    /// Records per report.
    #[arg(long, default_value_t = 20, conflicts_with = "big")]
    records: u64,
    /// Seed of the generator: the same seed gives the same files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How reports are wrapped: a realistic mix, or all the same way.
    #[arg(long, value_enum, default_value_t = WrappingArg::Mixed, conflicts_with = "big")]
    wrapping: WrappingArg,
    /// Instead: one .xml.gz report with this many records, streamed to disk.
    #[arg(long, value_name = "RECORDS")]
    big: Option<u64>,
    /// Print what was written as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum WrappingArg {
    Mixed,
    Xml,
    Gz,
    Zip,
    Eml,
}

pub fn run(g: &Global, a: &Args) -> Result<u8, Failure> {
    let io_err = |e: std::io::Error| Failure::operational(format!("{}: {e}", a.out.display()));
    std::fs::create_dir_all(&a.out).map_err(io_err)?;
    if std::fs::read_dir(&a.out).map_err(io_err)?.next().is_some() {
        return Err(Failure::usage(format!(
            "generate: {} is not empty (old files would mix with the new corpus)",
            a.out.display()
        )));
    }
    let written = match a.big {
        Some(records) => {
            synthetic::write_big(&a.out, a.seed, records)
                .map_err(io_err)?
                .1
        }
        None => {
            let wrapping = match a.wrapping {
                WrappingArg::Mixed => WrappingChoice::Mixed,
                WrappingArg::Xml => WrappingChoice::All(Wrapping::Xml),
                WrappingArg::Gz => WrappingChoice::All(Wrapping::Gz),
                WrappingArg::Zip => WrappingChoice::All(Wrapping::Zip),
                WrappingArg::Eml => WrappingChoice::All(Wrapping::Eml),
            };
            let spec = CorpusSpec {
                seed: a.seed,
                reports: a.reports,
                records: a.records,
                wrapping,
            };
            synthetic::write_corpus(&a.out, &spec).map_err(io_err)?
        }
    };
    if a.json {
        print(&format!(
            "{}\n",
            serde_json::to_string(&written).unwrap_or_default()
        ))?;
    }
    if !g.quiet {
        let w = &written;
        say(&format!(
            "wrote {} files to {} ({} xml, {} xml.gz, {} zip, {} eml): {} reports, {} records, {} bytes ({} bytes of XML)",
            w.files,
            a.out.display(),
            w.xml,
            w.gz,
            w.zip,
            w.eml,
            w.reports,
            w.records,
            w.bytes,
            w.xml_bytes
        ));
    }
    Ok(0)
}
