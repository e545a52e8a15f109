//! Bytes as one whole input (a mail or a plain file) → `extract` → every
//! payload through `documents` under small caps, every document parsed and
//! then drained to its end, as the ingester does.
#![no_main]

use dmarcdb::config::Limits;
use dmarcdb::extract::{documents, extract, Budget, ExtractError};
use dmarcdb::parse::{ParseLimits, ReportReader};
use libfuzzer_sys::fuzz_target;

mod common;
use common::tolerate_mail_parser_panics;
use std::convert::Infallible;

fn limits() -> Limits {
    Limits {
        max_decompressed_bytes: 256 << 10,
        max_zip_entries: 16,
        max_nesting: 4,
        ..Limits::default()
    }
}

fn one_line(s: &str) {
    assert!(
        !s.is_empty() && !s.contains(['\n', '\r']),
        "not one line: {s:?}"
    );
}

fn run(data: &[u8], name: Option<&str>) {
    let limits = limits();
    let ex = extract(data, name);
    if let Some(r) = &ex.reason {
        one_line(r);
    }
    let budget = Budget::new(&limits);
    for p in &ex.payloads {
        documents(p, &limits, &budget, &mut |doc| {
            match doc {
                Err(e) => one_line(&e.to_string()),
                Ok(doc) => {
                    let mut rr = ReportReader::with_limits(
                        &mut *doc.reader,
                        ParseLimits {
                            max_depth: 16,
                            max_event_bytes: 16 << 10,
                            max_buffered_records: 64,
                        },
                    );
                    if rr.header().is_ok() {
                        while let Ok(Some(_)) = rr.next_record() {}
                    }
                    drop(rr);
                    if let Err(e) = std::io::copy(doc.reader, &mut std::io::sink()) {
                        one_line(&ExtractError::from_io(&e).to_string());
                    }
                }
            }
            Ok::<(), Infallible>(())
        })
        .unwrap_or_else(|e| match e {});
    }
    assert!(budget.used() <= limits.max_decompressed_bytes);
}

fuzz_target!(|data: &[u8]| {
    tolerate_mail_parser_panics();
    run(data, None);
    run(data, Some("report.xml.gz"));
});
