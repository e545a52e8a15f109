//! Why a recipient bounced: [`RULES`], the one table from status code and
//! diagnostic text to a [`Reason`] and detail.
//!
//! How the table is read ([`classify`]):
//! 1. The diagnostic text (lowercased) is searched for each rule's `texts`,
//!    rule by rule in table order; the first rule with a phrase in the text
//!    wins. Text goes first because it is specific where codes are not
//!    (`5.7.1` is used for blocklists, spam, DMARC and relaying alike; a full
//!    mailbox is often sent as `5.1.1`).
//! 2. Otherwise the enhanced status code: the first rule whose `statuses`
//!    holds the code's subject.detail (`1.1` matches `5.1.1` and `4.1.1`).
//! 3. Otherwise a `4.x.x` status with action `delayed` is `expired` only if
//!    the text says so; everything else is `other`.
//!
//! The raw status and diagnostic are always stored beside the reason, so a
//! better table can be applied later with `dmarcdb reparse`.

use serde::Serialize;

/// A documented bounce reason. Stored as [`Reason::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// SPF, DKIM or DMARC failed at the receiver (detail `spf`/`dkim`/`dmarc`).
    AuthFailure,
    /// The sending host or its address is refused (detail `reputation`,
    /// `blocklist`, `ptr`).
    Blocked,
    /// The receiver judged the message spam.
    SpamDetected,
    /// A local policy of the receiver refused it (relaying, sender rules, …).
    PolicyViolation,
    /// No such recipient.
    UserUnknown,
    /// The mailbox is over its quota.
    MailboxFull,
    /// Too many messages or connections: throttled.
    RateLimited,
    /// The recipient's domain or mail host does not exist or takes no mail.
    HostUnknown,
    /// The message waited too long in the queue (or is still delayed).
    Expired,
    /// TLS was required or failed, or another transport security check.
    TlsError,
    /// The message is over the receiver's size limit.
    TooLarge,
    /// The content was refused (a virus, an attachment type, bad headers).
    ContentRejected,
    /// None of the above, or the bounce does not say.
    Other,
}

impl Reason {
    /// Every reason, in the order reports list them.
    pub const ALL: [Reason; 13] = [
        Reason::AuthFailure,
        Reason::Blocked,
        Reason::SpamDetected,
        Reason::PolicyViolation,
        Reason::UserUnknown,
        Reason::MailboxFull,
        Reason::RateLimited,
        Reason::HostUnknown,
        Reason::Expired,
        Reason::TlsError,
        Reason::TooLarge,
        Reason::ContentRejected,
        Reason::Other,
    ];

    /// The name stored in `bounce_recipients.reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::AuthFailure => "auth_failure",
            Reason::Blocked => "blocked",
            Reason::SpamDetected => "spam_detected",
            Reason::PolicyViolation => "policy_violation",
            Reason::UserUnknown => "user_unknown",
            Reason::MailboxFull => "mailbox_full",
            Reason::RateLimited => "rate_limited",
            Reason::HostUnknown => "host_unknown",
            Reason::Expired => "expired",
            Reason::TlsError => "tls_error",
            Reason::TooLarge => "too_large",
            Reason::ContentRejected => "content_rejected",
            Reason::Other => "other",
        }
    }

    /// The inverse of [`Reason::as_str`].
    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// One row of the table.
#[derive(Debug)]
pub struct Rule {
    pub reason: Reason,
    pub detail: Option<&'static str>,
    /// Lowercase phrases; any of them in the diagnostic selects the rule.
    pub texts: &'static [&'static str],
    /// Status subject.detail codes (`"1.1"` for `X.1.1`) that select the rule
    /// when no text did.
    pub statuses: &'static [&'static str],
}

const fn rule(
    reason: Reason,
    detail: Option<&'static str>,
    texts: &'static [&'static str],
    statuses: &'static [&'static str],
) -> Rule {
    Rule {
        reason,
        detail,
        texts,
        statuses,
    }
}

use Reason::*;

