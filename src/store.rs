//! Store: the SQLite report store. The only module that sees SQL.
//!
//! The schema is `sql/schema.sql` (migration 1) plus the files in
//! `sql/migrations/`, applied in order and tracked in `PRAGMA user_version`.
//! Writes happen inside an explicit transaction that the caller opens with
//! [`Store::begin`] and makes durable with [`Store::commit`]; each input and
//! each report inside it gets its own savepoint so one bad input never spoils
//! its batch.

use crate::fetch::Origin;
use crate::kind::Kind;
use crate::parse::{ip_bin, Header, Record};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

pub mod query;

/// The schema migrations, in order. Append only: never edit or remove one.
const MIGRATIONS: &[&str] = &[
    include_str!("../sql/schema.sql"),
    include_str!("../sql/migrations/0002_imap_copies.sql"),
    include_str!("../sql/migrations/0003_prune_horizon.sql"),
    include_str!("../sql/migrations/0004_bounces.sql"),
    include_str!("../sql/migrations/0005_bounce_key.sql"),
];

/// Errors from the store. Any of them is an operational failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite said no.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer dmarcdb.
    #[error("database schema version {found} is newer than this dmarcdb knows ({known}); upgrade dmarcdb")]
    TooNew { found: i64, known: i64 },
    /// `query` was given a statement that writes.
    #[error("the statement is not read-only; dmarcdb query only reads")]
    NotReadOnly,
    /// There is no database at the path.
    #[error(
        "no database at {path} (dmarcdb ingest creates it; --db or $DMARCDB_DB chooses another)"
    )]
    Missing { path: String },
    /// The database directory could not be created.
    #[error("cannot create {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, StoreError>;

/// An open report store.
pub struct Store {
    conn: Connection,
}

/// A new input to record.
pub struct NewInput<'a> {
    pub origin: &'a Origin,
    /// Only the header of an input over a size cap.
    pub truncated: bool,
    pub sha256: &'a str,
    pub bytes: &'a [u8],
    pub kind: Kind,
    pub mail: Option<&'a crate::extract::MailMeta>,
}

/// A stored input's raw bytes and where they came from.
#[derive(Debug, Clone)]
pub struct StoredInput {
    pub origin: Origin,
    /// The file name, for recognising the content.
    pub name: Option<String>,
    pub bytes: Vec<u8>,
    pub truncated: bool,
}

/// One row of `dmarcdb invalid`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InvalidInput {
    pub id: i64,
    pub received_at: i64,
    /// Path, `<stdin>`, or `imap ACCOUNT/MAILBOX UID N`.
    pub source: String,
    pub subject: Option<String>,
    pub from: Option<String>,
    pub size: i64,
    pub reason: String,
}

/// What `prune` removed (or would remove).
#[derive(Debug, Clone, Default, serde::Serialize, PartialEq, Eq)]
pub struct Pruned {
    pub reports: i64,
    pub records: i64,
    pub inputs: i64,
    pub raw_bytes: i64,
}

/// A report's identity: what makes two reports the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportKey {
    pub reporter: String,
    pub report_id: String,
    pub policy_domain: String,
    pub begin: i64,
    pub end: i64,
}

/// What the store already knows about a report key.
#[derive(Debug, Clone)]
pub struct KnownReport {
    pub id: i64,
    pub input: i64,
    pub records_sha256: Option<String>,
    /// Only part of it could be read; a complete copy replaces it.
    pub salvaged: bool,
    pub record_count: i64,
}

