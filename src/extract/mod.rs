//! Extract: find the report parts in a mail or file, decide what kind of input
//! it is, and decompress gzip/zip payloads as bounded streams.
//!
//! Two entry points:
//!
//! * [`extract`] looks at the bytes of one input (a whole mail, or a plain
//!   file) and returns the [`Payload`]s that may hold a DMARC aggregate report,
//!   still compressed as they came, plus the input's [`Kind`] and the mail
//!   headers the store keeps. It never decompresses more than a 1 KiB peek.
//! * [`documents`] unpacks one payload (gzip, zip, nested archives, plain XML)
//!   and hands each XML document to a callback as a streaming [`BufRead`],
//!   with every decompressed byte counted against a shared [`Budget`].
//!
//! Both are pure functions over bytes that never panic, never hang and never
//! allocate in proportion to a size an archive merely claims.
//!
//! # How `extract` decides
//! A mail (RFC 5322 header block, optionally after an mbox `From ` line) is
//! parsed with `mail-parser` and its MIME tree walked (see `mime.rs`). A part
//! is a report candidate by its bytes first (gzip or zip magic, or XML that
//! starts like `<feedback`), then by its declared type or file name; when the
//! declared type and the bytes disagree the bytes win. Anything else is a
//! plain file, sniffed by its bytes (see `sniff.rs`).
//!
//! When no candidate is found the mail is classified (see `classify.rs`):
//! TLS-RPT, DMARC failure (RFC 6591 `auth-failure` ARF, or DMARC forensic
//! text), bounce (DSN or plain-text), and otherwise `Other`, or `Invalid`
//! when the Subject claims an aggregate report (`Report Domain: … Submitter:
//! …`) that is not attached. ARF reports of other feedback types (`abuse`,
//! `fraud`, …) are spam complaints, not DMARC failure reports: they are
//! `Other`.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod classify;
mod decompress;
mod mime;
mod sniff;

use crate::config::Limits;
use crate::kind::Kind;
use std::borrow::Cow;
use std::io::BufRead;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Headers kept from a mail.
///
/// `from` and `subject` are RFC 2047 decoded and unfolded; `message_id` is the
/// id without its angle brackets; `date` is the raw header text (trimmed);
/// `authentication_results` holds every `Authentication-Results` field,
/// unfolded, joined with `"\n"`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MailMeta {
    pub from: Option<String>,
    pub subject: Option<String>,
    pub message_id: Option<String>,
    pub date: Option<String>,
    pub authentication_results: Option<String>,
}

/// A part that may hold a report, still compressed as it came (the MIME
/// transfer encoding is already decoded).
///
/// `name` is the attachment's file name (RFC 2047/2231 decoded), or for a
/// part without one a description like `part 1.2 (text/xml)`; for a plain file
/// it is the file-name hint given to [`extract`] (or `input`).
#[derive(Debug, Clone)]
pub struct Payload<'a> {
    pub name: String,
    pub data: Cow<'a, [u8]>,
}

/// What extract found in one input.
#[derive(Debug)]
pub struct Extracted<'a> {
    /// The mail's headers; `None` for a plain file.
    pub mail: Option<MailMeta>,
    /// `Aggregate` whenever `payloads` is not empty (the caller makes it
    /// `Invalid` when no payload yields a report).
    pub kind: Kind,
    pub payloads: Vec<Payload<'a>>,
    /// Why the input is `Invalid` (set only with `Kind::Invalid`).
    pub reason: Option<String>,
    /// Oddities worth a log line (a zip declared as gzip, …).
    pub warnings: Vec<String>,
}

/// Why a payload or one of its documents could not be read. Display is one
/// line.
///
/// Readers handed out by [`documents`] fail with an `io::Error` that wraps one
/// of these (its message is this Display); [`ExtractError::from_io`] gets it
/// back.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// Anything else (kept from the skeleton; extract itself does not use it).
    #[error("{0}")]
    Invalid(String),
    /// The deflate data or checksum of a gzip stream is bad. `offset` is the
    /// number of *compressed* bytes of that gzip stream (counted from its first
    /// byte) consumed when the fault was detected.
    #[error("gzip stream corrupt at byte {offset}")]
    GzipCorrupt { offset: u64 },
    /// A gzip stream ends in the middle of a member; `offset` as for
    /// [`ExtractError::GzipCorrupt`] (it is the stream's length).
    #[error("gzip stream truncated at byte {offset}")]
    GzipTruncated { offset: u64 },
    /// A zip archive has more entries than `Limits::max_zip_entries`.
    #[error("zip entry limit {limit} exceeded")]
    ZipEntryLimit { limit: usize },
    /// Archives inside archives deeper than `Limits::max_nesting`.
    #[error("archives nested deeper than {limit}")]
    Nesting { limit: usize },
    /// The zip archive itself cannot be read ("invalid central directory", …).
    #[error("zip: {0}")]
    Zip(String),
    /// The decompressed bytes of the input went over
    /// `Limits::max_decompressed_bytes`.
    #[error("decompressed size limit {limit} bytes (max_decompressed_bytes) exceeded")]
    SizeLimit { limit: u64 },
    /// A zip archive holds no XML document; `entries` lists its member names.
    #[error("zip holds no report (entries: {entries})")]
    NoReportInZip { entries: String },
    /// The payload decompresses to the literal text `unused` (Yahoo, 2023).
    #[error("payload is the text 'unused'")]
    Unused,
    /// The payload (after decompression) does not start with `<`.
    #[error("payload is not XML (starts with \"{start}\")")]
    NotXml { start: String },
    /// The payload (after decompression) is empty or only white space.
    #[error("payload is empty")]
    Empty,
    /// A read failed for another reason.
    #[error("read error: {0}")]
    Io(String),
    /// Something went wrong inside one member of a zip archive.
    #[error("{name}: {source}")]
    InEntry {
        name: String,
        source: Box<ExtractError>,
    },
}

