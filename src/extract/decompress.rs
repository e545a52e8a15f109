//! `documents()`: unpacking one payload into XML documents, as streams whose
//! decompressed bytes are counted against the input's [`Budget`].
//!
//! Layers, outermost first, for a gzip payload:
//! `Labeled` (adds zip-member names to errors) → `Peek` (looks at the first
//! bytes, then replays them) → `BufReader` → `Budgeted` (counts bytes) →
//! `GzMembers` (member by member, stops at trailing junk) → `CountIn` (counts
//! compressed bytes for error offsets) → the compressed bytes.
//!
//! Only a zip found inside another archive is buffered in memory (zip needs
//! `Seek`); its bytes were decompressed, so the budget bounds the buffer.

use super::sniff;
use super::{Budget, Document, ExtractError, Payload};
use crate::config::Limits;
use flate2::bufread::GzDecoder;
use std::io::{self, BufRead, BufReader, Cursor, Read};

/// Buffer size of each decompressing layer.
const BUF: usize = 32 * 1024;
/// Bytes of content (after BOM and white space) looked at before deciding.
const PEEK_CONTENT: usize = 16;
/// Leading white space looked through at most.
const PEEK_MAX: usize = 64 * 1024;
/// Nesting is never allowed deeper than this, whatever the config says (each
/// level is a stack frame and a decoder).
const HARD_NESTING: usize = 32;
/// Member names listed in "zip holds no report".
const NAMES_SHOWN: usize = 10;

#[allow(clippy::type_complexity)]
pub(crate) fn documents<E>(
    payload: &Payload<'_>,
    limits: &Limits,
    budget: &Budget,
    f: &mut dyn FnMut(Result<Document<'_>, ExtractError>) -> Result<(), E>,
) -> Result<(), E> {
    let mut ctx = Ctx {
        budget,
        max_entries: limits.max_zip_entries,
        max_nesting: limits.max_nesting.min(HARD_NESTING),
        f,
        labels: vec![],
    };
    let data: &[u8] = &payload.data;
    if let Outcome::NotXml(e) = unpack_bytes(&mut ctx, &payload.name, data, 0)? {
        ctx.report(e)?;
    }
    Ok(())
}

/// What unpacking one thing gave.
enum Outcome {
    /// At least one document was handed to the callback.
    Delivered,
    /// No document; at least one error was handed to the callback.
    Reported,
    /// Not XML, nothing reported yet: the caller decides whether that is an
    /// error (a payload, a member named like a report) or not (a readme in a
    /// zip).
    NotXml(ExtractError),
}

#[allow(clippy::type_complexity)]
struct Ctx<'c, E> {
    budget: &'c Budget,
    max_entries: usize,
    max_nesting: usize,
    f: &'c mut dyn FnMut(Result<Document<'_>, ExtractError>) -> Result<(), E>,
    /// Names of the zip members we are inside, outermost first.
    labels: Vec<String>,
}

fn wrap(labels: &[String], e: ExtractError) -> ExtractError {
    labels.iter().rev().fold(e, |acc, l| ExtractError::InEntry {
        name: l.clone(),
        source: Box::new(acc),
    })
}

impl<E> Ctx<'_, E> {
    fn report(&mut self, e: ExtractError) -> Result<(), E> {
        let e = wrap(&self.labels, e);
        (self.f)(Err(e))
    }

    fn deliver(&mut self, name: &str, reader: &mut (dyn BufRead + Send)) -> Result<(), E> {
        if self.labels.is_empty() {
            (self.f)(Ok(Document {
                name: name.to_string(),
                reader,
            }))
        } else {
            let mut l = Labeled {
                inner: reader,
                labels: self.labels.clone(),
            };
            (self.f)(Ok(Document {
                name: name.to_string(),
                reader: &mut l,
            }))
        }
    }

    /// Entering one more archive level: `Err` reported when too deep.
    fn enter(&mut self, depth: usize) -> Result<bool, E> {
        if depth > self.max_nesting {
            self.report(ExtractError::Nesting {
                limit: self.max_nesting,
            })?;
            return Ok(false);
        }
        Ok(true)
    }
}

/// Where the XML starts in `head`, or why it is not XML. `complete` says
/// `head` is the whole stream.
fn doc_start(head: &[u8], complete: bool) -> Result<usize, ExtractError> {
    if head.starts_with(b"\xFF\xFE<\x00") || head.starts_with(b"\xFE\xFF\x00<") {
        return Ok(0);
    }
    let start = sniff::content_start(head);
    let rest = head.get(start..).unwrap_or_default();
    match rest.first() {
        Some(b'<') => Ok(start),
        None if complete => Err(ExtractError::Empty),
        None => Err(ExtractError::NotXml {
            start: "(64 KiB of white space)".to_string(),
        }),
        Some(_) => {
            if rest
                .get(..6)
                .is_some_and(|w| w.eq_ignore_ascii_case(b"unused"))
            {
                Err(ExtractError::Unused)
            } else {
                Err(ExtractError::NotXml {
                    start: sniff::start_text(rest),
                })
            }
        }
    }
}

