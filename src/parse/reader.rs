//! [`ReportReader`]: a pull parser over quick-xml events, one `<record>` at a time.
//!
//! The low level ([`ReportReader::advance`]) turns quick-xml events into a
//! tiny token stream (`Open(tag, self_closing)`, `Close`, `Eof`); text, CDATA
//! and references are appended to one reusable buffer only while a leaf value
//! is being read, so whitespace between elements costs nothing. Everything
//! above it is recursive descent over that token stream, matching elements by
//! local name.

use std::collections::VecDeque;
use std::io::BufRead;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::input::Input;
use super::warn::Warnings;
use super::{
    clip, normalize_ip, DkimResult, Format, Header, ParseError, ParseLimits, Policy, Reason,
    Record, SpfResult,
};

/// Extra bytes of budget per event for delimiters (`<![CDATA[`, `]]>`, ...).
const SLACK: usize = 64;
/// At most this many `<error>` strings are kept in the header.
const MAX_ERRORS: usize = 1000;

const NS_DMARC2: &str = "urn:ietf:params:xml:ns:dmarc-2.0";
const NS_DMARC1: &str = "http://dmarc.org/dmarc-xml/0.1";

macro_rules! tags {
    ($($v:ident = $s:literal),* $(,)?) => {
        /// Elements the parser knows, by local name.
        #[derive(Clone, Copy, PartialEq, Eq, Debug)]
        enum Tag { $($v,)* Extension, Other, Foreign }

        #[cfg(test)]
        const ALL_TAGS: &[Tag] = &[$(Tag::$v,)* Tag::Extension];

        fn tag_name(t: Tag) -> &'static str {
            match t {
                $(Tag::$v => $s,)*
                Tag::Extension => "extension",
                Tag::Other | Tag::Foreign => "?",
            }
        }
    };
}

tags! {
    Feedback = "feedback", Version = "version", ReportMetadata = "report_metadata",
    OrgName = "org_name", Email = "email", ExtraContactInfo = "extra_contact_info",
    ReportId = "report_id", DateRange = "date_range", DataRange = "data_range",
    Begin = "begin", Finish = "end", Error = "error", Generator = "generator",
    PolicyPublished = "policy_published", Domain = "domain", Adkim = "adkim", Aspf = "aspf",
    P = "p", Sp = "sp", Np = "np", Pct = "pct", Fo = "fo", Testing = "testing",
    DiscoveryMethod = "discovery_method", Record = "record", Row = "row",
    SourceIp = "source_ip", Count = "count", PolicyEvaluated = "policy_evaluated",
    Disposition = "disposition", Dkim = "dkim", Spf = "spf", Reason = "reason", Type = "type",
    Comment = "comment", Identifiers = "identifiers", HeaderFrom = "header_from",
    EnvelopeFrom = "envelope_from", EnvelopeTo = "envelope_to", AuthResults = "auth_results",
    Selector = "selector", Result = "result", HumanResult = "human_result", Scope = "scope",
}

/// Element by local name. Dispatches on the length first: a flat match over
/// ~50 string literals compares them one by one and showed in profiles.
fn tag_of(local: &str) -> Tag {
    match local.len() {
        1 => match local {
            "p" => Tag::P,
            _ => Tag::Other,
        },
        2 => match local {
            "fo" => Tag::Fo,
            "np" => Tag::Np,
            "sp" => Tag::Sp,
            _ => Tag::Other,
        },
        3 => match local {
            "end" => Tag::Finish,
            "pct" => Tag::Pct,
            "row" => Tag::Row,
            "spf" => Tag::Spf,
            _ => Tag::Other,
        },
        4 => match local {
            "aspf" => Tag::Aspf,
            "dkim" => Tag::Dkim,
            "type" => Tag::Type,
            _ => Tag::Other,
        },
        5 => match local {
            "adkim" => Tag::Adkim,
            "begin" => Tag::Begin,
            "count" => Tag::Count,
            "email" => Tag::Email,
            "error" => Tag::Error,
            "scope" => Tag::Scope,
            _ => Tag::Other,
        },
        6 => match local {
            "domain" => Tag::Domain,
            "reason" => Tag::Reason,
            "record" => Tag::Record,
            "result" => Tag::Result,
            _ => Tag::Other,
        },
        7 => match local {
            "comment" => Tag::Comment,
            "testing" => Tag::Testing,
            "version" => Tag::Version,
            _ => Tag::Other,
        },
        8 => match local {
            "feedback" => Tag::Feedback,
            "org_name" => Tag::OrgName,
            "selector" => Tag::Selector,
            _ => Tag::Other,
        },
        9 => match local {
            "extension" => Tag::Extension,
            "generator" => Tag::Generator,
            "report_id" => Tag::ReportId,
            "source_ip" => Tag::SourceIp,
            _ => Tag::Other,
        },
        10 => match local {
            "data_range" => Tag::DataRange,
            "date_range" => Tag::DateRange,
            "extensions" => Tag::Extension,
            _ => Tag::Other,
        },
        11 => match local {
            "disposition" => Tag::Disposition,
            "envelope_to" => Tag::EnvelopeTo,
            "header_from" => Tag::HeaderFrom,
            "identifiers" => Tag::Identifiers,
            _ => Tag::Other,
        },
        12 => match local {
            "auth_results" => Tag::AuthResults,
            "human_result" => Tag::HumanResult,
            _ => Tag::Other,
        },
        13 => match local {
            "envelope_from" => Tag::EnvelopeFrom,
            _ => Tag::Other,
        },
        15 => match local {
            "report_metadata" => Tag::ReportMetadata,
            _ => Tag::Other,
        },
        16 => match local {
            "discovery_method" => Tag::DiscoveryMethod,
            "policy_evaluated" => Tag::PolicyEvaluated,
            "policy_published" => Tag::PolicyPublished,
            _ => Tag::Other,
        },
        18 => match local {
            "extra_contact_info" => Tag::ExtraContactInfo,
            _ => Tag::Other,
        },
        _ => Tag::Other,
    }
}

#[derive(Clone, Copy, Debug)]
enum Tok {
    /// A start tag; `true` when self-closing (`<sp/>`), which has no `Close`.
    Open(Tag, bool),
    Close,
    Eof,
}

enum Step {
    Record(bool),
    End,
}

