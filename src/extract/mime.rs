//! Walking a mail's MIME tree: the report candidates, the headers kept, and
//! the facts the classifier needs.

use super::classify::{self, Facts};
use super::sniff::{self, Sniff};
use super::{Extracted, MailMeta, Payload};
use crate::kind::Kind;
use mail_parser::{Address, Message, MessageParser, MessagePart, MimeHeaders, PartType};
use std::borrow::Cow;

/// MIME nesting deeper than this is not walked (a warning says so).
const MAX_MIME_DEPTH: usize = 64;
/// Nested-message markers (`message/rfc822`, `message/global`,
/// `multipart/digest`) a mail may mention before mail-parser is not even
/// tried: it nests such messages without limit and its recursive drop
/// overflows a 2 MiB thread stack at about 10 000 levels (measured).
const MAX_RFC822_MARKERS: usize = 1000;
/// Lines that could be MIME boundaries (`--` at the start of a line) a mail
/// may have before mail-parser is tried: it builds every part in memory
/// (about 170 bytes each; 9 million empty parts in a 60 MB mail took 1.5 GB).
/// A report or bounce has a handful.
const MAX_BOUNDARY_LINES: usize = 5000;
/// Header block size above which a mail is not parsed (a 63 MiB Subject
/// line took 260 MB); real headers are a few KiB.
const MAX_HEADER_BYTES: usize = 1 << 20;
/// Text of the human-readable parts kept for the classifier.
const MAX_BODY_TEXT: usize = 64 * 1024;
/// Text of each message/feedback-report part kept.
const MAX_FEEDBACK_TEXT: usize = 16 * 1024;

/// Parse and walk a mail whose headers start at `start`.
pub(crate) fn extract_mail(bytes: &[u8], start: usize) -> Extracted<'_> {
    let raw = bytes.get(start..).unwrap_or_default();
    // Old-Mac CR-only line ends: mail-parser only splits on LF.
    if !raw.contains(&b'\n') && raw.contains(&b'\r') {
        let fixed: Vec<u8> = raw
            .iter()
            .map(|c| if *c == b'\r' { b'\n' } else { *c })
            .collect();
        let mut out = extract_raw(&fixed);
        out.warnings
            .push("mail has CR-only line ends (read as LF)".to_string());
        return Extracted {
            mail: out.mail,
            kind: out.kind,
            payloads: out
                .payloads
                .into_iter()
                .map(|p| Payload {
                    name: p.name,
                    data: Cow::Owned(p.data.into_owned()),
                })
                .collect(),
            reason: out.reason,
            warnings: out.warnings,
        };
    }
    extract_raw(raw)
}

fn invalid<'x>(reason: &str) -> Extracted<'x> {
    Extracted {
        mail: None,
        kind: Kind::Invalid,
        payloads: vec![],
        reason: Some(reason.to_string()),
        warnings: vec![],
    }
}

/// How many times `message/rfc822`, `message/global` or `multipart/digest`
/// appear (any case). One pass over the bytes.
fn nesting_markers(raw: &[u8]) -> usize {
    let ends_with = |end: usize, w: &[u8]| {
        end.checked_sub(w.len())
            .and_then(|s| raw.get(s..end))
            .is_some_and(|x| x.eq_ignore_ascii_case(w))
    };
    let starts_with = |start: usize, w: &[u8]| {
        raw.get(start..start + w.len())
            .is_some_and(|x| x.eq_ignore_ascii_case(w))
    };
    raw.iter()
        .enumerate()
        .filter(|(_, c)| **c == b'/')
        .filter(|(i, _)| {
            (ends_with(*i, b"message")
                && (starts_with(i + 1, b"rfc822") || starts_with(i + 1, b"global")))
                || (ends_with(*i, b"multipart") && starts_with(i + 1, b"digest"))
        })
        .count()
}

/// Lines beginning with `--`, counted up to `limit + 1`.
fn boundary_lines(raw: &[u8], limit: usize) -> usize {
    let starts = raw.starts_with(b"--") as usize;
    starts
        + raw
            .windows(3)
            .filter(|w| w == b"\n--")
            .take(limit + 1)
            .count()
}

