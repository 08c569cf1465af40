-- The claim and the receipt update a message row in place (HOT), with no new index entry (ADR 0014).
--
-- PostgreSQL updates a row in place only when no column that any index names (in its key or its
-- predicate) changes value, and the page has room. `status` was in six indexes and `updated_at` in one,
-- so the claim (queued -> sending), the record and the receipt (sent -> delivered) each added an entry to
-- every index of the table. The indexes now name `phase` instead: the status with the steps of an
-- ordinary send folded together. It is the same for queued and sending (the claim) and for sent and
-- delivered (the receipt). The recovery sweep's index, which was ordered by `updated_at`, is ordered by
-- `idle_since`, which neither the claim nor the receipt writes.
--
-- Adding a stored generated column rewrites the table once (under an exclusive lock): on a large history,
-- run this deploy in a quiet hour.
ALTER TABLE sms_delivery_logs ADD COLUMN phase text GENERATED ALWAYS AS (
    CASE WHEN status IN ('queued', 'sending') THEN 'in_flight'
         WHEN status IN ('sent', 'delivered') THEN NULL
         ELSE status END) STORED;

-- When an unsent row was last put in a queue or looked after (inserted, woken, put back for a retry,
-- touched while its batch waits for a throttled slot, announced again): only a bound for the recovery
-- sweep, which still judges idleness by `updated_at` (every write of `idle_since` writes `updated_at`, so
-- it is never later). Rows already here read the time of this migration: at most, the sweep takes them
-- a few minutes later than it would have.
ALTER TABLE sms_delivery_logs ADD COLUMN idle_since timestamptz NOT NULL DEFAULT now();
DROP INDEX idx_delivery_logs_in_flight;
CREATE INDEX idx_delivery_logs_in_flight ON sms_delivery_logs (idle_since) WHERE phase = 'in_flight' AND NOT held;
-- An account's unsent rows (closing an account, resuming one).
DROP INDEX idx_delivery_logs_user_in_flight;
CREATE INDEX idx_delivery_logs_user_in_flight ON sms_delivery_logs (user_id)
    WHERE phase IN ('scheduled', 'in_flight');
-- What the scheduler wakes (a claimed row is never held), and what expires.
DROP INDEX idx_delivery_logs_waiting;
CREATE INDEX idx_delivery_logs_waiting ON sms_delivery_logs (not_before)
    WHERE held AND phase IN ('scheduled', 'in_flight');
DROP INDEX idx_delivery_logs_expiring;
CREATE INDEX idx_delivery_logs_expiring ON sms_delivery_logs (expires_at)
    WHERE expires_at IS NOT NULL AND phase IN ('scheduled', 'in_flight');
-- An account's single sends not yet handed to a provider.
DROP INDEX idx_delivery_logs_request_backlog;
CREATE INDEX idx_delivery_logs_request_backlog ON sms_delivery_logs (user_id)
    WHERE request_id IS NOT NULL AND phase IN ('scheduled', 'in_flight');
-- A campaign's unsent rows (cancel, the stop, announcing) and its failures (listing them): a fraction of
-- it. Its sent and delivered rows are most of it, read along idx_delivery_logs_campaign_batch.
DROP INDEX idx_delivery_logs_campaign_status;
CREATE INDEX idx_delivery_logs_campaign_phase ON sms_delivery_logs (campaign_id, phase, batch_number, id)
    WHERE phase IS NOT NULL;

-- Room in each page for the in-place versions: a row is claimed, recorded and receipted within minutes,
-- and pruning frees the versions before it once they are committed. At 85 most updates found no room.
CREATE OR REPLACE FUNCTION delivery_log_storage() RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT 'fillfactor = 50, autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.01'
$$;

DO $$
DECLARE part regclass;
BEGIN
    FOR part IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'sms_delivery_logs'::regclass LOOP
        EXECUTE format('ALTER TABLE %s SET (%s)', part, delivery_log_storage());
    END LOOP;
END $$;
