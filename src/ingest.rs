//! Ingest: drives each input through extract → parse → store.
//!
//! One [`Ingester`] owns a write batch. Every input gets a savepoint, every
//! report inside it another, so a report that breaks half-way leaves nothing
//! behind and never spoils the reports or inputs around it. The caller ends
//! the batch with [`Ingester::commit`] before it moves any mail.

mod ahead;

use crate::config::Limits;
use crate::extract::{self, printable_name, Budget, Document};
use crate::fetch::imap::{Destination, FetchedMail, MailSink, MailboxRef, SinkError};
use crate::fetch::{Origin, RawInput};
use crate::kind::Kind;
use crate::store::{NewInput, Store, StoreError};
pub use ahead::{prepare, visit_prepared, Prepared, MAX_AHEAD_BYTES, MAX_AHEAD_RECORDS};
use ahead::{Ahead, Item, Meta, ReadAhead};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Counts for the closing line and `--json`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Stats {
    /// Inputs looked at.
    pub inputs: u64,
    /// Reports stored.
    pub reports: u64,
    /// Records stored (over all reports).
    pub records: u64,
    /// Inputs skipped because the same bytes were already stored.
    pub duplicate_inputs: u64,
    /// Reports skipped because a report with the same key was already stored.
    pub duplicate_reports: u64,
    /// Bounce inputs whose bounce was already stored from another input.
    pub duplicate_bounces: u64,
    /// Salvaged reports replaced by a complete copy (counted here, not in `reports`).
    pub replaced_salvaged: u64,
    /// New inputs kept by kind.
    pub aggregate: u64,
    pub failure: u64,
    pub tlsrpt: u64,
    pub bounce: u64,
    pub other: u64,
    pub invalid: u64,
}

impl Stats {
    /// Inputs or reports not stored again.
    pub fn duplicates(&self) -> u64 {
        self.duplicate_inputs + self.duplicate_reports
    }

    /// New inputs of kinds other than aggregate and invalid.
    pub fn other_kinds(&self) -> u64 {
        self.failure + self.tlsrpt + self.bounce + self.other
    }

    fn count_kind(&mut self, kind: Kind) {
        *match kind {
            Kind::Aggregate => &mut self.aggregate,
            Kind::Failure => &mut self.failure,
            Kind::Tlsrpt => &mut self.tlsrpt,
            Kind::Bounce => &mut self.bounce,
            Kind::Other => &mut self.other,
            Kind::Invalid => &mut self.invalid,
        } += 1;
    }

    /// The closing line.
    pub fn line(&self) -> String {
        let mut line = self.counts();
        if self.duplicate_bounces > 0 {
            line.push_str(&format!(
                ", {} bounces stored before",
                self.duplicate_bounces
            ));
        }
        if self.replaced_salvaged > 0 {
            line.push_str(&format!(
                ", {} salvaged reports replaced by complete copies",
                self.replaced_salvaged
            ));
        }
        line
    }

    fn counts(&self) -> String {
        format!(
            "{} inputs seen, {} reports stored ({} records), {} duplicates skipped ({} inputs seen before, {} reports stored before), {} other kinds kept{}, {} invalid inputs kept",
            self.inputs,
            self.reports,
            self.records,
            self.duplicates(),
            self.duplicate_inputs,
            self.duplicate_reports,
            self.other_kinds(),
            match self.bounce {
                0 => String::new(),
                1 => " (1 bounce)".to_string(),
                n => format!(" ({n} bounces)"),
            },
            self.invalid
        )
    }
}

/// What became of one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The stored input (the earlier one for a duplicate).
    pub input: i64,
    pub kind: Kind,
    /// True when these exact bytes were stored before.
    pub duplicate: bool,
    /// Why the input is invalid.
    pub reason: Option<String>,
    /// What was odd about a new input (a bad part beside good ones, a report
    /// key that arrived again with other records).
    pub warnings: Vec<String>,
}

/// Called with every input's outcome (to print invalid inputs as they come).
pub type Notify<'s> = Box<dyn FnMut(&Origin, &Outcome) + 's>;

