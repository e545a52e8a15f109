//! Mail bytes → [`Bounce`]: the DSN fields when there is a
//! `message/delivery-status` part, the bounce text otherwise.

use super::{classify, Bounce, Original, Recipient, MAX_RECIPIENTS, MAX_TEXT};
use mail_parser::{Address, Message, MessageParser, MessagePart, MimeHeaders, PartType};
use std::borrow::Cow;

/// Text of the human-readable parts (and of the DSN part) read.
const MAX_BODY: usize = 256 * 1024;
/// Lines of bounce text looked at for recipients.
const MAX_LINES: usize = 5000;

/// Read one bounce mail. `Err` says why nothing could be read (the mail does
/// not parse, or names no recipient at all).
pub fn parse(bytes: &[u8]) -> Result<Bounce, String> {
    let raw = skip_mbox_line(bytes);
    // Old-Mac CR-only line ends: mail-parser only splits on LF.
    let fixed: Cow<'_, [u8]> = if !raw.contains(&b'\n') && raw.contains(&b'\r') {
        Cow::Owned(
            raw.iter()
                .map(|c| if *c == b'\r' { b'\n' } else { *c })
                .collect(),
        )
    } else {
        Cow::Borrowed(raw)
    };
    let parsed = std::panic::catch_unwind(|| MessageParser::default().parse(fixed.as_ref()));
    let msg = match parsed {
        Ok(Some(m)) => m,
        Ok(None) => return Err("bounce has no parsable header".into()),
        Err(_) => return Err("bounce could not be parsed (MIME parser failed)".into()),
    };
    let mut parts = Parts::default();
    collect(&msg, &mut parts);
    let mut b = Bounce {
        format: "text",
        date: msg.date().map(|d| d.to_timestamp()),
        message_id: msg.message_id().map(cap),
        ..Bounce::default()
    };
    let (failure_text, quoted) = split_returned(&parts.body);
    if parts.original.is_none() {
        parts.original = quoted.and_then(original_from_headers);
    }
    b.original = parts.original.unwrap_or_default();
    let chunks = text_recipients(failure_text);
    if !parts.dsn.is_empty() {
        dsn(&parts.dsn, &mut b);
    }
    if b.recipients.is_empty() {
        b.format = "text";
        b.reporting_mta = reporting_mta_in_text(failure_text);
        let mut addrs: Vec<(String, String)> = chunks.clone();
        if addrs.is_empty() {
            let failed = header_addresses(&msg, "X-Failed-Recipients");
            let fallback = if failed.is_empty() {
                b.original.to.iter().cloned().collect()
            } else {
                failed
            };
            let whole = collapse(failure_text);
            addrs = fallback.into_iter().map(|a| (a, whole.clone())).collect();
        }
        for (address, chunk) in addrs {
            let chunk = if looks_like_diagnostic(&chunk) || failure_text.len() > MAX_TEXT * 2 {
                chunk
            } else {
                collapse(failure_text)
            };
            b.recipients.push(text_recipient(address, &chunk));
        }
    } else {
        b.format = "dsn";
        // A DSN without Diagnostic-Code: the text about that recipient, if any.
        for r in &mut b.recipients {
            let Some((_, chunk)) = chunks.iter().find(|(a, _)| *a == r.address) else {
                continue;
            };
            if r.diagnostic.is_none() && looks_like_diagnostic(chunk) {
                r.diagnostic = Some(cap(chunk));
            }
            if r.remote_mta.is_none() {
                r.remote_mta = host_in(chunk);
            }
        }
    }
    // Delivered, relayed or expanded recipients of a DSN did not bounce.
    b.recipients.retain(|r| {
        !r.action
            .as_deref()
            .is_some_and(|a| matches!(a.trim(), "delivered" | "relayed" | "expanded"))
    });
    if b.recipients.len() > MAX_RECIPIENTS {
        b.recipients.truncate(MAX_RECIPIENTS);
        b.warnings.push(format!(
            "more than {MAX_RECIPIENTS} recipients: only the first {MAX_RECIPIENTS} kept"
        ));
    }
    for r in &mut b.recipients {
        if r.smtp_code.is_none() {
            r.smtp_code = r.diagnostic.as_deref().and_then(smtp_code);
        }
        let (reason, detail) = classify(r.status.as_deref(), r.diagnostic.as_deref());
        r.reason = reason;
        r.detail = detail;
    }
    b.sender_domain = b.original.from.as_deref().and_then(domain_of).or_else(|| {
        header_addresses(&msg, "To")
            .first()
            .and_then(|a| domain_of(a))
    });
    if b.recipients.is_empty() {
        return Err("bounce names no recipient".into());
    }
    Ok(b)
}