/// A payload (or a buffered archive) in memory.
fn unpack_bytes<E>(
    ctx: &mut Ctx<'_, E>,
    name: &str,
    data: &[u8],
    depth: usize,
) -> Result<Outcome, E> {
    if sniff::is_gzip(data) {
        if !ctx.enter(depth + 1)? {
            return Ok(Outcome::Reported);
        }
        let gz = GzMembers::new(data);
        let mut r = BufReader::with_capacity(BUF, Budgeted::new(gz, ctx.budget));
        return unpack_stream(ctx, name, &mut r, depth + 1);
    }
    if sniff::is_zip(data) {
        if !ctx.enter(depth + 1)? {
            return Ok(Outcome::Reported);
        }
        return unpack_zip(ctx, name, data, depth + 1);
    }
    match doc_start(data, true) {
        Ok(start) => {
            let mut r: &[u8] = data.get(start..).unwrap_or_default();
            ctx.deliver(name, &mut r)?;
            Ok(Outcome::Delivered)
        }
        Err(e) => Ok(Outcome::NotXml(e)),
    }
}

/// A decompressed stream: sniff its start, then recurse or deliver it.
fn unpack_stream<E>(
    ctx: &mut Ctx<'_, E>,
    name: &str,
    inner: &mut (dyn BufRead + Send),
    depth: usize,
) -> Result<Outcome, E> {
    let mut p = Peek::new(inner);
    if let Err(e) = p.fill() {
        ctx.report(ExtractError::from_io(&e))?;
        return Ok(Outcome::Reported);
    }
    let head = p.head();
    if sniff::is_gzip(head) {
        if !ctx.enter(depth + 1)? {
            return Ok(Outcome::Reported);
        }
        let gz = GzMembers::new(&mut p);
        let mut r = BufReader::with_capacity(BUF, Budgeted::new(gz, ctx.budget));
        return unpack_stream(ctx, name, &mut r, depth + 1);
    }
    if sniff::is_zip(head) {
        if !ctx.enter(depth + 1)? {
            return Ok(Outcome::Reported);
        }
        // zip needs Seek: buffer it. Every byte came out of a counted
        // decoder, so the budget bounds this.
        let mut buf = Vec::new();
        if let Err(e) = p.read_to_end(&mut buf) {
            ctx.report(ExtractError::from_io(&e))?;
            return Ok(Outcome::Reported);
        }
        return unpack_zip(ctx, name, &buf, depth + 1);
    }
    match doc_start(head, p.eof) {
        Ok(start) => {
            p.skip(start);
            ctx.deliver(name, &mut p)?;
            Ok(Outcome::Delivered)
        }
        Err(e) => Ok(Outcome::NotXml(e)),
    }
}

/// The total-entries field of the end-of-central-directory record, if there
/// is one (not for zip64, which stores 0xFFFF there).
fn eocd_entries(data: &[u8]) -> Option<usize> {
    let from = data.len().saturating_sub(22 + 65535);
    let tail = data.get(from..)?;
    let pos = tail.windows(4).rposition(|w| w == b"PK\x05\x06")?;
    let lo = *tail.get(pos + 10)?;
    let hi = *tail.get(pos + 11)?;
    let n = u16::from_le_bytes([lo, hi]);
    (n != 0xFFFF).then_some(usize::from(n))
}

/// Members that are never reports: directories and macOS resource forks.
fn skipped_member(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    name.ends_with('/')
        || name.ends_with('\\')
        || name.starts_with("__MACOSX/")
        || name.contains("/__MACOSX/")
        || base.starts_with("._")
}

fn zip_open_error(e: &zip::result::ZipError) -> String {
    match e {
        zip::result::ZipError::InvalidArchive(_) => "invalid central directory".to_string(),
        zip::result::ZipError::Io(io) => {
            match io.get_ref().and_then(|i| i.downcast_ref::<ExtractError>()) {
                Some(x) => x.to_string(),
                None => format!("invalid central directory ({io})"),
            }
        }
        other => other.to_string(),
    }
}