/// The table. Order matters: the first rule that matches wins (texts over
/// the whole table first, then statuses).
#[rustfmt::skip]
pub const RULES: &[Rule] = &[
    // A local delivery program failed (procmail, a pipe): not the
    // recipient's fault, whatever words its output holds.
    rule(Other, None, &[
        "command output:", "mailer error", "command died with status", "unknown mailer error",
        "procmail:",
    ], &[]),
    // Authentication: DMARC before DKIM before SPF, as a text naming DMARC
    // usually mentions the other two as well.
    rule(AuthFailure, Some("dmarc"), &["dmarc"], &["7.26"]),
    rule(AuthFailure, Some("dkim"), &["dkim"], &["7.20", "7.21", "7.22"]),
    rule(AuthFailure, Some("spf"), &["spf", "sender policy framework"], &["7.23", "7.24"]),
    rule(AuthFailure, None, &[
        "unauthenticated", "not authenticated", "authentication failed", "failed authentication",
        "authentication check", "sender authentication", "could not be authenticated",
        "is not authorized to send", "not permitted to send on behalf",
    ], &[]),
    // Transport security.
    rule(TlsError, None, &[
        "tls is required", "tls required", "requires tls", "must issue a starttls",
        "starttls is required", "encryption required", "tls handshake", "certificate verify",
        "tls negotiation", "secure connection",
    ], &["7.10", "7.11", "7.15", "7.29", "7.30"]),
    // Phrases that hold a word of a later rule but mean this one:
    // Lotus Notes' "not listed in … Name & Address Book" is no blocklist, a
    // refused connection no block, and Gmail's "receiving mail at a rate
    // that prevents additional messages" no unknown user.
    rule(UserUnknown, None, &[
        "not listed in public name", "not listed in domino directory", "recipient not listed",
    ], &[]),
    rule(HostUnknown, None, &[
        "connection refused", "no answer from host", "connection timed out",
    ], &[]),
    rule(RateLimited, None, &["receiving mail at a rate", "unusual rate"], &[]),
    // Blocked, with the detail first.
    rule(Blocked, Some("ptr"), &[
        "ptr record", "reverse dns", "rdns", "reverse lookup", "reverse-dns", "no ptr",
        "reverse hostname", "does not have a ptr", "reverse mapping",
    ], &["7.25"]),
    rule(Blocked, Some("blocklist"), &[
        "blocklist", "blacklist", "block list", "black list", "spamhaus", "dnsbl", "rbl",
        "spamcop", "sorbs", "barracudacentral", "listed at", "listed on", "listed in",
        "banned sending ip", "on our block", "ip is listed", "5.7.606", "5.7.511",
        "blocked using", "abuseat", "cbl.", "spam source",
    ], &[]),
    rule(Blocked, Some("reputation"), &[
        "reputation", "sender score", "senderscore", "poor sending", "low sending",
        "4.7.650", "ip is not allowed to send", "temporarily deferred due to unexpected volume",
        // Microsoft: mail from an IP in its high-risk delivery pool.
        "5.7.708", "traffic not accepted from this ip",
    ], &[]),
    // A virus is named before spam: filters say "virus detected; content rejected".
    rule(ContentRejected, None, &["virus", "malware", "infected"], &[]),
    // Spam.
    rule(SpamDetected, None, &[
        "spam", "junk mail", "bulk mail", "unsolicited", "appears to be unsolicited",
        "content filter", "message filtered", "classified as", "suspicious", "phishing",
        "scam", "uce", "ube", "high probability", "mail content denied", "content rejected",
        // Orange / Wanadoo (FR): their documented code for mail judged spam.
        "ofr_506",
    ], &[]),
    // Throttling.
    rule(RateLimited, None, &[
        "rate limit", "ratelimit", "rate-limit", "too many connections", "too many messages",
        "too many recipients", "too many concurrent", "throttl",
        "exceeded the maximum number", "sending limit", "frequency limit", "too fast",
        "connection limit", "resources temporarily unavailable", "too much mail",
    ], &["3.2", "7.28"]),
    // Mailbox full.
    rule(MailboxFull, None, &[
        "mailbox full", "mailbox is full", "mailbox has exceeded", "quota exceeded",
        "over quota", "overquota", "exceeded storage", "storage allocation", "quota",
        "insufficient system storage", "not enough storage", "mailbox size limit",
        "user is over", "exceeds the size limit for the mailbox", "full mailbox",
        "mailfolder is full", "mail box full", "box is full", "storage is full",
        "account is full", "quota is full",
    ], &["2.2"]),
    // Message size (before user unknown: "message size exceeds" is not about a user).
    rule(TooLarge, None, &[
        "message too large", "message is too large", "message size exceeds", "too big",
        "exceeds size limit", "size limit", "message length exceeds", "message exceeds",
        "exceeds the maximum size", "exceeded maximum size",
    ], &["2.3", "3.4"]),
    // A domain that does not exist, before "does not exist" of a user.
    rule(HostUnknown, None, &[
        "domain does not exist", "domain not found", "no such domain", "domain doesn't exist",
        "host not found", "host unknown", "unknown host",
    ], &[]),
    // Our envelope sender refused, before "address rejected" of a recipient.
    rule(PolicyViolation, None, &[
        "sender address rejected", "not owned by user", "sender rejected",
    ], &[]),
    // Unknown user.
    rule(UserUnknown, None, &[
        "user unknown", "unknown user", "no such user", "no such recipient", "unknown recipient",
        "recipient unknown", "does not exist", "doesn't exist", "not exist", "no mailbox",
        "mailbox not found", "user not found", "recipient not found", "invalid recipient",
        "invalid mailbox", "mailbox unavailable", "no such mailbox", "address rejected",
        "not a valid mailbox", "unknown local part", "unknown address", "address not found",
        "couldn't be found", "could not be found", "is not a valid", "no longer available",
        "account is disabled", "account disabled", "account has been disabled", "inactive",
        "unknown or illegal alias", "recipient address rejected", "user doesn't have",
        "no account", "unknown mailbox", "not our customer", "recipient no longer",
        "addressee unknown", "bad destination mailbox",
    ], &["1.1", "1.0", "1.6", "2.1", "1.10"]),
    // Host unknown.
    rule(HostUnknown, None, &[
        "host unknown", "unknown host", "host not found", "domain not found",
        "name or service not known", "no mx", "mx record", "nxdomain", "domain does not",
        "unrouteable address", "unroutable address", "no route to host", "name server",
        "does not accept mail", "host or domain name not found", "domain name not found",
    ], &["1.2", "4.4", "1.8", "4.3", "7.27"]),
    // Expired: in the queue too long.
    rule(Expired, None, &[
        "retry timeout exceeded", "has been delayed", "delivery time expired", "expired",
        "too long in the queue", "was not delivered within", "giving up", "delayed", "timed out",
        "message will be retried",
    ], &["4.7"]),
    // Content.
    rule(ContentRejected, None, &[
        "attachment", "message content",
        "executable", "forbidden file", "mime", "rfc 5322", "rfc5322", "rfc 2822",
    ], &["6.0", "6.1", "6.2", "6.3", "6.4", "6.5", "6.6", "6.7", "6.8", "6.9"]),
    // Policy: the receiver's rules, not the sender's reputation.
    rule(PolicyViolation, None, &[
        "policy", "relay", "relaying", "not allowed", "not permitted", "prohibited", "administrative",
        "restricted", "do not accept", "don't accept", "not accepted", "sender rejected",
        "sender address", "sender domain", "violation", "permission to post",
        "sender verify failed", "sender verification",
    ], &["7.0", "7.9", "7.8", "7.7"]),
    // Blocked without a named cause.
    rule(Blocked, None, &[
        "blocked", "block", "banned", "denied", "refused", "please use the smtp server",
        "dynamic", "dial-up", "dialup", "residential", "not allowed to connect",
        "connection rejected", "client host rejected", "name was rejected",
    ], &["7.1"]),
];

