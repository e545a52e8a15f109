//! Speed: how fast dmarcdb reads reports, and how much memory it takes, on
//! corpora from `dmarcdb::synthetic` (what `dmarcdb generate` writes).
//!
//! ```text
//! cargo bench --bench speed              # every case (IMAP needs dovecot-imapd; several minutes)
//! cargo bench --bench speed -- parse     # one case (or several: -- floor ingest)
//! ```
//!
//! Cases (each prints one line, or a few, with its figures):
//! - `parse`: `ReportReader` over a 100,000-record report in memory, one
//!   thread, per schema: MB/s of uncompressed XML and records/s.
//! - `floor`: reading and gunzipping the 2,000 × 20 `.xml.gz` corpus in this
//!   process, one thread, bytes thrown away: what any ingest must at least do.
//! - `ingest`: `dmarcdb ingest DIR` (the release binary) into a fresh store:
//!   the same `.xml.gz` corpus (with its ratio to the floor), a mixed corpus
//!   (xml, xml.gz, zip, eml) of 2,000 and of 10,000 reports × 20 records:
//!   reports/s, records/s, peak RSS.
//! - `big`: one `.xml.gz` report of 1,000,000 records: wall time, peak RSS.
//! - `rss`: peak RSS of ingesting 100 and 10,000 mixed reports.
//! - `imap`: `dmarcdb ingest --imap` of 10,000 report mails from a private
//!   Dovecot on loopback (implicit TLS, default batch size): messages/s.
//!   Without Dovecot it says loudly that it skipped.
//!
//! Every process runs under GNU time (`/usr/bin/time`) for its peak RSS;
//! wall time is measured here around it. Each figure is the median of
//! `SPEED_RUNS` runs (default 3; 5 for the in-process cases), fresh store
//! each time. Stores, corpora and the Dovecot live in temporary directories
//! (`DMARCDB_DB` and an empty `DMARCDB_CONFIG` are set, HOME is left alone).
//! Files are read from the page cache: the corpus was just written.
//! `SPEED_IMAP_MESSAGES` changes the number of IMAP messages.

#[allow(dead_code)]
#[path = "../tests/support/dovecot.rs"]
mod dovecot;

use dmarcdb::synthetic::{self, CorpusSpec, ReportPlan, Shape, Wrapping, WrappingChoice};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const SEED: u64 = 1;

fn runs() -> usize {
    std::env::var("SPEED_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(3)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The temporary directory of this bench run, with corpora made on demand.
struct Bench {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        // Default limits: an empty config, so that the user's own does not apply.
        let config = dir.path().join("none.toml");
        std::fs::write(&config, "").unwrap();
        Bench { dir, config }
    }

    /// The corpus of `reports` × `records` in this wrapping (written once).
    fn corpus(&self, reports: u64, records: u64, wrapping: WrappingChoice) -> (PathBuf, u64) {
        let name = match wrapping {
            WrappingChoice::Mixed => "mixed",
            WrappingChoice::All(w) => w.as_str(),
        };
        let dir = self.dir.path().join(format!("{name}-{reports}x{records}"));
        let bytes = dir.join("xml-bytes");
        if !dir.exists() {
            std::fs::create_dir(&dir).unwrap();
            let files = dir.join("files");
            std::fs::create_dir(&files).unwrap();
            let spec = CorpusSpec {
                seed: SEED,
                reports,
                records,
                wrapping,
            };
            let w = synthetic::write_corpus(&files, &spec).unwrap();
            std::fs::write(&bytes, w.xml_bytes.to_string()).unwrap();
        }
        let xml_bytes = std::fs::read_to_string(&bytes).unwrap().parse().unwrap();
        (dir.join("files"), xml_bytes)
    }

    /// A fresh store path (older ones removed).
    fn fresh_db(&self) -> PathBuf {
        let db = self.dir.path().join("bench.sqlite");
        for suffix in ["", "-wal", "-shm", "-journal", ".lock"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        db
    }

    /// `dmarcdb -q ARGS --json` with a fresh store, under GNU time.
    fn dmarcdb(&self, args: &[&str], config: &Path) -> Timed {
        let db = self.fresh_db();
        let time_out = self.dir.path().join("time.out");
        let bin = env!("CARGO_BIN_EXE_dmarcdb");
        let t = Instant::now();
        let out = Command::new("/usr/bin/time")
            .args(["-f", "%M", "-o"])
            .arg(&time_out)
            .args([bin, "-q"])
            .args(args)
            .arg("--json")
            .env("DMARCDB_DB", &db)
            .env("DMARCDB_CONFIG", config)
            .output()
            .expect("/usr/bin/time (GNU time) is needed");
        let wall = t.elapsed().as_secs_f64();
        let rss_kb: f64 = std::fs::read_to_string(&time_out)
            .unwrap_or_default()
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(f64::NAN);
        let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "dmarcdb {args:?} failed: {stderr}");
        Timed {
            wall,
            rss_mb: rss_kb / 1024.0,
            stats,
        }
    }

    /// Ingest `dir` `runs` times into fresh stores; every run must store
    /// `reports` reports and `records` records, none invalid.
    fn ingest(&self, dir: &Path, reports: u64, records: u64, runs: usize) -> (f64, f64) {
        let (mut walls, mut rss) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let t = self.dmarcdb(&["ingest", dir.to_str().unwrap()], &self.config);
            t.check(reports, records);
            walls.push(t.wall);
            rss.push(t.rss_mb);
        }
        (median(walls), median(rss))
    }
}

