//! Work done ahead of the writer, on the other core. Two ways:
//!
//! - [`prepare`]: a whole input read ahead — its sha256, `extract`, and every
//!   document decompressed and parsed — while the writer stores the input
//!   before it. Only for inputs of at most [`MAX_AHEAD_RECORDS`] records
//!   and [`MAX_AHEAD_BYTES`] of them, so that inputs waiting in line take
//!   little memory.
//! - [`parse_ahead`]: one document parsed on a thread of its own while the
//!   writer stores its records; the channel between them is bounded, so a
//!   report of a million records still takes only a few batches of memory.
//!
//! Neither touches the store; a parser stops as soon as the writer stops
//! listening (a duplicate, a pruned report, a store error).

use crate::config::Limits;
use crate::extract::{self, Budget, Document, MailMeta};
use crate::fetch::RawInput;
use crate::kind::Kind;
use crate::parse::{Header, ParseError, Record, ReportReader};
use sha2::{Digest, Sha256};
use std::sync::mpsc::{sync_channel, Receiver};

/// Records per message; the first message is small so that the writer can
/// start on a short report while the parser reads on. A message also ends
/// at [`BATCH_BYTES`] of records (a record can hold a 1 MiB comment), so that
/// what is in flight stays small however large the records.
const BATCH: usize = 128;
const FIRST_BATCH: usize = 8;
const BATCH_BYTES: usize = 256 << 10;
/// Messages the parser may be ahead of the writer.
const IN_FLIGHT: usize = 4;

pub(super) enum Msg {
    Header(Box<Result<Header, ParseError>>),
    /// Records, and their size (as serialised for the digest).
    Records(Vec<Record>, usize),
    End(End),
}

/// How a parse ended.
pub(super) struct End {
    result: Result<(), ParseError>,
    warnings: Vec<String>,
    recovered: bool,
    /// sha256 (hex) over the records read, in order: tells a true copy of a
    /// report from one with other data under the same key.
    digest: String,
    /// Reading the document on after a complete report failed (a gzip CRC
    /// mismatch, a truncated member): the error.
    tail: Option<String>,
}

/// The writer's end: the records as the parser (thread) read them.
pub struct Ahead {
    source: Source,
    batch: std::vec::IntoIter<Record>,
    end: Option<End>,
}

enum Source {
    Thread(Receiver<Msg>),
    ReadAhead(std::vec::IntoIter<Msg>),
}

impl Ahead {
    fn new(source: Source) -> (Result<Header, ParseError>, Ahead) {
        let mut ahead = Ahead {
            source,
            batch: Vec::new().into_iter(),
            end: None,
        };
        let header = match ahead.recv() {
            Some(Msg::Header(h)) => *h,
            _ => Err(stopped()),
        };
        (header, ahead)
    }

    fn recv(&mut self) -> Option<Msg> {
        match &mut self.source {
            Source::Thread(rx) => rx.recv().ok(),
            Source::ReadAhead(msgs) => msgs.next(),
        }
    }
}

/// Records an input may hold to be read ahead whole.
pub const MAX_AHEAD_RECORDS: usize = 2_000;
/// Bytes of records (as serialised for the digest) an input may hold to be
/// read ahead whole.
pub const MAX_AHEAD_BYTES: usize = 4 << 20;

/// An input with the work done that needs no store.
pub struct Prepared {
    pub(super) input: RawInput,
    pub(super) sha: String,
    /// `None` when the input is truncated or too large to read ahead: the
    /// writer then reads it as it stores it.
    pub(super) read: Option<ReadAhead>,
}

impl Prepared {
    /// The input itself.
    pub fn input(&self) -> &RawInput {
        &self.input
    }

    /// Whether its documents were read ahead (else they are read as it is stored).
    pub fn is_read_ahead(&self) -> bool {
        self.read.is_some()
    }
}

/// What `extract` said of an input, and its documents, parsed.
pub(super) struct ReadAhead {
    pub(super) meta: Meta,
    pub(super) items: Vec<Item>,
    /// `extract` found payloads (which may yield no document at all).
    pub(super) payloads: bool,
    pub(super) budget_exceeded: bool,
}

/// `extract`'s findings without the payloads.
pub(super) struct Meta {
    pub(super) kind: Kind,
    pub(super) mail: Option<MailMeta>,
    pub(super) reason: Option<String>,
    pub(super) warnings: Vec<String>,
}

impl Meta {
    pub(super) fn of(x: &extract::Extracted<'_>) -> Meta {
        Meta {
            kind: x.kind,
            mail: x.mail.clone(),
            reason: x.reason.clone(),
            warnings: x.warnings.clone(),
        }
    }
}

/// One document of an input, or why one could not be read.
pub(super) enum Item {
    Doc { name: String, msgs: Vec<Msg> },
    Problem { part: String, error: String },
}