/// Status codes (subject.detail) that decide before any text does.
const AUTHORITATIVE: &[(&str, Reason, Option<&str>)] = &[
    ("7.26", AuthFailure, Some("dmarc")),
    // Gmail's "unusual rate of unsolicited mail … temporarily rate limited".
    ("7.28", RateLimited, None),
    ("7.515", AuthFailure, None),
    ("1.2", HostUnknown, None),
];

/// The reason and detail for a status and diagnostic (either may be absent).
pub fn classify(status: Option<&str>, diagnostic: Option<&str>) -> (Reason, Option<&'static str>) {
    let text = diagnostic.unwrap_or_default().to_lowercase();
    // Codes that say exactly why, whatever else the text mentions (Gmail's
    // 5.7.26 names SPF and DKIM; Microsoft's 5.7.515 is its DMARC-era
    // authentication requirement).
    if let Some(tail) = status.and_then(|s| s.get(2..)) {
        for (code, reason, detail) in AUTHORITATIVE {
            if tail == *code {
                return (*reason, *detail);
            }
        }
    }
    if !text.is_empty() {
        for r in RULES {
            if r.texts.iter().any(|t| contains_phrase(&text, t)) {
                return (r.reason, r.detail);
            }
        }
    }
    if let Some(tail) = status.and_then(|s| s.get(2..)) {
        for r in RULES {
            if r.statuses.contains(&tail) {
                return (r.reason, r.detail);
            }
        }
    }
    (Other, None)
}

