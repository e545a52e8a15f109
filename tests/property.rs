//! Property test of the whole pipeline (extract → parse → store) on hostile
//! input: random bytes, and fixtures that are bit-flipped, truncated, spliced
//! together, cut into, or stuffed with junk (gzip fixtures also with their
//! *content* mutated and recompressed, so the damage reaches the XML parser).
//!
//! Every input goes through an `Ingester` into an in-memory store with small
//! caps, twice. The properties:
//!
//! * nothing panics and the store never fails;
//! * the input is stored, with a kind; an `invalid` one has a non-empty
//!   one-line reason, and no other kind has one;
//! * feeding the same bytes again is a duplicate of the same input and stores
//!   nothing new; no report is counted twice (the reports table has exactly
//!   the reports the stats counted).
//!
//! `PROPTEST_CASES=5000 cargo test --release --test property` runs longer.

use dmarcdb::config::Limits;
use dmarcdb::fetch::{Origin, RawInput};
use dmarcdb::ingest::Ingester;
use dmarcdb::store::Store;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use proptest::prelude::*;
use proptest::sample::Index;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Every fixture file: (file name, bytes).
fn fixtures() -> &'static [(String, Vec<u8>)] {
    static F: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    F.get_or_init(|| {
        let mut out = Vec::new();
        let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")];
        while let Some(d) = dirs.pop() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(&d)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            entries.sort();
            for p in entries {
                if p.is_dir() {
                    dirs.push(p);
                } else if !p.extension().is_some_and(|e| e == "py" || e == "md") {
                    let bytes = std::fs::read(&p).unwrap();
                    // Big fixtures (bombs) only slow the mutations down.
                    if bytes.len() <= 256 << 10 {
                        let name = p.file_name().unwrap().to_string_lossy().into_owned();
                        out.push((name, bytes));
                    }
                }
            }
        }
        assert!(out.len() > 50, "fixtures look empty: {}", out.len());
        out
    })
}

/// Small caps, so that bombs and deep nesting hit them quickly.
fn limits() -> Limits {
    Limits {
        max_decompressed_bytes: 1 << 20,
        max_zip_entries: 16,
        max_nesting: 3,
        ..Limits::default()
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Flip one bit.
    BitFlip(Index, u8),
    /// Cut the input at a point.
    Truncate(Index),
    /// Insert junk at a point.
    Insert(Index, Vec<u8>),
    /// Remove up to `n` bytes from a point.
    Delete(Index, usize),
    /// Overwrite bytes from a point.
    Overwrite(Index, Vec<u8>),
    /// Repeat a slice (start, length) in place: deep nesting, long runs.
    Repeat(Index, usize, usize),
    /// Replace one ASCII digit by another (counts, dates, addresses, sizes):
    /// the document mostly stays well-formed.
    Digit(Index, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let junk = prop_oneof![
        proptest::collection::vec(any::<u8>(), 1..32),
        // Markup-shaped junk is more interesting to the parser.
        proptest::sample::select(vec![
            &b"<"[..],
            b">",
            b"</",
            b"/>",
            b"<record>",
            b"</record>",
            b"<feedback>",
            b"</feedback>",
            b"<![CDATA[",
            b"]]>",
            b"<!--",
            b"-->",
            b"&",
            b"&#",
            b"&#x10FFFF;",
            b"&amp;",
            b"<?xml version=\"1.0\" encoding=\"UTF-16\"?>",
            b"<!DOCTYPE x [<!ENTITY a \"b\">]>",
            b"\xEF\xBB\xBF",
            b"\xFF\xFE",
            b"\x00",
            b"\r\n\r\n",
            b"\r\n--",
            b"Content-Transfer-Encoding: base64\r\n",
            b"Content-Type: multipart/mixed; boundary=x\r\n",
            b"=?utf-8?b?",
            b"=\r\n",
            b"\x1f\x8b\x08\x00",
            b"PK\x03\x04",
            b"PK\x05\x06",
        ])
        .prop_map(|s| s.to_vec()),
    ];
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::BitFlip(i, b)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), junk.clone()).prop_map(|(i, j)| Mutation::Insert(i, j)),
        (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<Index>(), junk).prop_map(|(i, j)| Mutation::Overwrite(i, j)),
        (any::<Index>(), 1usize..32, 2usize..64).prop_map(|(i, l, n)| Mutation::Repeat(i, l, n)),
        (any::<Index>(), 0u8..10).prop_map(|(i, d)| Mutation::Digit(i, d)),
    ]
}

fn at(i: &Index, v: &[u8]) -> usize {
    if v.is_empty() {
        0
    } else {
        i.index(v.len())
    }
}