fn extract_raw(raw: &[u8]) -> Extracted<'_> {
    let head = raw.get(..MAX_HEADER_BYTES).unwrap_or(raw);
    let header_ends =
        head.windows(2).any(|w| w == b"\n\n") || head.windows(3).any(|w| w == b"\n\r\n");
    if raw.len() > MAX_HEADER_BYTES && !header_ends {
        return invalid(&format!(
            "mail header block is larger than {MAX_HEADER_BYTES} bytes (not parsed)"
        ));
    }
    if boundary_lines(raw, MAX_BOUNDARY_LINES) > MAX_BOUNDARY_LINES {
        return invalid(&format!(
            "mail has more than {MAX_BOUNDARY_LINES} MIME boundary lines (not parsed)"
        ));
    }
    if nesting_markers(raw) > MAX_RFC822_MARKERS {
        return invalid(&format!(
            "mail has more than {MAX_RFC822_MARKERS} message/rfc822 parts (not parsed)"
        ));
    }
    // mail-parser has debug assertions and unchecked arithmetic on paths that
    // hostile input can reach; a panic there must not take the process down.
    let parsed = std::panic::catch_unwind(|| MessageParser::default().parse(raw));
    let msg = match parsed {
        Ok(Some(m)) => m,
        Ok(None) => return invalid("mail has no parsable header"),
        Err(_) => return invalid("mail could not be parsed (MIME parser failed)"),
    };
    let mut w = Walk {
        candidates: vec![],
        warnings: vec![],
        facts: Facts::default(),
        deep_warned: false,
    };
    header_facts(&msg, &mut w.facts);
    walk_message(&mut w, &msg, "", 0, true);
    let meta = meta(&msg);

    let mut out = Extracted {
        mail: Some(meta),
        kind: Kind::Aggregate,
        payloads: vec![],
        reason: None,
        warnings: w.warnings,
    };
    if !w.candidates.is_empty() {
        out.payloads = w.candidates;
        return out;
    }
    let c = classify::classify(&w.facts);
    out.kind = c.kind;
    out.reason = c.reason;
    out.warnings.extend(c.warnings);
    out
}

struct Walk<'x> {
    candidates: Vec<Payload<'x>>,
    warnings: Vec<String>,
    facts: Facts,
    deep_warned: bool,
}

fn header_text(msg: &Message<'_>, name: &str) -> Vec<String> {
    let Some(root) = msg.parts.first() else {
        return vec![];
    };
    root.headers
        .iter()
        .filter(|h| h.name.as_str().eq_ignore_ascii_case(name))
        .map(|h| {
            let start = h.offset_start as usize;
            let end = h.offset_end as usize;
            let raw = msg.raw_message.get(start..end).unwrap_or_default();
            unfold(&String::from_utf8_lossy(raw))
        })
        .collect()
}

/// Join folded header lines with one space and trim.
fn unfold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_break = false;
    for ch in s.chars() {
        match ch {
            '\r' | '\n' => pending_break = true,
            ' ' | '\t' if pending_break => {}
            c => {
                if pending_break && !out.is_empty() {
                    out.push(' ');
                }
                pending_break = false;
                out.push(c);
            }
        }
    }
    out.trim().to_string()
}

