-- A queued campaign whose release message was lost (or whose dispatch keeps failing) is announced again
-- with backoff, and fails after a bounded number of announcements instead of being re-announced for ever.
ALTER TABLE sms_campaigns
    ADD COLUMN release_attempts integer NOT NULL DEFAULT 0,  -- announcements of the release message so far
    ADD COLUMN announced_at     timestamptz;                 -- the last one

UPDATE sms_campaigns SET release_attempts = 1, announced_at = queued_at WHERE status = 'queued';
