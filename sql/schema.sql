-- dmarcdb report store, schema version 1.
--
-- This file is the contract users query against. It is applied to a new
-- database as migration 1 (PRAGMA user_version = 1). Later changes go into
-- new files under sql/migrations/ and never edit what is here.
--
-- Conventions: times are Unix seconds (UTC) in INTEGER columns; enumerated
-- values from reports (dispositions, results, alignment modes) are trimmed,
-- lowercased text exactly as the reporter sent them, so unknown values such
-- as 'hardfail' survive; NULL means the report did not say. Lists of warnings
-- are JSON arrays of strings (json_each() reads them), NULL when empty.
-- Deleting an input deletes everything that came from it (ON DELETE CASCADE).

-- One row per input: one mail (IMAP message, mbox message, .eml or Maildir
-- file, stdin) or one plain file (.xml, .xml.gz, .zip, ...).
CREATE TABLE inputs (
    id                     INTEGER PRIMARY KEY,
    -- sha256 of the raw bytes, lowercase hex. The same bytes are stored once.
    sha256                 TEXT NOT NULL UNIQUE,
    -- aggregate | failure | tlsrpt | bounce | other | invalid
    kind                   TEXT NOT NULL CHECK (kind IN
                             ('aggregate','failure','tlsrpt','bounce','other','invalid')),
    -- Why the input is invalid (one line); NULL for other kinds.
    reason                 TEXT,
    -- What was odd about the input (JSON array), e.g. a bad zip entry beside good ones.
    warnings               TEXT,
    -- Size of the raw bytes.
    size                   INTEGER NOT NULL,
    -- 1 when the input was over a size cap and only its header was kept
    -- (raw_inputs then holds that header); `reparse` leaves such inputs alone.
    truncated              INTEGER NOT NULL DEFAULT 0,
    -- When dmarcdb stored it.
    received_at            INTEGER NOT NULL,
    -- Where it came from: 'path', 'stdin' or 'imap'.
    origin                 TEXT NOT NULL CHECK (origin IN ('path','stdin','imap')),
    -- origin 'path': the file as given on the command line (or found below a directory).
    path                   TEXT,
    -- origin 'path' and the file is an mbox: which message, counting from 1.
    mbox_index             INTEGER,
    -- origin 'imap': the account name from the config, the mailbox, and the message's UID.
    account                TEXT,
    mailbox                TEXT,
    uidvalidity            INTEGER,
    uid                    INTEGER,
    -- Mail headers (decoded), NULL for plain files: keep enough to tell forged reports apart.
    from_header            TEXT,
    subject                TEXT,
    message_id             TEXT,
    date_header            TEXT,
    -- Every Authentication-Results header, newline-separated.
    authentication_results TEXT
);
CREATE INDEX inputs_kind ON inputs (kind);

-- The raw bytes of each input, exactly as received (compressed stays compressed).
CREATE TABLE raw_inputs (
    sha256  TEXT PRIMARY KEY REFERENCES inputs (sha256) ON DELETE CASCADE,
    bytes   BLOB NOT NULL
);

-- Every IMAP message dmarcdb has stored or recognised as a duplicate, so that a
-- mail stored but not yet moved (a crash between commit and MOVE) is never
-- ingested twice and is moved on the next run.
CREATE TABLE imap_messages (
    account      TEXT NOT NULL,
    mailbox      TEXT NOT NULL,
    uidvalidity  INTEGER NOT NULL,
    uid          INTEGER NOT NULL,
    input        INTEGER NOT NULL REFERENCES inputs (id) ON DELETE CASCADE,
    PRIMARY KEY (account, mailbox, uidvalidity, uid)
);
CREATE INDEX imap_messages_input ON imap_messages (input);

-- One row per DMARC aggregate report. A report is identified by
-- (reporter, report_id, policy_domain, begin_date, end_date); the same key
-- is stored once, whatever wrapping it arrived in.
CREATE TABLE reports (
    id                 INTEGER PRIMARY KEY,
    input              INTEGER NOT NULL REFERENCES inputs (id) ON DELETE CASCADE,
    -- Which document of the input (zip entry or attachment name).
    document           TEXT,
    -- report_metadata/org_name as sent (trimmed).
    org_name           TEXT,
    -- Normalised reporter: org_name trimmed and lowercased, or the domain of
    -- email when org_name is empty.
    reporter           TEXT NOT NULL,
    email              TEXT,
    extra_contact_info TEXT,
    -- report_metadata/report_id, trimmed, without angle brackets.
    report_id          TEXT NOT NULL,
    -- policy_published/domain, lowercased.
    policy_domain      TEXT NOT NULL,
    begin_date         INTEGER NOT NULL,
    end_date           INTEGER NOT NULL,
    -- policy_published: what the reporter found in DNS.
    p                  TEXT,
    sp                 TEXT,
    np                 TEXT,
    adkim              TEXT,
    aspf               TEXT,
    pct                INTEGER,
    fo                 TEXT,
    testing            TEXT,
    discovery_method   TEXT,
    -- rfc7489 | rfc9990 | draft
    format             TEXT NOT NULL,
    -- <version> as sent.
    version            TEXT,
    -- <generator> (RFC 9990): the reporting software.
    generator          TEXT,
    -- report_metadata/error elements (JSON array).
    errors             TEXT,
    -- What was odd about the report (JSON array).
    warnings           TEXT,
    -- Number of <record>s and the sum of their counts.
    record_count       INTEGER NOT NULL DEFAULT 0,
    message_count      INTEGER NOT NULL DEFAULT 0,
    -- sha256 over the parsed records: tells a true duplicate from a reused key.
    records_sha256     TEXT,
    -- 1 when the report broke part-way and only what came before was kept, or
    -- was read past mismatched end tags (the warnings say where); a complete,
    -- well-formed copy arriving later replaces it.
    salvaged           INTEGER NOT NULL DEFAULT 0,
    UNIQUE (reporter, report_id, policy_domain, begin_date, end_date)
);
CREATE INDEX reports_input ON reports (input);
CREATE INDEX reports_domain_dates ON reports (policy_domain, end_date);
CREATE INDEX reports_end ON reports (end_date);