fn unpack_zip<E>(
    ctx: &mut Ctx<'_, E>,
    name: &str,
    data: &[u8],
    depth: usize,
) -> Result<Outcome, E> {
    let limit = ExtractError::ZipEntryLimit {
        limit: ctx.max_entries,
    };
    if eocd_entries(data).is_some_and(|n| n > ctx.max_entries) {
        ctx.report(limit)?;
        return Ok(Outcome::Reported);
    }
    let mut archive = match zip::ZipArchive::new(Cursor::new(data)) {
        Ok(a) => a,
        Err(e) => {
            ctx.report(ExtractError::Zip(zip_open_error(&e)))?;
            return Ok(Outcome::Reported);
        }
    };
    if archive.len() > ctx.max_entries {
        ctx.report(limit)?;
        return Ok(Outcome::Reported);
    }
    let (mut docs, mut errs) = (0usize, 0usize);
    let mut others: Vec<String> = vec![];
    for i in 0..archive.len() {
        let member = archive
            .name_for_index(i)
            .and_then(|r| r.ok())
            .map(|c| c.into_owned())
            .unwrap_or_default();
        if skipped_member(&member) {
            continue;
        }
        let label = if member.is_empty() {
            format!("#{}", i + 1)
        } else {
            super::printable_name(&member)
        };
        let doc_name = format!("{name}/{label}");
        ctx.labels.push(label.clone());
        let outcome = match archive.by_index(i) {
            Err(e) => {
                let r = ctx.report(ExtractError::Zip(e.to_string()));
                r.map(|()| Outcome::Reported)
            }
            Ok(file) if file.is_dir() => {
                ctx.labels.pop();
                continue;
            }
            Ok(file) => {
                let mut r = BufReader::with_capacity(
                    BUF,
                    Budgeted::new(EntryReader { inner: file }, ctx.budget),
                );
                unpack_stream(ctx, &doc_name, &mut r, depth)
            }
        };
        let outcome = match outcome {
            Ok(Outcome::NotXml(e)) if sniff::report_file_name(&member.to_lowercase()) => {
                ctx.report(e).map(|()| Outcome::Reported)
            }
            o => o,
        };
        ctx.labels.pop();
        match outcome? {
            Outcome::Delivered => docs += 1,
            Outcome::Reported => errs += 1,
            Outcome::NotXml(_) => others.push(label),
        }
    }
    if docs > 0 {
        return Ok(Outcome::Delivered);
    }
    if errs == 0 {
        let mut entries = others
            .iter()
            .take(NAMES_SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if others.len() > NAMES_SHOWN {
            entries.push_str(&format!(", … {} more", others.len() - NAMES_SHOWN));
        }
        if entries.is_empty() {
            entries = "none".to_string();
        }
        ctx.report(ExtractError::NoReportInZip { entries })?;
    }
    Ok(Outcome::Reported)
}

/// Replays the bytes read to decide what a stream is, then reads on.
struct Peek<'r> {
    inner: &'r mut (dyn BufRead + Send),
    head: Vec<u8>,
    pos: usize,
    eof: bool,
}

impl<'r> Peek<'r> {
    fn new(inner: &'r mut (dyn BufRead + Send)) -> Self {
        Peek {
            inner,
            head: Vec::new(),
            pos: 0,
            eof: false,
        }
    }

    /// Read until `PEEK_CONTENT` bytes of content (after BOM/white space), the
    /// end, or `PEEK_MAX` bytes.
    fn fill(&mut self) -> io::Result<()> {
        loop {
            let start = sniff::content_start(&self.head);
            if self.head.len() >= start + PEEK_CONTENT || self.head.len() >= PEEK_MAX {
                return Ok(());
            }
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                self.eof = true;
                return Ok(());
            }
            let n = buf
                .len()
                .min((PEEK_MAX + PEEK_CONTENT).saturating_sub(self.head.len()));
            self.head
                .extend_from_slice(buf.get(..n).unwrap_or_default());
            self.inner.consume(n);
        }
    }

    fn head(&self) -> &[u8] {
        self.head.get(self.pos..).unwrap_or_default()
    }

    fn skip(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.head.len());
    }
}

impl Read for Peek<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), avail.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Peek<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos < self.head.len() {
            Ok(self.head.get(self.pos..).unwrap_or_default())
        } else {
            self.inner.fill_buf()
        }
    }

    fn consume(&mut self, amt: usize) {
        if self.pos < self.head.len() {
            self.pos = self.pos.saturating_add(amt).min(self.head.len());
        } else {
            self.inner.consume(amt);
        }
    }
}

/// Compressed input of one gzip stream: counts the bytes the decoder
/// consumed (for error offsets) and can look two bytes ahead between members.
struct CountIn<R> {
    inner: R,
    ahead: Vec<u8>,
    pos: usize,
    consumed: u64,
}

impl<R: BufRead> CountIn<R> {
    fn new(inner: R) -> Self {
        CountIn {
            inner,
            ahead: Vec::new(),
            pos: 0,
            consumed: 0,
        }
    }

