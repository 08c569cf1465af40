-- The platform's schema, from original-schema.md with the deliberate changes
-- listed in ARCHITECTURE.md ("Data model"). Forward-only: never edit an applied
-- migration, add the next number instead.

-- Accounts ------------------------------------------------------------------

CREATE TABLE users (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    username        varchar(50)  NOT NULL,
    email           varchar(120) NOT NULL,
    password_hash   varchar(255) NOT NULL,
    role            varchar(20)  NOT NULL DEFAULT 'client' CHECK (role IN ('client', 'admin')),
    sms_credits     integer      NOT NULL DEFAULT 0 CHECK (sms_credits >= 0),
    account_status  varchar(20)  NOT NULL DEFAULT 'active'
                    CHECK (account_status IN ('active', 'suspended', 'closed')),
    created_at      timestamptz  NOT NULL DEFAULT now(),
    updated_at      timestamptz  NOT NULL DEFAULT now(),
    last_login      timestamptz,
    company_name    varchar(100),
    phone_number    varchar(20) CHECK (phone_number ~ '^\+[1-9][0-9]{1,14}$')
);
-- Usernames and e-mail addresses are unique regardless of case: "Alice" and
-- "alice" are one account to a person reading them.
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX idx_users_role ON users (role);

-- Role definitions (user_id IS NULL) and per-user grants (user_id set). A
-- principal's permissions are its role's definition plus its own grants.
CREATE TABLE user_roles (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid REFERENCES users (id) ON DELETE CASCADE,
    role_name   varchar(50) NOT NULL,
    permissions jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(permissions) = 'array'),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_user_roles_user_id ON user_roles (user_id);
CREATE UNIQUE INDEX user_roles_definition_key ON user_roles (role_name) WHERE user_id IS NULL;
CREATE UNIQUE INDEX user_roles_grant_key ON user_roles (user_id, role_name) WHERE user_id IS NOT NULL;

INSERT INTO user_roles (role_name, permissions) VALUES
    ('client', '["contacts:read", "contacts:write", "campaigns:read", "campaigns:write", "campaigns:send",
                 "messages:send", "billing:read", "tokens:write"]'),
    ('admin',  '["contacts:read", "contacts:write", "campaigns:read", "campaigns:write", "campaigns:send",
                 "messages:send", "billing:read", "tokens:write", "users:admin", "billing:admin", "audit:admin"]');

-- The token itself is never stored: only its SHA-256 and a display prefix.
CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   char(64) NOT NULL UNIQUE,
    token_prefix varchar(20) NOT NULL,
    name         varchar(100) NOT NULL,
    permissions  jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(permissions) = 'array'),
    last_used    timestamptz,
    expires_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    status       varchar(20) NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked'))
);
CREATE INDEX idx_api_tokens_user_id ON api_tokens (user_id, created_at DESC, id);

-- The ledger: every change of users.sms_credits writes one row here in the
-- same transaction, so the running balance always reconciles.
CREATE TABLE billing_transactions (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id            uuid NOT NULL REFERENCES users (id),
    transaction_type   varchar(50) NOT NULL CHECK (transaction_type IN (
                           'credit_purchase', 'adjustment', 'campaign_reserve', 'campaign_refund',
                           'message_reserve', 'message_refund')),
    amount             numeric(10, 2) NOT NULL,
    credits            integer NOT NULL,
    credits_before     integer NOT NULL CHECK (credits_before >= 0),
    credits_after      integer NOT NULL CHECK (credits_after >= 0),
    description        text,
    payment_method     varchar(50),
    transaction_status varchar(20) NOT NULL DEFAULT 'completed'
                       CHECK (transaction_status IN ('pending', 'completed', 'failed', 'reversed')),
    reference_id       uuid,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (credits_after = credits_before + credits)
);
CREATE INDEX idx_billing_user_id ON billing_transactions (user_id, created_at DESC, id DESC);
CREATE INDEX idx_billing_type ON billing_transactions (transaction_type);
CREATE INDEX idx_billing_reference ON billing_transactions (reference_id) WHERE reference_id IS NOT NULL;

CREATE TABLE audit_logs (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid REFERENCES users (id) ON DELETE SET NULL,
    action     varchar(100) NOT NULL,
    details    jsonb NOT NULL DEFAULT '{}',
    ip_address varchar(45),
    user_agent text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_audit_logs_user_id ON audit_logs (user_id, created_at DESC, id DESC);
CREATE INDEX idx_audit_logs_action ON audit_logs (action);

-- Contacts ------------------------------------------------------------------

CREATE TABLE contact_groups (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name           varchar(100) NOT NULL,
    description    text,
    total_contacts integer NOT NULL DEFAULT 0 CHECK (total_contacts >= 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, name)
);
CREATE INDEX idx_contact_groups_user_id ON contact_groups (user_id, id);

-- Group membership lives in contact_group_members (many-to-many), so the
-- original single contacts.group_id column is not carried over.
CREATE TABLE contacts (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    phone_number  varchar(20) NOT NULL CHECK (phone_number ~ '^\+[1-9][0-9]{1,14}$'),
    country_code  varchar(5),
    first_name    varchar(50),
    last_name     varchar(50),
    email         varchar(120),
    custom_fields jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(custom_fields) = 'object'),
    status        varchar(20) NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'unsubscribed', 'invalid')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, phone_number)
);
CREATE INDEX idx_contacts_user_id ON contacts (user_id, id);
CREATE INDEX idx_contacts_phone ON contacts (phone_number);

