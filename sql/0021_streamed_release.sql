-- A campaign larger than one release chunk is released in chunks (ADR 0013): it becomes `sending` at
-- once and each worker commits its share of the audience a chunk at a time, rows and reservation
-- together, so the first batches are sent while the rest is still being materialised.

-- True while the audience is still being materialised: the campaign cannot complete until it is false.
ALTER TABLE sms_campaigns ADD COLUMN releasing boolean NOT NULL DEFAULT false;

-- Each share's progress, committed with each chunk, so a dispatcher that dies resumes where it stopped
-- and no recipient is materialised twice. The rows go when the release finishes.
CREATE TABLE campaign_release_shares (
    campaign_id   uuid NOT NULL REFERENCES sms_campaigns (id) ON DELETE CASCADE,
    share         integer NOT NULL,            -- contacts whose id's last byte mod `shares` is this
    shares        integer NOT NULL,
    after_contact uuid,                        -- the share's contacts up to this id are materialised
    next_batch    integer NOT NULL,            -- the share's next batch number (share, share + shares, ...)
    chunk_rows    integer NOT NULL,            -- its next chunk's size: one batch first, growing
    recipients    integer NOT NULL DEFAULT 0,
    credits       bigint NOT NULL DEFAULT 0,
    skipped       integer NOT NULL DEFAULT 0,
    done          boolean NOT NULL DEFAULT false,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, share)
);