/// Ingests inputs into one store, batch by batch.
pub struct Ingester<'s> {
    store: &'s mut Store,
    limits: Limits,
    in_batch: bool,
    /// Dry run: `commit` keeps the batch open; the caller rolls it back.
    dry_run: bool,
    /// While re-reading: reports that ended before this were pruned and are
    /// not stored again.
    pruned_before: Option<i64>,
    notify: Option<Notify<'s>>,
    /// Warnings about the input being ingested, found while reading its documents.
    input_warnings: Vec<String>,
    /// Counts since the ingester was made.
    pub stats: Stats,
}

const INPUT_SP: &str = "input";
const REPORT_SP: &str = "report";
const DOCS_SP: &str = "documents";
const REPARSE_SP: &str = "reparse";

/// Marks the warning a later input leaves on a kept report (see
/// [`Store::duplicate_warnings_of`]).
pub const DIFFERENT_COPY: &str = "arrived again with different records";
/// Starts the warning on an input that holds a bounce stored before. Not
/// relational: reparse, going in input order, finds the same first copy.
const BOUNCE_COPY: &str = "a copy of the bounce stored from";
/// Marks the warning on a complete report that took a salvaged one's place.
pub const REPLACES_SALVAGED: &str = "replaces the salvaged copy from";

/// Warnings on an input about another input's copy of the same report. They
/// record the order in which copies arrived, which re-reading one input
/// cannot know: `reparse` keeps the ones an input had and adds none.
fn is_relational(w: &str) -> bool {
    w.contains(DIFFERENT_COPY)
        || w.starts_with("a broken copy of report ")
        || w.starts_with("a copy of report ")
}

