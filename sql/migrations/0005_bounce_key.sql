-- Migration 5: a bounce is stored once, however often it arrives.
--
-- The same bounce can reach the store twice with different bytes: delivered
-- to the report mailbox and to a bounce_folder, or passed on by a relay that
-- adds a header. `key` is a sha256 over the bounce's own Message-ID and Date
-- and what dmarcdb read from it (reporting MTA, arrival date, the original
-- Message-ID, each recipient's address, action, status and diagnostic). A
-- second input with the same key is kept (kind 'bounce', with a warning
-- naming the first) but adds no rows. Bounces stored before this migration
-- have no key until `dmarcdb reparse` reads them again.
--
-- From this version on, a bounce that names no recipient dmarcdb can read is
-- kind 'invalid' (listed by `dmarcdb invalid`; reparse reads it again after
-- an upgrade), not kind 'bounce' with a warning as 0004 describes.
ALTER TABLE bounces ADD COLUMN key TEXT;
CREATE UNIQUE INDEX bounces_key ON bounces (key);

-- Provider patterns match case-blind: the views compare them with lowercase
-- host names, domains and reporter names, so a pattern is kept lowercase
-- (and without surrounding spaces or dots) however it is written. A row you
-- add as 'Mail.Example.NET.' is stored as 'mail.example.net'; where that
-- pattern is already there, the row written last wins.
UPDATE OR REPLACE providers SET pattern = lower(trim(pattern, ' .'));
CREATE TRIGGER providers_lowercase_insert AFTER INSERT ON providers
WHEN NEW.pattern IS NOT lower(trim(NEW.pattern, ' .'))
BEGIN
    UPDATE OR REPLACE providers SET pattern = lower(trim(NEW.pattern, ' .'))
    WHERE rowid = NEW.rowid;
END;
CREATE TRIGGER providers_lowercase_update AFTER UPDATE OF pattern ON providers
WHEN NEW.pattern IS NOT lower(trim(NEW.pattern, ' .'))
BEGIN
    UPDATE OR REPLACE providers SET pattern = lower(trim(NEW.pattern, ' .'))
    WHERE rowid = NEW.rowid;
END;
