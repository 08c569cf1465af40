-- Retention: whole months of delivery logs and audit logs are archived to S3 and then dropped
-- (ArchiveFunction); inbound messages past their retention are deleted by the daily maintenance.

-- A month of delivery logs is written once and updated two or three times per row within days: vacuum and
-- analyse it after 2% and 1% of its rows change (not the default 20% and 10%), and leave room in each page
-- for the updated versions of its rows. (Storage parameters go on partitions; a partitioned table has none.)
CREATE FUNCTION delivery_log_storage() RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT 'fillfactor = 85, autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.01'
$$;

DO $$
DECLARE part regclass;
BEGIN
    FOR part IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'sms_delivery_logs'::regclass LOOP
        EXECUTE format('ALTER TABLE %s SET (%s)', part, delivery_log_storage());
    END LOOP;
END $$;
ALTER TABLE status_callbacks SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.01);

-- The partition of `parent` (partitioned by created_at) for the month of `month_start`, if missing;
-- returns its name when it created it.
CREATE FUNCTION create_month_partition(parent text, month_start date) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    first_day date := date_trunc('month', month_start)::date;
    part_name text := format('%s_%s', parent, to_char(month_start, 'YYYY_MM'));
BEGIN
    IF to_regclass(part_name) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE format(
        'CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
        part_name, parent,
        (first_day::timestamp AT TIME ZONE 'UTC'),
        ((first_day + interval '1 month')::timestamp AT TIME ZONE 'UTC'));
    IF parent = 'sms_delivery_logs' THEN
        EXECUTE format('ALTER TABLE %I SET (%s)', part_name, delivery_log_storage());
    END IF;
    RETURN part_name;
END $$;

-- Monthly partitions of `parent` from the month of `from_month` (default: this month) to `months_ahead`
-- months ahead; idempotent. Returns the names it created.
CREATE FUNCTION create_month_partitions(parent text, months_ahead integer, from_month date DEFAULT NULL)
RETURNS SETOF text LANGUAGE sql AS $$
    SELECT name FROM (
        SELECT create_month_partition(parent, month::date) AS name
          FROM generate_series(
                   date_trunc('month', coalesce(from_month, (now() AT TIME ZONE 'UTC')::date)),
                   date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => months_ahead),
                   interval '1 month') AS month
         ORDER BY month) created
     WHERE name IS NOT NULL;
$$;

CREATE OR REPLACE FUNCTION create_delivery_log_partitions(months_ahead integer DEFAULT 3)
RETURNS SETOF text LANGUAGE sql AS $$
    SELECT create_month_partitions('sms_delivery_logs', months_ahead);
$$;

-- The audit trail becomes partitioned by month, every row kept and the append-only rule with it.
ALTER TABLE audit_logs RENAME TO audit_logs_unpartitioned;
ALTER INDEX idx_audit_logs_user_id RENAME TO idx_audit_logs_unpartitioned_user_id;
ALTER INDEX idx_audit_logs_action RENAME TO idx_audit_logs_unpartitioned_action;
ALTER INDEX idx_audit_logs_created RENAME TO idx_audit_logs_unpartitioned_created;
CREATE TABLE audit_logs (
    id         uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id    uuid REFERENCES users (id),
    action     varchar(100) NOT NULL,
    details    jsonb NOT NULL DEFAULT '{}',
    ip_address varchar(45),
    user_agent text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE audit_logs_default PARTITION OF audit_logs DEFAULT;
SELECT create_month_partitions(
    'audit_logs', 3, (SELECT min(created_at AT TIME ZONE 'UTC')::date FROM audit_logs_unpartitioned));
INSERT INTO audit_logs (id, user_id, action, details, ip_address, user_agent, created_at)
SELECT id, user_id, action, details, ip_address, user_agent, created_at FROM audit_logs_unpartitioned;
DROP TABLE audit_logs_unpartitioned;
CREATE INDEX idx_audit_logs_user_id ON audit_logs (user_id, created_at DESC, id DESC);
CREATE INDEX idx_audit_logs_action ON audit_logs (action);
CREATE INDEX idx_audit_logs_created ON audit_logs (created_at DESC, id DESC);
CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION audit_logs_append_only();

-- What ArchiveFunction has done with each month: exported, verified against the database, detached and
-- dropped. A month is dropped only once verified_at is set.
CREATE TABLE archived_months (
    table_name  varchar(63) NOT NULL,
    month       date NOT NULL,
    rows        bigint,
    checksum    char(32),
    object_key  varchar(512),
    bytes       bigint,
    exported_at timestamptz,
    verified_at timestamptz,
    dropped_at  timestamptz,
    PRIMARY KEY (table_name, month)
);

-- Inbound messages past retention are deleted by age, in bounded chunks.
CREATE INDEX idx_inbound_messages_age ON inbound_messages (received_at);

-- The daily purge of settled status callbacks read the whole outbox (one row per status change):
-- along this index it reads only what it deletes.
CREATE INDEX idx_status_callbacks_settled ON status_callbacks (created_at) WHERE status <> 'pending';
