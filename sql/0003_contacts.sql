-- Contacts at scale: listing, search and import bookkeeping.

-- Newest-first keyset listing per account; replaces the (user_id, id) index.
DROP INDEX idx_contacts_user_id;
CREATE INDEX idx_contacts_user_listing ON contacts (user_id, created_at DESC, id DESC);
-- Prefix search by number and by name, whatever the database's collation.
CREATE INDEX idx_contacts_phone_prefix ON contacts (user_id, phone_number varchar_pattern_ops);
CREATE INDEX idx_contacts_first_name_prefix ON contacts (user_id, lower(first_name) varchar_pattern_ops);
CREATE INDEX idx_contacts_last_name_prefix ON contacts (user_id, lower(last_name) varchar_pattern_ops);

CREATE INDEX idx_contact_groups_listing ON contact_groups (user_id, created_at DESC, id DESC);

-- Opt-outs get an id of their own for cursors and API references.
ALTER TABLE opt_outs ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE;
CREATE INDEX idx_opt_outs_listing ON opt_outs (user_id, created_at DESC, id DESC);

CREATE TABLE contact_imports (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status          varchar(20) NOT NULL DEFAULT 'pending' CHECK (status IN (
                        'awaiting_upload', 'pending', 'processing', 'completed', 'failed')),
    source          varchar(10) NOT NULL CHECK (source IN ('body', 'upload')),
    object_key      text NOT NULL UNIQUE,
    group_id        uuid REFERENCES contact_groups (id) ON DELETE SET NULL,
    default_region  varchar(2),
    total_rows      integer NOT NULL DEFAULT 0,
    processed_rows  integer NOT NULL DEFAULT 0,
    imported        integer NOT NULL DEFAULT 0,
    updated         integer NOT NULL DEFAULT 0,
    unchanged       integer NOT NULL DEFAULT 0,
    duplicates      integer NOT NULL DEFAULT 0,
    invalid         integer NOT NULL DEFAULT 0,
    error_message   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz
);
CREATE INDEX idx_contact_imports_user ON contact_imports (user_id, created_at DESC, id DESC);

-- The rows an import skipped and why, by line number in the file.
CREATE TABLE contact_import_errors (
    import_id   uuid NOT NULL REFERENCES contact_imports (id) ON DELETE CASCADE,
    line_number integer NOT NULL,
    reason      text NOT NULL,
    PRIMARY KEY (import_id, line_number)
);
