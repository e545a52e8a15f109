//! Bounces: a delivery status notification (an input of kind `bounce`) →
//! the recipients it reports, each with its status, diagnostic and a
//! [`Reason`].
//!
//! [`parse`] reads RFC 3464 `multipart/report; report-type=delivery-status`
//! mails (the `message/delivery-status` part's per-message and per-recipient
//! fields) and the plain-text bounces of Exim, Postfix, qmail, Sendmail,
//! Exchange, Gmail, Yahoo and others (recipients from `X-Failed-Recipients`
//! and the lines that name an address, the status and reply code from the
//! text after them). The returned message's Message-ID, From and Subject come
//! from a `message/rfc822` or `text/rfc822-headers` part, or from the headers
//! quoted after the usual "copy of the message" lines. A field the bounce
//! does not carry stays `None`: nothing is guessed.
//!
//! [`classify`] maps a status code and diagnostic text onto a [`Reason`] and
//! detail through one table (`classify.rs`).
//!
//! Pure like `extract` and `parse`: no IO, no panics (mail-parser runs under
//! `catch_unwind`), and every list and text is capped ([`MAX_RECIPIENTS`],
//! [`MAX_TEXT`]).

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod classify;
mod parse;

pub use classify::{classify, Reason, RULES};
pub use parse::parse;
use serde::Serialize;

/// Recipients kept per bounce; the rest are counted in a warning.
pub const MAX_RECIPIENTS: usize = 200;
/// Characters kept of a diagnostic or any other text field.
pub const MAX_TEXT: usize = 2000;

/// What one bounce says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Bounce {
    /// `dsn` (a message/delivery-status part was read) or `text` (plain-text bounce).
    pub format: &'static str,
    /// The MTA that wrote the bounce (`Reporting-MTA`, or named in the text).
    pub reporting_mta: Option<String>,
    /// `Arrival-Date` as written.
    pub arrival_date: Option<String>,
    /// The bounce mail's own Message-ID.
    pub message_id: Option<String>,
    /// The bounce mail's Date, Unix seconds.
    pub date: Option<i64>,
    /// The domain that sent the bounced mail: of the original From, else of
    /// the address the bounce went to.
    pub sender_domain: Option<String>,
    /// The returned message, as far as the bounce quotes it.
    pub original: Original,
    pub recipients: Vec<Recipient>,
    /// What was odd (recipients over the cap, no recipient found, …).
    pub warnings: Vec<String>,
}

impl Bounce {
    /// What makes two mails the same bounce: the bounce's own Message-ID and
    /// Date and everything read from it, but not the headers a relay or a
    /// second mailbox adds. A sha256, hex.
    pub fn key(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut field = |v: Option<&str>| {
            // A length prefix keeps ("ab", "c") apart from ("a", "bc").
            let v = v.unwrap_or("\u{0}none");
            h.update((v.len() as u64).to_le_bytes());
            h.update(v.as_bytes());
        };
        let date = self.date.map(|d| d.to_string());
        field(self.message_id.as_deref());
        field(date.as_deref());
        field(self.reporting_mta.as_deref());
        field(self.arrival_date.as_deref());
        field(self.original.message_id.as_deref());
        for r in &self.recipients {
            field(Some(&r.address));
            field(r.action.as_deref());
            field(r.status.as_deref());
            field(r.diagnostic.as_deref());
        }
        crate::ingest::hex(&h.finalize())
    }
}

/// The headers of the message that bounced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Original {
    pub message_id: Option<String>,
    pub from: Option<String>,
    pub subject: Option<String>,
    /// Its To, used only when a plain-text bounce names no recipient.
    #[serde(skip)]
    pub to: Option<String>,
}

/// One failed (or delayed) recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipient {
    /// The address, lowercased domain, without angle brackets.
    pub address: String,
    /// `failed`, `delayed`, … (DSN `Action`), lowercased.
    pub action: Option<String>,
    /// Enhanced status code `X.Y.Z`.
    pub status: Option<String>,
    /// SMTP reply code, e.g. `550`.
    pub smtp_code: Option<u16>,
    /// The receiving server: a host name or an address.
    pub remote_mta: Option<String>,
    /// The server's words (DSN `Diagnostic-Code`, or the bounce text about this recipient).
    pub diagnostic: Option<String>,
    pub reason: Reason,
    /// A finer reason where the text names one: `spf`, `dkim`, `dmarc`
    /// (auth failure), `reputation`, `blocklist`, `ptr` (blocked).
    pub detail: Option<&'static str>,
}

impl Recipient {
    /// The recipient's domain (the receiving domain), lowercased.
    pub fn domain(&self) -> Option<&str> {
        self.address
            .rsplit_once('@')
            .map(|(_, d)| d)
            .filter(|d| !d.is_empty())
    }
}