impl<'s> Ingester<'s> {
    /// An ingester writing to `store` under `limits`.
    pub fn new(store: &'s mut Store, limits: Limits) -> Self {
        Ingester {
            store,
            limits,
            in_batch: false,
            dry_run: false,
            pruned_before: None,
            notify: None,
            input_warnings: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// Make every [`Ingester::commit`] a no-op: everything stays in one open
    /// transaction that [`Ingester::rollback`] throws away, so a dry run sees
    /// exactly what a real one would (duplicates included) and changes nothing.
    pub fn set_dry_run(&mut self) {
        self.dry_run = true;
    }

    /// Have `f` called with every input's outcome.
    pub fn on_outcome(&mut self, f: Notify<'s>) {
        self.notify = Some(f);
    }

    /// The store behind it (for lookups between batches).
    pub fn store(&mut self) -> &mut Store {
        self.store
    }

    /// Ingest one input inside the current batch (opened on demand).
    pub fn ingest(&mut self, input: &RawInput) -> Result<Outcome, StoreError> {
        let outcome = self.ingest_quietly(input, None, None)?;
        self.tell(&input.origin, &outcome);
        Ok(outcome)
    }

    fn tell(&mut self, origin: &Origin, outcome: &Outcome) {
        if let Some(f) = self.notify.as_mut() {
            f(origin, outcome);
        }
    }

    /// [`Ingester::ingest`] an input whose pure work [`prepare`] did
    /// (on another thread). The same outcome, sooner.
    pub fn ingest_prepared(&mut self, p: Prepared) -> Result<Outcome, StoreError> {
        let outcome = self.ingest_quietly(&p.input, Some(p.sha), p.read)?;
        self.tell(&p.input.origin, &outcome);
        Ok(outcome)
    }

    fn ingest_quietly(
        &mut self,
        input: &RawInput,
        sha: Option<String>,
        read: Option<ReadAhead>,
    ) -> Result<Outcome, StoreError> {
        if let Some(reason) = &input.truncated {
            return self.ingest_partial(&input.origin, &input.bytes, reason);
        }
        if !self.in_batch {
            self.store.begin()?;
            self.in_batch = true;
        }
        self.stats.inputs += 1;
        let sha = sha.unwrap_or_else(|| hex(&Sha256::digest(&input.bytes)));
        if let Some((id, kind)) = self.store.input_by_sha(&sha)? {
            self.stats.duplicate_inputs += 1;
            self.note_imap(&input.origin, id)?;
            return Ok(Outcome {
                input: id,
                kind,
                duplicate: true,
                reason: None,
                warnings: Vec::new(),
            });
        }
        self.store.savepoint(INPUT_SP)?;
        match self.ingest_new(input, &sha, read) {
            Ok(outcome) => {
                self.store.release(INPUT_SP)?;
                self.stats.count_kind(outcome.kind);
                Ok(outcome)
            }
            Err(e) => {
                // Some errors (a full disk) have already rolled the whole
                // transaction back: the savepoint is gone, and `e` is the news.
                let _ = self.store.rollback_to(INPUT_SP);
                Err(e)
            }
        }
    }

    /// Make everything since the last commit durable.
    pub fn commit(&mut self) -> Result<(), StoreError> {
        if self.in_batch && !self.dry_run {
            self.store.commit()?;
            self.in_batch = false;
        }
        Ok(())
    }

    /// Abandon the current batch.
    pub fn rollback(&mut self) -> Result<(), StoreError> {
        if self.in_batch {
            self.store.rollback()?;
            self.in_batch = false;
        }
        Ok(())
    }

    /// Record a mail that was too large to fetch, from its header bytes, as invalid.
    pub fn ingest_oversize(
        &mut self,
        origin: &Origin,
        header: &[u8],
        size: u64,
    ) -> Result<Outcome, StoreError> {
        let reason = format!(
            "message is {size} bytes, over max_message_bytes {}; only its header was kept",
            self.limits.max_message_bytes
        );
        let outcome = self.ingest_partial(origin, header, &reason)?;
        self.tell(origin, &outcome);
        Ok(outcome)
    }

    /// Record an input of which only `part` (its header) could be kept, as invalid.
    fn ingest_partial(
        &mut self,
        origin: &Origin,
        header: &[u8],
        reason: &str,
    ) -> Result<Outcome, StoreError> {
        if !self.in_batch {
            self.store.begin()?;
            self.in_batch = true;
        }
        self.stats.inputs += 1;
        // Not the sha256 of the header alone: the header is not the input, and
        // must not be mistaken for an input that consists of just those bytes.
        let sha = hex(&Sha256::new()
            .chain_update(header)
            .chain_update(b"\0truncated: ")
            .chain_update(reason.as_bytes())
            .finalize());
        let reason = reason.to_string();
        let outcome = if let Some((id, kind)) = self.store.input_by_sha(&sha)? {
            self.stats.duplicate_inputs += 1;
            self.note_imap(origin, id)?;
            Outcome {
                input: id,
                kind,
                duplicate: true,
                reason: None,
                warnings: Vec::new(),
            }
        } else {
            let mail = extract::extract(header, None).mail;
            let id = self.store.insert_input(
                &NewInput {
                    origin,
                    sha256: &sha,
                    truncated: true,
                    bytes: header,
                    kind: Kind::Invalid,
                    mail: mail.as_ref(),
                },
                now(),
            )?;
            self.store
                .finish_input(id, Kind::Invalid, Some(&reason), &[])?;
            self.note_imap(origin, id)?;
            self.stats.count_kind(Kind::Invalid);
            Outcome {
                input: id,
                kind: Kind::Invalid,
                duplicate: false,
                reason: Some(reason),
                warnings: Vec::new(),
            }
        };
        Ok(outcome)
    }

    fn note_imap(&mut self, origin: &Origin, input: i64) -> Result<(), StoreError> {
        if let Origin::Imap {
            account,
            mailbox,
            uidvalidity,
            uid,
        } = origin
        {
            self.store
                .record_imap_message(account, mailbox, *uidvalidity, *uid, input)?;
        }
        Ok(())
    }

    fn ingest_new(
        &mut self,
        input: &RawInput,
        sha: &str,
        read: Option<ReadAhead>,
    ) -> Result<Outcome, StoreError> {
        let extracted;
        let (meta, docs) = match read {
            Some(r) => (
                r.meta,
                Docs::ReadAhead {
                    items: r.items,
                    payloads: r.payloads,
                    exceeded: r.budget_exceeded,
                },
            ),
            None => {
                extracted = extract::extract(&input.bytes, input.name.as_deref());
                (Meta::of(&extracted), Docs::Live(&extracted.payloads))
            }
        };
        let id = self.store.insert_input(
            &NewInput {
                origin: &input.origin,
                truncated: false,
                sha256: sha,
                bytes: &input.bytes,
                kind: meta.kind,
                mail: meta.mail.as_ref(),
            },
            now(),
        )?;
        self.note_imap(&input.origin, id)?;
        self.read_into(id, input, meta, docs)
    }

    /// Read an input's reports into the store under its (existing) row and
    /// set its final kind, reason and warnings.
    fn read_into(
        &mut self,
        id: i64,
        input: &RawInput,
        meta: Meta,
        docs: Docs<'_>,
    ) -> Result<Outcome, StoreError> {
        let Meta {
            mut kind,
            mut reason,
            mut warnings,
            ..
        } = meta;
        if !docs.is_empty() {
            let before = (self.stats.reports, self.stats.records);
            self.store.savepoint(DOCS_SP)?;
            let mut found = 0u64;
            let mut problems: Vec<String> = Vec::new();
            // A problem names the part it is in, unless the part is the whole file.
            let own_name = input.name.as_deref().unwrap_or("");
            let named = |part: &str, problem: String| {
                if part == own_name {
                    problem
                } else {
                    format!("{part}: {problem}")
                }
            };
            let exceeded = match docs {
                Docs::Live(payloads) => {
                    let budget = Budget::new(&self.limits);
                    for payload in payloads {
                        let limits = self.limits.clone();
                        extract::documents(payload, &limits, &budget, &mut |doc| match doc {
                            Err(e) => {
                                problems.push(named(&payload.name, e.to_string()));
                                Ok::<(), StoreError>(())
                            }
                            Ok(doc) => {
                                let name = doc.name.clone();
                                match self.ingest_document(id, doc)? {
                                    Ok(()) => found += 1,
                                    Err(problem) => problems.push(named(&name, problem)),
                                }
                                Ok(())
                            }
                        })?;
                    }
                    budget.exceeded()
                }
                Docs::ReadAhead {
                    items, exceeded, ..
                } => {
                    for item in items {
                        match item {
                            Item::Problem { part, error } => problems.push(named(&part, error)),
                            Item::Doc { name, msgs } => {
                                let stored = match ahead::replay(msgs) {
                                    (Ok(header), mut reader) => {
                                        self.store_document(id, &name, header, &mut reader)?
                                    }
                                    (Err(e), _) => Err(e.to_string()),
                                };
                                match stored {
                                    Ok(()) => found += 1,
                                    Err(problem) => problems.push(named(&name, problem)),
                                }
                            }
                        }
                    }
                    exceeded
                }
            };
            warnings.append(&mut self.input_warnings);
            if exceeded {
                // The cap is per input: over it, the input is invalid as a
                // whole (a later reparse with a higher cap can read it).
                self.store.rollback_to(DOCS_SP)?;
                (self.stats.reports, self.stats.records) = before;
                found = 0;
                problems.retain(|p| p.contains("limit"));
                if problems.is_empty() {
                    problems.push(format!(
                        "decompressed size limit {} bytes (max_decompressed_bytes) exceeded",
                        self.limits.max_decompressed_bytes
                    ));
                }
            } else {
                self.store.release(DOCS_SP)?;
            }
            if found > 0 {
                kind = Kind::Aggregate;
                reason = None;
                warnings.extend(problems);
            } else {
                kind = Kind::Invalid;
                reason = Some(match problems.len() {
                    0 => "no report found in the input".to_string(),
                    1 => problems.remove(0),
                    2 => format!("{} (and 1 more problem)", problems.remove(0)),
                    n => format!("{} (and {} more problems)", problems.remove(0), n - 1),
                });
                warnings.extend(problems);
            }
        }
        if kind == Kind::Bounce {
            // Inside the input's savepoint: the bounce's rows come and go with it.
            match crate::bounce::parse(&input.bytes) {
                Ok(mut b) => {
                    if let Some(w) = implausible_date(&mut b, now()) {
                        warnings.push(w);
                    }
                    if let Some(first) = self.store.insert_bounce(id, &b)? {
                        let first = self.store.describe_input(first)?;
                        warnings.push(format!("{BOUNCE_COPY} {first}; not counted again"));
                        self.stats.duplicate_bounces += 1;
                    }
                }
                Err(e) => {
                    // Unreadable: invalid, so that it shows in `dmarcdb
                    // invalid` (and the Invalid folder) and a later reparse
                    // can read it.
                    kind = Kind::Invalid;
                    reason = Some(format!("bounce not read: {e}"));
                }
            }
        }
        cap_warnings(&mut warnings);
        self.store
            .finish_input(id, kind, reason.as_deref(), &warnings)?;
        Ok(Outcome {
            input: id,
            kind,
            duplicate: false,
            reason,
            warnings,
        })
    }

    /// Run the current code over a stored input's raw bytes again. Returns the
    /// new outcome when anything changed (kind, reason, warnings, mail
    /// headers or reports); otherwise leaves the input exactly as it was.
    /// Inputs kept with their header only are left alone.
    pub fn reparse(&mut self, id: i64) -> Result<Option<Outcome>, StoreError> {
        let Some(raw) = self.store.raw_input(id)? else {
            return Ok(None);
        };
        if raw.truncated {
            return Ok(None);
        }
        if !self.in_batch {
            self.store.begin()?;
            self.in_batch = true;
        }
        let before = self.store.input_fingerprint(id)?;
        let stats = self.stats.clone();
        self.pruned_before = self.store.prune_horizon()?;
        self.store.savepoint(REPARSE_SP)?;
        let result = (|| {
            // Warnings that later inputs left on this input's reports are not
            // this input's to lose.
            let foreign = self.store.duplicate_warnings_of(id)?;
            let relational: Vec<String> = self
                .store
                .input_warnings(id)?
                .into_iter()
                .filter(|w| is_relational(w))
                .collect();
            self.store.delete_reports_of(id)?;
            self.store.delete_bounce_of(id)?;
            let input = RawInput::new(raw.origin.clone(), raw.name.clone(), raw.bytes);
            let extracted = extract::extract(&input.bytes, input.name.as_deref());
            self.store.update_mail(id, extracted.mail.as_ref())?;
            let meta = Meta::of(&extracted);
            let mut outcome = self.read_into(id, &input, meta, Docs::Live(&extracted.payloads))?;
            self.store.restore_duplicate_warnings(id, &foreign)?;
            outcome.warnings.retain(|w| !is_relational(w));
            outcome.warnings.extend(relational);
            self.store.set_input_warnings(id, &outcome.warnings)?;
            Ok(outcome)
        })();
        let outcome = match result {
            Ok(o) => o,
            Err(e) => {
                self.store.rollback_to(REPARSE_SP)?;
                self.stats = stats;
                return Err(e);
            }
        };
        if self.store.input_fingerprint(id)? == before {
            self.store.rollback_to(REPARSE_SP)?;
            self.stats = stats;
            return Ok(None);
        }
        self.store.release(REPARSE_SP)?;
        self.tell(&raw.origin, &outcome);
        Ok(Some(outcome))
    }

    /// Store one document as a report. The outer error is the store's; the
    /// inner one says why the document is not a report.
    fn ingest_document(
        &mut self,
        input: i64,
        doc: Document<'_>,
    ) -> Result<Result<(), String>, StoreError> {
        let name = doc.name.clone();
        ahead::parse_ahead(doc, |header, reader| match header {
            Ok(header) => self.store_document(input, &name, header, reader),
            Err(e) => Ok(Err(e.to_string())),
        })
    }

    /// Store one parsed document as a report (see [`Ingester::ingest_document`]).
    fn store_document(
        &mut self,
        input: i64,
        name: &str,
        header: crate::parse::Header,
        reader: &mut Ahead,
    ) -> Result<Result<(), String>, StoreError> {
        if self.pruned_before.is_some_and(|h| header.end < h) {
            // Pruned: what `prune` removed stays removed.
            return Ok(Ok(()));
        }
        let known = self.store.report_by_key(&header)?;
        if let Some(known) = known.as_ref().filter(|k| !k.salvaged) {
            // Same key: keep the first. Read the records anyway to tell a true
            // copy from a reporter that sent other data under the same key.
            match drain_digest(reader) {
                Ok(_) if reader.recovered() => {
                    let first = self.store.describe_input(known.input)?;
                    self.input_warnings.push(format!(
                        "a copy of report {} from {} that is not well-formed, stored complete from {first}",
                        printable_name(header.report_id_key()),
                        printable_name(&header.reporter())
                    ));
                }
                Ok((digest, _, _)) if Some(&digest) != known.records_sha256.as_ref() => {
                    let first = self.store.describe_input(known.input)?;
                    let second = self.store.describe_input(input)?;
                    let w = format!(
                        "report {} from {} {DIFFERENT_COPY}: kept {first}, ignored the copy in {second}",
                        printable_name(header.report_id_key()),
                        printable_name(&header.reporter())
                    );
                    self.store.add_report_warning(known.id, &w)?;
                    self.input_warnings.push(w);
                }
                Ok(_) => {}
                Err(e) => {
                    let first = self.store.describe_input(known.input)?;
                    self.input_warnings.push(format!(
                        "a broken copy of report {} from {}, stored complete from {first}: {e}",
                        printable_name(header.report_id_key()),
                        printable_name(&header.reporter())
                    ));
                }
            }
            self.stats.duplicate_reports += 1;
            return Ok(Ok(()));
        }
        // A new report, or a better copy of one that was salvaged: the
        // salvaged one comes back if this copy is no better.
        self.store.savepoint(REPORT_SP)?;
        if let Some(old) = &known {
            self.store.delete_report(old.id)?;
        }
        let report = self.store.insert_report(input, name, &header)?;
        let (mut records, mut messages) = (0i64, 0i64);
        let broken = loop {
            match reader.next_record() {
                Ok(Some(rec)) => {
                    records += 1;
                    messages = messages.saturating_add(rec.count);
                    self.store.insert_record(report, &rec)?;
                }
                Ok(None) => break None,
                Err(e) if e.is_limit() => {
                    // Over a cap is not "broken": nothing of it is kept.
                    self.store.rollback_to(REPORT_SP)?;
                    return Ok(Err(e.to_string()));
                }
                Err(e) => break Some(e.to_string()),
            }
        };
        if let (Some(e), Some(old)) = (&broken, &known) {
            self.store.rollback_to(REPORT_SP)?;
            let first = self.store.describe_input(old.input)?;
            self.input_warnings.push(format!(
                "a broken copy of report {} from {}, already salvaged from {first}: {e}",
                printable_name(header.report_id_key()),
                printable_name(&header.reporter())
            ));
            self.stats.duplicate_reports += 1;
            return Ok(Ok(()));
        }
        let digest = reader.digest().to_string();
        let mut warnings = reader.warnings().to_vec();
        // Read past a mismatched end tag: maybe not all of it, so a
        // well-formed copy replaces it like a salvaged one.
        let salvaged = broken.is_some() || reader.recovered();
        if let Some(e) = &broken {
            // Salvage: the key is known, so what was read is kept and marked.
            let w = format!(
                "salvaged: the report breaks after {records} records ({e}); the rest is lost"
            );
            // On the input too, so that `ingest` says so: data was lost.
            self.input_warnings.push(format!(
                "report {} from {}: {w}",
                printable_name(header.report_id_key()),
                printable_name(&header.reporter())
            ));
            warnings.push(w);
        } else if let Some(e) = reader.tail() {
            // Read to the end so that damage after </feedback> (a gzip CRC
            // mismatch, a truncated member) is not silently ignored.
            warnings.push(format!("after the report: {e}"));
        }
        if let Some(old) = &known {
            let first = self.store.describe_input(old.input)?;
            warnings.push(format!("{REPLACES_SALVAGED} {first}"));
        }
        self.store
            .finish_report(report, records, messages, &digest, &warnings, salvaged)?;
        self.store.release(REPORT_SP)?;
        // Counts stay what the store holds: a replacement adds no report, and
        // its records take the place of the salvaged ones.
        match &known {
            Some(old) => {
                self.stats.replaced_salvaged += 1;
                self.stats.records = (self.stats.records + records as u64)
                    .saturating_sub(old.record_count.max(0) as u64);
            }
            None => {
                self.stats.reports += 1;
                self.stats.records += records as u64;
            }
        }
        Ok(Ok(()))
    }
}

/// A bounce Date more than a day ahead of `now` (a wrong clock, a forged
/// header) would sit at the end of every period, and one before 1990 (a
/// zero timestamp) before any: the bounce dates from when it was stored
/// instead, with a warning. Old archives (a bounce of 1999) keep their dates.
fn implausible_date(b: &mut crate::bounce::Bounce, now: i64) -> Option<String> {
    const Y1990: i64 = 631_152_000;
    let d = b.date?;
    if (Y1990..=now + 86_400).contains(&d) {
        return None;
    }
    b.date = None;
    let shown = chrono::DateTime::from_timestamp(d, 0)
        .map_or_else(|| d.to_string(), |t| t.format("%Y-%m-%d").to_string());
    Some(format!(
        "the bounce's Date ({shown}) is implausible; it is dated when it was stored"
    ))
}

/// Where an input's documents come from: its payloads, read as they are
/// stored, or read ahead by [`prepare`].
enum Docs<'a> {
    Live(&'a [extract::Payload<'a>]),
    ReadAhead {
        items: Vec<Item>,
        payloads: bool,
        exceeded: bool,
    },
}