/// The records of a document read ahead (see [`Item::Doc`]).
pub(super) fn replay(msgs: Vec<Msg>) -> (Result<Header, ParseError>, Ahead) {
    Ahead::new(Source::ReadAhead(msgs.into_iter()))
}

/// Do for `input` what needs no store. Pure; runs on any thread.
pub fn prepare(input: RawInput, limits: &Limits) -> Prepared {
    let sha = super::hex(&Sha256::digest(&input.bytes));
    let read = if input.truncated.is_none() {
        read_ahead(&input, limits)
    } else {
        None
    };
    Prepared { input, sha, read }
}

fn read_ahead(input: &RawInput, limits: &Limits) -> Option<ReadAhead> {
    let x = extract::extract(&input.bytes, input.name.as_deref());
    let budget = Budget::new(limits);
    let mut items = Vec::new();
    let (mut records, mut bytes) = (0usize, 0usize);
    for payload in &x.payloads {
        let done = extract::documents(payload, limits, &budget, &mut |doc| {
            match doc {
                Err(e) => items.push(Item::Problem {
                    part: payload.name.clone(),
                    error: e.to_string(),
                }),
                Ok(doc) => {
                    let name = doc.name.clone();
                    let mut msgs = Vec::new();
                    let mut fits = true;
                    parse(doc, &mut |m| {
                        if let Msg::Records(v, size) = &m {
                            records += v.len();
                            bytes += size;
                            fits = records <= MAX_AHEAD_RECORDS && bytes <= MAX_AHEAD_BYTES;
                        }
                        msgs.push(m);
                        fits
                    });
                    if !fits {
                        return Err(());
                    }
                    items.push(Item::Doc { name, msgs });
                }
            }
            Ok(())
        });
        done.ok()?;
    }
    Some(ReadAhead {
        meta: Meta::of(&x),
        items,
        payloads: !x.payloads.is_empty(),
        budget_exceeded: budget.exceeded(),
    })
}

/// Parse `doc` on a scoped thread and call `f` with its header and the
/// stream of its records; returns what `f` returns, once the thread is done.
pub fn parse_ahead<T>(
    doc: Document<'_>,
    f: impl FnOnce(Result<Header, ParseError>, &mut Ahead) -> T,
) -> T {
    std::thread::scope(|s| {
        let (tx, rx) = sync_channel(IN_FLIGHT);
        let started = std::thread::Builder::new()
            .spawn_scoped(s, move || parse(doc, &mut |m| tx.send(m).is_ok()));
        let (header, mut ahead) = Ahead::new(Source::Thread(rx));
        // Out of threads (a process limit): this document is not read, and
        // says why; the input stays for a later reparse. Never a panic.
        let header = match started {
            Ok(_) => header,
            Err(e) => Err(ParseError::Invalid(format!(
                "cannot start a parser thread: {e}"
            ))),
        };
        f(header, &mut ahead)
        // `ahead` is dropped here: a parser still sending stops.
    })
}

fn stopped() -> ParseError {
    ParseError::Invalid("the parser thread stopped".to_string())
}

