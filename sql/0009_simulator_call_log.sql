-- The simulator keeps two records, as a real provider and its handsets would:
--   simulator_calls    every call the platform made (append-only), whatever came of it;
--   simulator_messages every copy a handset received: a message sent twice shows twice.
-- The outbox was keyed by our message id and ignored repeats, so a test could not see a
-- second copy; its key is now its own, and only the provider's id is unique (an idempotent
-- simulator answers a repeat with the same id, and the repeat reaches no handset).
CREATE TABLE simulator_calls (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id      uuid NOT NULL,
    to_number       varchar(20) NOT NULL,
    body            text NOT NULL,
    attempt         integer NOT NULL,
    outcome         varchar(20) NOT NULL,   -- accepted, repeat, rejected, throttled, ambiguous, timeout
    reached_handset boolean NOT NULL,
    external_id     varchar(100),
    called_at       timestamptz NOT NULL
);
CREATE INDEX simulator_calls_message_idx ON simulator_calls (message_id);

ALTER TABLE simulator_messages DROP CONSTRAINT simulator_messages_pkey;
ALTER TABLE simulator_messages ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY;
CREATE INDEX simulator_messages_message_idx ON simulator_messages (message_id);