impl Store {
    /// Open (creating if needed) the store at `path` and bring its schema up to date.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        Store::setup(Connection::open(path)?)
    }

    /// Open a store that must exist already (for reading: a mistyped path is
    /// an error, not a new empty database).
    pub fn open_existing(path: &Path) -> Result<Store> {
        if !path.is_file() {
            return Err(StoreError::Missing {
                path: path.display().to_string(),
            });
        }
        Store::setup(Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?)
    }

    /// A private in-memory store (tests).
    pub fn open_in_memory() -> Result<Store> {
        Store::setup(Connection::open_in_memory()?)
    }

    fn setup(conn: Connection) -> Result<Store> {
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        // WAL lets `summary` and `sqlite3` read while ingest writes; FULL makes a
        // commit durable before any mail is moved out of the inbox.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Index pages stay cached across a batch (the default is 2 MB); small
        // enough that a million-record report stays well under 100 MB.
        conn.pragma_update(None, "cache_size", -16384)?;
        let mut store = Store { conn };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<()> {
        let known = MIGRATIONS.len() as i64;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
        let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if found > known {
            return Err(StoreError::TooNew { found, known });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// Start a write batch.
    pub fn begin(&mut self) -> Result<()> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(())
    }

    /// Make the batch durable (synchronous = FULL).
    pub fn commit(&mut self) -> Result<()> {
        self.conn.execute_batch("COMMIT")?;
        Ok(())
    }

    /// Throw the batch away.
    pub fn rollback(&mut self) -> Result<()> {
        if !self.conn.is_autocommit() {
            self.conn.execute_batch("ROLLBACK")?;
        }
        Ok(())
    }

    /// Open a named savepoint inside the batch.
    pub fn savepoint(&mut self, name: &str) -> Result<()> {
        self.conn.execute_batch(&format!("SAVEPOINT {name}"))?;
        Ok(())
    }

    /// Keep what was done since the savepoint.
    pub fn release(&mut self, name: &str) -> Result<()> {
        self.conn.execute_batch(&format!("RELEASE {name}"))?;
        Ok(())
    }

    /// Undo what was done since the savepoint, and close it.
    pub fn rollback_to(&mut self, name: &str) -> Result<()> {
        self.conn
            .execute_batch(&format!("ROLLBACK TO {name}; RELEASE {name}"))?;
        Ok(())
    }

    /// The input with these bytes, if stored, with its kind.
    pub fn input_by_sha(&self, sha256: &str) -> Result<Option<(i64, Kind)>> {
        let row: Option<(i64, String)> = self
            .conn
            .prepare_cached("SELECT id, kind FROM inputs WHERE sha256 = ?1")?
            .query_row([sha256], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(row.map(|(id, k)| (id, Kind::parse(&k).unwrap_or(Kind::Other))))
    }

    /// Record an input and its raw bytes.
    pub fn insert_input(&mut self, input: &NewInput<'_>, received_at: i64) -> Result<i64> {
        let (origin, path, mbox_index, account, mailbox, uidvalidity, uid) = match input.origin {
            Origin::Path { path, mbox_index } => (
                "path",
                Some(path.as_str()),
                mbox_index.map(|i| i as i64),
                None,
                None,
                None,
                None,
            ),
            Origin::Stdin => ("stdin", None, None, None, None, None, None),
            Origin::Imap {
                account,
                mailbox,
                uidvalidity,
                uid,
            } => (
                "imap",
                None,
                None,
                Some(account.as_str()),
                Some(mailbox.as_str()),
                Some(*uidvalidity as i64),
                Some(*uid as i64),
            ),
        };
        let m = input.mail;
        self.conn
            .prepare_cached(
                "INSERT INTO inputs (sha256, kind, size, received_at, origin, path, mbox_index,
                    account, mailbox, uidvalidity, uid, from_header, subject, message_id,
                    date_header, authentication_results, truncated)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            )?
            .execute(params![
                input.sha256,
                input.kind.as_str(),
                input.bytes.len() as i64,
                received_at,
                origin,
                path,
                mbox_index,
                account,
                mailbox,
                uidvalidity,
                uid,
                m.and_then(|m| m.from.as_deref()),
                m.and_then(|m| m.subject.as_deref()),
                m.and_then(|m| m.message_id.as_deref()),
                m.and_then(|m| m.date.as_deref()),
                m.and_then(|m| m.authentication_results.as_deref()),
                input.truncated,
            ])?;
        let id = self.conn.last_insert_rowid();
        self.conn
            .prepare_cached("INSERT INTO raw_inputs (sha256, bytes) VALUES (?1, ?2)")?
            .execute(params![input.sha256, input.bytes])?;
        Ok(id)
    }

    /// Set an input's final kind, reason and warnings.
    pub fn finish_input(
        &mut self,
        id: i64,
        kind: Kind,
        reason: Option<&str>,
        warnings: &[String],
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE inputs SET kind = ?2, reason = ?3, warnings = ?4 WHERE id = ?1",
            )?
            .execute(params![id, kind.as_str(), reason, json_list(warnings)])?;
        Ok(())
    }

    /// An input's warnings.
    pub fn input_warnings(&self, id: i64) -> Result<Vec<String>> {
        let current: Option<String> =
            self.conn
                .query_row("SELECT warnings FROM inputs WHERE id = ?1", [id], |r| {
                    r.get(0)
                })?;
        Ok(current
            .and_then(|c| serde_json::from_str(&c).ok())
            .unwrap_or_default())
    }

    /// Replace an input's warnings.
    pub fn set_input_warnings(&mut self, id: i64, warnings: &[String]) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE inputs SET warnings = ?2 WHERE id = ?1")?
            .execute(params![id, json_list(warnings)])?;
        Ok(())
    }

    /// Append a warning to a report.
    pub fn add_report_warning(&mut self, id: i64, warning: &str) -> Result<()> {
        let current: Option<String> =
            self.conn
                .query_row("SELECT warnings FROM reports WHERE id = ?1", [id], |r| {
                    r.get(0)
                })?;
        let mut list: Vec<String> = current
            .and_then(|c| serde_json::from_str(&c).ok())
            .unwrap_or_default();
        if !list.iter().any(|w| w == warning) {
            list.push(warning.to_string());
        }
        self.conn.execute(
            "UPDATE reports SET warnings = ?2 WHERE id = ?1",
            params![id, json_list(&list)],
        )?;
        Ok(())
    }

    /// Remember that an IMAP message is (a copy of) this input.
    pub fn record_imap_message(
        &mut self,
        account: &str,
        mailbox: &str,
        uidvalidity: u32,
        uid: u32,
        input: i64,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO imap_messages (account, mailbox, uidvalidity, uid, input)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT DO UPDATE SET input = excluded.input",
            )?
            .execute(params![account, mailbox, uidvalidity, uid, input])?;
        Ok(())
    }

    /// Of `uids`, the IMAP messages already stored, with their input's kind.
    pub fn imap_stored(
        &self,
        account: &str,
        mailbox: &str,
        uidvalidity: u32,
        uids: &[u32],
    ) -> Result<Vec<(u32, Kind)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT i.kind FROM imap_messages m JOIN inputs i ON i.id = m.input
             WHERE m.account = ?1 AND m.mailbox = ?2 AND m.uidvalidity = ?3 AND m.uid = ?4",
        )?;
        let mut out = Vec::new();
        for &uid in uids {
            let kind: Option<String> = stmt
                .query_row(params![account, mailbox, uidvalidity, uid], |r| r.get(0))
                .optional()?;
            if let Some(k) = kind {
                out.push((uid, Kind::parse(&k).unwrap_or(Kind::Other)));
            }
        }
        Ok(out)
    }

    /// Of `uids`, the IMAP messages already copied to `folder` (servers without MOVE).
    pub fn imap_copied(
        &self,
        account: &str,
        mailbox: &str,
        uidvalidity: u32,
        folder: &str,
        uids: &[u32],
    ) -> Result<Vec<u32>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT 1 FROM imap_messages
             WHERE account = ?1 AND mailbox = ?2 AND uidvalidity = ?3 AND uid = ?4 AND copied_to = ?5",
        )?;
        let mut out = Vec::new();
        for &uid in uids {
            if stmt.exists(params![account, mailbox, uidvalidity, uid, folder])? {
                out.push(uid);
            }
        }
        Ok(out)
    }

    /// Record that these IMAP messages were copied to `folder`, each with its
    /// UID there when the server said (COPYUID).
    pub fn record_imap_copies(
        &mut self,
        account: &str,
        mailbox: &str,
        uidvalidity: u32,
        folder: &str,
        copies: &[(u32, Option<u32>)],
    ) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "UPDATE imap_messages SET copied_to = ?5, copied_uid = ?6
             WHERE account = ?1 AND mailbox = ?2 AND uidvalidity = ?3 AND uid = ?4",
        )?;
        for (uid, dest) in copies {
            stmt.execute(params![account, mailbox, uidvalidity, uid, folder, dest])?;
        }
        Ok(())
    }

    /// The stored report with this key, if any.
    pub fn report_by_key(&self, h: &Header) -> Result<Option<KnownReport>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id, input, records_sha256, salvaged, record_count FROM reports
                 WHERE reporter = ?1 AND report_id = ?2 AND policy_domain = ?3
                   AND begin_date = ?4 AND end_date = ?5",
            )?
            .query_row(
                params![
                    h.reporter(),
                    h.report_id_key(),
                    policy_domain(h),
                    h.begin,
                    h.end
                ],
                |r| {
                    Ok(KnownReport {
                        id: r.get(0)?,
                        input: r.get(1)?,
                        records_sha256: r.get(2)?,
                        salvaged: r.get(3)?,
                        record_count: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// Insert a report's header; records follow with [`Store::insert_record`].
    pub fn insert_report(&mut self, input: i64, document: &str, h: &Header) -> Result<i64> {
        let p = &h.policy;
        self.conn
            .prepare_cached(
                "INSERT INTO reports (input, document, org_name, reporter, email, extra_contact_info,
                    report_id, policy_domain, begin_date, end_date, p, sp, np, adkim, aspf, pct, fo,
                    testing, discovery_method, format, version, generator, errors)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                    ?17, ?18, ?19, ?20, ?21, ?22, ?23)",
            )?
            .execute(params![
                input,
                document,
                h.org_name.as_deref().map(str::trim),
                h.reporter(),
                h.email,
                h.extra_contact_info,
                h.report_id_key(),
                policy_domain(h),
                h.begin,
                h.end,
                p.p,
                p.sp,
                p.np,
                p.adkim,
                p.aspf,
                p.pct,
                p.fo,
                p.testing,
                p.discovery_method,
                h.format.as_str(),
                h.version,
                h.generator,
                json_list(&h.errors),
            ])?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Insert one record of a report, with its auth results and reasons.
    pub fn insert_record(&mut self, report: i64, r: &Record) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO records (report, source_ip, source_ip_bin, count, disposition, dkim, spf,
                    header_from, envelope_from, envelope_to)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                report,
                r.source_ip,
                r.ip.map(|ip| ip_bin(ip).to_vec()),
                r.count,
                r.disposition,
                r.dkim,
                r.spf,
                r.header_from,
                r.envelope_from,
                r.envelope_to,
            ])?;
        let record = self.conn.last_insert_rowid();
        if !r.dkim_results.is_empty() {
            let mut stmt = self.conn.prepare_cached(
                "INSERT INTO dkim_results (record, domain, selector, result, human_result)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for d in &r.dkim_results {
                stmt.execute(params![
                    record,
                    d.domain,
                    d.selector,
                    d.result,
                    d.human_result
                ])?;
            }
        }
        if !r.spf_results.is_empty() {
            let mut stmt = self.conn.prepare_cached(
                "INSERT INTO spf_results (record, domain, scope, result, human_result)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for s in &r.spf_results {
                stmt.execute(params![record, s.domain, s.scope, s.result, s.human_result])?;
            }
        }
        if !r.reasons.is_empty() {
            let mut stmt = self.conn.prepare_cached(
                "INSERT INTO override_reasons (record, type, comment) VALUES (?1, ?2, ?3)",
            )?;
            for o in &r.reasons {
                stmt.execute(params![record, o.kind, o.comment])?;
            }
        }
        Ok(())
    }

    /// Close a report: its counts, records digest and warnings.
    pub fn finish_report(
        &mut self,
        id: i64,
        record_count: i64,
        message_count: i64,
        records_sha256: &str,
        warnings: &[String],
        salvaged: bool,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE reports SET record_count = ?2, message_count = ?3, records_sha256 = ?4,
                    warnings = ?5, salvaged = ?6 WHERE id = ?1",
            )?
            .execute(params![
                id,
                record_count,
                message_count,
                records_sha256,
                json_list(warnings),
                salvaged
            ])?;
        Ok(())
    }

    /// A short description of an input for messages: its path or IMAP location.
    pub fn describe_input(&self, id: i64) -> Result<String> {
        let origin: String = self.conn.query_row(
            &format!("SELECT {SOURCE} FROM inputs WHERE id = ?1"),
            [id],
            |r| r.get(0),
        )?;
        Ok(format!(
            "input {id} ({})",
            crate::extract::printable_name(&origin)
        ))
    }

    /// Ids of every input whose raw bytes are kept, oldest first.
    pub fn input_ids(&self) -> Result<Vec<i64>> {
        let mut stmt = self.conn.prepare(
            "SELECT i.id FROM inputs i JOIN raw_inputs r ON r.sha256 = i.sha256 ORDER BY i.id",
        )?;
        let ids = stmt.query_map([], |r| r.get(0))?;
        Ok(ids.collect::<std::result::Result<_, _>>()?)
    }

    /// An input's raw bytes and origin.
    pub fn raw_input(&self, id: i64) -> Result<Option<StoredInput>> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT i.origin, i.path, i.mbox_index, i.account, i.mailbox, i.uidvalidity, i.uid,
                        i.truncated, r.bytes
                 FROM inputs i JOIN raw_inputs r ON r.sha256 = i.sha256 WHERE i.id = ?1",
            )?
            .query_row([id], |r| {
                let origin: String = r.get(0)?;
                let path: Option<String> = r.get(1)?;
                let origin = match origin.as_str() {
                    "imap" => Origin::Imap {
                        account: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                        mailbox: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                        uidvalidity: r.get::<_, Option<u32>>(5)?.unwrap_or_default(),
                        uid: r.get::<_, Option<u32>>(6)?.unwrap_or_default(),
                    },
                    "stdin" => Origin::Stdin,
                    _ => Origin::Path {
                        path: path.clone().unwrap_or_default(),
                        mbox_index: r.get::<_, Option<i64>>(2)?.map(|i| i as usize),
                    },
                };
                let name = match (&origin, path) {
                    (
                        Origin::Path {
                            mbox_index: None, ..
                        },
                        Some(p),
                    ) => std::path::Path::new(&p)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned()),
                    _ => None,
                };
                Ok(StoredInput {
                    origin,
                    name,
                    truncated: r.get(7)?,
                    bytes: r.get(8)?,
                })
            })
            .optional()?;
        Ok(row)
    }

    /// Everything about an input that reading it produces, as one comparable value.
    pub fn input_fingerprint(&self, id: i64) -> Result<String> {
        Ok(self.conn.query_row(
            "SELECT json_array(kind, reason, warnings, from_header, subject, message_id,
                    date_header, authentication_results,
                    (SELECT json_group_array(x) FROM (
                        SELECT json_array(document, org_name, reporter, email, extra_contact_info,
                            report_id, policy_domain, begin_date, end_date, p, sp, np, adkim,
                            aspf, pct, fo, testing, discovery_method, format, version, generator,
                            errors, warnings, record_count, message_count, records_sha256, salvaged) AS x
                        FROM reports WHERE input = ?1 ORDER BY x)),
                    (SELECT json_group_array(json_array(b.format, b.reporting_mta, b.arrival_date,
                            b.bounced_at, b.sender_domain, b.original_message_id, b.original_from,
                            b.original_subject, b.warnings, b.key, br.recipient, br.domain, br.action,
                            br.status, br.smtp_code, br.remote_mta, br.diagnostic, br.reason,
                            br.detail))
                     FROM bounces b LEFT JOIN bounce_recipients br ON br.bounce = b.id
                     WHERE b.input = ?1))
             FROM inputs WHERE id = ?1",
            [id],
            |r| r.get(0),
        )?)
    }

    /// Warnings about other inputs on this input's reports (a later copy with
    /// other records under the same key; the salvaged copy this one
    /// replaced), by report key.
    pub fn duplicate_warnings_of(&self, input: i64) -> Result<Vec<(ReportKey, String)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.reporter, r.report_id, r.policy_domain, r.begin_date, r.end_date, j.value
             FROM reports r, json_each(r.warnings) j
             WHERE r.input = ?1 AND r.warnings IS NOT NULL
               AND (instr(j.value, ?2) > 0 OR instr(j.value, ?3) > 0)",
        )?;
        let markers = params![
            input,
            crate::ingest::DIFFERENT_COPY,
            crate::ingest::REPLACES_SALVAGED
        ];
        let rows = stmt.query_map(markers, |r| {
            Ok((
                ReportKey {
                    reporter: r.get(0)?,
                    report_id: r.get(1)?,
                    policy_domain: r.get(2)?,
                    begin: r.get(3)?,
                    end: r.get(4)?,
                },
                r.get(5)?,
            ))
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Put such warnings back on the input's reports with the same keys.
    pub fn restore_duplicate_warnings(
        &mut self,
        input: i64,
        kept: &[(ReportKey, String)],
    ) -> Result<()> {
        for (k, w) in kept {
            let id: Option<i64> = self
                .conn
                .prepare_cached(
                    "SELECT id FROM reports WHERE input = ?1 AND reporter = ?2 AND report_id = ?3
                       AND policy_domain = ?4 AND begin_date = ?5 AND end_date = ?6",
                )?
                .query_row(
                    params![
                        input,
                        k.reporter,
                        k.report_id,
                        k.policy_domain,
                        k.begin,
                        k.end
                    ],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = id {
                self.add_report_warning(id, w)?;
            }
        }
        Ok(())
    }

    /// Delete one report (its records go with it).
    pub fn delete_report(&mut self, id: i64) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM reports WHERE id = ?1")?
            .execute([id])?;
        Ok(())
    }

    /// Delete an input's reports (their records go with them).
    pub fn delete_reports_of(&mut self, input: i64) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM reports WHERE input = ?1")?
            .execute([input])?;
        Ok(())
    }

    /// Store what a bounce input says: one `bounces` row and its recipients.
    /// Without a Date of its own the bounce dates from when its input was stored.
    /// A bounce stored before (same [`Bounce::key`](crate::bounce::Bounce::key))
    /// is not stored again: returns the input that holds it.
    pub fn insert_bounce(&mut self, input: i64, b: &crate::bounce::Bounce) -> Result<Option<i64>> {
        let key = b.key();
        let first: Option<i64> = self
            .conn
            .prepare_cached("SELECT input FROM bounces WHERE key = ?1")?
            .query_row([&key], |r| r.get(0))
            .optional()?;
        if first.is_some() {
            return Ok(first);
        }
        self.conn
            .prepare_cached(
                "INSERT INTO bounces (input, format, reporting_mta, arrival_date, bounced_at,
                    sender_domain, original_message_id, original_from, original_subject, warnings,
                    key)
                 VALUES (?1, ?2, ?3, ?4,
                    coalesce(?5, (SELECT received_at FROM inputs WHERE id = ?1)),
                    ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                input,
                b.format,
                b.reporting_mta,
                b.arrival_date,
                b.date,
                b.sender_domain,
                b.original.message_id,
                b.original.from,
                b.original.subject,
                json_list(&b.warnings),
                key,
            ])?;
        let bounce = self.conn.last_insert_rowid();
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO bounce_recipients (bounce, recipient, domain, action, status, smtp_code,
                remote_mta, diagnostic, reason, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for r in &b.recipients {
            stmt.execute(params![
                bounce,
                r.address,
                r.domain(),
                r.action,
                r.status,
                r.smtp_code,
                r.remote_mta.as_deref().map(str::to_lowercase),
                r.diagnostic,
                r.reason.as_str(),
                r.detail,
            ])?;
        }
        Ok(None)
    }

    /// Delete an input's bounce (its recipients go with it).
    pub fn delete_bounce_of(&mut self, input: i64) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM bounces WHERE input = ?1")?
            .execute([input])?;
        Ok(())
    }

    /// Replace an input's mail headers.
    pub fn update_mail(&mut self, id: i64, m: Option<&crate::extract::MailMeta>) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE inputs SET from_header = ?2, subject = ?3, message_id = ?4,
                    date_header = ?5, authentication_results = ?6 WHERE id = ?1",
            )?
            .execute(params![
                id,
                m.and_then(|m| m.from.as_deref()),
                m.and_then(|m| m.subject.as_deref()),
                m.and_then(|m| m.message_id.as_deref()),
                m.and_then(|m| m.date.as_deref()),
                m.and_then(|m| m.authentication_results.as_deref()),
            ])?;
        Ok(())
    }

    /// Invalid inputs received at or after `since`, newest first.
    pub fn invalid_inputs(&self, since: i64) -> Result<Vec<InvalidInput>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT id, received_at, {SOURCE}, subject, from_header, size, coalesce(reason, '')
             FROM inputs WHERE kind = 'invalid' AND received_at >= ?1
             ORDER BY received_at DESC, id DESC"
        ))?;
        let rows = stmt.query_map([since], |r| {
            Ok(InvalidInput {
                id: r.get(0)?,
                received_at: r.get(1)?,
                source: r.get(2)?,
                subject: r.get(3)?,
                from: r.get(4)?,
                size: r.get(5)?,
                reason: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Delete reports that ended before `cutoff`, and inputs left without
    /// reports that were received before it (or whose reports were all
    /// pruned), with their raw bytes. With `dry_run`, count only.
    pub fn prune(&mut self, cutoff: i64, dry_run: bool) -> Result<Pruned> {
        let tx = self.conn.transaction()?;
        let count = |sql: &str| -> Result<i64> { Ok(tx.query_row(sql, [cutoff], |r| r.get(0))?) };
        let doomed_inputs = "SELECT id FROM inputs i WHERE
                NOT EXISTS (SELECT 1 FROM reports r WHERE r.input = i.id AND r.end_date >= ?1)
                AND (i.received_at < ?1
                     OR EXISTS (SELECT 1 FROM reports r WHERE r.input = i.id))";
        let pruned = Pruned {
            reports: count("SELECT count(*) FROM reports WHERE end_date < ?1")?,
            records: count(
                "SELECT count(*) FROM records WHERE report IN
                 (SELECT id FROM reports WHERE end_date < ?1)",
            )?,
            inputs: count(&format!("SELECT count(*) FROM ({doomed_inputs})"))?,
            raw_bytes: count(&format!(
                "SELECT coalesce(sum(length(r.bytes)), 0) FROM raw_inputs r
                 JOIN inputs i ON i.sha256 = r.sha256 WHERE i.id IN ({doomed_inputs})"
            ))?,
        };
        if !dry_run {
            tx.execute(
                &format!("DELETE FROM inputs WHERE id IN ({doomed_inputs})"),
                [cutoff],
            )?;
            tx.execute("DELETE FROM reports WHERE end_date < ?1", [cutoff])?;
            let horizon: Option<i64> =
                tx.query_row("SELECT max(before) FROM prune_horizon", [], |r| r.get(0))?;
            tx.execute("DELETE FROM prune_horizon", [])?;
            tx.execute(
                "INSERT INTO prune_horizon (before) VALUES (?1)",
                [horizon.map_or(cutoff, |h| h.max(cutoff))],
            )?;
            tx.commit()?;
        }
        Ok(pruned)
    }

    /// Reports that ended before this were pruned (see migration 3).
    pub fn prune_horizon(&self) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row("SELECT max(before) FROM prune_horizon", [], |r| r.get(0))?)
    }

    /// Read-only access for queries and summaries.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

/// An input's origin as one line of text.
const SOURCE: &str = "CASE origin
    WHEN 'imap' THEN 'imap ' || account || '/' || mailbox || ' UID ' || uid
    WHEN 'stdin' THEN '<stdin>'
    ELSE path || coalesce(' message ' || mbox_index, '') END";

fn policy_domain(h: &Header) -> String {
    h.policy.domain.trim().trim_end_matches('.').to_lowercase()
}

fn json_list(items: &[String]) -> Option<String> {
    if items.is_empty() {
        None
    } else {
        serde_json::to_string(items).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_newer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/db.sqlite");
        let s = Store::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        drop(s);
        let s = Store::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        s.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(s);
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::TooNew { found: 99, .. })
        ));
    }
}
