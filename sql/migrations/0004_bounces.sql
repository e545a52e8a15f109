-- Migration 4: bounces, and the provider names that line them up with DMARC
-- reporters.
--
-- An input of kind 'bounce' (a delivery status notification) is read into
-- one `bounces` row and one `bounce_recipients` row per failed or delayed
-- recipient. What the bounce does not say stays NULL; the raw status and
-- diagnostic are kept next to the reason dmarcdb derived from them, so
-- `dmarcdb reparse` can re-derive it with a newer table. A bounce that names
-- no recipient keeps its input (kind 'bounce', with a warning) and gets no
-- rows here. Deleting the input deletes its bounce (ON DELETE CASCADE).

-- One row per bounce input.
CREATE TABLE bounces (
    id                  INTEGER PRIMARY KEY,
    input               INTEGER NOT NULL UNIQUE REFERENCES inputs (id) ON DELETE CASCADE,
    -- 'dsn': read from a message/delivery-status part (RFC 3464);
    -- 'text': read from the text of a plain-text bounce.
    format              TEXT NOT NULL CHECK (format IN ('dsn', 'text')),
    -- Reporting-MTA (without its 'dns;' type), or the host a plain-text
    -- bounce names as its own ("This is the mail system at host …").
    reporting_mta       TEXT,
    -- Arrival-Date as written.
    arrival_date        TEXT,
    -- When it bounced: the bounce mail's Date header, else when dmarcdb stored it.
    bounced_at          INTEGER NOT NULL,
    -- The domain that sent the bounced mail (ours): the domain of the
    -- original From, else of the address the bounce was sent to; lowercase.
    sender_domain       TEXT,
    -- The returned message's headers, when the bounce includes them.
    original_message_id TEXT,
    original_from       TEXT,
    original_subject    TEXT,
    -- What was odd (JSON array), e.g. more recipients than were kept.
    warnings            TEXT
);
CREATE INDEX bounces_at ON bounces (bounced_at);

-- One row per recipient a bounce reports.
CREATE TABLE bounce_recipients (
    id          INTEGER PRIMARY KEY,
    bounce      INTEGER NOT NULL REFERENCES bounces (id) ON DELETE CASCADE,
    -- The address (domain lowercased) and its domain: the receiving domain.
    recipient   TEXT NOT NULL,
    domain      TEXT,
    -- DSN Action, lowercase: failed | delayed | … ; NULL in plain-text bounces.
    action      TEXT,
    -- Enhanced status code X.Y.Z, and the SMTP reply code (550, 421, …).
    status      TEXT,
    smtp_code   INTEGER,
    -- The receiving server as named (host name or address), lowercase.
    remote_mta  TEXT,
    -- The server's words: Diagnostic-Code, or the bounce text about this
    -- recipient (white space collapsed, at most 2000 characters).
    diagnostic  TEXT,
    -- Why it bounced (src/bounce/classify.rs documents the table):
    reason      TEXT NOT NULL CHECK (reason IN ('auth_failure', 'blocked',
                  'spam_detected', 'policy_violation', 'user_unknown', 'mailbox_full',
                  'rate_limited', 'host_unknown', 'expired', 'tls_error', 'too_large',
                  'content_rejected', 'other')),
    -- Finer reason where the text names one: spf | dkim | dmarc (auth_failure),
    -- reputation | blocklist | ptr (blocked); else NULL.
    detail      TEXT
);
CREATE INDEX bounce_recipients_bounce ON bounce_recipients (bounce);

