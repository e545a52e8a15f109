//! Telling what bytes are: mail, gzip, zip, XML (and whether it looks like a
//! DMARC `<feedback>` document), JSON (and whether it is a TLS report).

use std::io::Read;

/// What the first bytes of something say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sniff {
    /// gzip magic `1f 8b`.
    Gzip,
    /// zip local header `PK\x03\x04` or empty-archive end record `PK\x05\x06`.
    Zip,
    /// `<` after an optional BOM and white space.
    Xml,
    /// `{` after an optional BOM and white space.
    Json,
    Other,
}

impl Sniff {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Sniff::Gzip => "gzip",
            Sniff::Zip => "zip",
            Sniff::Xml => "XML",
            Sniff::Json => "JSON",
            Sniff::Other => "neither gzip, zip nor XML",
        }
    }
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// How far into a part we look for `<feedback` and TLS-RPT keys.
const LOOK: usize = 64 * 1024;

/// Skip a UTF-8 BOM and ASCII white space.
pub(crate) fn skip_bom_ws(b: &[u8]) -> &[u8] {
    let b = b.strip_prefix(UTF8_BOM).unwrap_or(b);
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    b.get(n..).unwrap_or_default()
}

/// The offset of the first byte after a UTF-8 BOM and white space.
pub(crate) fn content_start(b: &[u8]) -> usize {
    b.len() - skip_bom_ws(b).len()
}

/// True for a UTF-16 byte order mark followed by `<`.
fn utf16_xml(b: &[u8]) -> bool {
    b.starts_with(b"\xFF\xFE<\x00") || b.starts_with(b"\xFE\xFF\x00<")
}

pub(crate) fn is_gzip(b: &[u8]) -> bool {
    b.starts_with(&[0x1f, 0x8b])
}

pub(crate) fn is_zip(b: &[u8]) -> bool {
    b.starts_with(b"PK\x03\x04") || b.starts_with(b"PK\x05\x06")
}

/// Sniff some bytes.
pub(crate) fn sniff(b: &[u8]) -> Sniff {
    if is_gzip(b) {
        return Sniff::Gzip;
    }
    if is_zip(b) {
        return Sniff::Zip;
    }
    if utf16_xml(b) {
        return Sniff::Xml;
    }
    match skip_bom_ws(b).first() {
        Some(b'<') => Sniff::Xml,
        Some(b'{') => Sniff::Json,
        _ => Sniff::Other,
    }
}

