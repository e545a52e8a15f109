//! Every file under `fixtures/` through the whole pipeline: what is stored for
//! each (kind, reason, reports with their org, id, domain, dates, counts and
//! first record) must match `tests/fixtures-expected.txt`.
//!
//! `UPDATE_EXPECT=1 cargo test --test fixtures` rewrites it; read the diff.

mod support;

use std::path::Path;
use support::golden::{check, describe, files_below};

#[test]
fn fixtures_match_expected() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut actual = String::from(
        "# What dmarcdb stores for each file under fixtures/ (generated; reviewed by hand).\n\
         # Regenerate: UPDATE_EXPECT=1 cargo test --test fixtures\n",
    );
    let mut n = 0;
    for f in files_below(&root.join("fixtures")) {
        if f.extension().is_some_and(|e| e == "py" || e == "md") {
            continue;
        }
        n += 1;
        actual.push_str(&describe(root, &f));
    }
    assert!(n > 50, "fixtures look empty: {n} files");
    check("tests/fixtures-expected.txt", &actual);
}
