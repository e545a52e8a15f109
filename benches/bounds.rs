//! Hard bounds at full size: hostile inputs and a 1,000,000-record report
//! through the release binary, one process each, reporting wall time, peak RSS
//! (GNU time's maximum resident set size) and what was stored. Goal: every
//! peak under 100 MB.
//!
//! Run: `cargo bench --bench bounds` (needs /usr/bin/time; writes a few GB
//! of temporary files under $TMPDIR and removes them). One case: `cargo
//! bench --bench bounds -- gzip-zeros`.

use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

const GIB: u64 = 1 << 30;

/// Metadata and policy of the benchmark reports.
fn head() -> String {
    dmarcdb::synthetic::head("bench-1")
}

/// One record as text.
fn record(i: u64) -> String {
    let mut out = Vec::new();
    dmarcdb::synthetic::record(i, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Write `n` bytes produced in chunks by `chunk` through gzip into `path`.
fn gzip_stream(path: &Path, head: &[u8], fill: u8, n: u64, tail: &[u8]) {
    let f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut gz = GzEncoder::new(f, Compression::fast());
    gz.write_all(head).unwrap();
    let block = vec![fill; 1 << 20];
    let mut left = n;
    while left > 0 {
        let k = left.min(block.len() as u64) as usize;
        gz.write_all(&block[..k]).unwrap();
        left -= k as u64;
    }
    gz.write_all(tail).unwrap();
    gz.finish().unwrap().flush().unwrap();
}

fn zip_big_entries(path: &Path, entries: usize, each: u64) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    let block = vec![b' '; 1 << 20];
    for e in 0..entries {
        z.start_file(format!("r{e}.xml"), opts).unwrap();
        z.write_all(head().as_bytes()).unwrap();
        let mut left = each;
        while left > 0 {
            let k = left.min(block.len() as u64) as usize;
            z.write_all(&block[..k]).unwrap();
            left -= k as u64;
        }
    }
    z.finish().unwrap();
}

fn zip_many_entries(path: &Path, entries: usize) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for e in 0..entries {
        z.start_file(format!("e{e}.txt"), opts).unwrap();
        z.write_all(b"x").unwrap();
    }
    z.finish().unwrap();
}

fn nested_gzip(path: &Path, depth: usize) {
    let mut bytes = format!("{}{}</feedback>\n", head(), record(1)).into_bytes();
    for _ in 0..depth {
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(&bytes).unwrap();
        bytes = gz.finish().unwrap();
    }
    std::fs::write(path, bytes).unwrap();
}

fn xml_file(path: &Path, write: impl FnOnce(&mut dyn Write)) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    write(&mut f);
    f.flush().unwrap();
}

fn million_records(path: &Path, n: u64) {
    let f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut gz = GzEncoder::new(f, Compression::default());
    std::io::copy(
        &mut dmarcdb::synthetic::SyntheticReport::new("bench-1", n),
        &mut gz,
    )
    .unwrap();
    gz.finish().unwrap().flush().unwrap();
}

struct Case {
    name: &'static str,
    make: Box<dyn Fn(&Path)>,
    file: &'static str,
}