    /// Whether the next bytes are another gzip member's magic.
    fn next_is_gzip(&mut self) -> io::Result<bool> {
        if self.pos > 0 {
            self.ahead.drain(..self.pos.min(self.ahead.len()));
            self.pos = 0;
        }
        while self.ahead.len() < 2 {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            let n = buf.len().min(2 - self.ahead.len());
            self.ahead
                .extend_from_slice(buf.get(..n).unwrap_or_default());
            self.inner.consume(n);
        }
        Ok(sniff::is_gzip(&self.ahead))
    }
}

impl<R: BufRead> Read for CountIn<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), avail.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for CountIn<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos < self.ahead.len() {
            Ok(self.ahead.get(self.pos..).unwrap_or_default())
        } else {
            self.inner.fill_buf()
        }
    }

    fn consume(&mut self, amt: usize) {
        self.consumed = self
            .consumed
            .saturating_add(u64::try_from(amt).unwrap_or(u64::MAX));
        if self.pos < self.ahead.len() {
            self.pos = self.pos.saturating_add(amt).min(self.ahead.len());
        } else {
            self.inner.consume(amt);
        }
    }
}

/// A gzip stream read member by member. A multi-member gzip reads as one
/// stream; bytes after a member that are not a gzip header end it cleanly.
struct GzMembers<R: BufRead> {
    dec: Option<GzDecoder<CountIn<R>>>,
    err: Option<ExtractError>,
}

impl<R: BufRead> GzMembers<R> {
    fn new(inner: R) -> Self {
        GzMembers {
            dec: Some(GzDecoder::new(CountIn::new(inner))),
            err: None,
        }
    }

    fn fail(&mut self, e: &io::Error, offset: u64) -> io::Error {
        let x = match e.get_ref().and_then(|i| i.downcast_ref::<ExtractError>()) {
            Some(x) => x.clone(),
            None if e.kind() == io::ErrorKind::UnexpectedEof => {
                ExtractError::GzipTruncated { offset }
            }
            None => ExtractError::GzipCorrupt { offset },
        };
        self.dec = None;
        self.err = Some(x.clone());
        x.into_io()
    }
}

impl<R: BufRead> Read for GzMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = &self.err {
            return Err(e.clone().into_io());
        }
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let Some(dec) = self.dec.as_mut() else {
                return Ok(0);
            };
            match dec.read(buf) {
                Ok(0) => {
                    let Some(dec) = self.dec.take() else {
                        return Ok(0);
                    };
                    let mut inner = dec.into_inner();
                    match inner.next_is_gzip() {
                        Ok(true) => self.dec = Some(GzDecoder::new(inner)),
                        Ok(false) => return Ok(0),
                        Err(e) => {
                            let offset = inner.consumed;
                            return Err(self.fail(&e, offset));
                        }
                    }
                }
                Ok(n) => return Ok(n),
                Err(e) => {
                    let offset = dec.get_ref().consumed;
                    return Err(self.fail(&e, offset));
                }
            }
        }
    }
}

/// Counts every byte read against the budget.
struct Budgeted<'b, R> {
    inner: R,
    budget: &'b Budget,
}

impl<'b, R: Read> Budgeted<'b, R> {
    fn new(inner: R, budget: &'b Budget) -> Self {
        Budgeted { inner, budget }
    }
}

impl<R: Read> Read for Budgeted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.budget.check().map_err(ExtractError::into_io)?;
        let n = self.inner.read(buf)?;
        self.budget.take(n).map_err(ExtractError::into_io)?;
        Ok(n)
    }
}

/// A zip member's decompressed bytes; the zip crate's errors become
/// [`ExtractError::Zip`].
struct EntryReader<R> {
    inner: R,
}

impl<R: Read> Read for EntryReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            if e.get_ref()
                .is_some_and(|i| i.downcast_ref::<ExtractError>().is_some())
            {
                e
            } else {
                ExtractError::Zip(e.to_string().to_lowercase()).into_io()
            }
        })
    }
}

/// Puts the names of the zip members a document is in around its errors.
struct Labeled<'r> {
    inner: &'r mut (dyn BufRead + Send),
    labels: Vec<String>,
}

fn relabel(labels: &[String], e: &io::Error) -> io::Error {
    wrap(labels, ExtractError::from_io(e)).into_io()
}

impl Read for Labeled<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => Ok(n),
            Err(e) => Err(relabel(&self.labels, &e)),
        }
    }
}

impl BufRead for Labeled<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let Labeled { inner, labels } = self;
        match inner.fill_buf() {
            Ok(b) => Ok(b),
            Err(e) => Err(relabel(labels, &e)),
        }
    }

    fn consume(&mut self, amt: usize) {
        self.inner.consume(amt);
    }
}
