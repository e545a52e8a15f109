-- What each receiver (reporter) did with mail claiming to be from each policy
-- domain: messages it saw, quarantined and rejected, over all stored reports.
-- Run: dmarcdb query receiver-actions
--  or: sqlite3 -header -column ~/.local/share/dmarcdb/dmarcdb.sqlite < sql/queries/receiver-actions.sql
SELECT r.reporter,
       r.policy_domain,
       sum(rec.count) AS messages,
       sum(CASE WHEN rec.disposition = 'quarantine' THEN rec.count ELSE 0 END) AS quarantined,
       sum(CASE WHEN rec.disposition = 'reject' THEN rec.count ELSE 0 END)     AS rejected,
       min(date(r.begin_date, 'unixepoch')) AS first_day,
       max(date(r.end_date, 'unixepoch'))   AS last_day
FROM records rec
JOIN reports r ON r.id = rec.report
GROUP BY r.reporter, r.policy_domain
ORDER BY rejected + quarantined DESC, messages DESC, r.reporter;
