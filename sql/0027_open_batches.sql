-- The record (sending -> sent) updates a message row in place, as the claim and the receipt already do
-- (ADR 0017): no index of the table names a column that any of the three writes.
--
-- Until now the record added an entry to five indexes per row (6,300 WAL records and 830 KB for 1,000
-- rows, 32 ms; in place: 1,000 records, 220 KB, 9 ms, and about 9 ms more to insert the rows of the provider's
-- ids below). Two kinds of index made it so:
--
-- 1. Indexes of unsent rows (the recovery sweep's, an account's, expiry's, the single-send backlog's, a
--    campaign's unsent rows). A row leaves them when it is sent, so sending it changes an indexed column.
--    They are replaced by `send_batches`: one row per batch that still has unsent rows (scheduled, queued or
--    sending), kept by a statement-level trigger from every write of the delivery logs, as the campaign
--    counters are (0020). Whatever looks for unsent rows starts from it and reads the rows of those batches
--    along the batch indexes; it stays as small as the work in flight.
-- 2. The provider's id. It is written by the record, and receipts look messages up by it. The lookup now
--    goes through `provider_message_ids`, one narrow row per accepted message inserted by the record in the
--    same statement; the column on the row stays, unindexed, for the API and the archive.
--
-- `phase` names only the states off the ordinary path (scheduled, failed, undelivered, cancelled): queued,
-- sending, sent and delivered all have none, so none of the three steps changes it.
--
-- Re-adding the generated column rewrites the table once (under an exclusive lock): on a large history,
-- run this deploy in a quiet hour.

CREATE TABLE send_batches (
    reference_id uuid NOT NULL,           -- the campaign or the API send request
    batch_number integer NOT NULL,
    kind         varchar(10) NOT NULL CHECK (kind IN ('campaign', 'request')),
    user_id      uuid NOT NULL,           -- no key: the account's rows go with it, and this row with them
    unsent       integer NOT NULL,        -- rows scheduled, queued or sending
    held         integer NOT NULL,        -- of which waiting for a window or a scheduled time
    idle_since   timestamptz NOT NULL,    -- the latest `idle_since` of its unsent rows (0022)
    expires_at   timestamptz,             -- the earliest validity end of its unsent rows, if any has one
    PRIMARY KEY (reference_id, batch_number)
);
-- The recovery sweep: batches with rows a sender should have taken (held ones wait on purpose).
CREATE INDEX idx_send_batches_idle ON send_batches (idle_since) WHERE unsent > held;
-- An account's unsent work (closing, resuming, its single-send backlog).
CREATE INDEX idx_send_batches_user ON send_batches (user_id, kind);
-- What may have expired.
CREATE INDEX idx_send_batches_expiring ON send_batches (expires_at) WHERE expires_at IS NOT NULL;
ALTER TABLE send_batches SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02);

CREATE FUNCTION sms_unsent(status text) RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT status IN ('scheduled', 'queued', 'sending')
$$;

-- One statement's net change to a batch.
CREATE TYPE sms_batch_change AS (
    reference_id uuid, batch_number integer, kind varchar(10), user_id uuid, unsent integer, held integer,
    idle_since timestamptz, expires_at timestamptz);