/// What the namespace declarations on `<feedback>` and its ancestors say.
#[derive(Default)]
struct Ns {
    rfc9990: bool,
    legacy: bool,
    /// Prefixes bound to a namespace other than the two DMARC ones.
    foreign: Vec<String>,
}

impl Ns {
    fn scan(&mut self, e: &BytesStart<'_>) {
        let mut attrs = e.attributes();
        attrs.with_checks(false);
        for a in attrs {
            let Ok(a) = a else { break };
            let key: &str = a.key.as_ref();
            let prefix = if key == "xmlns" {
                None
            } else if let Some(p) = key.strip_prefix("xmlns:") {
                Some(p)
            } else {
                continue;
            };
            let value = a.value.trim();
            if value == NS_DMARC2 {
                self.rfc9990 = true;
            } else if value == NS_DMARC1 {
                if prefix.is_none() {
                    self.legacy = true;
                }
            } else if let Some(p) = prefix {
                if self.foreign.len() < 32 && !self.foreign.iter().any(|f| f == p) {
                    self.foreign.push(p.to_owned());
                }
            }
        }
    }
}

/// The open elements' names. Kept by hand (quick-xml's end-name check is
/// off) so that a mismatched end tag can be recovered from instead of ending
/// the report.
#[derive(Default)]
struct OpenElements {
    /// The names concatenated; `at[i]` is where the i-th starts.
    names: Vec<u8>,
    at: Vec<usize>,
    /// Elements closed implicitly by an end tag further up, still to be
    /// reported as `Close`.
    pending_close: usize,
    /// A mismatched or stray end tag was recovered from.
    recovered: bool,
    /// What the first one was, to explain a report that then lacks a field.
    first: Option<String>,
}

impl OpenElements {
    fn push(&mut self, name: &[u8]) {
        self.at.push(self.names.len());
        self.names.extend_from_slice(name);
    }

    /// The i-th open element's name (empty if there is none).
    fn name(&self, i: usize) -> &[u8] {
        let start = self.at.get(i).copied().unwrap_or(0);
        let end = self.at.get(i + 1).copied().unwrap_or(self.names.len());
        self.names.get(start..end).unwrap_or_default()
    }

    /// Drop the i-th open element from the stack (it is taken as closed).
    fn forget(&mut self, i: usize) {
        let (Some(&start), end) = (
            self.at.get(i),
            self.at.get(i + 1).copied().unwrap_or(self.names.len()),
        ) else {
            return;
        };
        if start > end || end > self.names.len() {
            return;
        }
        let len = end - start;
        self.names.drain(start..end);
        self.at.remove(i);
        for a in self.at.iter_mut().skip(i) {
            *a = a.saturating_sub(len);
        }
    }

    /// Record a repair: recovered, the first one kept for reasons, a warning.
    fn note(
        &mut self,
        warn: &mut Warnings,
        kind: &str,
        detail: &str,
        what: impl FnOnce() -> String,
    ) {
        self.recovered = true;
        let text = what();
        if self.first.is_none() {
            self.first = Some(text.clone());
        }
        warn.add(kind, detail, || {
            format!("not well-formed: {text} (recovered; the report may be incomplete)")
        });
    }

    /// Close the elements from the i-th up.
    fn close_from(&mut self, i: usize) {
        if let Some(&start) = self.at.get(i) {
            self.names.truncate(start);
            self.at.truncate(i);
        }
    }

    /// Match an end tag against the open elements. Like a recovering XML
    /// parser, an end tag of an element further up closes the ones above it
    /// (they are reported as pending `Close`s), and one that matches no open
    /// element is ignored. Returns whether anything was closed.
    fn close(&mut self, name: &[u8], warn: &mut Warnings) -> bool {
        let Some(top) = self.at.len().checked_sub(1) else {
            self.stray_end(name, warn);
            return false;
        };
        if self.name(top) == name {
            self.close_from(top);
            return true;
        }
        let Some(i) = (0..top).rev().find(|&i| self.name(i) == name) else {
            self.stray_end(name, warn);
            return false;
        };
        self.recovered = true;
        let unclosed = clip(&String::from_utf8_lossy(self.name(top)));
        let end = clip(&String::from_utf8_lossy(name));
        self.first
            .get_or_insert_with(|| format!("<{unclosed}> closed by </{end}>"));
        warn.add("unclosed", &format!("{unclosed}/{end}"), || {
            format!(
                "not well-formed: <{unclosed}> closed by </{end}> (recovered; the report may be incomplete)"
            )
        });
        self.pending_close = top - i;
        self.close_from(i);
        true
    }

    fn stray_end(&mut self, name: &[u8], warn: &mut Warnings) {
        self.recovered = true;
        let end = clip(&String::from_utf8_lossy(name));
        self.first
            .get_or_insert_with(|| format!("stray end tag </{end}>"));
        warn.add("stray-end", &end, || {
            format!("not well-formed: end tag </{end}> matches no open element, ignored")
        });
    }
}

/// Messages per record above this are not believed (no receiver sees a
/// billion mails from one IP in one report); also keeps sums far from
/// overflowing.
const MAX_COUNT: i64 = 1_000_000_000;

/// Report dates outside 2000-01-01..2100-01-01 are stored with a warning.
const PLAUSIBLE_FROM: i64 = 946_684_800;
const PLAUSIBLE_TO: i64 = 4_102_444_800;

/// The header while it is being collected.
#[derive(Default)]
struct HeaderBuilder {
    version: Option<String>,
    saw_version: bool,
    org_name: Option<String>,
    email: Option<String>,
    extra_contact_info: Option<String>,
    report_id: Option<String>,
    begin: Option<Result<i64, String>>,
    end: Option<Result<i64, String>>,
    errors: Vec<String>,
    generator: Option<String>,
    domain: Option<String>,
    policy: Policy,
    saw_fo: bool,
    saw_np: bool,
    saw_extension: bool,
}

impl HeaderBuilder {
    /// All required fields have been seen (valid or not).
    fn complete(&self) -> bool {
        self.report_id.is_some()
            && (self.org_name.is_some() || self.email.is_some())
            && self.begin.is_some()
            && self.end.is_some()
            && self.domain.is_some()
    }
}

