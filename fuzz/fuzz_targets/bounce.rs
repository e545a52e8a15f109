//! Bytes as one bounce input → `bounce::parse`: no panic, errors one line,
//! and what it returns stays within its caps.
#![no_main]

use dmarcdb::bounce::{parse, MAX_RECIPIENTS, MAX_TEXT};
use libfuzzer_sys::fuzz_target;

mod common;
use common::tolerate_mail_parser_panics;

fn short(s: &Option<String>) {
    if let Some(s) = s {
        assert!(s.chars().count() <= MAX_TEXT, "over MAX_TEXT: {} chars", s.len());
    }
}

fuzz_target!(|data: &[u8]| {
    tolerate_mail_parser_panics();
    match parse(data) {
        Ok(b) => {
            assert!(b.recipients.len() <= MAX_RECIPIENTS);
            for r in &b.recipients {
                assert!(!r.address.is_empty());
                short(&r.diagnostic);
                short(&r.remote_mta);
            }
            short(&b.reporting_mta);
            short(&b.original.subject);
            let _ = b.key();
        }
        Err(e) => assert!(!e.is_empty() && !e.contains(['\n', '\r']), "{e:?}"),
    }
});