impl ExtractError {
    /// The error without the zip-member names around it.
    pub fn root(&self) -> &ExtractError {
        match self {
            ExtractError::InEntry { source, .. } => source.root(),
            e => e,
        }
    }

    /// True when the error is a broken resource cap (size, entries, nesting):
    /// the whole input should be `Invalid`, not just this document.
    pub fn is_limit(&self) -> bool {
        matches!(
            self.root(),
            ExtractError::SizeLimit { .. }
                | ExtractError::ZipEntryLimit { .. }
                | ExtractError::Nesting { .. }
        )
    }

    /// The `ExtractError` inside an `io::Error` produced by a document reader,
    /// or [`ExtractError::Io`] for any other `io::Error`.
    pub fn from_io(e: &std::io::Error) -> ExtractError {
        match e.get_ref().and_then(|i| i.downcast_ref::<ExtractError>()) {
            Some(x) => x.clone(),
            None => ExtractError::Io(e.to_string()),
        }
    }

    /// Wrap into an `io::Error` whose message is this error's Display.
    pub fn into_io(self) -> std::io::Error {
        std::io::Error::other(self)
    }
}

/// The decompressed-bytes allowance of ONE input, shared by all its payloads
/// and documents. Every byte any decoder (gzip member, zip entry, at every
/// nesting level) produces is counted as it streams; once the allowance is
/// used up every further decompressing read fails with
/// [`ExtractError::SizeLimit`]. Uncompressed XML costs nothing.
#[derive(Debug)]
pub struct Budget {
    limit: u64,
    // Atomics only so that a document can be parsed on another thread than
    // the one that made it; one thread reads at a time.
    remaining: AtomicU64,
    exceeded: AtomicBool,
}

impl Budget {
    /// A fresh allowance of `limits.max_decompressed_bytes`.
    pub fn new(limits: &Limits) -> Budget {
        Budget {
            limit: limits.max_decompressed_bytes,
            remaining: AtomicU64::new(limits.max_decompressed_bytes),
            exceeded: AtomicBool::new(false),
        }
    }

    /// Bytes decompressed so far.
    pub fn used(&self) -> u64 {
        self.limit.saturating_sub(self.remaining.load(Relaxed))
    }

    /// True once a read went over the allowance.
    pub fn exceeded(&self) -> bool {
        self.exceeded.load(Relaxed)
    }

    /// Take `n` bytes from the allowance.
    fn take(&self, n: usize) -> Result<(), ExtractError> {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        let left = self.remaining.load(Relaxed);
        if self.exceeded.load(Relaxed) || n > left {
            self.exceeded.store(true, Relaxed);
            self.remaining.store(0, Relaxed);
            return Err(ExtractError::SizeLimit { limit: self.limit });
        }
        self.remaining.store(left - n, Relaxed);
        Ok(())
    }

    /// Fail if the allowance is already used up.
    fn check(&self) -> Result<(), ExtractError> {
        if self.exceeded.load(Relaxed) {
            Err(ExtractError::SizeLimit { limit: self.limit })
        } else {
            Ok(())
        }
    }
}

/// One decompressed document inside a payload.
///
/// The reader starts at the document's first `<` (a UTF-8 BOM and leading
/// white space are skipped) and streams; it fails with an `io::Error` carrying
/// an [`ExtractError`] when the data is corrupt or the budget runs out.
pub struct Document<'r> {
    /// The payload's name, or for a zip member `payload/member`.
    pub name: String,
    pub reader: &'r mut (dyn BufRead + Send),
}

