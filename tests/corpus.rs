//! The shared corpus of real-world mails and files (`../shared/corpus`): every
//! aggregate file yields the reports recorded in `tests/corpus-expected.txt`
//! or is an invalid input listed there with its reason; the failure, TLS-RPT
//! and bounce mails get their kinds. Nothing panics.
//!
//! `UPDATE_EXPECT=1 cargo test --test corpus` rewrites the expected file; read
//! the diff before committing it.

mod support;

use std::path::PathBuf;
use support::golden::{check, describe, files};

fn corpus() -> Option<PathBuf> {
    support::shared_corpus("", "the corpus test")
}

#[test]
fn corpus_matches_expected() {
    let Some(root) = corpus() else { return };
    let mut actual = String::from(
        "# What dmarcdb stores for each file of ../shared/corpus (generated; reviewed by hand).\n\
         # Regenerate: UPDATE_EXPECT=1 cargo test --test corpus\n",
    );
    let (mut reports, mut invalid, mut files_seen) = (0, 0, 0);
    for dir in ["aggregate", "aggregate-bis", "failure", "tlsrpt", "bounce"] {
        for f in files(&root.join(dir)) {
            files_seen += 1;
            let d = describe(&root, &f);
            reports += d.matches("\n  report ").count();
            if d.lines().next().is_some_and(|l| l.contains("\tinvalid")) {
                invalid += 1;
            }
            actual.push_str(&d);
        }
    }
    assert!(files_seen > 100, "corpus looks empty: {files_seen} files");
    eprintln!("corpus: {files_seen} files, {reports} reports stored, {invalid} invalid inputs (each listed with its reason in tests/corpus-expected.txt)");
    check("tests/corpus-expected.txt", &actual);
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
            // Documented decisions: ARF abuse complaints are not DMARC failure
            // reports (kind other); the vacation reply and the ordinary mail in
            // bounce/ are not bounces (kind other).
            let expect = if line.contains("abuse")
                || line.contains("not a bounce")
                || line.contains("negative: ordinary mail")
            {
                "other"
            } else {
                want
            };
            if kind != expect {
                wrong.push(format!("{dir}/{name}: {kind}, expected {expect}"));
            }
        }
    }
    eprintln!("corpus kinds: {counts:?}");
    assert!(wrong.is_empty(), "wrong kinds: {wrong:#?}");
}