fn apply(v: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::BitFlip(i, b) => {
            if !v.is_empty() {
                let p = at(i, v);
                v[p] ^= 1 << b;
            }
        }
        Mutation::Truncate(i) => v.truncate(at(i, v)),
        Mutation::Insert(i, j) => {
            let p = at(i, v);
            v.splice(p..p, j.iter().copied());
        }
        Mutation::Delete(i, n) => {
            let p = at(i, v);
            let end = (p + n).min(v.len());
            v.drain(p..end);
        }
        Mutation::Overwrite(i, j) => {
            let p = at(i, v);
            for (k, b) in j.iter().enumerate() {
                match v.get_mut(p + k) {
                    Some(x) => *x = *b,
                    None => v.push(*b),
                }
            }
        }
        Mutation::Repeat(i, len, n) => {
            let p = at(i, v);
            let end = (p + len).min(v.len());
            let piece = v[p..end].to_vec();
            let rep: Vec<u8> = piece
                .iter()
                .copied()
                .cycle()
                .take(piece.len() * n)
                .collect();
            v.splice(p..p, rep);
        }
        Mutation::Digit(i, d) => {
            let digits: Vec<usize> = (0..v.len()).filter(|&k| v[k].is_ascii_digit()).collect();
            if !digits.is_empty() {
                v[digits[i.index(digits.len())]] = b'0' + d;
            }
        }
    }
}

/// How one test input is made.
#[derive(Debug, Clone)]
enum Shape {
    Random(Vec<u8>),
    /// A fixture with mutations applied to its bytes.
    Mutated(Index, Vec<Mutation>),
    /// A gzip fixture whose decompressed content is mutated and recompressed.
    Recompressed(Index, Vec<Mutation>),
    /// The head of one fixture and the tail of another.
    Splice(Index, Index, Index, Index),
}

fn shape() -> impl Strategy<Value = Shape> {
    let muts = || proptest::collection::vec(mutation(), 1..4);
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..512).prop_map(Shape::Random),
        4 => (any::<Index>(), muts()).prop_map(|(i, m)| Shape::Mutated(i, m)),
        2 => (any::<Index>(), muts()).prop_map(|(i, m)| Shape::Recompressed(i, m)),
        1 => (any::<Index>(), any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(a, b, x, y)| Shape::Splice(a, b, x, y)),
    ]
}

fn gunzip(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    GzDecoder::new(bytes)
        .take(1 << 20)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// The input's bytes and its file-name hint.
fn build(s: &Shape) -> (Vec<u8>, Option<String>) {
    let fx = fixtures();
    match s {
        Shape::Random(v) => (v.clone(), None),
        Shape::Mutated(i, muts) => {
            let (name, bytes) = &fx[i.index(fx.len())];
            let mut v = bytes.clone();
            muts.iter().for_each(|m| apply(&mut v, m));
            (v, Some(name.clone()))
        }
        Shape::Recompressed(i, muts) => {
            let gz: Vec<&(String, Vec<u8>)> =
                fx.iter().filter(|(n, _)| n.ends_with(".gz")).collect();
            let (name, bytes) = gz[i.index(gz.len())];
            let mut v = gunzip(bytes).unwrap_or_else(|| bytes.clone());
            muts.iter().for_each(|m| apply(&mut v, m));
            (gzip(&v), Some(name.clone()))
        }
        Shape::Splice(a, b, x, y) => {
            let (na, va) = &fx[a.index(fx.len())];
            let (_, vb) = &fx[b.index(fx.len())];
            let mut v = va[..at(x, va)].to_vec();
            v.extend_from_slice(&vb[at(y, vb)..]);
            (v, Some(na.clone()))
        }
    }
}

fn count(store: &Store, table: &str) -> u64 {
    store
        .connection()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap() as u64
}

/// Ingest the input twice (and a copy with a byte appended, so that any
/// report in it arrives again in other bytes) and check the properties.
fn check(bytes: Vec<u8>, name: Option<String>) -> Result<(), TestCaseError> {
    let mut store = Store::open_in_memory().unwrap();
    let mut ing = Ingester::new(&mut store, limits());
    let origin = Origin::Path {
        path: name.clone().unwrap_or_else(|| "input".into()),
        mbox_index: None,
    };
    let input = RawInput::new(origin.clone(), name.clone(), bytes.clone());

    let first = ing.ingest(&input).expect("store error on first ingest");
    prop_assert!(!first.duplicate);
    if let Some(r) = &first.reason {
        prop_assert!(!r.trim().is_empty(), "empty reason");
        prop_assert!(!r.contains(['\n', '\r']), "reason not one line: {r:?}");
    }
    let (reports, records) = (ing.stats.reports, ing.stats.records);

    let again = ing.ingest(&input).expect("store error on second ingest");
    prop_assert!(again.duplicate, "same bytes not recognised");
    prop_assert_eq!(again.input, first.input);
    prop_assert_eq!(again.kind, first.kind);
    prop_assert_eq!((ing.stats.reports, ing.stats.records), (reports, records));

    let mut other = bytes;
    other.push(b'\n');
    let third = RawInput::new(origin, name, other);
    ing.ingest(&third).expect("store error on the near copy");
    prop_assert!(ing.stats.reports <= reports + 1);
    ing.commit().unwrap();
    let stats = ing.stats.clone();
    drop(ing);

    let (kind, reason): (String, Option<String>) = store
        .connection()
        .query_row(
            "SELECT kind, reason FROM inputs WHERE id = ?1",
            [first.input],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    prop_assert_eq!(kind.as_str(), first.kind.as_str());
    if kind == "invalid" {
        let r = reason.unwrap_or_default();
        prop_assert!(!r.trim().is_empty(), "invalid without a reason");
        prop_assert!(!r.contains(['\n', '\r']), "reason not one line: {r:?}");
    } else {
        prop_assert!(reason.is_none(), "{kind} with a reason: {reason:?}");
    }
    prop_assert_eq!(count(&store, "inputs"), 2);
    prop_assert_eq!(count(&store, "reports"), stats.reports);
    prop_assert_eq!(count(&store, "records"), stats.records);

    // Read ahead on another thread (as `ingest PATH` does), the same store.
    let mut ahead = Store::open_in_memory().unwrap();
    let mut ing = Ingester::new(&mut ahead, limits());
    for i in [&input, &input, &third] {
        let p = dmarcdb::ingest::prepare(i.clone(), &limits());
        ing.ingest_prepared(p).expect("store error reading ahead");
    }
    ing.commit().unwrap();
    prop_assert_eq!(
        (ing.stats.reports, ing.stats.records, ing.stats.duplicates()),
        (stats.reports, stats.records, stats.duplicates())
    );
    drop(ing);
    for id in [1, 2] {
        prop_assert_eq!(
            ahead.input_fingerprint(id).unwrap(),
            store.input_fingerprint(id).unwrap()
        );
    }
    Ok(())
}

fn seed() -> u64 {
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        });
    eprintln!("property test seed: PROPTEST_RNG_SEED={seed} repeats this run");
    seed
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400),
        failure_persistence: None,
        // A new seed each run, printed (the output of a failing test is shown):
        // PROPTEST_RNG_SEED=N repeats that run.
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed()),
        ..ProptestConfig::default()
    })]

    #[test]
    fn hostile_input_through_the_pipeline(
        s in shape(),
        // A control character in the file-name hint (it names the parts in
        // reasons, which must stay one line).
        twist in proptest::option::weighted(
            0.2,
            (any::<Index>(), proptest::sample::select(vec!['\n', '\r', '\t', '\0', '\u{1b}'])),
        ),
    ) {
        let (bytes, mut name) = build(&s);
        if let (Some(n), Some((i, c))) = (name.as_mut(), twist) {
            let at = n.char_indices().map(|(k, _)| k).nth(i.index(n.chars().count().max(1))).unwrap_or(0);
            n.insert(at, c);
        }
        check(bytes, name)?;
    }
}

