-- Sources whose mail failed DMARC (neither aligned DKIM nor aligned SPF passed)
-- in the 30 days up to the newest report, most failing messages first.
-- Run: dmarcdb query failing-senders
--  or: sqlite3 -header -column ~/.local/share/dmarcdb/dmarcdb.sqlite < sql/queries/failing-senders.sql
WITH newest AS (SELECT max(end_date) AS t FROM reports)
SELECT r.policy_domain,
       rec.source_ip,
       sum(rec.count)                        AS failing_messages,
       group_concat(DISTINCT rec.header_from) AS header_from,
       group_concat(DISTINCT r.reporter)      AS reporters,
       group_concat(DISTINCT rec.disposition) AS dispositions
FROM records rec
JOIN reports r ON r.id = rec.report, newest
WHERE r.end_date >= newest.t - 30 * 86400
  AND coalesce(rec.dkim, '') <> 'pass'
  AND coalesce(rec.spf, '') <> 'pass'
GROUP BY r.policy_domain, rec.source_ip
ORDER BY failing_messages DESC, r.policy_domain, rec.source_ip;