-- Provider names: which mail provider a host, domain or DMARC reporter
-- belongs to, so that bounces and DMARC reports line up per provider
-- (reporter "Enterprise Outlook" and MX hosts under outlook.com are both
-- "Microsoft"). kind 'domain': the pattern matches that domain and every
-- name below it (the longest match wins); kind 'reporter': reports.reporter
-- (the lowercased org_name) exactly. Add rows of your own freely: the views
-- below read this table at query time.
CREATE TABLE providers (
    kind      TEXT NOT NULL CHECK (kind IN ('domain', 'reporter')),
    pattern   TEXT NOT NULL,
    provider  TEXT NOT NULL,
    PRIMARY KEY (kind, pattern)
);
INSERT INTO providers (kind, pattern, provider) VALUES
    ('domain', 'outlook.com', 'Microsoft'),
    ('domain', 'hotmail.com', 'Microsoft'),
    ('domain', 'live.com', 'Microsoft'),
    ('domain', 'msn.com', 'Microsoft'),
    ('domain', 'office365.com', 'Microsoft'),
    ('domain', 'microsoft.com', 'Microsoft'),
    ('reporter', 'enterprise outlook', 'Microsoft'),
    ('reporter', 'outlook.com', 'Microsoft'),
    ('reporter', 'microsoft corporation', 'Microsoft'),
    ('domain', 'google.com', 'Google'),
    ('domain', 'gmail.com', 'Google'),
    ('domain', 'googlemail.com', 'Google'),
    ('domain', '1e100.net', 'Google'),
    ('reporter', 'google.com', 'Google'),
    ('reporter', 'google', 'Google'),
    ('reporter', 'google, inc.', 'Google'),
    ('domain', 'yahoo.com', 'Yahoo'),
    ('domain', 'yahoodns.net', 'Yahoo'),
    ('domain', 'ymail.com', 'Yahoo'),
    ('domain', 'aol.com', 'Yahoo'),
    ('reporter', 'yahoo', 'Yahoo'),
    ('reporter', 'yahoo! inc.', 'Yahoo'),
    ('reporter', 'yahoo inc.', 'Yahoo'),
    ('reporter', 'aol', 'Yahoo'),
    ('domain', 'icloud.com', 'Apple'),
    ('domain', 'me.com', 'Apple'),
    ('domain', 'mac.com', 'Apple'),
    ('domain', 'apple.com', 'Apple'),
    ('domain', 'gmx.net', 'GMX/WEB.DE (1&1)'),
    ('domain', 'gmx.de', 'GMX/WEB.DE (1&1)'),
    ('domain', 'gmx.com', 'GMX/WEB.DE (1&1)'),
    ('domain', 'web.de', 'GMX/WEB.DE (1&1)'),
    ('domain', 'kundenserver.de', 'GMX/WEB.DE (1&1)'),
    ('domain', 'ionos.com', 'GMX/WEB.DE (1&1)'),
    ('domain', 'ionos.de', 'GMX/WEB.DE (1&1)'),
    ('reporter', 'gmx', 'GMX/WEB.DE (1&1)'),
    ('reporter', 'web.de', 'GMX/WEB.DE (1&1)'),
    ('domain', 't-online.de', 'Deutsche Telekom (T-Online)'),
    ('reporter', 't-online.de', 'Deutsche Telekom (T-Online)'),
    ('domain', 'orange.fr', 'Orange'),
    ('domain', 'wanadoo.fr', 'Orange'),
    ('reporter', 'orange.', 'Orange'),
    ('domain', 'mail.ru', 'Mail.ru'),
    ('reporter', 'mail.ru', 'Mail.ru'),
    ('domain', 'yandex.ru', 'Yandex'),
    ('domain', 'yandex.net', 'Yandex'),
    ('domain', 'comcast.net', 'Comcast'),
    ('domain', 'zoho.com', 'Zoho'),
    ('domain', 'zohomail.com', 'Zoho'),
    ('reporter', 'zoho.com', 'Zoho'),
    ('domain', 'qq.com', 'Tencent'),
    ('domain', 'mimecast.com', 'Mimecast'),
    ('reporter', 'mimecast', 'Mimecast'),
    ('domain', 'pphosted.com', 'Proofpoint'),
    ('domain', 'messagingengine.com', 'Fastmail'),
    ('domain', 'fastmail.com', 'Fastmail'),
    ('reporter', 'fastmail pty ltd', 'Fastmail'),
    ('domain', 'seznam.cz', 'Seznam'),
    ('reporter', 'seznam.cz a.s.', 'Seznam');

-- One row per bounced recipient with its bounce's fields and its provider:
-- the provider of the remote MTA's host name, else of the recipient's
-- domain (longest matching 'domain' pattern), else the recipient's domain
-- itself.
CREATE VIEW bounce_rows AS
SELECT br.id                                   AS recipient_row,
       b.id                                    AS bounce,
       b.input,
       b.bounced_at,
       datetime(b.bounced_at, 'unixepoch')     AS bounced_utc,
       b.sender_domain,
       br.recipient,
       br.domain,
       coalesce(
         (SELECT p.provider FROM providers p
           WHERE p.kind = 'domain' AND br.remote_mta IS NOT NULL
             AND (br.remote_mta = p.pattern
                  OR substr(br.remote_mta, -length(p.pattern) - 1) = '.' || p.pattern)
           ORDER BY length(p.pattern) DESC LIMIT 1),
         (SELECT p.provider FROM providers p
           WHERE p.kind = 'domain' AND br.domain IS NOT NULL
             AND (br.domain = p.pattern
                  OR substr(br.domain, -length(p.pattern) - 1) = '.' || p.pattern)
           ORDER BY length(p.pattern) DESC LIMIT 1),
         br.domain, '?')                       AS provider,
       br.action,
       br.status,
       br.smtp_code,
       br.remote_mta,
       br.reason,
       br.detail,
       br.diagnostic,
       b.reporting_mta,
       b.original_message_id,
       b.original_from,
       b.original_subject
FROM bounce_recipients br
JOIN bounces b ON b.id = br.bounce;

-- The provider of each DMARC report: by its reporter name, else by the
-- domain of its contact email, else the reporter name itself.
CREATE VIEW report_providers AS
SELECT r.id AS report,
       r.reporter,
       coalesce(
         (SELECT p.provider FROM providers p
           WHERE p.kind = 'reporter' AND p.pattern = r.reporter),
         (SELECT p.provider FROM providers p, (SELECT lower(trim(substr(r.email,
                   instr(r.email, '@') + 1), ' >.')) AS d) e
           WHERE p.kind = 'domain' AND r.email LIKE '%@%'
             AND (e.d = p.pattern OR substr(e.d, -length(p.pattern) - 1) = '.' || p.pattern)
           ORDER BY length(p.pattern) DESC LIMIT 1),
         r.reporter) AS provider
FROM reports r;
