-- Two-way messaging: each account's keywords and the replies they get, inbound callbacks, and the
-- indexes that keep message history, inbound lists and conversations flat as history grows.

-- An account's keyword lists and replies as it last PUT them (every key present); no row means the
-- platform defaults (sending/keywords.py), which may improve over time.
CREATE TABLE account_keywords (
    user_id    uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    settings   jsonb NOT NULL CHECK (jsonb_typeof(settings) = 'object'),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Where the account's inbound messages are POSTed (through the status_callbacks outbox).
ALTER TABLE users ADD COLUMN inbound_callback_url varchar(2048);

-- Help is a keyword too. The reply an inbound message got (at most one: it is written in the
-- transaction that stores the message, which a repeated webhook never repeats), or why it got none.
ALTER TABLE inbound_messages DROP CONSTRAINT inbound_messages_keyword_check;
ALTER TABLE inbound_messages
    ADD CONSTRAINT inbound_messages_keyword_check CHECK (keyword IN ('opt_out', 'opt_in', 'help')),
    ADD COLUMN reply_message_id uuid,
    ADD COLUMN reply_skipped varchar(30);
-- Listed by the time the recipient sent them; a conversation reads one number's.
DROP INDEX idx_inbound_messages_user;
CREATE INDEX idx_inbound_messages_received ON inbound_messages (user_id, received_at DESC, id DESC);
CREATE INDEX idx_inbound_messages_from ON inbound_messages (user_id, from_number, received_at DESC, id DESC);

-- Which keyword a message answers: an opt-out confirmation is the one message sent to a number
-- that has just opted out. No CHECK: adding one would scan every partition; the code writes it.
ALTER TABLE sms_delivery_logs ADD COLUMN inbound_reply varchar(10);

-- One number's messages of one account, newest first (a conversation, GET /v1/messages?to=); the
-- number first still serves inbound attribution, which knows the number but not the account.
DROP INDEX idx_delivery_logs_phone;
CREATE INDEX idx_delivery_logs_phone ON sms_delivery_logs (phone_number, user_id, created_at DESC, id DESC);
-- An account's messages newest first (GET /v1/messages): 0006 dropped it while nothing listed them.
-- With a campaign_id the list reads idx_delivery_logs_campaign_batch instead, so no third index is
-- needed for that.
CREATE INDEX idx_delivery_logs_user ON sms_delivery_logs (user_id, created_at DESC, id DESC);

-- Status callbacks say what they are, as inbound ones do ('message.inbound'): one URL may take both.
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
       AND n.status IN ('sent', 'delivered', 'undelivered', 'failed')
       AND coalesce(c.settings ->> 'status_callback_url', u.status_callback_url) IS NOT NULL;
    RETURN NULL;
END
$$;