/// Up to 16 bytes after BOM/white space, printable, for messages.
pub(crate) fn start_text(b: &[u8]) -> String {
    let t = skip_bom_ws(b);
    let head = t.get(..16).unwrap_or(t);
    head.escape_ascii().to_string().replace('"', "\\\"")
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn find_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// Strict test for a part that did not declare itself XML (text/plain,
/// octet-stream without a name, …): after an optional BOM and white space,
/// only XML declarations, processing instructions, comments, a DOCTYPE and at
/// most one stray wrapper start tag (ikea.com's unclosed `<xs:schema>`) may
/// come before a `<feedback` (or `<prefix:feedback`) start tag. An HTML body
/// (`<html><head>…`) never passes.
pub(crate) fn looks_like_feedback(b: &[u8]) -> bool {
    let mut s = skip_bom_ws(b.get(..LOOK).unwrap_or(b));
    let mut wrappers = 1;
    loop {
        let n = s.iter().take_while(|c| c.is_ascii_whitespace()).count();
        s = s.get(n..).unwrap_or_default();
        if s.first() != Some(&b'<') {
            return false;
        }
        let close: &[u8] = if s.starts_with(b"<?") {
            b"?>"
        } else if s.starts_with(b"<!--") {
            b"-->"
        } else if s.starts_with(b"<!") {
            b">"
        } else {
            let name_len = s
                .iter()
                .skip(1)
                .take_while(|c| !c.is_ascii_whitespace() && **c != b'>' && **c != b'/')
                .count();
            let name = s.get(1..1 + name_len).unwrap_or_default();
            let local = name.rsplit(|c| *c == b':').next().unwrap_or(name);
            if local.eq_ignore_ascii_case(b"feedback") {
                return true;
            }
            if wrappers == 0 {
                return false;
            }
            wrappers -= 1;
            b">"
        };
        match find(s, close) {
            Some(i) => s = s.get(i + close.len()..).unwrap_or_default(),
            None => return false,
        }
    }
}

/// Lenient test for a part that declared itself XML (text/xml,
/// application/xml, a `.xml` name): it starts with `<` and a `feedback` start
/// tag appears somewhere in its first 64 KiB.
pub(crate) fn mentions_feedback(b: &[u8]) -> bool {
    if sniff(b) != Sniff::Xml {
        return false;
    }
    if looks_like_feedback(b) {
        return true;
    }
    let mut s = b.get(..LOOK).unwrap_or(b);
    while let Some(i) = find_ci(s, b"feedback") {
        let before = i.checked_sub(1).and_then(|j| s.get(j)).copied();
        let after = s.get(i + 8).copied();
        let tag_before = matches!(before, Some(b'<') | Some(b':'));
        let tag_after = matches!(after, Some(b'>' | b'/' | b' ' | b'\t' | b'\r' | b'\n'));
        if tag_before && tag_after {
            return true;
        }
        s = s.get(i + 8..).unwrap_or_default();
    }
    false
}

/// JSON that has the keys of an RFC 8460 TLS report.
pub(crate) fn is_tlsrpt_json(b: &[u8]) -> bool {
    if sniff(b) != Sniff::Json {
        return false;
    }
    let s = b.get(..LOOK).unwrap_or(b);
    find(s, b"\"policies\"").is_some() || find(s, b"\"organization-name\"").is_some()
}

/// The first `max` decompressed bytes of a gzip stream (fewer if it is shorter
/// or corrupt). Bounded work: at most `max` bytes come out.
pub(crate) fn gunzip_prefix(b: &[u8], max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut dec = flate2::read::GzDecoder::new(b).take(u64::try_from(max).unwrap_or(u64::MAX));
    // An error only shortens the peek.
    let _ = dec.read_to_end(&mut out);
    out
}

/// A gzip whose content is JSON (a TLS report sent as .gz).
pub(crate) fn gzip_holds_json(b: &[u8]) -> bool {
    is_gzip(b) && sniff(&gunzip_prefix(b, 1024)) == Sniff::Json
}

/// A file name that says "aggregate report": .xml, .xml.gz, .gz, .zip,
/// .xml.zip (but not a TLS report's .json.gz).
pub(crate) fn report_file_name(lower: &str) -> bool {
    (lower.ends_with(".xml")
        || lower.ends_with(".gz")
        || lower.ends_with(".zip")
        || lower.ends_with(".gzip"))
        && !tlsrpt_file_name(lower)
}

/// A TLS report's file name: .json or .json.gz.
pub(crate) fn tlsrpt_file_name(lower: &str) -> bool {
    lower.ends_with(".json") || lower.ends_with(".json.gz")
}

/// Header names that make a first line "mail", not "text with a colon".
const MAIL_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "received",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "return-path",
    "delivered-to",
    "reply-to",
    "sender",
    "dkim-signature",
    "authentication-results",
    "arc-seal",
    "arc-message-signature",
    "arc-authentication-results",
    "received-spf",
    "envelope-to",
    "delivery-date",
    "references",
    "in-reply-to",
    "user-agent",
    "auto-submitted",
    "thread-topic",
    "thread-index",
];

/// The length of a header field name at the start of `line`, if the line is
/// `name [WSP] ":" ...`.
fn header_name(line: &[u8]) -> Option<&[u8]> {
    let n = line
        .iter()
        .take_while(|c| (33..=126).contains(*c) && **c != b':')
        .count();
    if n == 0 {
        return None;
    }
    let rest = line.get(n..).unwrap_or_default();
    let ws = rest
        .iter()
        .take_while(|c| **c == b' ' || **c == b'\t')
        .count();
    match rest.get(ws) {
        Some(b':') => line.get(..n),
        _ => None,
    }
}