/// An mbox `From ` line before the header.
fn skip_mbox_line(b: &[u8]) -> &[u8] {
    if b.starts_with(b"From ") {
        if let Some(i) = b.iter().position(|c| *c == b'\n') {
            return b.get(i + 1..).unwrap_or_default();
        }
    }
    b
}

#[derive(Default)]
struct Parts {
    /// The message/delivery-status text.
    dsn: String,
    /// The human-readable text (text/plain, else text/html as text).
    body: String,
    html: String,
    original: Option<Original>,
}

fn push_capped(to: &mut String, text: &str) {
    let room = MAX_BODY.saturating_sub(to.len());
    if room == 0 {
        return;
    }
    let cut: String = text.chars().take(room).collect();
    to.push_str(&cut);
    to.push('\n');
}

fn mime(part: &MessagePart<'_>) -> (String, String) {
    match part.content_type() {
        Some(ct) => (
            ct.ctype().to_ascii_lowercase(),
            ct.subtype().unwrap_or_default().to_ascii_lowercase(),
        ),
        None => ("text".into(), "plain".into()),
    }
}

/// The top message's parts (a returned message/rfc822 is not entered).
fn collect(msg: &Message<'_>, p: &mut Parts) {
    for part in &msg.parts {
        let (ty, sub) = mime(part);
        match &part.body {
            PartType::Multipart(_) => {}
            PartType::Message(nested) => {
                if p.original.is_none() {
                    p.original = Some(original_of(nested));
                }
            }
            body => {
                let text: Cow<'_, str> = match body {
                    PartType::Text(t) | PartType::Html(t) => Cow::Borrowed(t.as_ref()),
                    PartType::Binary(b) | PartType::InlineBinary(b) => String::from_utf8_lossy(b),
                    _ => Cow::Borrowed(""),
                };
                if ty == "message"
                    && matches!(sub.as_str(), "delivery-status" | "global-delivery-status")
                {
                    push_capped(&mut p.dsn, &text);
                } else if sub == "rfc822-headers" {
                    if p.original.is_none() {
                        p.original = original_from_headers(&text);
                    }
                } else if ty == "text" && sub == "html" {
                    if p.html.is_empty() {
                        push_capped(
                            &mut p.html,
                            &mail_parser::decoders::html::html_to_text(&text),
                        );
                    }
                } else if ty == "text"
                    && !part
                        .content_disposition()
                        .is_some_and(|d| d.is_attachment())
                {
                    push_capped(&mut p.body, &text);
                }
            }
        }
    }
    if p.body.trim().is_empty() {
        p.body = std::mem::take(&mut p.html);
    }
}

/// The address when the header holds exactly one.
fn only_address(a: &Address<'_>) -> Option<String> {
    let mut all: Vec<&mail_parser::Addr<'_>> = match a {
        Address::List(l) => l.iter().collect(),
        Address::Group(g) => g.iter().flat_map(|g| g.addresses.iter()).collect(),
    };
    if all.len() != 1 {
        return None;
    }
    all.pop()?.address.as_deref().map(normalize_address)
}