fn format_addresses(a: &Address<'_>) -> String {
    let one = |name: Option<&str>, addr: Option<&str>| match (name, addr) {
        (Some(n), Some(a)) if !n.trim().is_empty() => format!("{} <{}>", n.trim(), a),
        (_, Some(a)) => a.to_string(),
        (Some(n), None) => n.trim().to_string(),
        (None, None) => String::new(),
    };
    let list: Vec<String> = match a {
        Address::List(l) => l
            .iter()
            .map(|x| one(x.name.as_deref(), x.address.as_deref()))
            .collect(),
        Address::Group(g) => g
            .iter()
            .flat_map(|g| g.addresses.iter())
            .map(|x| one(x.name.as_deref(), x.address.as_deref()))
            .collect(),
    };
    list.into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

fn non_empty(s: String) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

fn meta(msg: &Message<'_>) -> MailMeta {
    let auth = header_text(msg, "Authentication-Results");
    MailMeta {
        from: msg.from().map(format_addresses).and_then(non_empty),
        subject: msg
            .subject()
            .map(unfold)
            .or_else(|| header_text(msg, "Subject").into_iter().next())
            .and_then(non_empty),
        message_id: msg.message_id().map(str::to_string).and_then(non_empty),
        date: header_text(msg, "Date")
            .into_iter()
            .next()
            .and_then(non_empty),
        authentication_results: (!auth.is_empty()).then(|| auth.join("\n")),
    }
}

fn header_facts(msg: &Message<'_>, f: &mut Facts) {
    f.subject = msg.subject().map(unfold).unwrap_or_default().to_lowercase();
    if let Some(a) = msg.from() {
        let list: Vec<_> = match a {
            Address::List(l) => l.iter().collect(),
            Address::Group(g) => g.iter().flat_map(|g| g.addresses.iter()).collect(),
        };
        for x in list {
            f.from.push((
                x.name.as_deref().unwrap_or_default().to_lowercase(),
                x.address.as_deref().unwrap_or_default().to_lowercase(),
            ));
        }
    }
    if f.from.is_empty() {
        for v in header_text(msg, "From") {
            f.from.push((v.to_lowercase(), v.to_lowercase()));
        }
    }
    f.auto_submitted = header_text(msg, "Auto-Submitted")
        .into_iter()
        .next()
        .map(|s| s.to_lowercase());
    f.tls_report_domain = !header_text(msg, "TLS-Report-Domain").is_empty();
    f.x_failed_recipients = !header_text(msg, "X-Failed-Recipients").is_empty();
    f.null_return_path = header_text(msg, "Return-Path")
        .iter()
        .any(|v| v.replace(' ', "") == "<>");
}

/// (type, subtype), lowercase; text/plain when absent.
fn mime_of(part: &MessagePart<'_>) -> (String, String) {
    match part.content_type() {
        Some(ct) => (
            ct.ctype().to_ascii_lowercase(),
            ct.subtype().unwrap_or_default().to_ascii_lowercase(),
        ),
        None => ("text".into(), "plain".into()),
    }
}

fn child_path(prefix: &str, i: usize) -> String {
    if prefix.is_empty() {
        format!("{}", i + 1)
    } else {
        format!("{prefix}.{}", i + 1)
    }
}

/// Walk one (possibly nested) message. `prefix` is the IMAP-style section of
/// the message/rfc822 part holding it ("" at the top). `top` is true outside
/// any message/rfc822: only there are classifier facts collected.
fn walk_message<'x>(w: &mut Walk<'x>, msg: &Message<'x>, prefix: &str, depth: usize, top: bool) {
    let Some(root) = msg.parts.first() else {
        return;
    };
    let path = if matches!(root.body, PartType::Multipart(_)) {
        prefix.to_string()
    } else {
        child_path(prefix, 0)
    };
    walk_part(w, msg, 0, &path, depth, top, false);
}

/// The MIME types that mark a multipart as a DSN or feedback report: the
/// message/rfc822 beside them is a returned message, not a forwarded report.
fn is_report_status(ty: &str, sub: &str) -> bool {
    ty == "message"
        && matches!(
            sub,
            "delivery-status" | "global-delivery-status" | "feedback-report"
        )
}

#[allow(clippy::too_many_arguments)]
fn walk_part<'x>(
    w: &mut Walk<'x>,
    msg: &Message<'x>,
    id: usize,
    path: &str,
    depth: usize,
    top: bool,
    in_report: bool,
) {
    let Some(part) = msg.parts.get(id) else {
        return;
    };
    if depth > MAX_MIME_DEPTH {
        if !w.deep_warned {
            w.deep_warned = true;
            w.warnings.push(format!(
                "MIME parts nested deeper than {MAX_MIME_DEPTH} were not searched"
            ));
        }
        return;
    }
    let (ty, sub) = mime_of(part);
    match &part.body {
        PartType::Multipart(children) => {
            if top && ty == "multipart" && sub == "report" {
                let rt = part
                    .content_type()
                    .and_then(|c| c.attribute("report-type"))
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                w.facts.report_types.push(rt);
            }
            let report_like = sub == "report"
                || children.iter().any(|c| {
                    msg.parts.get(*c as usize).is_some_and(|p| {
                        let (t, s) = mime_of(p);
                        is_report_status(&t, &s)
                    })
                });
            for (i, c) in children.iter().enumerate() {
                let c = *c as usize;
                // Children always come after their parent; anything else
                // would be a loop.
                if c <= id {
                    continue;
                }
                walk_part(w, msg, c, &child_path(path, i), depth + 1, top, report_like);
            }
        }
        PartType::Message(nested) => {
            if in_report {
                // The returned message of a bounce or ARF report.
                return;
            }
            walk_message(w, nested, path, depth + 1, false);
        }
        _ => leaf(w, msg, part, path, &ty, &sub, top),
    }
}

