//! Public-API tests of the parse module, plus two ignored measurements:
//!
//! ```text
//! cargo test --release --test parse -- --ignored --nocapture --test-threads=1
//! ```
//! `throughput` writes a 200k-record report to the temp dir (not committed)
//! and reports MB/s; `flat_memory` streams 1,000,000 generated records and
//! checks that peak RSS does not grow with them (run it alone: peak RSS is
//! per process).

use dmarcdb::parse::{parse_slice, Format, ParseError, ParseLimits, ReportReader};
use dmarcdb::synthetic::SyntheticReport;
use std::io::{self, BufRead, Write};
use std::time::Instant;

fn drain<R: BufRead>(rr: &mut ReportReader<R>) -> (u64, i64) {
    rr.header().expect("header");
    let (mut n, mut total) = (0u64, 0i64);
    while let Some(r) = rr.next_record().expect("record") {
        n += 1;
        total += r.count;
    }
    (n, total)
}

#[test]
fn public_api_smoke() {
    let limits = ParseLimits::default();
    assert_eq!(
        (
            limits.max_depth,
            limits.max_event_bytes,
            limits.max_buffered_records
        ),
        (64, 1 << 20, 100_000)
    );
    let doc = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/reports/rfc9990-full.xml"
    ))
    .unwrap();
    let (h, recs, warnings) = parse_slice(&doc).unwrap();
    assert_eq!(h.format, Format::Rfc9990);
    assert_eq!(recs.len(), 2);
    assert!(warnings.is_empty());
    assert_eq!(
        parse_slice(b"").unwrap_err().to_string(),
        "XML: no <feedback> element"
    );
    assert!(matches!(
        parse_slice(b"<feedback>").unwrap_err(),
        ParseError::Truncated(_)
    ));
    let mut rr = ReportReader::new(SyntheticReport::new("bench-1", 1000));
    assert_eq!(drain(&mut rr).0, 1000);
}

#[test]
#[ignore = "measurement; run with --release --ignored --nocapture"]
fn throughput() {
    let path = std::env::temp_dir().join("dmarcdb-parse-bench-200k.xml");
    let n = 200_000u64;
    if !path.exists() {
        let mut g = SyntheticReport::new("bench-1", n);
        let mut f = io::BufWriter::new(std::fs::File::create(&path).unwrap());
        io::copy(&mut g, &mut f).unwrap();
        f.flush().unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    let mb = bytes.len() as f64 / 1e6;
    eprintln!("{}: {mb:.1} MB, {n} records", path.display());
    let (mut best, mut best_cpu) = (f64::MAX, f64::MAX);
    for _ in 0..5 {
        let cpu0 = thread_cpu_ns();
        let t = Instant::now();
        let mut rr = ReportReader::new(&bytes[..]);
        let (count, _) = drain(&mut rr);
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(count, n);
        best = best.min(secs);
        if let (Some(a), Some(b)) = (cpu0, thread_cpu_ns()) {
            best_cpu = best_cpu.min((b - a) as f64 / 1e9);
        }
    }
    eprintln!(
        "in memory: best wall {best:.3} s = {:.0} MB/s, {:.0} records/s; best on-CPU {best_cpu:.3} s = {:.0} MB/s",
        mb / best,
        n as f64 / best,
        mb / best_cpu
    );
    let t = Instant::now();
    let f = io::BufReader::new(std::fs::File::open(&path).unwrap());
    let (count, _) = drain(&mut ReportReader::new(f));
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(count, n);
    eprintln!("from file (BufReader): {secs:.3} s = {:.0} MB/s", mb / secs);
}

/// Nanoseconds this thread has spent on a CPU (immune to other load).
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn peak_rss_kb() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
#[ignore = "measurement; run with --release --ignored --nocapture"]
fn flat_memory() {
    // Warm up so that allocator and buffers reach their steady size.
    drain(&mut ReportReader::new(SyntheticReport::new(
        "bench-1", 10_000,
    )));
    let before = peak_rss_kb();
    let t = Instant::now();
    let n = 1_000_000;
    let (count, total) = drain(&mut ReportReader::new(SyntheticReport::new("bench-1", n)));
    assert_eq!(count, n);
    assert!(total > 0);
    let after = peak_rss_kb();
    eprintln!(
        "1,000,000 records (~818 MB of XML) in {:.1} s; peak RSS before {before:?} kB, after {after:?} kB",
        t.elapsed().as_secs_f64()
    );
    if let (Some(b), Some(a)) = (before, after) {
        assert!(a < b + 16 * 1024, "peak RSS grew by {} kB", a - b);
    }
}