fn format_address(a: &Address<'_>) -> Option<String> {
    let one = match a {
        Address::List(l) => l.first(),
        Address::Group(g) => g.iter().flat_map(|g| g.addresses.iter()).next(),
    }?;
    match (one.name.as_deref().map(str::trim), one.address.as_deref()) {
        (Some(n), Some(a)) if !n.is_empty() => Some(format!("{n} <{a}>")),
        (_, Some(a)) => Some(a.to_string()),
        (Some(n), None) if !n.is_empty() => Some(n.to_string()),
        _ => None,
    }
}

fn original_of(m: &Message<'_>) -> Original {
    Original {
        message_id: m
            .message_id()
            .map(|s| cap(s.trim()))
            .filter(|s| !s.is_empty()),
        from: m.from().and_then(format_address).map(|s| cap(&s)),
        subject: m.subject().map(|s| cap(s.trim())).filter(|s| !s.is_empty()),
        // Only a sole recipient can stand in for a bounce that names none.
        to: m.to().and_then(only_address),
    }
}

/// The original message from a header block quoted as text.
fn original_from_headers(text: &str) -> Option<Original> {
    let start = text.trim_start_matches(['\r', '\n', ' ', '\t']);
    let mut block = String::with_capacity(start.len().min(MAX_BODY) + 2);
    // Only the header lines: up to the first empty line.
    for line in start.lines().take(MAX_LINES) {
        if line.trim().is_empty() {
            break;
        }
        block.push_str(line);
        block.push('\n');
    }
    block.push('\n');
    let parsed = std::panic::catch_unwind(|| {
        MessageParser::default()
            .parse_headers(block.as_bytes())
            .map(|m| original_of(&m))
    });
    let o = parsed.ok().flatten()?;
    (o.message_id.is_some() || o.from.is_some() || o.subject.is_some()).then_some(o)
}