/// Reads a report: first [`ReportReader::header`], then records one by one.
///
/// Memory stays flat in the number of records: one record is parsed per
/// [`ReportReader::next_record`] call and all buffers are reused. Records are
/// only held back when the header comes after them (out of schema order), up
/// to [`ParseLimits::max_buffered_records`].
pub struct ReportReader<R: BufRead> {
    xml: Reader<Input<R>>,
    buf: Vec<u8>,
    text: String,
    collecting: bool,
    limits: ParseLimits,
    depth: usize,
    open: OpenElements,
    /// A token read too early (a report element met inside a value whose end
    /// tag is missing), to be read again by the element around it.
    pushback: Vec<Tok>,
    /// Qualified name of the last `Other`/`Foreign` element opened.
    name: String,
    ns: Ns,
    root_found: bool,
    hb: HeaderBuilder,
    header: Option<Header>,
    buffered: VecDeque<Record>,
    /// header() stopped right after this `<record>` start tag (true: self-closing).
    record_open: Option<bool>,
    records_seen: u64,
    done: bool,
    failed: Option<ParseError>,
    warn: Warnings,
    replaced_reported: bool,
}

impl<R: BufRead> ReportReader<R> {
    /// Wrap a reader of (uncompressed) XML bytes, with default limits.
    pub fn new(r: R) -> Self {
        Self::with_limits(r, ParseLimits::default())
    }

    /// Wrap a reader of (uncompressed) XML bytes.
    pub fn with_limits(r: R, limits: ParseLimits) -> Self {
        let mut xml = Reader::from_reader(Input::new(r));
        let c = xml.config_mut();
        c.allow_dangling_amp = true;
        c.allow_unmatched_ends = true;
        c.check_end_names = false;
        c.check_comments = false;
        c.expand_empty_elements = false;
        c.trim_text(false);
        ReportReader {
            xml,
            buf: Vec::with_capacity(4096),
            text: String::with_capacity(256),
            collecting: false,
            limits,
            depth: 0,
            open: OpenElements::default(),
            pushback: Vec::new(),
            name: String::new(),
            ns: Ns::default(),
            root_found: false,
            hb: HeaderBuilder::default(),
            header: None,
            buffered: VecDeque::new(),
            record_open: None,
            records_seen: 0,
            done: false,
            failed: None,
            warn: Warnings::default(),
            replaced_reported: false,
        }
    }

    /// Read up to the first record and return the report's metadata and policy.
    /// Calling it again returns the same header.
    pub fn header(&mut self) -> Result<&Header, ParseError> {
        if self.header.is_none() {
            if let Some(e) = &self.failed {
                return Err(e.clone());
            }
            let r = self.read_header();
            self.sync_input_notes();
            if let Err(mut e) = r {
                if let (Some(first), true) = (&self.open.first, self.root_found && !e.is_limit()) {
                    e = ParseError::Invalid(format!("{e} (the XML is not well-formed: {first})"));
                }
                self.failed = Some(e.clone());
                return Err(e);
            }
        }
        self.header
            .as_ref()
            .ok_or_else(|| ParseError::Invalid("report header unavailable".into()))
    }

    /// The next record, or `None` at the end of the report.
    /// After an error, every further call returns the same error.
    pub fn next_record(&mut self) -> Result<Option<Record>, ParseError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.header.is_none() {
            self.header()?;
        }
        let r = self.read_next();
        self.sync_input_notes();
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    /// What was odd about the report so far (one line each, deduplicated).
    pub fn warnings(&self) -> &[String] {
        self.warn.as_slice()
    }

    /// Whether the document was not well-formed (a mismatched or stray end
    /// tag) and was read by recovering from that: what it says may be
    /// incomplete, so a well-formed copy should replace it.
    pub fn recovered(&self) -> bool {
        self.open.recovered
    }

    // ---- driving -------------------------------------------------------

    fn read_header(&mut self) -> Result<(), ParseError> {
        if !self.root_found && self.find_root()? {
            self.done = true; // <feedback/>
        }
        loop {
            let step = if self.done {
                Step::End
            } else {
                self.feedback_step()?
            };
            match step {
                Step::Record(empty) => {
                    self.records_seen += 1;
                    if self.hb.complete() {
                        self.record_open = Some(empty);
                        let h = self.finalize()?;
                        self.header = Some(h);
                        return Ok(());
                    }
                    if self.buffered.len() >= self.limits.max_buffered_records {
                        return Err(ParseError::TooManyBuffered(
                            self.limits.max_buffered_records,
                        ));
                    }
                    let rec = self.parse_record(empty)?;
                    self.buffered.push_back(rec);
                }
                Step::End => {
                    self.done = true;
                    let h = self.finalize()?;
                    if self.records_seen == 0 {
                        return Err(ParseError::NoRecords);
                    }
                    self.header = Some(h);
                    return Ok(());
                }
            }
        }
    }

    fn read_next(&mut self) -> Result<Option<Record>, ParseError> {
        if let Some(r) = self.buffered.pop_front() {
            return Ok(Some(r));
        }
        if let Some(empty) = self.record_open.take() {
            return self.parse_record(empty).map(Some);
        }
        if self.done {
            return Ok(None);
        }
        match self.feedback_step()? {
            Step::Record(empty) => {
                self.records_seen += 1;
                self.parse_record(empty).map(Some)
            }
            Step::End => {
                self.done = true;
                Ok(None)
            }
        }
    }

    fn sync_input_notes(&mut self) {
        let input = self.xml.get_mut();
        let notes = std::mem::take(&mut input.notes);
        let replaced = input.replaced;
        let enc = input.encoding().name();
        for n in notes {
            self.warn.add("input", &n, || n.clone());
        }
        if replaced && !self.replaced_reported {
            self.replaced_reported = true;
            self.warn.add("replaced", "", || {
                format!("invalid {enc} byte sequences replaced with U+FFFD")
            });
        }
    }

    // ---- tokens --------------------------------------------------------

