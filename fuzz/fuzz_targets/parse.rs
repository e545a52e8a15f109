//! Bytes as one XML document → `ReportReader`: header, then every record,
//! once with the default limits from a slice and once with tight limits from a
//! reader that hands out 7 bytes at a time (chunk boundaries inside
//! multi-byte characters, tags and entities).
#![no_main]

use dmarcdb::parse::{ParseError, ParseLimits, ReportReader};
use libfuzzer_sys::fuzz_target;
use std::io::{BufRead, BufReader};

const TIGHT: ParseLimits = ParseLimits {
    max_depth: 8,
    max_event_bytes: 4096,
    max_buffered_records: 16,
};

fn one_line(e: &ParseError) {
    let s = e.to_string();
    assert!(
        !s.is_empty() && !s.contains(['\n', '\r']),
        "not one line: {s:?}"
    );
}

fn run<R: BufRead>(mut rr: ReportReader<R>) {
    match rr.header() {
        Ok(_) => loop {
            match rr.next_record() {
                Ok(Some(_)) => {}
                Ok(None) => {
                    // The end is sticky.
                    assert!(matches!(rr.next_record(), Ok(None)));
                    break;
                }
                Err(e) => {
                    one_line(&e);
                    // So are errors.
                    assert_eq!(rr.next_record().err(), Some(e));
                    break;
                }
            }
        },
        Err(e) => one_line(&e),
    }
    for w in rr.warnings() {
        assert!(!w.contains('\n'), "warning not one line: {w:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    run(ReportReader::new(data));
    run(ReportReader::with_limits(
        BufReader::with_capacity(7, data),
        TIGHT,
    ));
});
