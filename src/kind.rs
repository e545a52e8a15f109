//! The kinds an input can have, shared by extract (which recognises them) and
//! store (which records them).

use serde::Serialize;

/// What an input turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Yielded at least one DMARC aggregate report.
    Aggregate,
    /// A DMARC failure (forensic, RUF) report.
    Failure,
    /// An SMTP TLS report (RFC 8460).
    Tlsrpt,
    /// A delivery status notification (bounce).
    Bounce,
    /// Any other mail or file.
    Other,
    /// Looked like a report but could not be read, or broke a cap.
    Invalid,
}

impl Kind {
    /// All kinds, in the order reports show them.
    pub const ALL: [Kind; 6] = [
        Kind::Aggregate,
        Kind::Failure,
        Kind::Tlsrpt,
        Kind::Bounce,
        Kind::Other,
        Kind::Invalid,
    ];

    /// The name stored in `inputs.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Aggregate => "aggregate",
            Kind::Failure => "failure",
            Kind::Tlsrpt => "tlsrpt",
            Kind::Bounce => "bounce",
            Kind::Other => "other",
            Kind::Invalid => "invalid",
        }
    }

    /// The inverse of [`Kind::as_str`].
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}