    fn advance(&mut self) -> Result<Tok, ParseError> {
        let cap = self.limits.max_event_bytes;
        if self.open.pending_close > 0 {
            self.open.pending_close -= 1;
            self.depth = self.depth.saturating_sub(1);
            return Ok(Tok::Close);
        }
        if let Some(t) = self.pushback.pop() {
            return Ok(t);
        }
        loop {
            self.buf.clear();
            self.xml.get_mut().budget = cap.saturating_add(SLACK);
            // Outside leaf values, whitespace-only text between tags is noise:
            // let quick-xml skip it without producing an event (about half of
            // all events). Inside a value it must stay: `Tom &amp; Jerry`.
            self.xml.config_mut().trim_text_start = !self.collecting;
            let ev = self.xml.read_event_into(&mut self.buf);
            if self.xml.get_ref().exhausted {
                let what = if matches!(ev, Ok(Event::Text(_))) {
                    "text node"
                } else {
                    "XML tag or markup"
                };
                return Err(ParseError::TooLarge { what, limit: cap });
            }
            // Exact check (the budget above has some slack for delimiters).
            if let Ok(e) = &ev {
                if e.len() > cap {
                    let what = if matches!(e, Event::Text(_) | Event::CData(_)) {
                        "text node"
                    } else {
                        "XML tag or markup"
                    };
                    return Err(ParseError::TooLarge { what, limit: cap });
                }
            }
            match ev {
                Ok(Event::Start(e)) => {
                    let d = self.depth + 1;
                    if d > self.limits.max_depth {
                        return Err(ParseError::TooDeep(self.limits.max_depth));
                    }
                    self.depth = d;
                    self.open.push(AsRef::<str>::as_ref(&e.name()).as_bytes());
                    let tag = classify(&e, &mut self.ns, !self.root_found, &mut self.name);
                    return Ok(Tok::Open(tag, false));
                }
                Ok(Event::Empty(e)) => {
                    if self.depth + 1 > self.limits.max_depth {
                        return Err(ParseError::TooDeep(self.limits.max_depth));
                    }
                    let tag = classify(&e, &mut self.ns, !self.root_found, &mut self.name);
                    return Ok(Tok::Open(tag, true));
                }
                Ok(Event::End(e)) => {
                    if self
                        .open
                        .close(AsRef::<str>::as_ref(&e.name()).as_bytes(), &mut self.warn)
                    {
                        self.depth = self.depth.saturating_sub(1);
                        return Ok(Tok::Close);
                    }
                }
                Ok(Event::Text(t)) => {
                    if self.collecting {
                        push_capped(&mut self.text, t.as_ref(), cap)?;
                    }
                }
                Ok(Event::CData(t)) => {
                    if self.collecting {
                        push_capped(&mut self.text, t.as_ref(), cap)?;
                    }
                }
                Ok(Event::GeneralRef(r)) => {
                    if self.collecting {
                        let name: &str = r.as_ref();
                        let resolved = match name {
                            "lt" => Some('<'),
                            "gt" => Some('>'),
                            "amp" => Some('&'),
                            "apos" => Some('\''),
                            "quot" => Some('"'),
                            _ => r.resolve_char_ref().ok().flatten(),
                        };
                        match resolved {
                            Some(c) => {
                                let mut b = [0u8; 4];
                                push_capped(&mut self.text, c.encode_utf8(&mut b), cap)?;
                            }
                            None => {
                                push_capped(&mut self.text, "&", cap)?;
                                push_capped(&mut self.text, name, cap)?;
                                push_capped(&mut self.text, ";", cap)?;
                                let kind = if r.is_char_ref() {
                                    "invalid character reference"
                                } else {
                                    "undefined entity"
                                };
                                self.warn.add("entity", name, || {
                                    format!("{kind} &{}; kept as literal text", clip(name))
                                });
                            }
                        }
                    }
                }
                Ok(Event::DocType(_)) => {
                    self.warn.add("doctype", "", || {
                        "DOCTYPE ignored (entities it declares are never expanded)".into()
                    });
                }
                Ok(Event::Comment(_) | Event::Decl(_) | Event::PI(_)) => {}
                Ok(Event::Eof) => return Ok(Tok::Eof),
                Err(e) => return Err(self.xml_error(e)),
            }
        }
    }

    fn xml_error(&self, e: quick_xml::Error) -> ParseError {
        use quick_xml::errors::IllFormedError;
        let pos = self.xml.error_position();
        let msg = match e {
            quick_xml::Error::Io(io) => return ParseError::Read(io.to_string()),
            quick_xml::Error::IllFormed(IllFormedError::MismatchedEndTag { expected, found }) => {
                format!(
                    "mismatched end tag </{}> (expected </{}>)",
                    clip(&found),
                    clip(&expected)
                )
            }
            quick_xml::Error::IllFormed(IllFormedError::UnmatchedEndTag(found)) => {
                format!("end tag </{}> matches no start tag", clip(&found))
            }
            other => other.to_string(),
        };
        if self.root_found {
            ParseError::Syntax { pos, msg }
        } else {
            ParseError::NoFeedbackSyntax { pos, msg }
        }
    }

    /// Skip the rest of the element whose start tag was just read.
    fn skip(&mut self) -> Result<(), ParseError> {
        let saved = self.collecting;
        self.collecting = false;
        let mut level = 0usize;
        loop {
            match self.advance()? {
                Tok::Open(_, false) => level += 1,
                Tok::Open(_, true) => {}
                Tok::Close => {
                    if level == 0 {
                        break;
                    }
                    level -= 1;
                }
                Tok::Eof => return Err(ParseError::Truncated("element")),
            }
        }
        self.collecting = saved;
        Ok(())
    }

    /// A report's part (a record, the metadata, the policy; inside a record,
    /// its row, identifiers or auth_results) opening inside another element
    /// means that element's end tag is missing or misspelt
    /// (`<record>...<record>`): close `ctx` here and let the element around
    /// it read the part. Returns whether that was done.
    fn misplaced(&mut self, tag: Tag, empty: bool, ctx: &'static str) -> bool {
        let part_of_feedback = matches!(
            tag,
            Tag::Record | Tag::ReportMetadata | Tag::PolicyPublished
        );
        let part_of_record = matches!(tag, Tag::Row | Tag::Identifiers | Tag::AuthResults)
            && matches!(
                ctx,
                "row"
                    | "policy_evaluated"
                    | "reason"
                    | "identifiers"
                    | "auth_results"
                    | "dkim"
                    | "spf"
            );
        if !(part_of_feedback || part_of_record) {
            return false;
        }
        let below_top = if empty { 0 } else { 1 };
        self.open
            .forget(self.open.at.len().saturating_sub(1 + below_top));
        self.depth = self.depth.saturating_sub(1);
        self.open.note(&mut self.warn, "unclosed-part", ctx, || {
            format!("<{ctx}> not closed before <{}>", tag_name(tag))
        });
        self.pushback.push(Tok::Open(tag, empty));
        self.pushback.push(Tok::Close);
        true
    }