fn cases() -> Vec<Case> {
    let c = |name, file, make: Box<dyn Fn(&Path)>| Case { name, make, file };
    vec![
        c(
            "gzip-zeros-1GiB",
            "zeros.gz",
            Box::new(|p| gzip_stream(p, b"", 0, GIB, b"")),
        ),
        c(
            "gzip-report-then-3GiB-whitespace",
            "ws.xml.gz",
            Box::new(|p| gzip_stream(p, head().as_bytes(), b' ', 3 * GIB, b"</feedback>")),
        ),
        c(
            "zip-4x1GiB-entries",
            "big.zip",
            Box::new(|p| zip_big_entries(p, 4, GIB)),
        ),
        c(
            "zip-100000-entries",
            "many.zip",
            Box::new(|p| zip_many_entries(p, 100_000)),
        ),
        c(
            "gzip-nested-12-deep",
            "nested.xml.gz",
            Box::new(|p| nested_gzip(p, 12)),
        ),
        c(
            "xml-nesting-1000000-deep",
            "deep.xml",
            Box::new(|p| {
                xml_file(p, |w| {
                    w.write_all(head().as_bytes()).unwrap();
                    for _ in 0..1_000_000 {
                        w.write_all(b"<a>").unwrap();
                    }
                })
            }),
        ),
        c(
            "xml-text-node-300MB (gzip)",
            "text.xml.gz",
            Box::new(|p| {
                let head = format!("{}<record><row><source_ip>", head());
                let tail = b"</source_ip></row></record></feedback>";
                gzip_stream(p, head.as_bytes(), b'x', 300 << 20, tail)
            }),
        ),
        c(
            "xml-attribute-flood",
            "attrs.xml",
            Box::new(|p| {
                xml_file(p, |w| {
                    w.write_all(b"<feedback><report_metadata ").unwrap();
                    for i in 0..2_000_000 {
                        write!(w, "a{i}=\"v\" ").unwrap();
                    }
                    w.write_all(b"/></feedback>").unwrap();
                })
            }),
        ),
        c(
            "xml-billion-laughs",
            "lol.xml",
            Box::new(|p| {
                xml_file(p, |w| {
                    w.write_all(
                        b"<?xml version=\"1.0\"?>\n<!DOCTYPE feedback [\n<!ENTITY lol \"lol\">\n",
                    )
                    .unwrap();
                    for i in 1..10 {
                        let prev = if i == 1 {
                            "lol".to_string()
                        } else {
                            format!("lol{}", i - 1)
                        };
                        writeln!(w, "<!ENTITY lol{i} \"{}\">", format!("&{prev};").repeat(10))
                            .unwrap();
                    }
                    w.write_all(b"]>\n").unwrap();
                    w.write_all(
                        head()
                            .replace("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", "")
                            .replace("synthetic.example.org</org_name>", "&lol9;</org_name>")
                            .as_bytes(),
                    )
                    .unwrap();
                    w.write_all(record(1).as_bytes()).unwrap();
                    w.write_all(b"</feedback>\n").unwrap();
                })
            }),
        ),
        c(
            "xml-external-entity",
            "xxe.xml",
            Box::new(|p| {
                xml_file(p, |w| {
                    w.write_all(b"<?xml version=\"1.0\"?>\n<!DOCTYPE feedback [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n").unwrap();
                    w.write_all(
                        head()
                            .replace("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", "")
                            .replace("synthetic.example.org</org_name>", "&x;</org_name>")
                            .as_bytes(),
                    )
                    .unwrap();
                    w.write_all(record(1).as_bytes()).unwrap();
                    w.write_all(b"</feedback>\n").unwrap();
                })
            }),
        ),
        c(
            "report-1000000-records.xml.gz",
            "million.xml.gz",
            Box::new(|p| million_records(p, 1_000_000)),
        ),
    ]
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let bin = env!("CARGO_BIN_EXE_dmarcdb");
    let dir = tempfile::tempdir().unwrap();
    // Default limits: an empty config, so that the user's own does not apply.
    std::fs::write(dir.path().join("none.toml"), "").unwrap();
    println!(
        "{:<36} {:>10} {:>9} {:>12}  stored",
        "case", "input", "wall s", "peak RSS MB"
    );
    for case in cases() {
        if !filter.is_empty() && !filter.iter().any(|f| case.name.contains(f.as_str())) {
            continue;
        }
        let input: PathBuf = dir.path().join(case.file);
        (case.make)(&input);
        let size = std::fs::metadata(&input).map(|m| m.len()).unwrap_or(0);
        let db = dir.path().join("bench.sqlite");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        let out = Command::new("/usr/bin/time")
            .args(["-f", "%e %M", bin, "-q", "ingest", "--json"])
            .arg(&input)
            .env("DMARCDB_DB", &db)
            .env("DMARCDB_CONFIG", dir.path().join("none.toml"))
            .output()
            .expect("/usr/bin/time (GNU time) is needed");
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("");
        let mut it = last.split_whitespace();
        let wall = it.next().unwrap_or("?");
        let rss_mb = it
            .next()
            .and_then(|k| k.parse::<f64>().ok())
            .map(|k| k / 1024.0)
            .unwrap_or(f64::NAN);
        let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let reason = err
            .lines()
            .find(|l| l.contains("invalid input"))
            .map(|l| l.split(": ").skip(2).collect::<Vec<_>>().join(": "));
        println!(
            "{:<36} {:>9}K {:>9} {:>12.1}  {} reports, {} records{}",
            case.name,
            size / 1024,
            wall,
            rss_mb,
            stats["reports"],
            stats["records"],
            reason
                .map(|r| format!("; invalid: {r}"))
                .unwrap_or_default()
        );
        let _ = std::fs::remove_file(&input);
    }
}
