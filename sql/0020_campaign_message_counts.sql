-- Campaign statistics from counters instead of counting a campaign's rows (160+ ms at 1M recipients).
--
-- Every statement that inserts, updates or deletes delivery logs appends, from its transition tables,
-- one row per (campaign, state) it changed, with the net change in messages and in their credits (cost).
-- Appending takes no lock, so concurrent senders, receipts and the sweep never wait on each other here,
-- and the counts commit with the rows they count: a campaign's sums are exact in any snapshot. Stats,
-- settlement (what is in flight, what was spent) and the sweep read them. The scheduler folds each
-- campaign's rows into one per state (`compacted`), so a campaign keeps a few hundred rows at most.

-- A deleted campaign (or account) takes its counters with it.
CREATE TABLE campaign_message_counts (
    campaign_id uuid NOT NULL REFERENCES sms_campaigns (id) ON DELETE CASCADE,
    state varchar(20) NOT NULL,
    messages bigint NOT NULL,
    credits bigint NOT NULL,
    compacted boolean NOT NULL DEFAULT false
);
CREATE INDEX idx_campaign_message_counts ON campaign_message_counts (campaign_id);
CREATE INDEX idx_campaign_message_counts_new ON campaign_message_counts (campaign_id) WHERE NOT compacted;
ALTER TABLE campaign_message_counts SET (autovacuum_vacuum_scale_factor = 0.02);

-- The state a row is counted in: its status, with the queued rows that wait for their window and the
-- failed rows that expired told apart (stats report both).
CREATE FUNCTION sms_message_state(status text, held boolean, error_code text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN status = 'queued' AND held THEN 'waiting'
                WHEN status = 'failed' AND error_code = 'expired' THEN 'expired'
                ELSE status END
$$;

-- Maintenance moving rows out of the default partition re-inserts rows already counted (the detached
-- partition is emptied by TRUNCATE, which fires nothing); it says so for its transaction.
CREATE FUNCTION sms_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('sms.moving_partition_rows', true) = 'on' THEN
        RETURN NULL;
    END IF;
    INSERT INTO campaign_message_counts (campaign_id, state, messages, credits)
    SELECT campaign_id, sms_message_state(status, held, error_code), count(*), sum(cost)
      FROM new_rows WHERE campaign_id IS NOT NULL
     GROUP BY 1, 2;
    RETURN NULL;
END
$$;

CREATE FUNCTION sms_count_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO campaign_message_counts (campaign_id, state, messages, credits)
    SELECT campaign_id, state, sum(change), sum(change * cost)
      FROM (SELECT campaign_id, sms_message_state(status, held, error_code) AS state, 1 AS change, cost
              FROM new_rows WHERE campaign_id IS NOT NULL
            UNION ALL
            SELECT campaign_id, sms_message_state(status, held, error_code), -1, cost
              FROM old_rows WHERE campaign_id IS NOT NULL) changes
     GROUP BY 1, 2
    HAVING sum(change) <> 0 OR sum(change * cost) <> 0;
    RETURN NULL;
END
$$;

CREATE FUNCTION sms_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO campaign_message_counts (campaign_id, state, messages, credits)
    SELECT campaign_id, sms_message_state(status, held, error_code), -count(*), -sum(cost)
      FROM old_rows WHERE campaign_id IS NOT NULL
     GROUP BY 1, 2;
    RETURN NULL;
END
$$;

CREATE TRIGGER sms_delivery_logs_count_inserted AFTER INSERT ON sms_delivery_logs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sms_count_inserted();
CREATE TRIGGER sms_delivery_logs_count_updated AFTER UPDATE ON sms_delivery_logs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sms_count_updated();
CREATE TRIGGER sms_delivery_logs_count_deleted AFTER DELETE ON sms_delivery_logs
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION sms_count_deleted();

-- The campaigns sent before this migration, counted once.
INSERT INTO campaign_message_counts (campaign_id, state, messages, credits, compacted)
SELECT campaign_id, sms_message_state(status, held, error_code), count(*), sum(cost), true
  FROM sms_delivery_logs WHERE campaign_id IS NOT NULL
 GROUP BY 1, 2;