    /// Warn about (unless foreign-namespace) and skip an element.
    fn unexpected(
        &mut self,
        tag: Tag,
        empty: bool,
        parent: &'static str,
    ) -> Result<(), ParseError> {
        if tag != Tag::Foreign {
            let name = if tag == Tag::Other {
                self.name.as_str()
            } else {
                tag_name(tag)
            };
            let key = format_args!("{parent}/{name}").to_string();
            self.warn.add("unknown", &key, || {
                format!("unknown element <{name}> in <{parent}> ignored")
            });
        }
        if !empty {
            self.skip()?;
        }
        Ok(())
    }

    /// Read the text content of a leaf element into `self.text`.
    fn leaf(&mut self, empty: bool, ctx: &'static str) -> Result<(), ParseError> {
        self.text.clear();
        if empty {
            return Ok(());
        }
        self.collecting = true;
        loop {
            match self.advance()? {
                Tok::Close => break,
                Tok::Open(tag, e) if !matches!(tag, Tag::Other | Tag::Foreign) => {
                    // A report element inside a value: the value's end tag is
                    // missing or misspelt (`<report_id>x</report_i>`). End the
                    // value here and hand the element to the one around it.
                    let below_top = if e { 0 } else { 1 };
                    self.open
                        .forget(self.open.at.len().saturating_sub(1 + below_top));
                    self.depth = self.depth.saturating_sub(1);
                    self.open.note(&mut self.warn, "unclosed-value", ctx, || {
                        format!("<{ctx}> not closed before <{}>", tag_name(tag))
                    });
                    self.pushback.push(Tok::Open(tag, e));
                    break;
                }
                Tok::Open(Tag::Other, false) => {
                    // Markup inside a value is most often an unescaped '<'
                    // (`<email><x@example.net></email>`, `bad<xml.net`): the
                    // "element" ends nowhere. Forget it; the value goes on.
                    self.open.forget(self.open.at.len().saturating_sub(1));
                    self.depth = self.depth.saturating_sub(1);
                    let name = clip(&self.name);
                    self.open.note(&mut self.warn, "markup-in-value", ctx, || {
                        format!("<{name}> inside <{ctx}> (an unescaped '<'?) ignored")
                    });
                }
                Tok::Open(tag, e) => {
                    self.collecting = false;
                    self.unexpected(tag, e, ctx)?;
                    self.collecting = true;
                }
                Tok::Eof => return Err(ParseError::Truncated(ctx)),
            }
        }
        self.collecting = false;
        Ok(())
    }

    /// `self.text` trimmed, without control characters; `None` when empty.
    fn take_text(&mut self) -> Option<String> {
        let t = self.text.trim();
        if t.is_empty() {
            return None;
        }
        // Byte pre-check: C0 controls and DEL are single bytes, C1 controls
        // start with 0xC2; only then look at characters.
        if t.bytes()
            .any(|b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0x7f || b == 0xc2)
            && t.chars().any(is_bad_control)
        {
            self.warn.add("control", "", || {
                "control characters removed from text".into()
            });
            let s: String = t.chars().filter(|&c| !is_bad_control(c)).collect();
            let s = s.trim();
            return (!s.is_empty()).then(|| s.to_owned());
        }
        Some(t.to_owned())
    }

    fn text_field(&mut self, empty: bool, ctx: &'static str) -> Result<Option<String>, ParseError> {
        self.leaf(empty, ctx)?;
        Ok(self.take_text())
    }

    /// A text value that is an enumeration: trimmed and lowercased.
    fn enum_field(&mut self, empty: bool, ctx: &'static str) -> Result<Option<String>, ParseError> {
        let mut v = self.text_field(empty, ctx)?;
        if let Some(s) = v.as_mut() {
            s.make_ascii_lowercase();
        }
        Ok(v)
    }

    /// An integer leaf: `None` when empty, `Some(Err(raw))` when not a number.
    fn int_field(
        &mut self,
        empty: bool,
        ctx: &'static str,
    ) -> Result<Option<Result<i64, String>>, ParseError> {
        self.leaf(empty, ctx)?;
        let t = self.text.trim();
        if t.is_empty() {
            return Ok(None);
        }
        Ok(Some(t.parse::<i64>().map_err(|_| clip(t))))
    }

    // ---- structure -----------------------------------------------------

    /// Find `<feedback>` at any depth (tolerates wrappers such as a stray
    /// `<xs:schema>`). Returns whether it is self-closing.
    fn find_root(&mut self) -> Result<bool, ParseError> {
        loop {
            match self.advance()? {
                Tok::Open(Tag::Feedback, empty) => {
                    self.root_found = true;
                    return Ok(empty);
                }
                Tok::Open(..) | Tok::Close => {}
                Tok::Eof => return Err(ParseError::NoFeedback),
            }
        }
    }

    /// Handle children of `<feedback>` until the next `<record>` or `</feedback>`.
    fn feedback_step(&mut self) -> Result<Step, ParseError> {
        loop {
            match self.advance()? {
                Tok::Open(Tag::Record, e) => return Ok(Step::Record(e)),
                Tok::Open(Tag::Version, e) => {
                    self.hb.saw_version = true;
                    if let Some(v) = self.text_field(e, "version")? {
                        self.hb.version = Some(v);
                    }
                }
                Tok::Open(tag @ (Tag::ReportMetadata | Tag::PolicyPublished), e) => {
                    if self.header.is_some() {
                        let name = tag_name(tag);
                        self.warn.add("late", name, || {
                            format!("<{name}> after the header was complete ignored")
                        });
                        if !e {
                            self.skip()?;
                        }
                    } else if tag == Tag::ReportMetadata {
                        self.parse_metadata(e)?;
                    } else {
                        self.parse_policy(e)?;
                    }
                }
                Tok::Open(Tag::Extension, e) => {
                    self.hb.saw_extension = true;
                    if !e {
                        self.skip()?;
                    }
                }
                Tok::Open(tag, e) => self.unexpected(tag, e, "feedback")?,
                Tok::Close => return Ok(Step::End),
                Tok::Eof => return Err(ParseError::Truncated("feedback")),
            }
        }
    }