struct Timed {
    wall: f64,
    rss_mb: f64,
    stats: serde_json::Value,
}

impl Timed {
    fn check(&self, reports: u64, records: u64) {
        let s = &self.stats;
        assert_eq!(
            (
                s["reports"].as_u64(),
                s["records"].as_u64(),
                s["invalid"].as_u64()
            ),
            (Some(reports), Some(records), Some(0)),
            "not every generated report was stored: {s}"
        );
    }
}

/// Nanoseconds this thread has spent on a CPU (immune to other load).
fn thread_cpu_s() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(s.split_whitespace().next()?.parse::<f64>().ok()? / 1e9)
}

fn parse(_b: &Bench) {
    const N: u64 = 100_000;
    // Report 1 is Outlook-shaped (RFC 7489), report 3 GMX-shaped (RFC 9990).
    for (index, shape) in [(1, Shape::Rfc7489), (3, Shape::Rfc9990)] {
        let plan = ReportPlan::new(SEED, index, WrappingChoice::All(Wrapping::Xml));
        assert_eq!(plan.shape(), shape);
        let xml = plan.xml(N);
        let mb = xml.len() as f64 / 1e6;
        let (mut walls, mut cpus) = (Vec::new(), Vec::new());
        for _ in 0..runs().max(5) {
            let cpu0 = thread_cpu_s();
            let t = Instant::now();
            let mut rr = dmarcdb::parse::ReportReader::new(&xml[..]);
            rr.header().expect("header");
            let mut n = 0u64;
            while let Some(r) = rr.next_record().expect("record") {
                n += 1;
                std::hint::black_box(&r);
            }
            walls.push(t.elapsed().as_secs_f64());
            if let (Some(a), Some(b)) = (cpu0, thread_cpu_s()) {
                cpus.push(b - a);
            }
            assert_eq!(n, N);
            assert!(rr.warnings().is_empty(), "{:?}", rr.warnings());
        }
        let (wall, cpu) = (median(walls), median(cpus));
        println!(
            "parse {:<8} {mb:>6.1} MB XML, {N} records: {wall:.3} s = {:>5.0} MB/s, {:>7.0} records/s (on-CPU {cpu:.3} s = {:.0} MB/s), one thread",
            format!("{shape:?}").to_lowercase(),
            mb / wall,
            N as f64 / wall,
            mb / cpu
        );
    }
}

