//! Extract: find report parts in a mail or file and decompress them.
//! (API skeleton; the implementation is being written.)

use crate::config::Limits;
use crate::kind::Kind;
use std::borrow::Cow;
use std::io::BufRead;

/// Headers kept from a mail.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MailMeta {
    pub from: Option<String>,
    pub subject: Option<String>,
    pub message_id: Option<String>,
    pub date: Option<String>,
    pub authentication_results: Option<String>,
}

/// A part that may hold a report, still compressed as it came.
#[derive(Debug, Clone)]
pub struct Payload<'a> {
    pub name: String,
    pub data: Cow<'a, [u8]>,
}

/// What extract found in one input.
#[derive(Debug)]
pub struct Extracted<'a> {
    pub mail: Option<MailMeta>,
    pub kind: Kind,
    pub payloads: Vec<Payload<'a>>,
    pub reason: Option<String>,
    pub warnings: Vec<String>,
}

/// Why a payload or one of its documents could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// Anything.
    #[error("{0}")]
    Invalid(String),
}

/// The decompressed-bytes allowance of one input, shared by all its parts.
#[derive(Debug)]
pub struct Budget {
    remaining: std::cell::Cell<u64>,
}

impl Budget {
    /// A fresh allowance.
    pub fn new(limits: &Limits) -> Budget {
        Budget {
            remaining: std::cell::Cell::new(limits.max_decompressed_bytes),
        }
    }
}

/// One decompressed document inside a payload.
pub struct Document<'r> {
    pub name: String,
    pub reader: &'r mut dyn BufRead,
}

/// Look at an input's bytes.
pub fn extract<'a>(bytes: &'a [u8], _name: Option<&str>) -> Extracted<'a> {
    Extracted {
        mail: None,
        kind: Kind::Aggregate,
        payloads: vec![Payload {
            name: "input".into(),
            data: Cow::Borrowed(bytes),
        }],
        reason: None,
        warnings: vec![],
    }
}

/// Unpack a payload, calling `f` once per document (or per failure).
pub fn documents<E>(
    payload: &Payload<'_>,
    _limits: &Limits,
    _budget: &Budget,
    f: &mut dyn FnMut(Result<Document<'_>, ExtractError>) -> Result<(), E>,
) -> Result<(), E> {
    let mut r: &[u8] = &payload.data;
    f(Ok(Document {
        name: payload.name.clone(),
        reader: &mut r,
    }))
}
