-- Inputs that looked like reports but could not be read, newest first, with
-- where they came from and why. Their raw bytes stay in raw_inputs.
-- Run: dmarcdb query invalid-inputs
--  or: sqlite3 -header -column ~/.local/share/dmarcdb/dmarcdb.sqlite < sql/queries/invalid-inputs.sql
SELECT id,
       datetime(received_at, 'unixepoch') AS received_utc,
       coalesce(path, account || '/' || mailbox || ' UID ' || uid, origin) AS source,
       subject,
       reason
FROM invalid_inputs
ORDER BY received_at DESC, id DESC;
