-- Messages per day and source IP, with how many passed DMARC, over the 30
-- days up to the newest report. A report is counted on the day it begins.
-- Run: dmarcdb query daily-volume
--  or: sqlite3 -header -column ~/.local/share/dmarcdb/dmarcdb.sqlite < sql/queries/daily-volume.sql
WITH newest AS (SELECT max(end_date) AS t FROM reports)
SELECT date(r.begin_date, 'unixepoch')  AS day,
       r.policy_domain,
       rec.source_ip,
       sum(rec.count)                    AS messages,
       sum(CASE WHEN rec.dkim = 'pass' OR rec.spf = 'pass' THEN rec.count ELSE 0 END) AS dmarc_pass
FROM records rec
JOIN reports r ON r.id = rec.report, newest
WHERE r.end_date >= newest.t - 30 * 86400
GROUP BY day, r.policy_domain, rec.source_ip
ORDER BY day, r.policy_domain, messages DESC;
