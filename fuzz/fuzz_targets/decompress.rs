//! Bytes as a payload named `x.gz` and as one named `x.zip` → `documents`
//! under small caps, every document drained to its end.
#![no_main]

use dmarcdb::config::Limits;
use dmarcdb::extract::{documents, Budget, ExtractError, Payload};
use libfuzzer_sys::fuzz_target;
use std::borrow::Cow;
use std::convert::Infallible;

fn run(data: &[u8], name: &str) {
    let limits = Limits {
        max_decompressed_bytes: 256 << 10,
        max_zip_entries: 16,
        max_nesting: 4,
        ..Limits::default()
    };
    let budget = Budget::new(&limits);
    let payload = Payload {
        name: name.to_string(),
        data: Cow::Borrowed(data),
    };
    documents(&payload, &limits, &budget, &mut |doc| {
        let e = match doc {
            Err(e) => Some(e),
            Ok(doc) => std::io::copy(doc.reader, &mut std::io::sink())
                .err()
                .map(|e| ExtractError::from_io(&e)),
        };
        if let Some(e) = e {
            let s = e.to_string();
            assert!(
                !s.is_empty() && !s.contains(['\n', '\r']),
                "not one line: {s:?}"
            );
        }
        Ok::<(), Infallible>(())
    })
    .unwrap_or_else(|e| match e {});
    assert!(budget.used() <= limits.max_decompressed_bytes);
}

fuzz_target!(|data: &[u8]| {
    run(data, "x.gz");
    run(data, "x.zip");
});