-- Adds the changes; a batch left with no unsent row is deleted. In key order, so statements that touch
-- several batches lock their rows in one order and never deadlock on them.
CREATE FUNCTION sms_send_batches_apply(changes sms_batch_change[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(cardinality(changes), 0) = 0 THEN
        RETURN;  -- a claim, a receipt: nothing to add
    END IF;
    INSERT INTO send_batches AS b (reference_id, batch_number, kind, user_id, unsent, held, idle_since, expires_at)
    SELECT reference_id, batch_number, kind, user_id, unsent, held, coalesce(idle_since, now()), expires_at
      FROM unnest(changes) ORDER BY reference_id, batch_number
    ON CONFLICT (reference_id, batch_number) DO UPDATE
       SET unsent = b.unsent + excluded.unsent, held = b.held + excluded.held,
           idle_since = greatest(b.idle_since, excluded.idle_since),
           expires_at = least(b.expires_at, excluded.expires_at);
    DELETE FROM send_batches b USING unnest(changes) c
     WHERE b.reference_id = c.reference_id AND b.batch_number = c.batch_number AND b.unsent <= 0;
END
$$;

-- Rows inserted or deleted: the one transition table is `changed_rows` for both.
CREATE FUNCTION sms_send_batches_inserted_or_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    direction integer := CASE TG_OP WHEN 'DELETE' THEN -1 ELSE 1 END;
BEGIN
    IF current_setting('sms.moving_partition_rows', true) = 'on' THEN
        RETURN NULL;  -- rows moved between partitions, already counted (0020)
    END IF;
    PERFORM sms_send_batches_apply(ARRAY(
        SELECT ROW(coalesce(campaign_id, request_id), batch_number,
                   CASE WHEN bool_or(campaign_id IS NOT NULL) THEN 'campaign' ELSE 'request' END,
                   (array_agg(user_id))[1], direction * count(*), direction * count(*) FILTER (WHERE held),
                   CASE WHEN direction > 0 THEN max(idle_since) END,
                   CASE WHEN direction > 0 THEN min(expires_at) END)::sms_batch_change
          FROM changed_rows
         WHERE sms_unsent(status) AND coalesce(campaign_id, request_id) IS NOT NULL AND batch_number IS NOT NULL
         GROUP BY coalesce(campaign_id, request_id), batch_number));
    RETURN NULL;
END
$$;

-- A claim (queued -> sending) changes no count and no idle time: it touches no batch row.
CREATE FUNCTION sms_send_batches_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM sms_send_batches_apply(ARRAY(
        SELECT ROW(ref, batch_number, CASE WHEN campaign THEN 'campaign' ELSE 'request' END, user_id, unsent, held,
                   idle_new, expires_at)::sms_batch_change
          FROM (SELECT ref, batch_number, bool_or(campaign) AS campaign, (array_agg(user_id))[1] AS user_id,
                       sum(change)::int AS unsent, coalesce(sum(change) FILTER (WHERE held), 0)::int AS held,
                       max(idle_since) FILTER (WHERE change = 1) AS idle_new,
                       max(idle_since) FILTER (WHERE change = -1) AS idle_old,
                       min(expires_at) AS expires_at
                  FROM (SELECT coalesce(campaign_id, request_id) AS ref, batch_number,
                               campaign_id IS NOT NULL AS campaign, user_id, 1 AS change, held, idle_since, expires_at
                          FROM new_rows
                         WHERE sms_unsent(status) AND coalesce(campaign_id, request_id) IS NOT NULL
                           AND batch_number IS NOT NULL
                        UNION ALL
                        SELECT coalesce(campaign_id, request_id), batch_number, campaign_id IS NOT NULL, user_id, -1,
                               held, idle_since, NULL
                          FROM old_rows
                         WHERE sms_unsent(status) AND coalesce(campaign_id, request_id) IS NOT NULL
                           AND batch_number IS NOT NULL) changes
                 GROUP BY ref, batch_number) per_batch
         WHERE unsent <> 0 OR held <> 0 OR idle_new > coalesce(idle_old, '-infinity')));
    RETURN NULL;
END
$$;

CREATE TRIGGER sms_delivery_logs_batches_inserted AFTER INSERT ON sms_delivery_logs
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION sms_send_batches_inserted_or_deleted();
CREATE TRIGGER sms_delivery_logs_batches_updated AFTER UPDATE ON sms_delivery_logs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sms_send_batches_updated();
CREATE TRIGGER sms_delivery_logs_batches_deleted AFTER DELETE ON sms_delivery_logs
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION sms_send_batches_inserted_or_deleted();

-- The batches with unsent rows now (the triggers above hold the table's writers off until this commits).
INSERT INTO send_batches (reference_id, batch_number, kind, user_id, unsent, held, idle_since, expires_at)
SELECT coalesce(campaign_id, request_id), batch_number,
       CASE WHEN bool_or(campaign_id IS NOT NULL) THEN 'campaign' ELSE 'request' END, (array_agg(user_id))[1],
       count(*), count(*) FILTER (WHERE held), max(idle_since), min(expires_at)
  FROM sms_delivery_logs
 WHERE phase IN ('scheduled', 'in_flight') AND coalesce(campaign_id, request_id) IS NOT NULL
   AND batch_number IS NOT NULL
 GROUP BY 1, 2;

-- The provider's ids of accepted messages: what receipts and replies look messages up by. Partitioned by
-- the message's month like the logs, so a month archived and dropped takes its ids with it.
CREATE TABLE provider_message_ids (
    provider    varchar(32) NOT NULL,
    external_id varchar(100) NOT NULL,
    message_id  uuid NOT NULL,
    created_at  timestamptz NOT NULL,     -- the message's, to find its row by primary key
    PRIMARY KEY (provider, external_id, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE provider_message_ids_default PARTITION OF provider_message_ids DEFAULT;
-- The months the logs have.
SELECT create_month_partition('provider_message_ids',
                              to_date(right(inhrelid::regclass::text, 7), 'YYYY_MM'))
  FROM pg_inherits
 WHERE inhparent = 'sms_delivery_logs'::regclass AND inhrelid::regclass::text ~ '_\d{4}_\d{2}$';
INSERT INTO provider_message_ids (provider, external_id, message_id, created_at)
SELECT provider, external_message_id, id, created_at FROM sms_delivery_logs
 WHERE external_message_id IS NOT NULL AND provider IS NOT NULL
ON CONFLICT DO NOTHING;

CREATE OR REPLACE FUNCTION create_delivery_log_partitions(months_ahead integer DEFAULT 3)
RETURNS SETOF text LANGUAGE sql AS $$
    SELECT create_month_partitions('sms_delivery_logs', months_ahead)
    UNION ALL
    SELECT create_month_partitions('provider_message_ids', months_ahead);
$$;

-- Off the ordinary path only; the indexes that named `phase` are made again without the unsent ones.
ALTER TABLE sms_delivery_logs DROP COLUMN phase;  -- and every index that names it
ALTER TABLE sms_delivery_logs ADD COLUMN phase text GENERATED ALWAYS AS (
    CASE WHEN status IN ('queued', 'sending', 'sent', 'delivered') THEN NULL ELSE status END) STORED;
DROP INDEX idx_delivery_logs_external_id;
-- What the scheduler wakes: held rows (a row is held only while unsent; a claimed row never is).
CREATE INDEX idx_delivery_logs_waiting ON sms_delivery_logs (not_before)
    WHERE held AND (phase IS NULL OR phase = 'scheduled');
-- A campaign's scheduled and failed rows (listing them).
CREATE INDEX idx_delivery_logs_campaign_phase ON sms_delivery_logs (campaign_id, phase, batch_number, id)
    WHERE phase IS NOT NULL;