    fn parse_metadata(&mut self, empty: bool) -> Result<(), ParseError> {
        if empty {
            return Ok(());
        }
        loop {
            match self.advance()? {
                Tok::Open(tag, e) => {
                    match tag {
                        Tag::OrgName => {
                            let v = self.text_field(e, "org_name")?;
                            set(&mut self.hb.org_name, v)
                        }
                        Tag::Email => {
                            let v = self.text_field(e, "email")?;
                            set(&mut self.hb.email, v)
                        }
                        Tag::ExtraContactInfo => {
                            let v = self.text_field(e, "extra_contact_info")?;
                            set(&mut self.hb.extra_contact_info, v);
                        }
                        Tag::ReportId => {
                            let v = self.text_field(e, "report_id")?;
                            set(&mut self.hb.report_id, v)
                        }
                        Tag::DateRange => self.parse_date_range(e)?,
                        Tag::DataRange => {
                            self.warn.add("data_range", "", || {
                                "<data_range> read as <date_range>".into()
                            });
                            self.parse_date_range(e)?;
                        }
                        // <begin>/<end> directly in report_metadata: accept.
                        Tag::Begin | Tag::Finish => self.date_field(tag, e)?,
                        Tag::Error => {
                            if let Some(v) = self.text_field(e, "error")? {
                                if self.hb.errors.len() < MAX_ERRORS {
                                    self.hb.errors.push(v);
                                } else {
                                    self.warn.add("errors", "", || {
                                    format!("more than {MAX_ERRORS} <error> elements; the rest ignored")
                                });
                                }
                            }
                        }
                        Tag::Generator => {
                            let v = self.text_field(e, "generator")?;
                            set(&mut self.hb.generator, v)
                        }
                        _ if self.misplaced(tag, e, "report_metadata") => {}
                        _ => self.unexpected(tag, e, "report_metadata")?,
                    }
                }
                Tok::Close => return Ok(()),
                Tok::Eof => return Err(ParseError::Truncated("report_metadata")),
            }
        }
    }

    fn parse_date_range(&mut self, empty: bool) -> Result<(), ParseError> {
        if empty {
            return Ok(());
        }
        loop {
            match self.advance()? {
                Tok::Open(tag @ (Tag::Begin | Tag::Finish), e) => self.date_field(tag, e)?,
                Tok::Open(tag, e) if self.misplaced(tag, e, "date_range") => {}
                Tok::Open(tag, e) => self.unexpected(tag, e, "date_range")?,
                Tok::Close => return Ok(()),
                Tok::Eof => return Err(ParseError::Truncated("date_range")),
            }
        }
    }

    fn date_field(&mut self, tag: Tag, empty: bool) -> Result<(), ParseError> {
        let name = tag_name(tag);
        if let Some(v) = self.int_field(empty, name)? {
            if tag == Tag::Begin {
                self.hb.begin = Some(v);
            } else {
                self.hb.end = Some(v);
            }
        }
        Ok(())
    }

    fn parse_policy(&mut self, empty: bool) -> Result<(), ParseError> {
        if empty {
            return Ok(());
        }
        loop {
            match self.advance()? {
                Tok::Open(tag, e) => match tag {
                    Tag::Domain => {
                        let v = self.text_field(e, "domain")?;
                        set(&mut self.hb.domain, v)
                    }
                    Tag::Adkim => self.hb.policy.adkim = self.enum_field(e, "adkim")?,
                    Tag::Aspf => self.hb.policy.aspf = self.enum_field(e, "aspf")?,
                    Tag::P => self.hb.policy.p = self.enum_field(e, "p")?,
                    Tag::Sp => self.hb.policy.sp = self.enum_field(e, "sp")?,
                    Tag::Np => {
                        self.hb.saw_np = true;
                        self.hb.policy.np = self.enum_field(e, "np")?;
                    }
                    Tag::Pct => {
                        self.hb.policy.pct = match self.int_field(e, "pct")? {
                            Some(Ok(n)) => Some(n),
                            Some(Err(raw)) => {
                                self.warn
                                    .add("pct", "", || format!("non-numeric pct '{raw}' ignored"));
                                None
                            }
                            None => None,
                        }
                    }
                    Tag::Fo => {
                        self.hb.saw_fo = true;
                        self.hb.policy.fo = self.text_field(e, "fo")?;
                    }
                    Tag::Testing => self.hb.policy.testing = self.enum_field(e, "testing")?,
                    Tag::DiscoveryMethod => {
                        self.hb.policy.discovery_method = self.enum_field(e, "discovery_method")?;
                    }
                    _ if self.misplaced(tag, e, "policy_published") => {}
                    _ => self.unexpected(tag, e, "policy_published")?,
                },
                Tok::Close => return Ok(()),
                Tok::Eof => return Err(ParseError::Truncated("policy_published")),
            }
        }
    }

    /// Build the header from what was collected, or say what is missing.
    fn finalize(&mut self) -> Result<Header, ParseError> {
        let hb = std::mem::take(&mut self.hb);
        let report_id = hb.report_id.ok_or(ParseError::Missing("<report_id>"))?;
        if hb.org_name.is_none() && hb.email.is_none() {
            return Err(ParseError::Missing("<org_name> and <email>"));
        }
        let begin = int_or_err(hb.begin, "<date_range>/<begin>")?;
        let end = int_or_err(hb.end, "<date_range>/<end>")?;
        if begin > end {
            self.warn.add("dates", "order", || {
                format!("the date range begins ({begin}) after it ends ({end})")
            });
        }
        for (what, t) in [("begin", begin), ("end", end)] {
            if !(PLAUSIBLE_FROM..=PLAUSIBLE_TO).contains(&t) {
                self.warn.add("dates", what, || {
                    format!("implausible <date_range>/<{what}> {t} (not between 2000 and 2100)")
                });
            }
        }
        let domain = hb
            .domain
            .ok_or(ParseError::Missing("<policy_published>/<domain>"))?;
        let policy = Policy {
            domain,
            ..hb.policy
        };
        let format = if self.ns.rfc9990
            || hb.generator.is_some()
            || policy.testing.is_some()
            || policy.discovery_method.is_some()
            || hb.saw_extension
        {
            Format::Rfc9990
        } else if !hb.saw_version && !hb.saw_fo && !hb.saw_np && !self.ns.legacy {
            Format::Draft
        } else {
            Format::Rfc7489
        };
        if !self.buffered.is_empty() {
            let n = self.buffered.len();
            self.warn.add("order", "", || {
                format!("report header completed only after {n} record(s) (out of schema order)")
            });
        }
        Ok(Header {
            format,
            version: hb.version,
            org_name: hb.org_name,
            email: hb.email,
            extra_contact_info: hb.extra_contact_info,
            report_id,
            begin,
            end,
            errors: hb.errors,
            generator: hb.generator,
            policy,
        })
    }