/// A name (file name, zip member, attachment) as it is shown in messages and
/// stored: control characters (a line break in a zip member's name, …) are
/// escaped, so that every reason stays one line.
pub fn printable_name(s: &str) -> String {
    if !s.chars().any(hidden) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if hidden(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A character that changes how a line shows without showing itself: a
/// control character, or an invisible format character (zero-width space,
/// bidirectional overrides and isolates, BOM) that could make a hostile
/// diagnostic read as something it is not.
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{feff}' | '\u{061c}')
}

/// Look at an input's bytes: a mail, or a plain file.
///
/// `name` is a file-name hint (local files) or `None` (mails from IMAP).
/// Pure; never panics.
pub fn extract<'a>(bytes: &'a [u8], name: Option<&str>) -> Extracted<'a> {
    if bytes.is_empty() {
        // Whatever its name says, so that the same (empty) bytes always get
        // the same kind.
        return Extracted {
            mail: None,
            kind: Kind::Invalid,
            payloads: vec![],
            reason: Some("input is empty".into()),
            warnings: vec![],
        };
    }
    if let Some(start) = sniff::mail_start(bytes, name) {
        return mime::extract_mail(bytes, start);
    }
    plain_file(bytes, name)
}

/// A plain (non-mail) file: one payload if it is XML, gzip or zip.
fn plain_file<'a>(bytes: &'a [u8], name: Option<&str>) -> Extracted<'a> {
    let file_name = name
        .map(|n| printable_name(n.rsplit(['/', '\\']).next().unwrap_or(n)))
        .unwrap_or_else(|| "input".to_string());
    let lower = file_name.to_ascii_lowercase();
    let mut out = Extracted {
        mail: None,
        kind: Kind::Other,
        payloads: vec![],
        reason: None,
        warnings: vec![],
    };
    let payload = |out: &mut Extracted<'a>| {
        out.kind = Kind::Aggregate;
        out.payloads.push(Payload {
            name: file_name.clone(),
            data: Cow::Borrowed(bytes),
        });
    };
    match sniff::sniff(bytes) {
        sniff::Sniff::Gzip => {
            if lower.ends_with(".json.gz") || sniff::gzip_holds_json(bytes) {
                out.kind = Kind::Tlsrpt;
            } else {
                payload(&mut out);
            }
        }
        sniff::Sniff::Zip | sniff::Sniff::Xml => payload(&mut out),
        sniff::Sniff::Json => {
            if sniff::is_tlsrpt_json(bytes) || lower.ends_with(".json") {
                out.kind = Kind::Tlsrpt;
            } else {
                out.warnings
                    .push("JSON file that is not a TLS report".to_string());
            }
        }
        sniff::Sniff::Other => {
            if sniff::report_file_name(&lower) {
                // Claims to be a report by its name: let documents() say why
                // it is not one.
                payload(&mut out);
            } else {
                out.warnings.push(format!(
                    "not a mail, XML, gzip, zip or JSON file (starts with \"{}\")",
                    sniff::start_text(bytes)
                ));
            }
        }
    }
    out
}

/// Unpack a payload, calling `f` once per XML document (`Ok`) or per failure
/// (`Err`), then return. An `Err` from `f` stops the walk and is returned.
///
/// * gzip is read member by member (a multi-member gzip is one document);
///   bytes after a member that are not another gzip header (a CRLF, …) end the
///   stream cleanly.
/// * zip: one document per XML member; directories, `__MACOSX/` and `._*`
///   members are skipped; members that hold no XML are skipped unless the
///   archive holds no document at all (then one `Err`
///   [`ExtractError::NoReportInZip`]); a member that fails is one `Err` and the
///   others still come.
///   A member whose name says report (`.xml`, `.gz`, `.zip`) but that holds
///   no XML is an `Err` too. Errors about a member are
///   [`ExtractError::InEntry`] (Display `member: reason`).
/// * archives nest (gzip in zip, zip in gzip, gzip in gzip) up to
///   `limits.max_nesting` (a plain gzip is depth 1, a gzip in a zip depth 2;
///   never deeper than 32 whatever the config says); a zip inside a gzip (or
///   zip) is buffered in memory, within the budget, because zip needs to
///   seek. Everything else streams.
/// * more than `limits.max_zip_entries` members is an `Err` before any member
///   is read.
/// * a payload (or gzip content) that is empty, the text `unused`, or does not
///   start with `<` is one `Err`.
///
/// Only the first bytes of each document are read before `f` sees it;
/// corruption found later (bad deflate data, a CRC mismatch, a truncated
/// stream, the budget running out) surfaces as an `io::Error` from the
/// document's reader.
#[allow(clippy::type_complexity)] // the shape of the public API
pub fn documents<E>(
    payload: &Payload<'_>,
    limits: &Limits,
    budget: &Budget,
    f: &mut dyn FnMut(Result<Document<'_>, ExtractError>) -> Result<(), E>,
) -> Result<(), E> {
    decompress::documents(payload, limits, budget, f)
}
