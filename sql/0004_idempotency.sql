-- Idempotency-Key for mutating POSTs: the first response is kept for a day and
-- replayed to retries of the same request with the same key.
CREATE TABLE idempotency_keys (
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    idempotency_key     varchar(255) NOT NULL,
    request_fingerprint char(64) NOT NULL,
    status              varchar(12) NOT NULL CHECK (status IN ('in_progress', 'completed')),
    response_status     integer,
    response_headers    jsonb,
    response_body       text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, idempotency_key)
);
CREATE INDEX idx_idempotency_keys_created ON idempotency_keys (created_at);