#[allow(clippy::too_many_arguments)]
fn leaf<'x>(
    w: &mut Walk<'x>,
    msg: &Message<'x>,
    part: &MessagePart<'x>,
    path: &str,
    ty: &str,
    sub: &str,
    top: bool,
) {
    let mime = super::printable_name(&format!("{ty}/{sub}"));
    let file_name = part
        .attachment_name()
        .map(|n| super::printable_name(n.trim()))
        .filter(|n| !n.is_empty());
    let lower = file_name.as_deref().unwrap_or_default().to_lowercase();
    let held = part_bytes(msg, part);
    let data: &[u8] = held.bytes();

    if top {
        if is_report_status(ty, sub) {
            if sub == "feedback-report" {
                let t = data.get(..MAX_FEEDBACK_TEXT).unwrap_or(data);
                w.facts
                    .feedback
                    .push(String::from_utf8_lossy(t).to_lowercase());
            } else {
                w.facts.dsn = true;
            }
            return;
        }
        let is_attachment = part
            .content_disposition()
            .is_some_and(|d| d.is_attachment());
        if ty == "text" && (sub == "plain" || sub.is_empty()) && !is_attachment {
            let room = MAX_BODY_TEXT.saturating_sub(w.facts.body.len());
            if room > 0 {
                let text: Cow<'_, str> = match &part.body {
                    PartType::Text(t) => Cow::Borrowed(t.as_ref()),
                    _ => String::from_utf8_lossy(data),
                };
                let cut: String = text.chars().take(room).collect();
                w.facts.body.push_str(&cut.to_lowercase());
                w.facts.body.push('\n');
            }
        }
    }

    let declared_tlsrpt =
        (ty == "application" && sub.starts_with("tlsrpt")) || sniff::tlsrpt_file_name(&lower);
    if declared_tlsrpt {
        w.facts.tlsrpt = true;
        return;
    }
    let name = file_name
        .clone()
        .unwrap_or_else(|| format!("part {path} ({mime})"));
    let declared = declared_kind(ty, sub, &lower);
    let sniffed = sniff::sniff(data);
    let take = match sniffed {
        Sniff::Gzip => {
            if sniff::gzip_holds_json(data) {
                w.facts.tlsrpt = true;
                false
            } else {
                true
            }
        }
        Sniff::Zip => true,
        Sniff::Xml => {
            if declared == Some(Declared::Xml) {
                let yes = sniff::mentions_feedback(data);
                if !yes {
                    w.warnings.push(format!(
                        "{name}: XML that is not a DMARC report (no <feedback>)"
                    ));
                }
                yes
            } else {
                sniff::looks_like_feedback(data)
            }
        }
        Sniff::Json => {
            if sniff::is_tlsrpt_json(data) {
                w.facts.tlsrpt = true;
            }
            false
        }
        // Declared as a report part but the bytes are not recognisable:
        // keep it, so documents() says what is wrong with it.
        Sniff::Other => declared.is_some() && !(ty == "text" && data.is_empty()),
    };
    if !take {
        return;
    }
    if let Some(d) = declared {
        let agrees = matches!(
            (d, sniffed),
            (Declared::Gzip, Sniff::Gzip)
                | (Declared::Zip, Sniff::Zip)
                | (Declared::Xml, Sniff::Xml)
        );
        if !agrees && d != Declared::Unknown {
            w.warnings.push(format!(
                "{name}: declared {} ({mime}) but the bytes are {}",
                d.describe(),
                sniffed.describe()
            ));
        }
    } else if ty == "text" {
        w.warnings.push(format!(
            "{name}: a {mime} part whose bytes are {}",
            sniffed.describe()
        ));
    }
    w.candidates.push(Payload {
        name,
        data: held.into_cow(),
    });
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Declared {
    Gzip,
    Zip,
    Xml,
    /// application/octet-stream with a report-like file name.
    Unknown,
}

impl Declared {
    fn describe(self) -> &'static str {
        match self {
            Declared::Gzip => "gzip",
            Declared::Zip => "zip",
            Declared::Xml => "XML",
            Declared::Unknown => "a report",
        }
    }
}

/// What the part's type or file name claims it is, if it claims to be a
/// report part at all. A file name beats a generic type.
fn declared_kind(ty: &str, sub: &str, lower_name: &str) -> Option<Declared> {
    let by_type = match (ty, sub) {
        ("application", "gzip" | "x-gzip" | "gzip-compressed" | "x-gunzip") => Some(Declared::Gzip),
        ("application", "zip" | "x-zip-compressed" | "zip-compressed" | "x-zip") => {
            Some(Declared::Zip)
        }
        ("text" | "application", "xml") => Some(Declared::Xml),
        _ => None,
    };
    let by_name = if lower_name.ends_with(".xml") {
        Some(Declared::Xml)
    } else if lower_name.ends_with(".gz") || lower_name.ends_with(".gzip") {
        Some(Declared::Gzip)
    } else if lower_name.ends_with(".zip") {
        Some(Declared::Zip)
    } else {
        None
    };
    match (by_type, by_name) {
        (Some(t), _) => Some(t),
        (None, Some(n)) => Some(n),
        (None, None) if ty == "application" && sub == "octet-stream" && !lower_name.is_empty() => {
            sniff::report_file_name(lower_name).then_some(Declared::Unknown)
        }
        _ => None,
    }
}

