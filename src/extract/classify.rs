//! What a mail without a report candidate is: TLS report, DMARC failure
//! report, bounce, auto-reply / ordinary mail, or a claimed aggregate report
//! that is missing.
//!
//! Order of the tests, first match wins:
//! 1. TLS-RPT: an `application/tlsrpt+*` part, a `.json`/`.json.gz` part, JSON
//!    with TLS-RPT keys, `multipart/report; report-type=tlsrpt`, or a
//!    `TLS-Report-Domain` header.
//! 2. ARF (`message/feedback-report` part or `report-type=feedback-report`):
//!    `Failure` when a feedback report has `Feedback-Type: auth-failure`
//!    (RFC 6591; DMARC ruf reports, and DKIM/SPF failure reports alike) or
//!    DMARC signs (`Auth-Failure: dmarc`, `dmarc=fail`, a DMARC Subject);
//!    any other ARF (`abuse`, `fraud`, `virus`, `not-spam`, … — spam
//!    complaints from feedback loops) is `Other`.
//! 3. DSN structure (`report-type=delivery-status`, a
//!    `message/(global-)delivery-status` part): `Bounce`.
//! 4. DMARC forensic text without ARF (Subject "DMARC Failure Report",
//!    "Forensic Report"; Exim's "failed the published DMARC policy"):
//!    `Failure`.
//! 5. Plain-text bounce: `X-Failed-Recipients`, or a daemon sender
//!    (MAILER-DAEMON, postmaster, "Mail Delivery System", null Return-Path) or
//!    a bounce Subject, together with a body quoting an SMTP failure (or both
//!    sender and Subject): `Bounce`.
//! 6. RFC 3834 auto-replies (`Auto-Submitted: auto-replied`, vacation
//!    Subjects): `Other`.
//! 7. Subject `Report Domain: … Submitter: …` (any case): `Invalid`, the
//!    aggregate report it announces is not attached.
//! 8. `Other`.

use crate::kind::Kind;

/// What the MIME walk saw (all text lowercase).
#[derive(Debug, Default)]
pub(crate) struct Facts {
    pub subject: String,
    /// (display name, address) of each From mailbox.
    pub from: Vec<(String, String)>,
    pub auto_submitted: Option<String>,
    pub tls_report_domain: bool,
    pub x_failed_recipients: bool,
    pub null_return_path: bool,
    /// `report-type` of each multipart/report outside message/rfc822.
    pub report_types: Vec<String>,
    /// Text of each message/feedback-report part.
    pub feedback: Vec<String>,
    /// A message/delivery-status part was seen.
    pub dsn: bool,
    /// A TLS report part was seen.
    pub tlsrpt: bool,
    /// The human-readable text/plain parts.
    pub body: String,
}

pub(crate) struct Classified {
    pub kind: Kind,
    pub reason: Option<String>,
    pub warnings: Vec<String>,
}

fn kind(kind: Kind) -> Classified {
    Classified {
        kind,
        reason: None,
        warnings: vec![],
    }
}

pub(crate) fn classify(f: &Facts) -> Classified {
    if f.tlsrpt || f.report_types.iter().any(|t| t == "tlsrpt") || f.tls_report_domain {
        let mut c = kind(Kind::Tlsrpt);
        if !f.tlsrpt {
            c.warnings
                .push("TLS report mail carries no TLS report part".to_string());
        }
        return c;
    }
    if !f.feedback.is_empty() || f.report_types.iter().any(|t| t == "feedback-report") {
        let auth_failure = f
            .feedback
            .iter()
            .any(|fb| field(fb, "feedback-type").is_some_and(|v| v == "auth-failure"));
        let dmarc = f.feedback.iter().any(|fb| {
            field(fb, "auth-failure").is_some_and(|v| v.contains("dmarc"))
                || fb.contains("dmarc=fail")
        }) || dmarc_subject(&f.subject);
        return kind(if auth_failure || dmarc {
            Kind::Failure
        } else {
            Kind::Other
        });
    }
    if f.dsn || f.report_types.iter().any(|t| t == "delivery-status") {
        return kind(Kind::Bounce);
    }
    if dmarc_subject(&f.subject) || forensic_body(&f.body) {
        return kind(Kind::Failure);
    }
    if plain_bounce(f) {
        return kind(Kind::Bounce);
    }
    if auto_reply(f) {
        return kind(Kind::Other);
    }
    if claims_aggregate(&f.subject) {
        return Classified {
            kind: Kind::Invalid,
            reason: Some(
                "Subject announces a DMARC aggregate report, but the mail carries no report attachment"
                    .to_string(),
            ),
            warnings: vec![],
        };
    }
    kind(Kind::Other)
}

/// The value of `name:` at the start of a line of a feedback report.
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        (n.trim() == name).then(|| v.trim())
    })
}

fn any_of(hay: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| hay.contains(n))
}

/// A Subject that names a DMARC failure/forensic report.
fn dmarc_subject(s: &str) -> bool {
    (s.contains("dmarc") && (s.contains("failure") || s.contains("forensic")))
        || s.contains("forensic report")
}

/// Body text of a DMARC forensic report without ARF part (Exim and friends).
fn forensic_body(b: &str) -> bool {
    any_of(
        b,
        &[
            "failed the published dmarc policy",
            "this is a dmarc failure report",
            "this is a dmarc forensic report",
            "dmarc forensic report for",
            "dmarc failure report for",
        ],
    )
}

/// Subject of a mail that claims to be a DMARC aggregate report.
pub(crate) fn claims_aggregate(s: &str) -> bool {
    let s = s.to_lowercase();
    match s.find("report domain:") {
        Some(i) => s.get(i..).is_some_and(|rest| rest.contains("submitter:")),
        None => false,
    }
}