/// `needle` in `hay`, not inside a longer word (so that `rbl` does not match
/// "verbless" and `uce` not "produced").
fn contains_phrase(hay: &str, needle: &str) -> bool {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric());
    let first = needle.chars().next();
    let last = needle.chars().next_back();
    let mut from = 0;
    while let Some(i) = hay.get(from..).and_then(|h| h.find(needle)) {
        let at = from + i;
        let end = at + needle.len();
        let before = hay.get(..at).and_then(|h| h.chars().next_back());
        let after = hay.get(end..).and_then(|h| h.chars().next());
        // Only whole words at the ends that are letters: "throttl" is a stem.
        let ok_start = !(word(first) && word(before));
        let ok_end = !(word(last) && word(after)) || needle.len() > 6;
        if ok_start && ok_end {
            return true;
        }
        from = at + needle.chars().next().map_or(1, char::len_utf8);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: &str, text: &str, reason: Reason, detail: Option<&str>) {
        let s = (!status.is_empty()).then_some(status);
        let t = (!text.is_empty()).then_some(text);
        let (r, d) = classify(s, t);
        assert_eq!((r, d), (reason, detail), "{status} {text}");
    }

    #[test]
    fn auth_failure() {
        check("5.7.26", "550 5.7.26 Unauthenticated email from example.com is not accepted due to domain's DMARC policy", AuthFailure, Some("dmarc"));
        check(
            "5.7.1",
            "550 5.7.1 SPF check failed for 192.0.2.1",
            AuthFailure,
            Some("spf"),
        );
        check(
            "5.7.1",
            "550 5.7.1 DKIM signature did not verify",
            AuthFailure,
            Some("dkim"),
        );
        check("5.7.26", "", AuthFailure, Some("dmarc"));
        check(
            "5.7.1",
            "554 the message is unauthenticated",
            AuthFailure,
            None,
        );
    }

    #[test]
    fn blocked() {
        check(
            "5.7.1",
            "554 IP 192.0.2.1 has a low reputation",
            Blocked,
            Some("reputation"),
        );
        check(
            "5.7.1",
            "550 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using Spamhaus",
            Blocked,
            Some("blocklist"),
        );
        check(
            "5.7.25",
            "550 5.7.25 The IP address sending this message does not have a PTR record setup",
            Blocked,
            Some("ptr"),
        );
        check(
            "5.7.1",
            "550 5.7.1 Please use the smtp server of your ISP",
            Blocked,
            None,
        );
        check("5.7.1", "", Blocked, None);
    }

    #[test]
    fn spam_detected() {
        check(
            "5.7.1",
            "554 5.7.1 Message rejected as spam by Content Filtering",
            SpamDetected,
            None,
        );
    }

    #[test]
    fn policy_violation() {
        check(
            "5.7.0",
            "554 5.7.0 Relaying denied by local policy",
            PolicyViolation,
            None,
        );
        check("5.7.9", "", PolicyViolation, None);
    }

    #[test]
    fn user_unknown() {
        check(
            "5.1.1",
            "550 5.1.1 <u@example.com>: Recipient address rejected: User unknown",
            UserUnknown,
            None,
        );
        check("5.1.1", "", UserUnknown, None);
    }

    #[test]
    fn mailbox_full() {
        check(
            "4.2.2",
            "452 4.2.2 The email account that you tried to reach is over quota",
            MailboxFull,
            None,
        );
        check("5.1.1", "550 mailbox is full", MailboxFull, None);
    }

    #[test]
    fn rate_limited() {
        check(
            "4.7.0",
            "421 4.7.0 Too many connections from your IP, try again later",
            RateLimited,
            None,
        );
        check("4.3.2", "", RateLimited, None);
    }

    #[test]
    fn host_unknown() {
        check(
            "5.4.4",
            "Host or domain name not found. Name service error",
            HostUnknown,
            None,
        );
        check("5.1.2", "", HostUnknown, None);
    }

    #[test]
    fn expired() {
        check("4.4.7", "retry timeout exceeded", Expired, None);
        check("4.4.7", "", Expired, None);
    }

    #[test]
    fn tls_error() {
        check(
            "5.7.10",
            "530 5.7.10 Must issue a STARTTLS command first",
            TlsError,
            None,
        );
    }

    #[test]
    fn too_large() {
        check(
            "5.3.4",
            "552 5.3.4 Message size exceeds fixed maximum message size",
            TooLarge,
            None,
        );
    }

    #[test]
    fn content_rejected() {
        check(
            "5.7.0",
            "554 5.7.0 Virus found: Eicar-Test-Signature",
            ContentRejected,
            None,
        );
        check("5.6.0", "", ContentRejected, None);
    }

    #[test]
    fn other() {
        check("5.0.0", "something went wrong", Other, None);
        check("", "", Other, None);
    }

    #[test]
    fn phrases() {
        assert!(contains_phrase("listed in rbl zen", "rbl"));
        assert!(!contains_phrase("a verbless sentence", "rbl"));
        assert!(!contains_phrase("produced", "uce"));
        assert!(contains_phrase("being throttled", "throttl"));
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.as_str()), Some(r));
        }
    }

    /// Cases where generic words in the text used to override what the code
    /// and the rest of the text say.
    #[test]
    fn status_and_text_together() {
        check(
            "4.2.2",
            "452 4.2.2 Mailbox full, try again later",
            MailboxFull,
            None,
        );
        check(
            "5.2.2",
            "552 5.2.2 user is over quota; try again later",
            MailboxFull,
            None,
        );
        check(
            "5.1.1",
            "550 5.1.1 <a@example.net> User unknown; please try again later",
            UserUnknown,
            None,
        );
        check(
            "5.1.2",
            "550 5.1.2 Domain does not exist",
            HostUnknown,
            None,
        );
        check(
            "5.1.8",
            "553 5.1.8 Sender address rejected: Domain not found",
            HostUnknown,
            None,
        );
        check(
            "5.7.26",
            "550 5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail requires all senders to authenticate with either SPF or DKIM.",
            AuthFailure,
            Some("dmarc"),
        );
        check(
            "5.7.515",
            "550 5.7.515 Access denied, sending domain example.com doesn't meet the required authentication level.",
            AuthFailure,
            None,
        );
        check(
            "5.7.1",
            "550 5.7.1 Message rejected due to security policy",
            PolicyViolation,
            None,
        );
        check("5.0.0", "550 Sender verify failed", PolicyViolation, None);
        check(
            "4.2.1",
            "450 4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered.",
            RateLimited,
            None,
        );
        check(
            "4.7.28",
            "421 4.7.28 Our system has detected an unusual rate of unsolicited mail originating from your IP address.",
            RateLimited,
            None,
        );
        check("5.7.1", "550 5.7.1 Relaying denied", PolicyViolation, None);
        check(
            "5.1.1",
            "Recipient not listed in public Name & Address Book",
            UserUnknown,
            None,
        );
        check(
            "5.7.1",
            "553 5.7.1 <a@example.com>: Sender address rejected: not owned by user a@example.com",
            PolicyViolation,
            None,
        );
        check(
            "5.5.2",
            "501 5.5.2 Helo command rejected: need fully-qualified hostname",
            Other,
            None,
        );
        check("4.4.1", "Connection refused", HostUnknown, None);
        check(
            "5.7.708",
            "550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP.",
            Blocked,
            Some("reputation"),
        );
    }
}
