//! Parse: a streaming, tolerant, panic-free reader of one DMARC aggregate
//! report's XML (RFC 7489 Appendix C, RFC 9990, and the pre-RFC draft shape).
//!
//! ```no_run
//! # fn main() -> Result<(), dmarcdb::parse::ParseError> {
//! # let bytes: &[u8] = b"";
//! let mut rr = dmarcdb::parse::ReportReader::new(bytes);
//! let id = rr.header()?.report_id.clone();
//! while let Some(rec) = rr.next_record()? {
//!     println!("{id} {} x{}", rec.source_ip, rec.count);
//! }
//! for w in rr.warnings() { eprintln!("warning: {w}"); }
//! # Ok(()) }
//! ```
//!
//! # How it reads
//! - Streaming: [`ReportReader::next_record`] parses one `<record>` per call;
//!   memory does not grow with the number of records. Records are buffered
//!   only when `report_metadata`/`policy_published` come after them (up to
//!   [`ParseLimits::max_buffered_records`]).
//! - Elements are matched by local name: no namespace, the RFC 7489 or RFC
//!   9990 default namespace, or any prefix. Elements whose prefix is bound (on
//!   `<feedback>` or an ancestor) to another namespace are foreign extensions
//!   and skipped silently; unknown elements are skipped with a warning, whole
//!   subtrees included. Children may come in any order.
//! - `<feedback>` is found at any depth, so a stray unclosed wrapper (such as
//!   `<xs:schema>`) does not matter. Nothing after `</feedback>` is read.
//! - Encoding: BOM, UTF-16 without BOM, or the declared `encoding` (any label
//!   `encoding_rs` knows); everything is decoded to UTF-8 and invalid
//!   sequences become U+FFFD with a warning.
//! - Values are trimmed; enumerations (dispositions, results, alignment,
//!   scope, reason type, testing, discovery_method) are ASCII-lowercased and
//!   kept even when unknown (`hardfail`). Empty elements give `None`. Control
//!   characters other than tab/CR/LF are removed (with a warning).
//! - Entities: the five predefined ones and numeric character references are
//!   decoded. A DOCTYPE is ignored, so custom entities (internal or external)
//!   are never expanded or fetched: `&foo;` stays in the text literally, with
//!   a warning. A bare `&` is kept as text.
//! - Not well-formed input: stray text between elements is ignored. An end
//!   tag that does not match the open element is recovered from the way
//!   libxml2's recover mode does it: if it matches an element further up, the
//!   ones above are closed with it; if it matches none, it is ignored. Either
//!   way there is a warning and [`ReportReader::recovered`] is true (the
//!   report may be incomplete, so a well-formed copy replaces it). Any other
//!   syntax error ends the document. No input panics or hangs; nesting depth
//!   and the size of any single event are capped ([`ParseLimits`]).
//!
//! # Format detection ([`Format`])
//! - `Rfc9990` when the `urn:ietf:params:xml:ns:dmarc-2.0` namespace is
//!   declared on `<feedback>` (or an ancestor), or any RFC 9990-only element is
//!   present: `generator`, `testing`, `discovery_method`, or a feedback-level
//!   `<extension>`. `np` alone does **not** count: Google has sent `<np>` in
//!   otherwise legacy reports since 2024.
//! - `Draft` (the pre-RFC dmarc.org shape) when none of that applies and the
//!   report has no `<version>`, no `<fo>`, no `<np>` and no RFC 7489 default
//!   namespace — the elements the old draft lacked (`fo` and `version` came
//!   with the IETF drafts, `np` with DMARCbis). Note that several large
//!   reporters (Yahoo, AOL) still send exactly this shape.
//! - `Rfc7489` otherwise.
//!
//! The decision is made from what precedes the first `<record>` (in schema
//! order that is the whole header).

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

mod input;
pub mod model;
mod reader;
mod warn;

pub use model::*;
pub use reader::ReportReader;

/// Why a document is not a readable report. Display is one line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Anything else wrong with the document.
    #[error("{0}")]
    Invalid(String),
    /// No `<feedback>` element anywhere (empty input, plain text, JSON, ...).
    #[error("XML: no <feedback> element")]
    NoFeedback,
    /// The document broke before any `<feedback>` was found (HTML, junk).
    #[error("XML: no <feedback> element before a syntax error at byte {pos}: {msg}")]
    NoFeedbackSyntax { pos: u64, msg: String },
    /// Not well-formed XML. `pos` is a byte offset in the document decoded
    /// to UTF-8 (equal to the input offset for UTF-8 input without BOM).
    #[error("XML syntax error at byte {pos}: {msg}")]
    Syntax { pos: u64, msg: String },
    /// The document ends inside an element (truncated input).
    #[error("XML: document ends inside <{0}>")]
    Truncated(&'static str),
    /// A required header field is absent or empty.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A required integer field is not an integer.
    #[error("{field} is not an integer: '{value}'")]
    NotAnInteger { field: &'static str, value: String },
    /// `<feedback>` holds no `<record>`.
    #[error("report has no <record>")]
    NoRecords,
    /// The underlying reader failed (decompression, size caps): its message.
    #[error("read error: {0}")]
    Read(String),
    /// Elements nested deeper than [`ParseLimits::max_depth`].
    #[error("XML nesting deeper than {0}")]
    TooDeep(usize),
    /// One text node, tag, attribute list, comment or DOCTYPE is larger than
    /// [`ParseLimits::max_event_bytes`].
    #[error("{what} larger than {limit} bytes")]
    TooLarge { what: &'static str, limit: usize },
    /// More than [`ParseLimits::max_buffered_records`] records came before
    /// the report header was complete.
    #[error("more than {0} records before the report header was complete")]
    TooManyBuffered(usize),
}

impl ParseError {
    /// True when a resource cap was broken: such a document is not salvaged.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            ParseError::TooDeep(_) | ParseError::TooLarge { .. } | ParseError::TooManyBuffered(_)
        )
    }
}

/// Resource caps; every breach is a [`ParseError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Maximum element nesting depth (`<feedback>` at the top is depth 1).
    pub max_depth: usize,
    /// Maximum bytes of any single XML event (text node, tag with its
    /// attributes, comment, CDATA, DOCTYPE) and of any element's text.
    pub max_event_bytes: usize,
    /// Maximum records held back while waiting for a late header.
    pub max_buffered_records: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_depth: 64,
            max_event_bytes: 1 << 20,
            max_buffered_records: 100_000,
        }
    }
}

/// Parse a whole report held in memory: header, all records, warnings.
pub fn parse_slice(bytes: &[u8]) -> Result<(Header, Vec<Record>, Vec<String>), ParseError> {
    let mut rr = ReportReader::new(bytes);
    let header = rr.header()?.clone();
    let mut records = Vec::new();
    while let Some(r) = rr.next_record()? {
        records.push(r);
    }
    Ok((header, records, rr.warnings().to_vec()))
}

/// A value for a message: at most 64 characters, controls escaped.
pub(crate) fn clip(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == 64 {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests;