    fn parse_record(&mut self, empty: bool) -> Result<Record, ParseError> {
        let idx = self.records_seen;
        let mut rec = Record::default();
        let mut saw_ip = false;
        let mut saw_count = false;
        if !empty {
            loop {
                match self.advance()? {
                    Tok::Open(Tag::Row, e) => {
                        self.parse_row(&mut rec, e, &mut saw_ip, &mut saw_count)?
                    }
                    Tok::Open(Tag::Identifiers, e) => self.parse_identifiers(&mut rec, e)?,
                    Tok::Open(Tag::AuthResults, e) => self.parse_auth_results(&mut rec, e)?,
                    // Record-level extensions (RFC 9990 xs:any) are skipped silently.
                    Tok::Open(Tag::Extension, e) => {
                        if !e {
                            self.skip()?;
                        }
                    }
                    Tok::Open(tag, e) if self.misplaced(tag, e, "record") => {}
                    Tok::Open(tag, e) => self.unexpected(tag, e, "record")?,
                    Tok::Close => break,
                    Tok::Eof => return Err(ParseError::Truncated("record")),
                }
            }
        }
        if !saw_ip {
            self.warn
                .add("no_ip", "", || format!("record {idx} has no source_ip"));
        }
        if !saw_count {
            self.warn.add("no_count", "", || {
                format!("record {idx} has no count; 0 assumed")
            });
        }
        Ok(rec)
    }

    fn parse_row(
        &mut self,
        rec: &mut Record,
        empty: bool,
        saw_ip: &mut bool,
        saw_count: &mut bool,
    ) -> Result<(), ParseError> {
        if empty {
            return Ok(());
        }
        let idx = self.records_seen;
        loop {
            match self.advance()? {
                Tok::Open(Tag::SourceIp, e) => {
                    self.leaf(e, "source_ip")?;
                    if let Some(ip) = normalize_ip(self.text.trim()) {
                        *saw_ip = true;
                        rec.ip = Some(ip);
                        rec.source_ip = ip.to_string();
                    } else if let Some(raw) = self.take_text() {
                        *saw_ip = true;
                        rec.ip = None;
                        self.warn.add("bad_ip", "", || {
                            format!(
                                "source_ip '{}' is not an IP address (record {idx})",
                                clip(&raw)
                            )
                        });
                        rec.source_ip = raw;
                    }
                }
                Tok::Open(Tag::Count, e) => {
                    match self.int_field(e, "count")? {
                        Some(Ok(n)) if (0..=MAX_COUNT).contains(&n) => {
                            *saw_count = true;
                            rec.count = n;
                        }
                        Some(Ok(n)) if n > MAX_COUNT => {
                            *saw_count = true;
                            rec.count = 0;
                            self.warn.add("huge_count", "", || {
                            format!("implausible count {n} in record {idx} (over {MAX_COUNT}); 0 used")
                        });
                        }
                        Some(Ok(n)) => {
                            *saw_count = true;
                            rec.count = 0;
                            self.warn.add("neg_count", "", || {
                                format!("negative count {n} in record {idx}; 0 used")
                            });
                        }
                        Some(Err(raw)) => {
                            *saw_count = true;
                            rec.count = 0;
                            let digits = !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit());
                            self.warn.add("bad_count", "", || {
                            if digits {
                                format!("implausible count {raw} in record {idx} (over {MAX_COUNT}); 0 used")
                            } else {
                                format!("non-numeric count '{raw}' in record {idx}; 0 used")
                            }
                        });
                        }
                        None => {}
                    }
                }
                Tok::Open(Tag::PolicyEvaluated, e) => self.parse_policy_evaluated(rec, e)?,
                Tok::Open(tag, e) if self.misplaced(tag, e, "row") => {}
                Tok::Open(tag, e) => self.unexpected(tag, e, "row")?,
                Tok::Close => return Ok(()),
                Tok::Eof => return Err(ParseError::Truncated("row")),
            }
        }
    }

    fn parse_policy_evaluated(&mut self, rec: &mut Record, empty: bool) -> Result<(), ParseError> {
        if empty {
            return Ok(());
        }
        loop {
            match self.advance()? {
                Tok::Open(tag, e) => match tag {
                    Tag::Disposition => rec.disposition = self.enum_field(e, "disposition")?,
                    Tag::Dkim => rec.dkim = self.enum_field(e, "dkim")?,
                    Tag::Spf => rec.spf = self.enum_field(e, "spf")?,
                    Tag::Reason => {
                        let r = self.parse_reason(e)?;
                        rec.reasons.push(r);
                    }
                    _ if self.misplaced(tag, e, "policy_evaluated") => {}
                    _ => self.unexpected(tag, e, "policy_evaluated")?,
                },
                Tok::Close => return Ok(()),
                Tok::Eof => return Err(ParseError::Truncated("policy_evaluated")),
            }
        }
    }

    /// `<reason><type/><comment/></reason>`, or bare text `<reason>sampled_out</reason>`.
    fn parse_reason(&mut self, empty: bool) -> Result<Reason, ParseError> {
        let mut reason = Reason::default();
        if empty {
            return Ok(reason);
        }
        let mut bare = String::new();
        self.text.clear();
        self.collecting = true;
        loop {
            match self.advance()? {
                Tok::Open(tag, e) => {
                    self.collecting = false;
                    if !self.text.trim().is_empty() && bare.len() < self.limits.max_event_bytes {
                        bare.push_str(&self.text);
                    }
                    match tag {
                        Tag::Type => set(&mut reason.kind, self.enum_field(e, "type")?),
                        Tag::Comment => set(&mut reason.comment, self.text_field(e, "comment")?),
                        _ if self.misplaced(tag, e, "reason") => {}
                        _ => self.unexpected(tag, e, "reason")?,
                    }
                    self.text.clear();
                    self.collecting = true;
                }
                Tok::Close => break,
                Tok::Eof => return Err(ParseError::Truncated("reason")),
            }
        }
        self.collecting = false;
        if reason.kind.is_none() && reason.comment.is_none() {
            if !bare.is_empty() {
                bare.push_str(&self.text);
                self.text = bare;
            }
            reason.kind = self.take_text().map(|mut s| {
                s.make_ascii_lowercase();
                s
            });
        }
        Ok(reason)
    }

    fn parse_identifiers(&mut self, rec: &mut Record, empty: bool) -> Result<(), ParseError> {
        if empty {
            return Ok(());
        }
        loop {
            match self.advance()? {
                Tok::Open(tag, e) => match tag {
                    Tag::HeaderFrom => rec.header_from = self.text_field(e, "header_from")?,
                    Tag::EnvelopeFrom => rec.envelope_from = self.text_field(e, "envelope_from")?,
                    Tag::EnvelopeTo => rec.envelope_to = self.text_field(e, "envelope_to")?,
                    _ if self.misplaced(tag, e, "identifiers") => {}
                    _ => self.unexpected(tag, e, "identifiers")?,
                },
                Tok::Close => return Ok(()),
                Tok::Eof => return Err(ParseError::Truncated("identifiers")),
            }
        }
    }

    fn parse_auth_results(&mut self, rec: &mut Record, empty: bool) -> Result<(), ParseError> {
        if empty {
            return Ok(());
        }
        loop {
            match self.advance()? {
                Tok::Open(Tag::Dkim, true) | Tok::Open(Tag::Spf, true) => {}
                Tok::Open(Tag::Dkim, false) => {
                    let r = self.parse_dkim()?;
                    rec.dkim_results.push(r);
                }
                Tok::Open(Tag::Spf, false) => {
                    let r = self.parse_spf()?;
                    rec.spf_results.push(r);
                }
                Tok::Open(tag, e) if self.misplaced(tag, e, "auth_results") => {}
                Tok::Open(tag, e) => self.unexpected(tag, e, "auth_results")?,
                Tok::Close => return Ok(()),
                Tok::Eof => return Err(ParseError::Truncated("auth_results")),
            }
        }
    }

    fn parse_dkim(&mut self) -> Result<DkimResult, ParseError> {
        let mut r = DkimResult::default();
        loop {
            match self.advance()? {
                Tok::Open(tag, e) => match tag {
                    Tag::Domain => r.domain = self.text_field(e, "domain")?,
                    Tag::Selector => r.selector = self.text_field(e, "selector")?,
                    Tag::Result => r.result = self.enum_field(e, "result")?,
                    Tag::HumanResult => r.human_result = self.text_field(e, "human_result")?,
                    _ if self.misplaced(tag, e, "dkim") => {}
                    _ => self.unexpected(tag, e, "dkim")?,
                },
                Tok::Close => return Ok(r),
                Tok::Eof => return Err(ParseError::Truncated("dkim")),
            }
        }
    }

    fn parse_spf(&mut self) -> Result<SpfResult, ParseError> {
        let mut r = SpfResult::default();
        loop {
            match self.advance()? {
                Tok::Open(tag, e) => match tag {
                    Tag::Domain => r.domain = self.text_field(e, "domain")?,
                    Tag::Scope => r.scope = self.enum_field(e, "scope")?,
                    Tag::Result => r.result = self.enum_field(e, "result")?,
                    Tag::HumanResult => r.human_result = self.text_field(e, "human_result")?,
                    _ if self.misplaced(tag, e, "spf") => {}
                    _ => self.unexpected(tag, e, "spf")?,
                },
                Tok::Close => return Ok(r),
                Tok::Eof => return Err(ParseError::Truncated("spf")),
            }
        }
    }
}