/// Addresses in one header of the bounce itself (every instance, comma lists).
fn header_addresses(msg: &Message<'_>, name: &str) -> Vec<String> {
    let Some(root) = msg.parts.first() else {
        return vec![];
    };
    let mut out = Vec::new();
    for h in root
        .headers
        .iter()
        .filter(|h| h.name.as_str().eq_ignore_ascii_case(name))
    {
        let raw = msg
            .raw_message
            .get(h.offset_start as usize..h.offset_end as usize)
            .unwrap_or_default();
        for (_, _, a) in addresses(&String::from_utf8_lossy(raw)) {
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    out
}

// ---------------------------------------------------------------- DSN

/// Read the message/delivery-status fields (RFC 3464 §2.2, §2.3).
fn dsn(text: &str, b: &mut Bounce) {
    let mut current: Option<Recipient> = None;
    // Which of the two address fields the current recipient has.
    let (mut has_final, mut has_original) = (false, false);
    let finish = |r: Option<Recipient>, b: &mut Bounce| {
        // A mail address, and something said about it: a block without
        // Action, Status or Diagnostic-Code reports no failure.
        let reported = |r: &Recipient| {
            r.address
                .split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
                && (r.action.is_some() || r.status.is_some() || r.diagnostic.is_some())
        };
        if let Some(r) = r.filter(reported) {
            b.recipients.push(r);
        }
    };
    for group in field_groups(text) {
        for (name, value) in group {
            let value = value.trim();
            match name.as_str() {
                "reporting-mta" => {
                    b.reporting_mta = Some(cap(after_type(value)))
                        .filter(|s| s.chars().any(char::is_alphanumeric));
                }
                "arrival-date" => b.arrival_date = Some(cap(value)),
                "final-recipient" | "original-recipient" => {
                    let is_final = name == "final-recipient";
                    // The same field again: the next recipient.
                    let repeat = if is_final { has_final } else { has_original };
                    if repeat {
                        finish(current.take(), b);
                        (has_final, has_original) = (false, false);
                    }
                    let r = current.get_or_insert_with(empty_recipient);
                    // Final-Recipient wins over Original-Recipient.
                    let addr = normalize_address(after_type(value));
                    if is_final || r.address.is_empty() {
                        r.address = addr;
                    }
                    has_final |= is_final;
                    has_original |= !is_final;
                }
                "action" => {
                    if let Some(r) = current.as_mut() {
                        r.action = Some(cap(&value.to_lowercase()));
                    }
                }
                "status" => {
                    if let Some(r) = current.as_mut() {
                        r.status = status_code(value);
                    }
                }
                "remote-mta" => {
                    if let Some(r) = current.as_mut() {
                        // `dns; mx.example.com [192.0.2.1]`: the name.
                        let host = after_type(value).split_whitespace().next().unwrap_or("");
                        r.remote_mta =
                            Some(cap(host.trim_matches(['[', ']']))).filter(|s| !s.is_empty());
                    }
                }
                "diagnostic-code" => {
                    if let Some(r) = current.as_mut() {
                        r.diagnostic =
                            Some(cap(&collapse(after_type(value)))).filter(|s| !s.is_empty());
                    }
                }
                _ => {}
            }
        }
        // A blank line ends a recipient's fields.
        finish(current.take(), b);
        (has_final, has_original) = (false, false);
    }
    finish(current, b);
    for r in &mut b.recipients {
        // A status without detail (X.Y.0) next to a specific one in the
        // remote server's own words.
        let generic = r.status.as_deref().is_none_or(|s| s.ends_with(".0"));
        if let (true, Some(d)) = (generic, r.diagnostic.as_deref()) {
            let fits = |s: &String| {
                !s.ends_with(".0.0")
                    && r.status.as_deref() != Some(s.as_str())
                    && r.status.as_deref().is_none_or(|g| g.get(..1) == s.get(..1))
            };
            // The one right after an SMTP reply code is the server's own.
            let codes = status_codes(d);
            let specific = codes
                .iter()
                .find(|(after_reply, s)| *after_reply && fits(s))
                .or_else(|| codes.iter().find(|(_, s)| fits(s)))
                .map(|(_, s)| s.clone());
            if let Some(s) = specific.or_else(|| status_code(d).filter(|_| r.status.is_none())) {
                r.status = Some(s);
            }
        }
    }
}

fn empty_recipient() -> Recipient {
    Recipient {
        address: String::new(),
        action: None,
        status: None,
        smtp_code: None,
        remote_mta: None,
        diagnostic: None,
        reason: super::Reason::Other,
        detail: None,
    }
}

/// Header-style fields, unfolded, lowercase names, in groups split by blank lines.
fn field_groups(text: &str) -> Vec<Vec<(String, String)>> {
    let mut groups = Vec::new();
    let mut group: Vec<(String, String)> = Vec::new();
    for line in text.lines().take(MAX_LINES) {
        if line.trim().is_empty() {
            if !group.is_empty() {
                groups.push(std::mem::take(&mut group));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = group.last_mut() {
                if v.len() < MAX_TEXT * 2 {
                    v.push(' ');
                    v.push_str(line.trim());
                }
            }
            continue;
        }
        if let Some((n, v)) = line.split_once(':') {
            group.push((n.trim().to_ascii_lowercase(), v.to_string()));
        }
    }
    if !group.is_empty() {
        groups.push(group);
    }
    groups
}

/// `rfc822; x` → `x`: the value after its type, when it has one.
fn after_type(v: &str) -> &str {
    match v.split_once(';') {
        Some((t, rest)) if !t.trim().is_empty() && !t.trim().contains(' ') && t.len() < 20 => {
            rest.trim()
        }
        _ => v.trim(),
    }
}

// ---------------------------------------------------------------- text

/// Lines that start the returned message in plain-text bounces.
const RETURNED: &[&str] = &[
    "this is a copy of the message",
    "below this line is a copy of the message",
    "original message",
    "copy of the original message",
    "returned message",
    "header of the original message",
    "headers of the original message",
    "original message headers",
    "undelivered message headers",
    "message headers follow",
    "returned mail follows",
    "following is a copy",
    "unsent message below",
    "the original message",
    "message text follows",
];

/// The bounce text before the returned message, and the returned message.
fn split_returned(body: &str) -> (&str, Option<&str>) {
    let mut offset = 0;
    let mut seen_text = false;
    for line in body.split_inclusive('\n').take(MAX_LINES) {
        let l = line.trim().to_lowercase();
        let marker_line = (l.starts_with("--")
            || l.starts_with("==")
            || l.ends_with("follows.")
            || l.ends_with("follows:")
            || l.ends_with(':'))
            && RETURNED.iter().any(|m| l.contains(m));
        let header_line = seen_text
            && (l.starts_with("return-path:") || l.starts_with("received:"))
            && line.starts_with(|c: char| c.is_ascii_alphabetic());
        if marker_line || header_line {
            let rest = if header_line {
                body.get(offset..)
            } else {
                body.get(offset + line.len()..)
            };
            return (body.get(..offset).unwrap_or(body), rest);
        }
        seen_text |= !l.is_empty();
        offset += line.len();
    }
    (body, None)
}

/// Recipients named at the start of a line of the bounce text, each with the
/// text from its line to the next such line.
fn text_recipients(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines().take(MAX_LINES) {
        if let Some(addr) = leading_address(line) {
            if let Some(c) = current.take() {
                out.push(c);
            }
            if let Some(i) = out.iter().position(|(a, _)| *a == addr) {
                // The same address again (Exchange names it once for people
                // and once with the server's reply): one recipient, both texts.
                current = Some(out.remove(i));
                continue;
            }
            // The chunk starts after the address itself.
            let rest = line
                .find('@')
                .and_then(|at| {
                    line.get(at..)?
                        .find(|c: char| c.is_whitespace() || matches!(c, '>' | '<' | ':'))
                        .map(|e| at + e)
                })
                .and_then(|e| line.get(e..))
                .unwrap_or("");
            // Outlook's `a@example.com<mailto:a@example.com>`.
            let rest = match rest.strip_prefix("<mailto:") {
                Some(m) => m.split_once('>').map_or("", |(_, r)| r),
                None => rest,
            };
            let rest = rest.trim_start_matches(['>', ':', ' ', '\t', '"', '\'']);
            current = Some((addr, format!("{rest} ")));
            continue;
        }
        if let Some((_, chunk)) = current.as_mut() {
            if chunk.len() < MAX_TEXT * 2 {
                chunk.push_str(line.trim());
                chunk.push(' ');
            }
        }
        if out.len() > MAX_RECIPIENTS {
            break;
        }
    }
    if let Some(c) = current {
        out.push(c);
    }
    out.into_iter().map(|(a, c)| (a, collapse(&c))).collect()
}

/// The address a line starts with (`  <a@example.com>:`, `a@example.com on …`).
fn leading_address(line: &str) -> Option<String> {
    let t = line.trim_start();
    let t = t.strip_prefix("RCPT To:").unwrap_or(t);
    let t = t.trim_start_matches(['<', '"', '\'', ' ', '(']);
    let (start, _, addr) = addresses(t).into_iter().next()?;
    (start == 0).then_some(addr)
}

fn text_recipient(address: String, chunk: &str) -> Recipient {
    let mut r = empty_recipient();
    r.address = address;
    r.status = status_code(chunk);
    r.remote_mta = host_in(chunk);
    r.diagnostic = Some(cap(chunk)).filter(|s| !s.is_empty());
    r.action = None;
    r
}

/// Text that says something about a delivery: a code or a few words.
fn looks_like_diagnostic(s: &str) -> bool {
    status_code(s).is_some() || smtp_code(s).is_some() || s.split_whitespace().count() >= 4
}

/// `This is the qmail-send program at X.`, `This is the mail system at host X.`
fn reporting_mta_in_text(text: &str) -> Option<String> {
    let lower = text.to_lowercase();
    for marker in ["program at ", "mail system at host ", "mailer at "] {
        if let Some(i) = lower.find(marker) {
            let rest = text.get(i + marker.len()..)?;
            let host: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
                .collect();
            let host = host.trim_end_matches('.').to_string();
            if is_hostname(&host) {
                return Some(host);
            }
        }
    }
    None
}

/// The host named after `host` in the text (`host mx.example.com[192.0.2.1]`).
fn host_in(text: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        let lw = w.to_ascii_lowercase();
        if lw == "host" || lw == "host:" {
            let next = words.next()?;
            let cand: String = next
                .trim_start_matches(['[', '(', '<'])
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-' || *c == ':')
                .collect();
            let cand = cand.trim_end_matches(['.', ':']).to_ascii_lowercase();
            if is_hostname(&cand) || cand.parse::<std::net::IpAddr>().is_ok() {
                return Some(cand);
            }
        }
    }
    None
}

fn is_hostname(s: &str) -> bool {
    s.contains('.')
        && s.len() <= 253
        && s.chars().any(|c| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && !s.starts_with(['.', '-'])
}

// ---------------------------------------------------------------- tokens

/// Every `local@domain` in the text: (start, end, address).
fn addresses(text: &str) -> Vec<(usize, usize, String)> {
    let local = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c);
    let dom = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-';
    let mut out = Vec::new();
    for (at, _) in text.match_indices('@') {
        let before = text.get(..at).unwrap_or_default();
        let start = before
            .char_indices()
            .rev()
            .take_while(|(_, c)| local(*c))
            .last()
            .map(|(i, _)| i);
        let Some(start) = start else { continue };
        let after = text.get(at + 1..).unwrap_or_default();
        let len: usize = after
            .chars()
            .take_while(|c| dom(*c))
            .map(char::len_utf8)
            .sum();
        let domain = after
            .get(..len)
            .unwrap_or_default()
            .trim_end_matches(['.', '-']);
        let local_part = text
            .get(start..at)
            .unwrap_or_default()
            .trim_start_matches('.');
        if local_part.is_empty() || !domain.contains('.') || out.len() >= MAX_RECIPIENTS * 2 {
            continue;
        }
        let end = at + 1 + domain.len();
        let addr = normalize_address(&format!("{local_part}@{domain}"));
        // Byte offset of the local part after trimming leading dots.
        let s = at - local_part.len();
        out.push((s, end, addr));
    }
    out
}

/// Trim brackets and quotes; lowercase the domain.
fn normalize_address(a: &str) -> String {
    let a = a
        .trim()
        .trim_matches(['<', '>', '"', '\'', ' ', ',', ';', ':', '(', ')']);
    match a.rsplit_once('@') {
        Some((l, d)) => cap(&format!("{l}@{}", d.trim_end_matches('.').to_lowercase())),
        None => cap(a),
    }
}

fn domain_of(addr: &str) -> Option<String> {
    let inner = match (addr.rfind('<'), addr.rfind('>')) {
        (Some(s), Some(e)) if s < e => addr.get(s + 1..e).unwrap_or(addr),
        _ => addr,
    };
    inner
        .rsplit_once('@')
        .map(|(_, d)| d.trim().trim_end_matches('.').to_lowercase())
        .filter(|d| !d.is_empty())
}

/// The first enhanced status code `[245].d{1,3}.d{1,3}` standing on its own.
pub(super) fn status_code(s: &str) -> Option<String> {
    status_codes_from(s, 1).into_iter().next().map(|(_, s)| s)
}

/// Every such code (at most 16), each with whether an SMTP reply code comes
/// right before it (`550 5.7.1`, `550-'5.7.1`).
fn status_codes(s: &str) -> Vec<(bool, String)> {
    status_codes_from(s, 16)
}

fn status_codes_from(s: &str, max: usize) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let digits = |from: usize| {
        b.get(from..)
            .map_or(0, |r| r.iter().take_while(|c| c.is_ascii_digit()).count())
    };
    for (i, c) in b.iter().enumerate() {
        if !matches!(c, b'2' | b'4' | b'5') || b.get(i + 1) != Some(&b'.') {
            continue;
        }
        if i > 0
            && b.get(i - 1)
                .is_some_and(|p| p.is_ascii_alphanumeric() || *p == b'.' || *p == b'-')
        {
            continue;
        }
        let d1 = digits(i + 2);
        if !(1..=3).contains(&d1) || b.get(i + 2 + d1) != Some(&b'.') {
            continue;
        }
        let d2 = digits(i + 3 + d1);
        if !(1..=3).contains(&d2) {
            continue;
        }
        let end = i + 3 + d1 + d2;
        if b.get(end).is_some_and(|n| {
            n.is_ascii_alphanumeric()
                || (*n == b'.' && b.get(end + 1).is_some_and(u8::is_ascii_digit))
        }) {
            continue;
        }
        let before = s
            .get(..i)
            .unwrap_or_default()
            .trim_end_matches([' ', '-', '\'', '"']);
        let reply = before.len() >= 3
            && before
                .get(before.len() - 3..)
                .is_some_and(|t| t.bytes().all(|c| c.is_ascii_digit()));
        out.extend(s.get(i..end).map(|c| (reply, c.to_string())));
        if out.len() >= max {
            break;
        }
    }
    out
}

/// The first SMTP reply code (4xx or 5xx) standing on its own; one followed
/// by an enhanced status code is preferred.
pub(super) fn smtp_code(s: &str) -> Option<u16> {
    let b = s.as_bytes();
    let mut first = None;
    for i in 0..b.len() {
        let Some(w) = b.get(i..i + 3) else { break };
        if !matches!(w.first(), Some(b'4' | b'5')) || !w.iter().all(u8::is_ascii_digit) {
            continue;
        }
        let prev_ok = i == 0
            || b.get(i - 1).is_some_and(|p| {
                matches!(
                    p,
                    b' ' | b':' | b'(' | b'>' | b'\t' | b'"' | b'\'' | b'#' | b'='
                )
            });
        let next = b.get(i + 3);
        let next_ok = matches!(
            next,
            None | Some(b' ' | b'-' | b')' | b'\t' | b'\r' | b'\n')
        );
        if !prev_ok || !next_ok {
            continue;
        }
        let code = std::str::from_utf8(w).ok().and_then(|t| t.parse().ok());
        let rest = s.get(i + 4..).unwrap_or_default();
        if status_code(rest.get(..rest.len().min(12)).unwrap_or_default())
            .is_some_and(|st| rest.starts_with(&st))
        {
            return code;
        }
        first = first.or(code);
    }
    first
}

/// White space runs → one space, trimmed.
fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most [`MAX_TEXT`] characters.
fn cap(s: &str) -> String {
    if s.chars().count() <= MAX_TEXT {
        s.to_string()
    } else {
        s.chars().take(MAX_TEXT).collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(
            status_code("said: 550 5.1.1 <a@b.c>").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(status_code("(#5.5.0)").as_deref(), Some("5.5.0"));
        assert_eq!(
            status_code("host [192.0.2.1] said 4.7.650"),
            Some("4.7.650".into())
        );
        assert_eq!(status_code("ip 192.0.2.5 x"), None);
        assert_eq!(smtp_code("said: 550 5.1.1 user"), Some(550));
        assert_eq!(smtp_code("550-5.7.26 unauthenticated"), Some(550));
        assert_eq!(smtp_code("on 2010 at 12:00"), None);
        assert_eq!(smtp_code("reason: 554 554 5.7.1 x"), Some(554));
    }

    #[test]
    fn addresses_in_lines() {
        assert_eq!(
            leading_address("  <Kiji@Example.JP>:").as_deref(),
            Some("Kiji@example.jp")
        );
        assert_eq!(
            leading_address("a@example.org on Thu").as_deref(),
            Some("a@example.org")
        );
        assert_eq!(leading_address("To: a@example.org"), None);
        assert_eq!(
            domain_of("Name <a@Example.COM>").as_deref(),
            Some("example.com")
        );
    }

    #[test]
    fn hosts() {
        assert_eq!(
            host_in("host mx.example.jp [192.0.2.20]: 550").as_deref(),
            Some("mx.example.jp")
        );
        assert_eq!(
            host_in("host mx.example.net[198.51.100.1] said:").as_deref(),
            Some("mx.example.net")
        );
    }
}
