//! The shared corpus of real-world mails and files (`../shared/corpus`): every
//! aggregate file yields the reports recorded in `tests/corpus-expected.txt`
//! or is an invalid input listed there with its reason; the failure, TLS-RPT
//! and bounce mails get their kinds. Nothing panics.
//!
//! `UPDATE_EXPECT=1 cargo test --test corpus` rewrites the expected file; read
//! the diff before committing it.

use dmarcdb::config::Limits;
use dmarcdb::fetch::{Origin, RawInput};
use dmarcdb::ingest::Ingester;
use dmarcdb::store::Store;
use std::path::{Path, PathBuf};

fn corpus() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    if p.is_dir() {
        Some(p)
    } else {
        assert!(
            std::env::var("CI").is_err(),
            "../shared/corpus is missing in CI"
        );
        eprintln!("\n*** SKIPPED: ../shared/corpus not found; the corpus test did not run ***\n");
        None
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

/// Ingest one file into a fresh store and describe what was stored.
fn describe(root: &Path, path: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    let mut store = Store::open(&db).unwrap();
    let mut ing = Ingester::new(&mut store, Limits::default());
    let rel = path.strip_prefix(root).unwrap().display().to_string();
    let input = RawInput {
        origin: Origin::Path {
            path: rel.clone(),
            mbox_index: None,
        },
        name: path.file_name().map(|n| n.to_string_lossy().into_owned()),
        bytes: std::fs::read(path).unwrap(),
    };
    let outcome = ing.ingest(&input).unwrap();
    ing.commit().unwrap();
    drop(ing);
    drop(store);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut out = format!("{rel}\t{}", outcome.kind.as_str());
    if let Some(r) = &outcome.reason {
        out.push_str(&format!("\treason: {r}"));
    }
    out.push('\n');
    let mut stmt = conn
        .prepare(
            "SELECT r.reporter, r.report_id, r.policy_domain, r.begin_date, r.end_date,
                    r.record_count, r.message_count, r.format, coalesce(r.p, '-'),
                    (SELECT source_ip || ',' || coalesce(disposition, '-') || ',' ||
                            coalesce(dkim, '-') || ',' || coalesce(spf, '-')
                     FROM records WHERE report = r.id ORDER BY id LIMIT 1),
                    (SELECT count(*) FROM dkim_results d JOIN records c ON c.id = d.record WHERE c.report = r.id),
                    (SELECT count(*) FROM spf_results s JOIN records c ON c.id = s.record WHERE c.report = r.id),
                    coalesce(json_array_length(r.warnings), 0)
             FROM reports r ORDER BY r.id",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok(format!(
                "  report {} | {} | {} | {}..{} | records {} messages {} | {} p={} | first {} | dkim {} spf {} | warnings {}\n",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, String>(8)?,
                r.get::<_, Option<String>>(9)?.unwrap_or_default(),
                r.get::<_, i64>(10)?,
                r.get::<_, i64>(11)?,
                r.get::<_, i64>(12)?,
            ))
        })
        .unwrap();
    for row in rows {
        out.push_str(&row.unwrap());
    }
    out
}

#[test]
fn corpus_matches_expected() {
    let Some(root) = corpus() else { return };
    let expected_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus-expected.txt");
    let mut actual = String::from(
        "# What dmarcdb stores for each file of ../shared/corpus (generated; reviewed by hand).\n\
         # Regenerate: UPDATE_EXPECT=1 cargo test --test corpus\n",
    );
    let (mut reports, mut invalid) = (0, 0);
    for dir in ["aggregate", "aggregate-bis", "failure", "tlsrpt", "bounce"] {
        for f in files(&root.join(dir)) {
            let d = describe(&root, &f);
            reports += d.matches("\n  report ").count();
            if d.lines().next().is_some_and(|l| l.contains("\tinvalid")) {
                invalid += 1;
            }
            actual.push_str(&d);
        }
    }
    eprintln!("corpus: {reports} reports stored, {invalid} invalid inputs (each listed with its reason in tests/corpus-expected.txt)");
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&expected_path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    if expected != actual {
        let actual_path = expected_path.with_extension("actual");
        std::fs::write(&actual_path, &actual).unwrap();
        let first = expected
            .lines()
            .zip(actual.lines())
            .find(|(e, a)| e != a)
            .map(|(e, a)| format!("expected: {e}\n  actual: {a}"))
            .unwrap_or_else(|| "the files differ in length".into());
        panic!(
            "corpus output differs from tests/corpus-expected.txt (full output in {}):\n{first}",
            actual_path.display()
        );
    }
}

/// The mails that are not aggregate reports get their kinds.
#[test]
fn corpus_kinds() {
    let Some(root) = corpus() else { return };
    let manifest = std::fs::read_to_string(root.join("MANIFEST.tsv")).unwrap();
    let mut counts = std::collections::BTreeMap::new();
    let mut wrong = Vec::new();
    for (dir, want) in [
        ("tlsrpt", "tlsrpt"),
        ("bounce", "bounce"),
        ("failure", "failure"),
    ] {
        for f in files(&root.join(dir)) {
            let d = describe(&root, &f);
            let kind = d
                .lines()
                .next()
                .unwrap()
                .split('\t')
                .nth(1)
                .unwrap()
                .to_string();
            *counts.entry(format!("{dir}→{kind}")).or_insert(0) += 1;
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            let line = manifest
                .lines()
                .find(|l| l.starts_with(&format!("{dir}/{name}\t")))
                .unwrap_or("");
            let negative = line.contains("negative")
                || line.contains("not a bounce")
                || line.contains("(not DMARC)");
            if kind != want && !negative {
                wrong.push(format!("{dir}/{name}: {kind}"));
            }
        }
    }
    eprintln!("corpus kinds: {counts:?}");
    assert!(wrong.is_empty(), "wrong kinds: {wrong:#?}");
}