/// If `bytes` is a mail, the offset where its headers start (after an mbox
/// `From ` line). A mail is a header block whose first line is a header field
/// and that has at least one well-known field (any `X-` field counts). With a
/// `.eml`/`.msg` name hint the first line being a header field is enough.
pub(crate) fn mail_start(bytes: &[u8], name: Option<&str>) -> Option<usize> {
    let head = bytes.get(..LOOK).unwrap_or(bytes);
    let sep = if head.contains(&b'\n') { b'\n' } else { b'\r' };
    // A few blank lines before the headers (some exports) are tolerated.
    let mut start = head
        .iter()
        .take(16)
        .take_while(|c| matches!(c, b'\r' | b'\n'))
        .count();
    if head.get(start..).is_some_and(|h| h.starts_with(b"From ")) {
        let rel = head.get(start..)?.iter().position(|c| *c == sep)?;
        start += rel + 1;
    }
    let hinted = name
        .map(|n| {
            let l = n.to_ascii_lowercase();
            l.ends_with(".eml") || l.ends_with(".msg") || l.ends_with(".mbox")
        })
        .unwrap_or(false);
    let block = head.get(start..).unwrap_or_default();
    let mut known = false;
    for (i, line) in block.split(|c| *c == sep).take(500).enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.first().is_some_and(|c| *c == b' ' || *c == b'\t') {
            if i == 0 {
                return None;
            }
            continue;
        }
        match header_name(line) {
            Some(n) => {
                let l = String::from_utf8_lossy(n).to_ascii_lowercase();
                if MAIL_HEADERS.contains(&l.as_str()) || l.starts_with("x-") {
                    known = true;
                }
            }
            None if i == 0 => return None,
            None => break,
        }
        if hinted || known {
            // Keep scanning only until we know.
            return Some(start);
        }
    }
    known.then_some(start)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn sniffs() {
        assert_eq!(sniff(b"\x1f\x8b\x08"), Sniff::Gzip);
        assert_eq!(sniff(b"PK\x03\x04"), Sniff::Zip);
        assert_eq!(sniff(b"PK\x05\x06"), Sniff::Zip);
        assert_eq!(sniff(b"\xEF\xBB\xBF \r\n<?xml"), Sniff::Xml);
        assert_eq!(sniff(b"  {\"a\":1}"), Sniff::Json);
        assert_eq!(sniff(b"unused"), Sniff::Other);
        assert_eq!(sniff(b""), Sniff::Other);
    }

    #[test]
    fn feedback_starts() {
        assert!(looks_like_feedback(b"<feedback>"));
        assert!(looks_like_feedback(
            b"\xEF\xBB\xBF<?xml version=\"1.0\"?>\n<!-- c -->\n<feedback xmlns=\"urn:x\">"
        ));
        assert!(looks_like_feedback(
            b"<?xml version=\"1.0\"?><xs:schema a=\"b\">\n<feedback>"
        ));
        assert!(looks_like_feedback(b"<dmarc:feedback>"));
        assert!(!looks_like_feedback(
            b"<!DOCTYPE html><html><head><title>feedback</title>"
        ));
        assert!(!looks_like_feedback(b"<div dir=\"ltr\"><br></div>"));
        assert!(!looks_like_feedback(b"hello <feedback>"));
        assert!(mentions_feedback(b"<?xml?><a><b><c/></b><feedback>"));
        assert!(!mentions_feedback(b"<html>feedback form</html>"));
    }

    #[test]
    fn mail_detection() {
        assert_eq!(
            mail_start(b"From: a@example.com\nSubject: x\n\nbody", None),
            Some(0)
        );
        assert_eq!(
            mail_start(b"From a@example.com Mon Jan 1\nReceived: x\n\nb", None),
            Some(29)
        );
        assert_eq!(mail_start(b"Subject: x\r\n\r\n", None), Some(0));
        assert_eq!(mail_start(b"<?xml version='1.0'?>", None), None);
        assert_eq!(mail_start(b"This is not XML: at all", None), None);
        assert_eq!(mail_start(b"Weird: header\n\n", None), None);
        assert_eq!(mail_start(b"Weird: header\n\n", Some("a.eml")), Some(0));
        assert_eq!(mail_start(b"", None), None);
        assert_eq!(mail_start(b"\r\nSubject: x\r\n\r\n", None), Some(2));
        assert_eq!(mail_start(b"\n\n<feedback/>", None), None);
        // CR-only line ends (old Mac).
        assert_eq!(mail_start(b"Subject: x\rFrom: y\r\rbody", None), Some(0));
    }

    #[test]
    fn names() {
        assert!(report_file_name("a.xml.gz"));
        assert!(report_file_name("google.com!example.com!1!2.zip"));
        assert!(!report_file_name("a.json.gz"));
        assert!(tlsrpt_file_name("a!001.json.gz"));
    }
}