impl Docs<'_> {
    fn is_empty(&self) -> bool {
        match self {
            Docs::Live(p) => p.is_empty(),
            Docs::ReadAhead { payloads, .. } => !payloads,
        }
    }
}

/// Warnings kept (stored and printed) per input: a mail of thousands of
/// junk parts must not print thousands of lines into a cron mail.
const MAX_INPUT_WARNINGS: usize = 50;

fn cap_warnings(w: &mut Vec<String>) {
    if w.len() > MAX_INPUT_WARNINGS {
        let more = w.len() - (MAX_INPUT_WARNINGS - 1);
        w.truncate(MAX_INPUT_WARNINGS - 1);
        w.push(format!("and {more} more warnings (not kept)"));
    }
}

fn drain_digest(reader: &mut Ahead) -> Result<(String, i64, i64), crate::parse::ParseError> {
    let (mut n, mut m) = (0i64, 0i64);
    while let Some(rec) = reader.next_record()? {
        n += 1;
        m = m.saturating_add(rec.count);
    }
    Ok((reader.digest().to_string(), n, m))
}

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn destination(kind: Kind) -> Destination {
    if kind == Kind::Invalid {
        Destination::Invalid
    } else {
        Destination::Archive
    }
}

/// The poller hands its batches to the ingester; each batch is committed
/// before `store` returns, so no mail is moved before its data is durable.
impl MailSink for Ingester<'_> {
    fn stored(
        &mut self,
        mb: &MailboxRef,
        uids: &[u32],
    ) -> Result<Vec<(u32, Destination)>, SinkError> {
        Ok(self
            .store
            .imap_stored(&mb.account, &mb.mailbox, mb.uidvalidity, uids)?
            .into_iter()
            .map(|(uid, kind)| (uid, destination(kind)))
            .collect())
    }

    fn store(
        &mut self,
        mb: &MailboxRef,
        mails: Vec<FetchedMail>,
    ) -> Result<Vec<(u32, Destination)>, SinkError> {
        let mut out = Vec::with_capacity(mails.len());
        for mail in mails {
            let origin = Origin::Imap {
                account: mb.account.clone(),
                mailbox: mb.mailbox.clone(),
                uidvalidity: mb.uidvalidity,
                uid: mail.uid,
            };
            let input = RawInput::new(origin, None, mail.bytes);
            match self.ingest(&input) {
                Ok(o) => out.push((mail.uid, destination(o.kind))),
                Err(e) => {
                    self.rollback()?;
                    return Err(e.into());
                }
            }
        }
        self.commit()?;
        Ok(out)
    }

    fn copied(
        &mut self,
        mb: &MailboxRef,
        folder: &str,
        uids: &[u32],
    ) -> Result<Vec<u32>, SinkError> {
        Ok(self
            .store
            .imap_copied(&mb.account, &mb.mailbox, mb.uidvalidity, folder, uids)?)
    }

    fn record_copies(
        &mut self,
        mb: &MailboxRef,
        folder: &str,
        copies: &[(u32, Option<u32>)],
    ) -> Result<(), SinkError> {
        self.commit()?;
        self.store.begin()?;
        self.in_batch = true;
        let recorded =
            self.store
                .record_imap_copies(&mb.account, &mb.mailbox, mb.uidvalidity, folder, copies);
        if let Err(e) = recorded {
            self.rollback()?;
            return Err(e.into());
        }
        self.commit()?;
        Ok(())
    }

    fn oversize(
        &mut self,
        mb: &MailboxRef,
        uid: u32,
        size: u64,
        header: Vec<u8>,
    ) -> Result<(), SinkError> {
        let origin = Origin::Imap {
            account: mb.account.clone(),
            mailbox: mb.mailbox.clone(),
            uidvalidity: mb.uidvalidity,
            uid,
        };
        if let Err(e) = self.ingest_oversize(&origin, &header, size) {
            self.rollback()?;
            return Err(e.into());
        }
        self.commit()?;
        Ok(())
    }
}
