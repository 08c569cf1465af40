-- Prices per destination, sending windows in the recipient's time zone, validity periods, scheduled
-- single messages and the low-balance alert.

-- Credits per segment by destination country. A row without user_id is the platform's price list;
-- one with a user_id overrides it for that account (either may block the country). A country in
-- neither takes the platform default (settings.default_credits_per_segment), if there is one.
CREATE TABLE destination_prices (
    user_id             uuid REFERENCES users (id) ON DELETE CASCADE,
    country             char(2) NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    credits_per_segment integer CHECK (credits_per_segment > 0),
    blocked             boolean NOT NULL DEFAULT false,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT destination_prices_priced_or_blocked CHECK (blocked OR credits_per_segment IS NOT NULL),
    CONSTRAINT destination_prices_one_per_country UNIQUE NULLS NOT DISTINCT (user_id, country)
);

-- Recipients a campaign left out because their destination is blocked or has no price.
ALTER TABLE sms_campaigns ADD COLUMN skipped_blocked integer NOT NULL DEFAULT 0;

-- A contact's own time zone (IANA), and the zones its number may be in (libphonenumber's, '|'-joined,
-- written with the number; NULL for contacts written before this column, filled before a dispatch).
ALTER TABLE contacts
    ADD COLUMN timezone          varchar(64),
    ADD COLUMN number_time_zones text;
CREATE INDEX idx_contacts_zones_unknown ON contacts (user_id) WHERE number_time_zones IS NULL;

-- Crossing it downwards emits one balance.low callback and an audit row.
ALTER TABLE users ADD COLUMN low_balance_threshold integer CHECK (low_balance_threshold >= 0);

-- not_before: when a waiting message may go (its window opens, or the time a scheduled message was
-- asked for). held: it waits for that time and no batch descriptor is out for it; the scheduler wakes
-- it. send_until: its window closes then (a batch that comes later holds it again). window_zone: the
-- zone (or '|'-joined zones) its window is read in. expires_at: unsent by then, it fails as expired.
ALTER TABLE sms_delivery_logs
    ADD COLUMN not_before  timestamptz,
    ADD COLUMN held        boolean NOT NULL DEFAULT false,
    ADD COLUMN send_until  timestamptz,
    ADD COLUMN window_zone text,
    ADD COLUMN expires_at  timestamptz;

ALTER TABLE sms_delivery_logs DROP CONSTRAINT sms_delivery_logs_status_check;
ALTER TABLE sms_delivery_logs ADD CONSTRAINT sms_delivery_logs_status_check CHECK (status IN (
    'scheduled', 'queued', 'sending', 'sent', 'delivered', 'undelivered', 'failed', 'cancelled'));

-- The stall sweep looks only at work that should be moving: a held message is waiting on purpose, and a
-- million of them (a campaign before its recipients' morning) must not be walked every minute.
DROP INDEX idx_delivery_logs_in_flight;
CREATE INDEX idx_delivery_logs_in_flight ON sms_delivery_logs (updated_at)
    WHERE status IN ('queued', 'sending') AND NOT held;
-- What the scheduler wakes, and what expires.
CREATE INDEX idx_delivery_logs_waiting ON sms_delivery_logs (not_before)
    WHERE held AND status IN ('scheduled', 'queued');
CREATE INDEX idx_delivery_logs_expiring ON sms_delivery_logs (expires_at)
    WHERE expires_at IS NOT NULL AND status IN ('scheduled', 'queued');

-- A cancelled message is announced like a failed one.
CREATE OR REPLACE FUNCTION sms_status_callbacks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO status_callbacks (user_id, url, payload)
    SELECT n.user_id,
           coalesce(c.settings ->> 'status_callback_url', u.status_callback_url),
           jsonb_build_object(
               'event', 'message.status',
               'message_id', n.id, 'campaign_id', n.campaign_id, 'request_id', n.request_id,
               'to', n.phone_number, 'status', n.status, 'previous_status', o.status,
               'segments', n.segments, 'provider', n.provider, 'error_code', n.error_code,
               'error_message', n.error_message, 'timestamp', n.updated_at)
      FROM new_rows n
      JOIN old_rows o ON o.id = n.id AND o.created_at = n.created_at
      JOIN users u ON u.id = n.user_id
      LEFT JOIN sms_campaigns c ON c.id = n.campaign_id
     WHERE n.status IS DISTINCT FROM o.status
       AND n.status IN ('sent', 'delivered', 'undelivered', 'failed', 'cancelled')
       AND coalesce(c.settings ->> 'status_callback_url', u.status_callback_url) IS NOT NULL;
    RETURN NULL;
END
$$;
