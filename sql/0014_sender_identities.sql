-- The identities an account may send as, managed by operators: alphanumeric sender ids (several accounts
-- may use "ACME"-like names, as carriers register them per account), numbers in E.164 and short codes,
-- each of which belongs to one account only. At most one is the account's default.
CREATE TABLE sender_identities (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sender_id  varchar(16) NOT NULL,
    kind       varchar(12) NOT NULL CHECK (kind IN ('alphanumeric', 'number', 'short_code')),
    is_default boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, sender_id)
);
CREATE UNIQUE INDEX sender_identities_one_owner ON sender_identities (sender_id) WHERE kind IN ('number', 'short_code');
CREATE UNIQUE INDEX sender_identities_one_default ON sender_identities (user_id) WHERE is_default;