const DAEMONS: &[&str] = &[
    "mailer-daemon",
    "mailer_daemon",
    "mailerdaemon",
    "mail-daemon",
    "postmaster",
];

/// The From names a mail system (MAILER-DAEMON, postmaster, "Mail Delivery
/// Subsystem").
fn daemon_from(f: &Facts) -> bool {
    f.from.iter().any(|(name, addr)| {
        let local = addr.split('@').next().unwrap_or_default();
        DAEMONS.contains(&local)
            // Exchange's NDRs come from MicrosoftExchange<hex>@.
            || local.starts_with("microsoftexchange")
            || any_of(
                name,
                &[
                    "mail delivery",
                    "mailer-daemon",
                    "mailer daemon",
                    "postmaster",
                ],
            )
    })
}

fn bounce_subject(s: &str) -> bool {
    any_of(
        s,
        &[
            "undelivered mail",
            "undeliverable",
            "undelivered message",
            "delivery status notification",
            "delivery status notice",
            "mail delivery failed",
            "mail delivery status",
            "delivery failure",
            "delivery failed",
            "delivery has failed",
            "failure notice",
            "returned mail",
            "returned to sender",
            "non-delivery",
            "nondeliverable",
            "non delivery",
            "could not be delivered",
            "not delivered",
            "mail failure",
            "delivery notification",
            "delivery problem",
            "see transcript for details",
            "warning: could not send message",
            "message you sent blocked",
            "delayed mail",
            "mail system error",
        ],
    )
}

/// The body quotes an SMTP failure: a reply code with an enhanced status code
/// (`550 5.1.1`, `550-5.7.26`), or typical DSN prose.
fn smtp_failure(b: &str) -> bool {
    if any_of(
        b,
        &[
            "permanent error",
            "permanent fatal error",
            "failed permanently",
            "could not be delivered",
            "couldn't be delivered",
            "could not deliver",
            "wasn't able to deliver",
            "was not delivered",
            "not be delivered",
            "delivery has failed",
            "delivery to the following recipient",
            "the following address(es) failed",
            "following addresses had permanent",
            "delivery failed",
            "undeliverable",
            "user unknown",
            "unknown user",
            "no such user",
            "mailbox unavailable",
            "mailbox is full",
            "quota exceeded",
            "host unknown",
            "remote host said",
            "diagnostic-code",
            "retry timeout exceeded",
            "message could not be",
            "has been delayed",
            "temporary failure",
            "smtp error",
            "error from remote mail server",
            "returned to sender",
        ],
    ) {
        return true;
    }
    smtp_code(b.as_bytes())
}

/// `[45]dd[ -][45].d{1,3}.d{1,3}` somewhere in the text.
fn smtp_code(b: &[u8]) -> bool {
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let is45 = |i: usize| matches!(b.get(i), Some(b'4' | b'5'));
    let mut i = 0;
    while i + 6 < b.len() {
        let starts = i == 0 || !b.get(i - 1).is_some_and(u8::is_ascii_alphanumeric);
        if starts
            && is45(i)
            && digit(i + 1)
            && digit(i + 2)
            && matches!(b.get(i + 3), Some(b' ' | b'-'))
            && is45(i + 4)
            && b.get(i + 5) == Some(&b'.')
            && digit(i + 6)
        {
            return true;
        }
        i += 1;
    }
    false
}

fn plain_bounce(f: &Facts) -> bool {
    if f.x_failed_recipients {
        return true;
    }
    // A person's auto-reply (Auto-Submitted, "out of office") is not a
    // bounce, whatever its subject quotes; bounces come from a daemon.
    // (Exim marks its bounces auto-replied too, but sends them as the
    // daemon.) An empty Return-Path marks a daemon only when the mail is no
    // auto-reply: RFC 3834 asks auto-replies to use one too.
    let auto = auto_reply(f);
    let from_daemon = daemon_from(f);
    if auto && !from_daemon {
        return false;
    }
    let daemon = from_daemon || f.null_return_path;
    let subject = bounce_subject(&f.subject);
    // A person's mail that talks about delivery ("Parcel not delivered",
    // a forwarded bounce) is not one.
    daemon && (subject || smtp_failure(&f.body))
}

fn auto_reply(f: &Facts) -> bool {
    f.auto_submitted
        .as_deref()
        .is_some_and(|a| a.starts_with("auto-replied"))
        || any_of(
            &f.subject,
            &[
                "out of office",
                "out of the office",
                "automatic reply",
                "auto reply",
                "auto-reply",
                "autoreply",
                "away until",
                "on vacation",
                "vacation reply",
                "abwesenheit",
            ],
        )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn smtp_codes() {
        assert!(smtp_code(b"said: 550 5.1.1 user unknown"));
        assert!(smtp_code(b"550-5.7.26 unauthenticated"));
        assert!(!smtp_code(b"version 1550 5.1"));
        assert!(!smtp_code(b"call 555-1234"));
    }

    #[test]
    fn subjects() {
        assert!(claims_aggregate(
            "Report Domain: example.com Submitter: example.org Report-ID: <1@x>"
        ));
        assert!(claims_aggregate("report domain: example.com submitter: x"));
        assert!(!claims_aggregate("Report Domain: example.com"));
        assert!(dmarc_subject("dmarc failure report for example.com"));
    }

    #[test]
    fn arf_abuse_is_other() {
        let f = Facts {
            feedback: vec!["feedback-type: abuse\nuser-agent: x\n".into()],
            report_types: vec!["feedback-report".into()],
            ..Facts::default()
        };
        assert_eq!(classify(&f).kind, Kind::Other);
        let f = Facts {
            feedback: vec!["feedback-type: auth-failure\n".into()],
            ..Facts::default()
        };
        assert_eq!(classify(&f).kind, Kind::Failure);
    }
}