/// The parse: header, records in batches, then how it ended, each handed to
/// `emit`; `false` from it means nobody wants more of this document.
fn parse(doc: Document<'_>, emit: &mut dyn FnMut(Msg) -> bool) {
    let mut reader = ReportReader::new(&mut *doc.reader);
    let header = reader.header().cloned();
    let ok = header.is_ok();
    if !emit(Msg::Header(Box::new(header))) || !ok {
        return;
    }
    let mut batch = Vec::with_capacity(BATCH);
    let mut batch_bytes = 0usize;
    let mut hasher = Sha256::new();
    let mut sent = false;
    let result = loop {
        match reader.next_record() {
            Ok(Some(r)) => {
                batch_bytes += hash_record(&mut hasher, &r);
                batch.push(r);
                if batch.len() == BATCH
                    || batch_bytes >= BATCH_BYTES
                    || (batch.len() == FIRST_BATCH && !sent)
                {
                    sent = true;
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    if !emit(Msg::Records(full, std::mem::take(&mut batch_bytes))) {
                        return;
                    }
                }
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    if !batch.is_empty() && !emit(Msg::Records(batch, batch_bytes)) {
        return;
    }
    let warnings = reader.warnings().to_vec();
    let recovered = reader.recovered();
    drop(reader);
    let tail = match result {
        Ok(()) => std::io::copy(doc.reader, &mut std::io::sink())
            .err()
            .map(|e| e.to_string()),
        Err(_) => None,
    };
    emit(Msg::End(End {
        result,
        warnings,
        recovered,
        digest: super::hex(&hasher.finalize()),
        tail,
    }));
}

/// Add the record to the digest; returns its size as serialised.
fn hash_record(h: &mut Sha256, rec: &Record) -> usize {
    // serde_json of plain data is deterministic; the digest only ever compares
    // copies parsed by the same code. Written straight into the hasher.
    struct Into<'h>(&'h mut Sha256, usize);
    impl std::io::Write for Into<'_> {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.update(b);
            self.1 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut w = Into(h, 0);
    if serde_json::to_writer(&mut w, rec).is_ok() {
        w.0.update(b"\n");
    }
    w.1
}

impl Ahead {
    /// The next record, `None` at the end, or why the document broke.
    pub fn next_record(&mut self) -> Result<Option<Record>, ParseError> {
        loop {
            if let Some(r) = self.batch.next() {
                return Ok(Some(r));
            }
            if let Some(end) = &self.end {
                return end.result.clone().map(|()| None);
            }
            match self.recv() {
                Some(Msg::Records(v, _)) => self.batch = v.into_iter(),
                Some(Msg::End(end)) => self.end = Some(end),
                Some(Msg::Header(_)) | None => {
                    self.end = Some(End {
                        result: Err(stopped()),
                        warnings: Vec::new(),
                        recovered: false,
                        digest: String::new(),
                        tail: None,
                    });
                }
            }
        }
    }

    /// The parser's warnings, once [`Ahead::next_record`] returned `None` or an error.
    pub fn warnings(&self) -> &[String] {
        self.end.as_ref().map_or(&[], |e| &e.warnings)
    }

    /// True when the parser read past a mismatched end tag.
    pub fn recovered(&self) -> bool {
        self.end.as_ref().is_some_and(|e| e.recovered)
    }

    /// The records' digest, once the parse ended.
    pub fn digest(&self) -> &str {
        self.end.as_ref().map_or("", |e| &e.digest)
    }

    /// What went wrong reading on after a complete report.
    pub fn tail(&self) -> Option<&str> {
        self.end.as_ref().and_then(|e| e.tail.as_deref())
    }
}

/// Bytes of inputs read but not yet stored, above which the reader waits:
/// a run of large files is not all held in memory at once.
const MAX_BYTES_AHEAD: usize = 64 << 20;

/// [`local::visit`](crate::fetch::local::visit), with each input read and
/// [`prepare`]d on a second thread while `f` stores the one before it. The
/// order of inputs and errors is the walk's. Once `f` fails, the walk stops.
pub fn visit_prepared<E>(
    paths: &[std::path::PathBuf],
    limits: &Limits,
    skip: &crate::fetch::local::Skip,
    on_error: &mut dyn FnMut(crate::fetch::local::LocalError),
    f: &mut dyn FnMut(Prepared) -> Result<(), E>,
) -> Result<(), E> {
    enum Walked {
        Input(Box<Prepared>),
        Error(crate::fetch::local::LocalError),
    }
    let held = Held::default();
    std::thread::scope(|s| {
        let (tx, rx) = sync_channel(2);
        let held = &held;
        let started = std::thread::Builder::new().spawn_scoped(s, move || {
            let _ = crate::fetch::local::visit(
                paths,
                limits.max_input_bytes,
                skip,
                &mut |e| {
                    let _ = tx.send(Walked::Error(e));
                },
                &mut |input| {
                    if !held.take(input.bytes.len()) {
                        return Err(());
                    }
                    tx.send(Walked::Input(Box::new(prepare(input, limits))))
                        .map_err(|_| ())
                },
            );
        });
        if started.is_err() {
            // No second thread to be had: walk and prepare on this one.
            return crate::fetch::local::visit(
                paths,
                limits.max_input_bytes,
                skip,
                on_error,
                &mut |input| f(prepare(input, limits)),
            );
        }
        let result = (|| {
            for w in &rx {
                match w {
                    Walked::Error(e) => on_error(e),
                    Walked::Input(p) => {
                        let n = p.input.bytes.len();
                        let r = f(*p);
                        held.give(n);
                        r?;
                    }
                }
            }
            Ok(())
        })();
        // The reader may wait for room or to send: let it go.
        held.close();
        drop(rx);
        result
    })
}

/// The reader's count of bytes ahead (see [`MAX_BYTES_AHEAD`]).
#[derive(Default)]
struct Held {
    state: std::sync::Mutex<(usize, bool)>,
    changed: std::sync::Condvar,
}

impl Held {
    /// Wait until `n` more bytes fit (one input always does); `false` once closed.
    fn take(&self, n: usize) -> bool {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while g.0 > 0 && g.0 + n > MAX_BYTES_AHEAD && !g.1 {
            g = self.changed.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        g.0 += n;
        !g.1
    }

    fn give(&self, n: usize) {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        g.0 = g.0.saturating_sub(n);
        self.changed.notify_all();
    }

    fn close(&self) {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        g.1 = true;
        self.changed.notify_all();
    }
}