/// Map a start tag to a [`Tag`]; remembers unknown names for warnings.
/// Before the root is found, namespace declarations are collected.
fn classify(e: &BytesStart<'_>, ns: &mut Ns, scan: bool, name: &mut String) -> Tag {
    let qname = e.name();
    let q: &str = qname.as_ref();
    let (prefix, local) = match q.bytes().position(|b| b == b':') {
        Some(i) => (q.get(..i), q.get(i + 1..).unwrap_or_default()),
        None => (None, q),
    };
    let mut tag = tag_of(local);
    if scan || tag == Tag::Feedback {
        ns.scan(e);
    }
    if let Some(p) = prefix {
        if ns.foreign.iter().any(|f| f == p) {
            tag = Tag::Foreign;
        }
    }
    if matches!(tag, Tag::Other | Tag::Foreign) {
        name.clear();
        name.push_str(&clip(q));
    }
    tag
}

fn too_large_text(limit: usize) -> ParseError {
    ParseError::TooLarge {
        what: "text node",
        limit,
    }
}

fn push_capped(text: &mut String, s: &str, cap: usize) -> Result<(), ParseError> {
    if text.len().saturating_add(s.len()) > cap {
        return Err(too_large_text(cap));
    }
    text.push_str(s);
    Ok(())
}

fn set(slot: &mut Option<String>, v: Option<String>) {
    if v.is_some() {
        *slot = v;
    }
}

fn int_or_err(v: Option<Result<i64, String>>, field: &'static str) -> Result<i64, ParseError> {
    match v {
        Some(Ok(n)) => Ok(n),
        Some(Err(value)) => Err(ParseError::NotAnInteger { field, value }),
        None => Err(ParseError::Missing(field)),
    }
}

/// C0/C1 controls other than tab, CR and LF.
fn is_bad_control(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_lookup_matches_names() {
        for &t in ALL_TAGS {
            assert_eq!(tag_of(tag_name(t)), t, "{t:?}");
        }
        assert_eq!(tag_of("extensions"), Tag::Extension);
        assert_eq!(tag_of("records"), Tag::Other);
        assert_eq!(tag_of(""), Tag::Other);
        assert_eq!(tag_of("a_very_long_unknown_element_name"), Tag::Other);
    }
}