/// Every fixture as it is, and with a byte appended, holds the properties too.
#[test]
fn fixtures_through_the_pipeline() {
    for (name, bytes) in fixtures() {
        if let Err(e) = check(bytes.clone(), Some(name.clone())) {
            panic!("{name}: {e}");
        }
    }
}

/// `xml` gzipped is read ahead (or not, as `ahead` says) and stored whole
/// with its `n` records.
fn read_ahead_and_store(xml: &[u8], n: u64, ahead: bool) {
    let p = dmarcdb::ingest::prepare(
        RawInput::new(Origin::Stdin, Some("r.xml".into()), gzip(xml)),
        &Limits::default(),
    );
    assert_eq!(p.is_read_ahead(), ahead, "{n} records");
    let mut store = Store::open_in_memory().unwrap();
    let mut ing = Ingester::new(&mut store, Limits::default());
    ing.ingest_prepared(p).unwrap();
    ing.commit().unwrap();
    assert_eq!(ing.stats.records, n);
}

/// A report too big to wait in line whole is read as it is stored, and
/// stored complete either way.
#[test]
fn big_reports_are_not_read_ahead() {
    for (n, ahead) in [
        (dmarcdb::ingest::MAX_AHEAD_RECORDS as u64, true),
        (dmarcdb::ingest::MAX_AHEAD_RECORDS as u64 + 1, false),
    ] {
        let mut xml = Vec::new();
        dmarcdb::synthetic::SyntheticReport::new("ahead-1", n)
            .read_to_end(&mut xml)
            .unwrap();
        read_ahead_and_store(&xml, n, ahead);
    }
}

/// Records of 1 MB each (a comment at the text-node cap): a handful of them
/// already go over what is read ahead, so waiting inputs stay small.
#[test]
fn fat_records_are_not_read_ahead() {
    let comment = "x".repeat(900_000);
    for (n, ahead) in [(3u64, true), (6, false)] {
        let mut xml = dmarcdb::synthetic::head("fat-1").into_bytes();
        for i in 0..n {
            xml.extend_from_slice(
                format!(
                    "<record><row><source_ip>192.0.2.{i}</source_ip><count>1</count>\
                     <policy_evaluated><disposition>none</disposition><dkim>pass</dkim>\
                     <spf>pass</spf><reason><type>other</type><comment>{comment}</comment>\
                     </reason></policy_evaluated></row><identifiers>\
                     <header_from>example.com</header_from></identifiers><auth_results>\
                     <spf><domain>example.com</domain><result>pass</result></spf>\
                     </auth_results></record>"
                )
                .as_bytes(),
            );
        }
        xml.extend_from_slice(b"</feedback>");
        read_ahead_and_store(&xml, n, ahead);
    }
}
