-- Real providers, inbound messages and customer status callbacks.

-- Per-account routing: the providers to try, in order (NULL: the configured default),
-- and where the account's message status changes are POSTed. The callback secret is
-- derived from a platform key and this version, so no secret is stored here; rotating
-- bumps the version.
ALTER TABLE users
    ADD COLUMN provider_route          text[] CHECK (cardinality(provider_route) BETWEEN 1 AND 5),
    ADD COLUMN status_callback_url     varchar(2048),
    ADD COLUMN callback_secret_version integer NOT NULL DEFAULT 0,
    ADD COLUMN callback_secret_rotated_at timestamptz;

-- Each provider's throughput cap is shared by every sender through its timeline,
-- as a campaign's is through sms_campaigns.send_slot.
CREATE TABLE provider_slots (
    provider   varchar(32) PRIMARY KEY,
    send_slot  timestamptz NOT NULL
);

-- Messages recipients send back. Stored whether or not they name an account;
-- (provider, external_id) makes a repeated webhook a no-op.
CREATE TABLE inbound_messages (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid REFERENCES users (id) ON DELETE CASCADE,
    provider     varchar(32) NOT NULL,
    external_id  varchar(100) NOT NULL,
    from_number  varchar(20) NOT NULL,
    to_number    varchar(50),
    body         text NOT NULL,
    keyword      varchar(20) CHECK (keyword IN ('opt_out', 'opt_in')),
    received_at  timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, external_id)
);
CREATE INDEX idx_inbound_messages_user ON inbound_messages (user_id, created_at DESC, id DESC);

-- The outbox of customer status callbacks: one row per message status change,
-- written by the statement that changes it, delivered by the callbacks function.
CREATE TABLE status_callbacks (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url             varchar(2048) NOT NULL,
    payload         jsonb NOT NULL,
    status          varchar(20) NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);
CREATE INDEX idx_status_callbacks_due ON status_callbacks (user_id, next_attempt_at) WHERE status = 'pending';

-- A campaign's own callback URL wins over its account's. Statement-level with
-- transition tables, so a 1,000-row batch update writes its callbacks in one INSERT.
CREATE FUNCTION sms_status_callbacks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO status_callbacks (user_id, url, payload)
    SELECT n.user_id,
           coalesce(c.settings ->> 'status_callback_url', u.status_callback_url),
           jsonb_build_object(
               'message_id', n.id, 'campaign_id', n.campaign_id, 'request_id', n.request_id,
               'to', n.phone_number, 'status', n.status, 'previous_status', o.status,
               'segments', n.segments, 'provider', n.provider, 'error_code', n.error_code,
               'error_message', n.error_message, 'timestamp', n.updated_at)
      FROM new_rows n
      JOIN old_rows o ON o.id = n.id AND o.created_at = n.created_at
      JOIN users u ON u.id = n.user_id
      LEFT JOIN sms_campaigns c ON c.id = n.campaign_id
     WHERE n.status IS DISTINCT FROM o.status
       AND n.status IN ('sent', 'delivered', 'undelivered', 'failed')
       AND coalesce(c.settings ->> 'status_callback_url', u.status_callback_url) IS NOT NULL;
    RETURN NULL;
END
$$;

CREATE TRIGGER sms_delivery_logs_status_callbacks
    AFTER UPDATE ON sms_delivery_logs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sms_status_callbacks();

-- Owners manage their status callback with its own permission.
UPDATE user_roles SET permissions = permissions || '["webhooks:write"]'
 WHERE user_id IS NULL AND NOT permissions ? 'webhooks:write';