/// A leaf part's bytes: borrowed from mail-parser's part (copied only if the
/// part becomes a payload) or decoded here.
enum Held<'p, 'x> {
    Part(&'p Cow<'x, [u8]>),
    Decoded(Cow<'x, [u8]>),
}

impl<'x> Held<'_, 'x> {
    fn bytes(&self) -> &[u8] {
        match self {
            Held::Part(c) => c,
            Held::Decoded(c) => c,
        }
    }

    fn into_cow(self) -> Cow<'x, [u8]> {
        match self {
            Held::Part(c) => c.clone(),
            Held::Decoded(c) => c,
        }
    }
}

/// A leaf part's bytes with the transfer encoding decoded (but no charset
/// conversion): mail-parser's decoded binary when it has it, otherwise the raw
/// part decoded here, leniently.
fn part_bytes<'p, 'x>(msg: &'p Message<'x>, part: &'p MessagePart<'x>) -> Held<'p, 'x> {
    if !part.is_encoding_problem {
        if let PartType::Binary(c) | PartType::InlineBinary(c) = &part.body {
            return Held::Part(c);
        }
    }
    let start = part.offset_body as usize;
    let end = (part.offset_end as usize).max(start);
    let raw: Cow<'x, [u8]> = match &msg.raw_message {
        Cow::Borrowed(b) => {
            let b: &'x [u8] = b;
            Cow::Borrowed(
                b.get(start..end)
                    .or_else(|| b.get(start..))
                    .unwrap_or_default(),
            )
        }
        Cow::Owned(v) => Cow::Owned(
            v.get(start..end)
                .or_else(|| v.get(start..))
                .unwrap_or_default()
                .to_vec(),
        ),
    };
    let cte = part
        .content_transfer_encoding()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    Held::Decoded(match cte.as_str() {
        "base64" => Cow::Owned(decode_base64(&raw)),
        "quoted-printable" => Cow::Owned(decode_qp(&raw)),
        _ => raw,
    })
}

/// Base64 that skips anything outside the alphabet and restarts after `=`
/// padding (some senders concatenate encoded blocks).
pub(crate) fn decode_base64(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => {
                acc = 0;
                bits = 0;
                continue;
            }
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
        acc &= (1 << bits) - 1;
    }
    out
}

/// Quoted-printable that keeps malformed `=` sequences as they are.
pub(crate) fn decode_qp(s: &[u8]) -> Vec<u8> {
    fn hex(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        if c == b'=' {
            let a = s.get(i + 1).copied();
            let b = s.get(i + 2).copied();
            match (a, b) {
                (Some(b'\r'), Some(b'\n')) => {
                    i += 3;
                    continue;
                }
                (Some(b'\n'), _) => {
                    i += 2;
                    continue;
                }
                (Some(x), Some(y)) => {
                    if let (Some(h), Some(l)) = (hex(x), hex(y)) {
                        out.push((h << 4) | l);
                        i += 3;
                        continue;
                    }
                }
                _ => {}
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn base64_lenient() {
        assert_eq!(decode_base64(b"aGVs\r\nbG8=\r\n"), b"hello");
        assert_eq!(decode_base64(b"aGVsbG8=aGk="), b"hellohi");
        assert_eq!(decode_base64(b"aGV*sbG8"), b"hello");
        assert_eq!(decode_base64(b""), b"");
    }

    #[test]
    fn qp_lenient() {
        assert_eq!(decode_qp(b"a=3Db=\r\nc=\nd"), b"a=bcd");
        assert_eq!(decode_qp(b"x=zz="), b"x=zz=");
    }

    #[test]
    fn markers() {
        assert_eq!(
            nesting_markers(b"Message/RFC822 message/global multipart/Digest message/x /rfc822"),
            3
        );
    }

    #[test]
    fn unfolds() {
        assert_eq!(unfold(" a;\r\n\tspf=pass\n  x "), "a; spf=pass x");
    }
}
