-- Migration 2: what was copied on a server without MOVE.
--
-- Without the MOVE extension a mail is moved by UID COPY, then \Deleted and
-- UID EXPUNGE. The copy is recorded (and committed) between the COPY and the
-- EXPUNGE, so that a run killed in between never copies the mail a second
-- time: the next run sees the record and only expunges the original.

-- The folder the message was copied to; NULL when it was not (yet) copied,
-- or was moved with MOVE.
ALTER TABLE imap_messages ADD COLUMN copied_to TEXT;
-- Its UID in that folder, from the server's COPYUID answer (UIDPLUS, RFC
-- 4315); NULL when the server did not say.
ALTER TABLE imap_messages ADD COLUMN copied_uid INTEGER;