/// Read and gunzip every file of `dir` (one thread, output discarded):
/// (wall seconds, on-CPU seconds, bytes read, bytes after gunzip).
fn floor_once(dir: &Path) -> (f64, f64, u64, u64) {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let cpu0 = thread_cpu_s();
    let t = Instant::now();
    let (mut read, mut out) = (0u64, 0u64);
    let mut buf = vec![0u8; 64 * 1024];
    for p in &paths {
        let bytes = std::fs::read(p).unwrap();
        read += bytes.len() as u64;
        let mut gz = flate2::read::MultiGzDecoder::new(&bytes[..]);
        loop {
            let k = gz.read(&mut buf).unwrap();
            if k == 0 {
                break;
            }
            out += k as u64;
        }
    }
    let wall = t.elapsed().as_secs_f64();
    let cpu = match (cpu0, thread_cpu_s()) {
        (Some(a), Some(b)) => b - a,
        _ => f64::NAN,
    };
    (wall, cpu, read, out)
}

/// The floor of the 2,000 × 20 `.xml.gz` corpus: median wall seconds.
fn floor_figures(b: &Bench, print: bool) -> f64 {
    let (dir, _) = b.corpus(2000, 20, WrappingChoice::All(Wrapping::Gz));
    let (mut walls, mut cpus, mut sizes) = (Vec::new(), Vec::new(), (0, 0));
    for _ in 0..runs().max(5) {
        let (w, c, r, o) = floor_once(&dir);
        walls.push(w);
        cpus.push(c);
        sizes = (r, o);
    }
    let (wall, cpu) = (median(walls), median(cpus));
    if print {
        println!(
            "floor: read + gunzip 2000 .xml.gz files ({:.1} MB -> {:.1} MB XML), in-process, one thread: {wall:.3} s (on-CPU {cpu:.3} s) = {:.0} files/s, {:.0} MB/s of XML",
            sizes.0 as f64 / 1e6,
            sizes.1 as f64 / 1e6,
            2000.0 / wall,
            sizes.1 as f64 / 1e6 / wall
        );
    }
    wall
}

fn floor(b: &Bench) {
    floor_figures(b, true);
}

fn ingest(b: &Bench) {
    let runs = runs();
    println!(
        "ingest into a fresh store (release binary, median of {runs}):\n  {:<28} {:>8} {:>10} {:>12} {:>12}",
        "corpus", "wall s", "reports/s", "records/s", "peak RSS MB"
    );
    let floor = floor_figures(b, false);
    let cases = [
        ("2000 x 20 .xml.gz", 2000, WrappingChoice::All(Wrapping::Gz)),
        ("2000 x 20 mixed", 2000, WrappingChoice::Mixed),
        ("10000 x 20 mixed", 10_000, WrappingChoice::Mixed),
    ];
    for (name, reports, wrapping) in cases {
        let (dir, _) = b.corpus(reports, 20, wrapping);
        let (wall, rss) = b.ingest(&dir, reports, reports * 20, runs);
        let vs_floor = if wrapping == WrappingChoice::All(Wrapping::Gz) {
            format!(
                "  = {:.1}x the read+gunzip floor ({floor:.3} s)",
                wall / floor
            )
        } else {
            String::new()
        };
        println!(
            "  {name:<28} {wall:>8.2} {:>10.0} {:>12.0} {rss:>12.1}{vs_floor}",
            reports as f64 / wall,
            (reports * 20) as f64 / wall
        );
    }
}

fn big(b: &Bench) {
    const N: u64 = 1_000_000;
    let dir = b.dir.path().join("big");
    if !dir.exists() {
        std::fs::create_dir(&dir).unwrap();
        synthetic::write_big(&dir, SEED, N).unwrap();
    }
    let (walls, rss): (Vec<f64>, Vec<f64>) = (0..runs())
        .map(|_| {
            let t = b.dmarcdb(&["ingest", dir.to_str().unwrap()], &b.config);
            t.check(1, N);
            (t.wall, t.rss_mb)
        })
        .unzip();
    let size = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum::<u64>();
    println!(
        "big: one .xml.gz of {N} records ({:.1} MB gzipped), ingest: {:.2} s wall, peak RSS {:.1} MB (median of {})",
        size as f64 / 1e6,
        median(walls),
        median(rss),
        runs()
    );
}

