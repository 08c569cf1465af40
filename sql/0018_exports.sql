-- Exports: an account's messages as a gzip CSV in S3, built by ExportFunction from a queue message.
CREATE TABLE exports (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind          varchar(20) NOT NULL CHECK (kind IN ('messages')),
    filters       jsonb NOT NULL DEFAULT '{}',
    status        varchar(20) NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    rows          bigint NOT NULL DEFAULT 0,
    bytes         bigint,
    object_key    varchar(512),
    error_message text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    -- The object is deleted by the bucket's lifecycle then; the URL is offered until then.
    expires_at    timestamptz
);
CREATE INDEX idx_exports_user ON exports (user_id, created_at DESC, id DESC);
-- What the scheduler's sweep fails when its worker is gone (the queue's dead-letter queue has the message).
CREATE INDEX idx_exports_unfinished ON exports (created_at) WHERE status IN ('queued', 'running');
