-- An Idempotency-Key belongs to the credential that used it (an API token, or one login session), so
-- a retry is answered only to the credential that made the first request; another credential of the
-- account that happens to reuse the key gets its own request.
ALTER TABLE idempotency_keys ADD COLUMN credential varchar(80) NOT NULL DEFAULT '';
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (user_id, credential, idempotency_key);
-- Responses that carried a secret (a new API token, a callback signing secret) are no longer kept.
DELETE FROM idempotency_keys WHERE response_body LIKE '%sk_live_%' OR response_body LIKE '%whsec_%';

-- A password change ends every login session issued before it.
ALTER TABLE users ADD COLUMN password_changed_at timestamptz;
