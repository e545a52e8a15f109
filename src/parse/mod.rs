//! Parse: a streaming reader over one aggregate report's XML.
//! (API skeleton; the implementation is being written.)

pub mod model;
pub use model::*;

use std::io::BufRead;

/// Why a document is not a readable report. Display is one line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Anything wrong with the document.
    #[error("{0}")]
    Invalid(String),
}

/// Reads a report: first [`ReportReader::header`], then records one by one.
pub struct ReportReader<R: BufRead> {
    _r: R,
    header: Option<Header>,
    warnings: Vec<String>,
}

impl<R: BufRead> ReportReader<R> {
    /// Wrap a reader of (uncompressed) XML bytes.
    pub fn new(r: R) -> Self {
        ReportReader {
            _r: r,
            header: None,
            warnings: vec![],
        }
    }
    /// Read up to the first record and return the report's metadata and policy.
    pub fn header(&mut self) -> Result<&Header, ParseError> {
        self.header
            .as_ref()
            .ok_or_else(|| ParseError::Invalid("not implemented".into()))
    }
    /// The next record, or `None` at the end of the report.
    pub fn next_record(&mut self) -> Result<Option<Record>, ParseError> {
        Ok(None)
    }
    /// What was odd about the report so far.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}
