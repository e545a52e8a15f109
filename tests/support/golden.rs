//! Golden-file support: ingest one file into a fresh store and describe what
//! was stored, one line per input and one per report; compare with a file
//! under `tests/`, rewriting it when `UPDATE_EXPECT` is set.

use dmarcdb::config::Limits;
use dmarcdb::fetch::{Origin, RawInput};
use dmarcdb::ingest::Ingester;
use dmarcdb::store::Store;
use std::path::{Path, PathBuf};

/// Files directly in `dir`, sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

/// Files below `dir`, recursively, sorted.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in files_and_dirs(dir) {
        if p.is_dir() {
            out.extend(files_below(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn files_and_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    v.sort();
    v
}

/// Ingest one file into a fresh store and describe what was stored.
pub fn describe(root: &Path, path: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    let mut store = Store::open(&db).unwrap();
    let mut ing = Ingester::new(&mut store, Limits::default());
    let rel = path.strip_prefix(root).unwrap().display().to_string();
    let input = RawInput::new(
        Origin::Path {
            path: rel.clone(),
            mbox_index: None,
        },
        path.file_name().map(|n| n.to_string_lossy().into_owned()),
        std::fs::read(path).unwrap(),
    );
    let outcome = ing.ingest(&input).unwrap();
    ing.commit().unwrap();
    drop(ing);
    drop(store);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut out = format!("{rel}\t{}", outcome.kind.as_str());
    if let Some(r) = &outcome.reason {
        out.push_str(&format!("\treason: {r}"));
    }
    let warnings: Option<String> = conn
        .query_row("SELECT warnings FROM inputs", [], |r| r.get(0))
        .unwrap();
    if let Some(w) = warnings {
        out.push_str(&format!("\tinput warnings: {w}"));
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
                    coalesce(json_array_length(r.warnings), 0),
                    CASE WHEN r.salvaged THEN ' | SALVAGED' ELSE '' END
             FROM reports r ORDER BY r.id",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok(format!(
                "  report {} | {} | {} | {}..{} | records {} messages {} | {} p={} | first {} | dkim {} spf {} | warnings {}{}\n",
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
                r.get::<_, String>(13)?,
            ))
        })
        .unwrap();
    for row in rows {
        out.push_str(&row.unwrap());
    }
    out
}

/// Compare `actual` with the golden file (relative to the crate root).
pub fn check(golden: &str, actual: &str) {
    let expected_path = Path::new(env!("CARGO_MANIFEST_DIR")).join(golden);
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&expected_path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    if expected != actual {
        let actual_path = expected_path.with_extension("actual");
        std::fs::write(&actual_path, actual).unwrap();
        let first = expected
            .lines()
            .zip(actual.lines())
            .find(|(e, a)| e != a)
            .map(|(e, a)| format!("expected: {e}\n  actual: {a}"))
            .unwrap_or_else(|| "the files differ in length".into());
        panic!(
            "output differs from {golden} (full output in {}; UPDATE_EXPECT=1 rewrites it):\n{first}",
            actual_path.display()
        );
    }
}
