-- The Twilio-compatible Messages API: a message's own StatusCallback, callbacks in Twilio's form
-- encoding, and the single-send backlog that answers "queue overflow".

-- Set only by the Twilio-compatible API (its StatusCallback parameter); NULL for everything else.
ALTER TABLE sms_delivery_logs ADD COLUMN status_callback_url varchar(2048);

-- How a callback is POSTed: 'json' (X-Signature) or 'twilio' (form fields, X-Twilio-Signature).
ALTER TABLE status_callbacks
    ADD COLUMN format varchar(10) NOT NULL DEFAULT 'json' CHECK (format IN ('json', 'twilio'));

-- Single sends not yet handed to a provider, per account: a bounded count refuses a send that would
-- overflow the account's queue. Campaign rows never match the predicate, so the pipeline's writes of
-- them cost this index nothing.
CREATE INDEX idx_delivery_logs_request_backlog ON sms_delivery_logs (user_id)
    WHERE request_id IS NOT NULL AND status IN ('scheduled', 'queued', 'sending');

-- As in 0016, plus a second row, in Twilio's form, for a message that names its own StatusCallback.
CREATE OR REPLACE FUNCTION sms_status_callbacks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO status_callbacks (user_id, url, payload, format)
    SELECT n.user_id,
           coalesce(c.settings ->> 'status_callback_url', u.status_callback_url),
           jsonb_build_object(
               'event', 'message.status',
               'message_id', n.id, 'campaign_id', n.campaign_id, 'request_id', n.request_id,
               'to', n.phone_number, 'status', n.status, 'previous_status', o.status,
               'segments', n.segments, 'provider', n.provider, 'error_code', n.error_code,
               'error_message', n.error_message, 'timestamp', n.updated_at),
           'json'
      FROM new_rows n
      JOIN old_rows o ON o.id = n.id AND o.created_at = n.created_at
      JOIN users u ON u.id = n.user_id
      LEFT JOIN sms_campaigns c ON c.id = n.campaign_id
     WHERE n.status IS DISTINCT FROM o.status
       AND n.status IN ('sent', 'delivered', 'undelivered', 'failed', 'cancelled')
       AND coalesce(c.settings ->> 'status_callback_url', u.status_callback_url) IS NOT NULL
    UNION ALL
    SELECT n.user_id, n.status_callback_url,
           jsonb_build_object(
               'message_id', n.id, 'to', n.phone_number, 'from', n.sender_id, 'status', n.status,
               'error_code', n.error_code),
           'twilio'
      FROM new_rows n
      JOIN old_rows o ON o.id = n.id AND o.created_at = n.created_at
     WHERE n.status IS DISTINCT FROM o.status
       AND n.status IN ('sent', 'delivered', 'undelivered', 'failed', 'cancelled')
       AND n.status_callback_url IS NOT NULL;
    RETURN NULL;
END
$$;
