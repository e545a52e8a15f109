//! The hidden `dmarcdb generate`: the same seed gives byte-identical files,
//! and every generated file ingests as a report (none invalid, nothing
//! deduplicated away, no warnings), with the record count asked for.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use support::bin::Run;

/// Every file under `dir` by name, with its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn generate(run: &Run, out: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["generate", "--json", "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    let o = run.command("", &all).output().unwrap();
    assert!(
        o.status.success(),
        "generate failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// `ingest --json DIR` into the run's fresh database: the counts and stderr.
fn ingest(run: &Run, dir: &Path) -> (serde_json::Value, String) {
    let o = run
        .command("", &["ingest", "--json", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "ingest failed: {stderr}");
    (serde_json::from_slice(&o.stdout).unwrap(), stderr)
}

#[test]
fn same_seed_same_bytes() {
    let run = Run::new();
    let (a, b, c) = (
        run.dir.path().join("a"),
        run.dir.path().join("b"),
        run.dir.path().join("c"),
    );
    let args = ["--reports", "60", "--records", "9", "--seed", "42"];
    generate(&run, &a, &args);
    generate(&run, &b, &args);
    generate(
        &run,
        &c,
        &["--reports", "60", "--records", "9", "--seed", "43"],
    );
    let (fa, fb, fc) = (files(&a), files(&b), files(&c));
    assert_eq!(fa.len(), 60);
    assert!(fa == fb, "two runs with seed 42 differ");
    assert!(fa != fc, "seeds 42 and 43 gave the same corpus");

    let (x, y) = (run.dir.path().join("x"), run.dir.path().join("y"));
    generate(&run, &x, &["--big", "3000", "--seed", "5"]);
    generate(&run, &y, &["--big", "3000", "--seed", "5"]);
    assert!(files(&x) == files(&y), "two --big runs with seed 5 differ");
}

#[test]
fn every_file_ingests_as_a_report() {
    let run = Run::new();
    let out = run.dir.path().join("corpus");
    let w = generate(&run, &out, &["--reports", "80", "--records", "13"]);
    assert_eq!(
        (w["files"].as_u64(), w["records"].as_u64()),
        (Some(80), Some(80 * 13))
    );
    for kind in ["xml", "gz", "zip", "eml"] {
        assert!(
            w[kind].as_u64().unwrap() > 0,
            "no {kind} file in a mixed corpus: {w}"
        );
    }
    let names = files(&out);
    assert!(names.keys().all(|n| n.split('!').count() >= 4), "{names:?}");

    let (stats, stderr) = ingest(&run, &out);
    assert_eq!(stats["inputs"], 80, "{stats}");
    assert_eq!(stats["reports"], 80, "{stats}");
    assert_eq!(stats["records"], 80 * 13, "{stats}");
    assert_eq!(stats["aggregate"], 80, "{stats}");
    assert_eq!(stats["invalid"], 0, "{stats}");
    assert_eq!(stats["duplicates"], 0, "{stats}");
    assert!(!stderr.contains("warning"), "{stderr}");
    // Both schemas, several reporters, IPv4 and IPv6, passing and failing.
    assert_eq!(run.sql("SELECT count(DISTINCT format) FROM reports"), 2);
    assert_eq!(run.sql("SELECT count(DISTINCT reporter) FROM reports"), 5);
    assert_eq!(
        run.sql("SELECT count(DISTINCT policy_domain) FROM reports"),
        4
    );
    assert_eq!(
        run.sql("SELECT count(*) FROM records WHERE source_ip LIKE '%:%'") > 0,
        run.sql("SELECT count(*) FROM records WHERE source_ip NOT LIKE '%:%'") > 0
    );
    assert_eq!(run.sql("SELECT sum(record_count) FROM reports"), 80 * 13);
}

#[test]
fn each_wrapping_and_the_big_report_ingest() {
    for wrapping in ["xml", "gz", "zip", "eml"] {
        let run = Run::new();
        let out = run.dir.path().join(wrapping);
        let w = generate(
            &run,
            &out,
            &["--reports", "25", "--records", "4", "--wrapping", wrapping],
        );
        assert_eq!(w[wrapping], 25, "{w}");
        let (stats, stderr) = ingest(&run, &out);
        assert_eq!(
            (
                stats["reports"].as_u64(),
                stats["records"].as_u64(),
                stats["invalid"].as_u64()
            ),
            (Some(25), Some(100), Some(0)),
            "{wrapping}: {stats} {stderr}"
        );
    }
    let run = Run::new();
    let out = run.dir.path().join("big");
    let w = generate(&run, &out, &["--big", "20000"]);
    assert_eq!((w["files"].as_u64(), w["gz"].as_u64()), (Some(1), Some(1)));
    let names = files(&out);
    assert!(names.keys().all(|n| n.ends_with(".xml.gz")), "{names:?}");
    let (stats, stderr) = ingest(&run, &out);
    assert_eq!(
        (stats["reports"].as_u64(), stats["records"].as_u64()),
        (Some(1), Some(20_000)),
        "{stats} {stderr}"
    );
}

#[test]
fn refuses_a_directory_that_is_not_empty() {
    let run = Run::new();
    let out = run.dir.path().join("full");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("old.xml"), "x").unwrap();
    let o = run
        .command("", &["generate", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not empty"));
    // Hidden: not in the help.
    let help = run.command("", &["--help"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains("generate"));
}