CREATE TABLE contact_group_members (
    group_id   uuid NOT NULL REFERENCES contact_groups (id) ON DELETE CASCADE,
    contact_id uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    added_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, contact_id)
);
CREATE INDEX idx_contact_group_members_contact ON contact_group_members (contact_id);

-- total_contacts stays exact whatever changes membership (single adds, bulk
-- imports, contact deletion cascading here): statement-level triggers apply
-- one UPDATE per affected group, set-wise, inside the same transaction.
CREATE FUNCTION contact_group_members_count_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE contact_groups g SET total_contacts = g.total_contacts + d.n
      FROM (SELECT group_id, count(*) AS n FROM new_rows GROUP BY group_id) d
     WHERE g.id = d.group_id;
    RETURN NULL;
END $$;

CREATE FUNCTION contact_group_members_count_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE contact_groups g SET total_contacts = g.total_contacts - d.n
      FROM (SELECT group_id, count(*) AS n FROM old_rows GROUP BY group_id) d
     WHERE g.id = d.group_id;
    RETURN NULL;
END $$;

CREATE TRIGGER contact_group_members_added AFTER INSERT ON contact_group_members
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION contact_group_members_count_added();
CREATE TRIGGER contact_group_members_removed AFTER DELETE ON contact_group_members
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION contact_group_members_count_removed();

-- The per-account suppression list: a number here is never sent to.
CREATE TABLE opt_outs (
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    phone_number varchar(20) NOT NULL CHECK (phone_number ~ '^\+[1-9][0-9]{1,14}$'),
    source       varchar(20) NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'inbound', 'import', 'admin')),
    reason       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, phone_number)
);

-- Campaigns and delivery ----------------------------------------------------

CREATE TABLE sms_campaigns (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name             varchar(100) NOT NULL,
    message_template text NOT NULL,
    sender_id        varchar(50),
    total_recipients integer NOT NULL DEFAULT 0,
    status           varchar(20) NOT NULL DEFAULT 'draft' CHECK (status IN (
                         'draft', 'scheduled', 'queued', 'sending', 'completed', 'cancelled', 'failed')),
    scheduled_time   timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    settings         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
    CHECK (status <> 'scheduled' OR scheduled_time IS NOT NULL)
);
CREATE INDEX idx_campaigns_user_id ON sms_campaigns (user_id, created_at DESC, id DESC);
CREATE INDEX idx_campaigns_status ON sms_campaigns (status);
CREATE INDEX idx_campaigns_due ON sms_campaigns (scheduled_time) WHERE status = 'scheduled';

CREATE TABLE campaign_target_groups (
    campaign_id uuid NOT NULL REFERENCES sms_campaigns (id) ON DELETE CASCADE,
    group_id    uuid NOT NULL REFERENCES contact_groups (id) ON DELETE CASCADE,
    PRIMARY KEY (campaign_id, group_id)
);
CREATE INDEX idx_campaign_target_groups_group ON campaign_target_groups (group_id);

-- One row per recipient and message, range-partitioned by creation month so
-- old months can be detached and archived whole. sent_at is when the provider
-- accepted the message, so it has no default.
CREATE TABLE sms_delivery_logs (
    id                  uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    campaign_id         uuid REFERENCES sms_campaigns (id) ON DELETE CASCADE,
    recipient_id        uuid REFERENCES contacts (id) ON DELETE SET NULL,
    phone_number        varchar(20) NOT NULL,
    status              varchar(20) NOT NULL DEFAULT 'queued' CHECK (status IN (
                            'queued', 'sending', 'sent', 'delivered', 'undelivered', 'failed')),
    batch_number        integer,
    attempts            integer NOT NULL DEFAULT 0,
    segments            integer,
    encoding            varchar(8) CHECK (encoding IN ('GSM-7', 'UCS-2')),
    provider            varchar(32),
    external_message_id varchar(100),
    sent_at             timestamptz,
    delivered_at        timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    error_code          varchar(50),
    error_message       text,
    cost                numeric(10, 4),
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX idx_delivery_logs_campaign_id ON sms_delivery_logs (campaign_id, batch_number);
CREATE INDEX idx_delivery_logs_campaign_status ON sms_delivery_logs (campaign_id, status);
CREATE INDEX idx_delivery_logs_status ON sms_delivery_logs (status);
CREATE INDEX idx_delivery_logs_phone ON sms_delivery_logs (phone_number);
CREATE INDEX idx_delivery_logs_user ON sms_delivery_logs (user_id, created_at DESC, id DESC);
CREATE INDEX idx_delivery_logs_external_id ON sms_delivery_logs (external_message_id)
    WHERE external_message_id IS NOT NULL;

CREATE TABLE sms_delivery_logs_default PARTITION OF sms_delivery_logs DEFAULT;

-- Creates the monthly partitions from the current month to `months_ahead`
-- months ahead; idempotent, run by this migration and by the daily maintenance
-- schedule. Returns the names of the partitions it created.
CREATE FUNCTION create_delivery_log_partitions(months_ahead integer DEFAULT 3)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    month_start date;
    part_name   text;
BEGIN
    FOR i IN 0..months_ahead LOOP
        month_start := (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => i))::date;
        part_name := format('sms_delivery_logs_%s', to_char(month_start, 'YYYY_MM'));
        IF to_regclass(part_name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF sms_delivery_logs FOR VALUES FROM (%L) TO (%L)',
                part_name,
                (month_start::timestamp AT TIME ZONE 'UTC'),
                ((month_start + interval '1 month')::timestamp AT TIME ZONE 'UTC'));
            RETURN NEXT part_name;
        END IF;
    END LOOP;
END $$;

SELECT create_delivery_log_partitions(3);
