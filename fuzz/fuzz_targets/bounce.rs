//! Bytes as one bounce input → `bounce::parse`: no panic, errors one line,
//! and what it returns stays within its caps.
#![no_main]

use dmarcdb::bounce::{parse, MAX_RECIPIENTS, MAX_TEXT};
use libfuzzer_sys::fuzz_target;
use std::sync::Once;

/// As in `extract`: mail-parser's debug assertions may fire on hostile MIME;
/// `bounce::parse` catches them, and anything else is still a finding.
fn tolerate_mail_parser_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_mail_parser = info
                .location()
                .is_some_and(|l| l.file().contains("/mail-parser-"));
            if !in_mail_parser {
                fuzzer_hook(info);
            }
        }));
    });
}

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