fn rss(b: &Bench) {
    let runs = runs();
    let mut peaks = Vec::new();
    for reports in [100, 10_000] {
        let (dir, _) = b.corpus(reports, 20, WrappingChoice::Mixed);
        let (wall, rss) = b.ingest(&dir, reports, reports * 20, runs);
        println!(
            "rss: {reports:>5} mixed reports x 20 records: peak RSS {rss:.1} MB ({wall:.2} s)"
        );
        peaks.push(rss);
    }
    println!(
        "rss: 10000 reports take {:+.1}% the peak RSS of 100 (median of {runs})",
        (peaks[1] / peaks[0] - 1.0) * 100.0
    );
}

fn imap(b: &Bench) {
    let n: u64 = std::env::var("SPEED_IMAP_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let Some(dv) = dovecot::Dovecot::start() else {
        println!("imap: SKIPPED: Dovecot cannot run here (apt-get install dovecot-imapd)");
        return;
    };
    // Each report as its mail: reporter's usual attachment (zip or xml.gz).
    let spec = CorpusSpec {
        seed: SEED,
        reports: n,
        records: 20,
        wrapping: WrappingChoice::All(Wrapping::Eml),
    };
    let mails: Vec<Vec<u8>> = synthetic::plans(&spec)
        .map(|p| p.mail(spec.records).unwrap())
        .collect();
    let mb = mails.iter().map(|m| m.len()).sum::<usize>() as f64 / 1e6;
    let t = Instant::now();
    dv.append_all("INBOX", &mails);
    println!(
        "imap: {n} mails ({mb:.1} MB) appended to a loopback Dovecot in {:.1} s (not counted)",
        t.elapsed().as_secs_f64()
    );
    drop(mails);
    let config = b.dir.path().join("imap.toml");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&config, dv.account_toml("bench", "implicit")).unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let runs = runs();
    let (mut walls, mut rss) = (Vec::new(), Vec::new());
    for run in 0..runs {
        if run > 0 {
            // Put the mail back for the next run.
            let mut imap = dv.imap();
            imap.command("SELECT Archive");
            imap.command("UID MOVE 1:* INBOX");
        }
        assert_eq!(dv.count("INBOX") as u64, n);
        let t = b.dmarcdb(&["ingest", "--imap"], &config);
        t.check(n, n * 20);
        assert_eq!(dv.count("Archive") as u64, n, "not every mail was moved");
        walls.push(t.wall);
        rss.push(t.rss_mb);
    }
    let wall = median(walls);
    println!(
        "imap: ingest --imap of {n} mails (implicit TLS, loopback): {wall:.2} s = {:.0} messages/s, peak RSS {:.1} MB (median of {runs})",
        n as f64 / wall,
        median(rss)
    );
}

/// A case: its name and what it runs.
type Case = (&'static str, fn(&Bench));

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let cases: [Case; 6] = [
        ("parse", parse),
        ("floor", floor),
        ("ingest", ingest),
        ("big", big),
        ("rss", rss),
        ("imap", imap),
    ];
    let unknown: Vec<&String> = filter
        .iter()
        .filter(|f| !cases.iter().any(|(n, _)| n.contains(f.as_str())))
        .collect();
    if !unknown.is_empty() {
        eprintln!(
            "unknown case {unknown:?}; cases: {}",
            cases.map(|c| c.0).join(", ")
        );
        std::process::exit(2);
    }
    let b = Bench::new();
    for (name, case) in cases {
        if filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str())) {
            case(&b);
            let _ = std::io::stdout().flush();
        }
    }
}
