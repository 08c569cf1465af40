-- Recovering work no queue message will come back for (a batch in a dead-letter queue, a lost
-- descriptor, a sender that died holding rows of a campaign since cancelled): the scheduler's sweep
-- finds in-flight rows idle past their horizon through this partial index, which holds only what is
-- queued or sending, so the sweep stays flat however much history the table keeps.
CREATE INDEX idx_delivery_logs_in_flight ON sms_delivery_logs (updated_at) WHERE status IN ('queued', 'sending');

-- How many times the sweep has announced a row's batch again; past the limit the row expires.
ALTER TABLE sms_delivery_logs ADD COLUMN recoveries smallint NOT NULL DEFAULT 0;

-- Campaigns stopped recently, whose rows a sender may still hold.
CREATE INDEX idx_campaigns_stopped ON sms_campaigns (updated_at) WHERE status IN ('cancelled', 'failed');