-- One row per <record>: a source IP and what the receiver saw from it.
CREATE TABLE records (
    id             INTEGER PRIMARY KEY,
    report         INTEGER NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    -- Normalised text: lowercase, compressed IPv6, IPv4-mapped IPv6 as IPv4.
    -- The raw text when the reporter sent something that is not an address.
    source_ip      TEXT NOT NULL,
    -- 16 bytes: IPv6, or IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d), for range
    -- queries with BETWEEN; NULL when source_ip is not an address.
    source_ip_bin  BLOB,
    -- Messages this row stands for.
    count          INTEGER NOT NULL,
    -- policy_evaluated: what the receiver did (none / quarantine / reject / pass ...)
    disposition    TEXT,
    -- policy_evaluated: the DMARC-aligned DKIM and SPF results (pass / fail).
    dkim           TEXT,
    spf            TEXT,
    header_from    TEXT,
    envelope_from  TEXT,
    envelope_to    TEXT
);
CREATE INDEX records_report ON records (report);
CREATE INDEX records_source_ip ON records (source_ip);

-- auth_results/dkim: one row per DKIM signature the receiver checked.
CREATE TABLE dkim_results (
    id            INTEGER PRIMARY KEY,
    record        INTEGER NOT NULL REFERENCES records (id) ON DELETE CASCADE,
    domain        TEXT,
    selector      TEXT,
    result        TEXT,
    human_result  TEXT
);
CREATE INDEX dkim_results_record ON dkim_results (record);

-- auth_results/spf: one row per SPF check (scope helo or mfrom).
CREATE TABLE spf_results (
    id            INTEGER PRIMARY KEY,
    record        INTEGER NOT NULL REFERENCES records (id) ON DELETE CASCADE,
    domain        TEXT,
    scope         TEXT,
    result        TEXT,
    human_result  TEXT
);
CREATE INDEX spf_results_record ON spf_results (record);

-- policy_evaluated/reason: why the receiver applied another policy than published.
CREATE TABLE override_reasons (
    id       INTEGER PRIMARY KEY,
    record   INTEGER NOT NULL REFERENCES records (id) ON DELETE CASCADE,
    type     TEXT,
    comment  TEXT
);
CREATE INDEX override_reasons_record ON override_reasons (record);

-- Inputs that looked like reports but could not be read, with the reason.
CREATE VIEW invalid_inputs AS
SELECT id, reason, origin, path, mbox_index, account, mailbox, uidvalidity, uid,
       subject, from_header, size, received_at
FROM inputs
WHERE kind = 'invalid';

-- One row per record with its report's fields: the view for ad-hoc queries.
-- Dates are shown as 'YYYY-MM-DD HH:MM:SS' UTC; dmarc_pass is 1 when either
-- aligned DKIM or aligned SPF passed.
CREATE VIEW report_records AS
SELECT r.id                                    AS report,
       r.reporter,
       r.org_name,
       r.report_id,
       r.policy_domain,
       datetime(r.begin_date, 'unixepoch')     AS begin_utc,
       datetime(r.end_date, 'unixepoch')       AS end_utc,
       r.begin_date,
       r.end_date,
       r.p,
       rec.id                                  AS record,
       rec.source_ip,
       rec.count,
       rec.disposition,
       rec.dkim                                AS dkim_aligned,
       rec.spf                                 AS spf_aligned,
       (coalesce(rec.dkim, '') = 'pass' OR coalesce(rec.spf, '') = 'pass') AS dmarc_pass,
       rec.header_from,
       rec.envelope_from,
       rec.envelope_to,
       (SELECT group_concat(coalesce(d.domain, '?') || ':' || coalesce(d.result, '?'), ' ')
          FROM dkim_results d WHERE d.record = rec.id) AS dkim_results,
       (SELECT group_concat(coalesce(s.domain, '?') || ':' || coalesce(s.result, '?'), ' ')
          FROM spf_results s WHERE s.record = rec.id)  AS spf_results,
       (SELECT group_concat(o.type, ' ')
          FROM override_reasons o WHERE o.record = rec.id) AS override_reasons
FROM records rec
JOIN reports r ON r.id = rec.report;
