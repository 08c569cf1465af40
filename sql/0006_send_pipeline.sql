-- The send pipeline: campaign lifecycle bookkeeping, delivery-log rows that carry
-- their rendered text, and SQL functions that price a text the way
-- smsplatform.encoding does, so a million recipients are priced in one statement.

ALTER TABLE sms_campaigns
    ADD COLUMN queued_at      timestamptz,
    ADD COLUMN started_at     timestamptz,  -- recipients materialised and credits reserved
    ADD COLUMN cancelled_at   timestamptz,
    ADD COLUMN failure_reason text,
    -- Throughput cap: the earliest time the next batch may start sending.
    ADD COLUMN send_slot      timestamptz,
    ADD CONSTRAINT sms_campaigns_failure_reason CHECK (status <> 'failed' OR failure_reason IS NOT NULL);
CREATE INDEX idx_campaigns_stuck ON sms_campaigns (queued_at) WHERE status = 'queued';

-- A row belongs to a campaign or to one POST /v1/messages request (request_id),
-- which is also the ledger reference of the credits reserved for it.
ALTER TABLE sms_delivery_logs
    ADD COLUMN request_id uuid,
    ADD COLUMN body       text,
    ADD COLUMN sender_id  varchar(50),
    ADD COLUMN claimed_at timestamptz,
    ADD CONSTRAINT sms_delivery_logs_one_origin CHECK ((campaign_id IS NULL) <> (request_id IS NULL));

-- Delivery logs are history, written a million rows at a time: they keep the
-- user and contact they were sent for without foreign keys. Accounts are closed,
-- never deleted; a deleted contact leaves its messages' recipient_id as it was
-- (the key's ON DELETE SET NULL scanned every partition, unindexed, per contact).
-- The campaign key stays.
ALTER TABLE sms_delivery_logs DROP CONSTRAINT sms_delivery_logs_user_id_fkey;
ALTER TABLE sms_delivery_logs DROP CONSTRAINT sms_delivery_logs_recipient_id_fkey;

-- Senders claim by (campaign, batch); listings page by (batch_number, id), with or
-- without a status; stats count by status from the index alone.
DROP INDEX idx_delivery_logs_campaign_id;
DROP INDEX idx_delivery_logs_campaign_status;
DROP INDEX idx_delivery_logs_status;
-- Nothing lists an account's messages across campaigns yet; each status change paid for it.
DROP INDEX idx_delivery_logs_user;
CREATE INDEX idx_delivery_logs_campaign_batch ON sms_delivery_logs (campaign_id, batch_number, id);
CREATE INDEX idx_delivery_logs_campaign_status ON sms_delivery_logs (campaign_id, status, batch_number, id);
CREATE INDEX idx_delivery_logs_request ON sms_delivery_logs (request_id, batch_number) WHERE request_id IS NOT NULL;

-- Messages sent through the API need their own read permission.
UPDATE user_roles SET permissions = permissions || '["messages:read"]'
 WHERE user_id IS NULL AND NOT permissions ? 'messages:read';

-- Encoding and segments, as smsplatform.encoding computes them (tests compare the two).
-- GSM 03.38 basic + extension table; anything else makes the text UCS-2.
CREATE FUNCTION sms_is_gsm7(t text) RETURNS boolean
IMMUTABLE PARALLEL SAFE LANGUAGE sql AS $$
    SELECT t ~ '^[\u000a\u000c\u000d\u0020-\u005f\u0061-\u007e\u00a1\u00a3\u00a4\u00a5\u00a7\u00bf\u00c4\u00c5\u00c6\u00c7\u00c9\u00d1\u00d6\u00d8\u00dc\u00df\u00e0\u00e4\u00e5\u00e6\u00e8\u00e9\u00ec\u00f1\u00f2\u00f6\u00f8\u00f9\u00fc\u0393\u0394\u0398\u039b\u039e\u03a0\u03a3\u03a6\u03a8\u03a9\u20ac]*$'
$$;

CREATE FUNCTION sms_encoding(t text) RETURNS text
IMMUTABLE PARALLEL SAFE LANGUAGE sql AS $$
    SELECT CASE WHEN sms_is_gsm7(t) THEN 'GSM-7' ELSE 'UCS-2' END
$$;

-- Septets (GSM-7: extension characters take two) or UTF-16 units (UCS-2: characters
-- outside the BMP take two).
CREATE FUNCTION sms_units(t text, encoding text) RETURNS integer
IMMUTABLE PARALLEL SAFE LANGUAGE sql AS $$
    SELECT CASE WHEN encoding = 'GSM-7'
                THEN 2 * length(t) - length(translate(t, E'\f[\\]^{|}~\u20ac', ''))
                ELSE 2 * length(t) - length(regexp_replace(t, '[\U00010000-\U0010FFFF]', '', 'g')) END
$$;

-- The slow path: a multipart text with two-unit characters, packed so that no
-- escape or surrogate pair is split across parts.
CREATE FUNCTION sms_packed_parts(t text, encoding text) RETURNS integer
IMMUTABLE STRICT PARALLEL SAFE LANGUAGE plpgsql AS $$
DECLARE
    room  integer := CASE encoding WHEN 'GSM-7' THEN 153 ELSE 67 END;
    parts integer := 1;
    used  integer := 0;
    cost  integer;
    ch    text;
BEGIN
    FOREACH ch IN ARRAY regexp_split_to_array(t, '') LOOP
        cost := CASE WHEN encoding = 'GSM-7' THEN CASE WHEN strpos(E'\f[\\]^{|}~\u20ac', ch) > 0 THEN 2 ELSE 1 END
                     ELSE CASE WHEN ascii(ch) > 65535 THEN 2 ELSE 1 END END;
        IF used + cost > room THEN
            parts := parts + 1;
            used := 0;
        END IF;
        used := used + cost;
    END LOOP;
    RETURN parts;
END $$;

-- Written as one CASE over plain expressions so the planner inlines it: the common
-- single-part and all-one-unit texts never reach the plpgsql loop.
CREATE FUNCTION sms_segments(t text, encoding text) RETURNS integer
IMMUTABLE PARALLEL SAFE LANGUAGE sql AS $$
    SELECT CASE
        WHEN t = '' THEN 0
        WHEN sms_units(t, encoding) <= CASE encoding WHEN 'GSM-7' THEN 160 ELSE 70 END THEN 1
        WHEN sms_units(t, encoding) = length(t)
            THEN (length(t) + CASE encoding WHEN 'GSM-7' THEN 152 ELSE 66 END)
                 / CASE encoding WHEN 'GSM-7' THEN 153 ELSE 67 END
        ELSE sms_packed_parts(t, encoding) END
$$;

-- What the simulator provider accepted: its outbox, keyed by our message id so a
-- resend of the same message (after a crash) is recognised and not sent twice.
CREATE TABLE simulator_messages (
    message_id  uuid PRIMARY KEY,
    external_id varchar(100) NOT NULL UNIQUE,
    to_number   varchar(20) NOT NULL,
    sender_id   varchar(50),
    body        text NOT NULL,
    outcome     varchar(20) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
