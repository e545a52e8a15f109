//! Shared by the fuzz targets.

use std::sync::Once;

/// `extract` runs mail-parser under `catch_unwind` (its debug assertions
/// fire on hostile MIME, and the caller turns that into an invalid input).
/// libFuzzer's panic hook aborts before any unwinding, so a panic raised
/// inside mail-parser is let unwind instead: when `extract` catches it that
/// is handled behaviour, and when nothing does, libfuzzer-sys's own
/// `catch_unwind` around the target still aborts, so it is still a finding.
pub fn tolerate_mail_parser_panics() {
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
