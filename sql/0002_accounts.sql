-- Accounts: ledger settlement rows, login throttling, an append-only audit trail.

-- A reservation ends as spent or refunded. A spend row moves no credits
-- (credits = 0; the reserve already took them) but records how many of the
-- reservation were used, so reserved = spent + refunded can be checked per reference.
ALTER TABLE billing_transactions ADD COLUMN settled_credits integer NOT NULL DEFAULT 0 CHECK (settled_credits >= 0);
ALTER TABLE billing_transactions DROP CONSTRAINT billing_transactions_transaction_type_check;
ALTER TABLE billing_transactions ADD CONSTRAINT billing_transactions_transaction_type_check CHECK (transaction_type IN (
    'credit_purchase', 'adjustment',
    'campaign_reserve', 'campaign_spend', 'campaign_refund',
    'message_reserve', 'message_spend', 'message_refund'));

-- Failed logins, per submitted login and per client address, for throttling.
-- The login is stored lower-cased whether or not such an account exists, so
-- throttling behaves the same for unknown usernames.
CREATE TABLE login_failures (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    login_key  varchar(120) NOT NULL,
    ip_address varchar(45),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_login_failures_login ON login_failures (login_key, created_at);
CREATE INDEX idx_login_failures_ip ON login_failures (ip_address, created_at);

-- The audit trail is append-only: no UPDATE or DELETE through any role the
-- application uses (retention detaches whole time ranges, not rows).
CREATE FUNCTION audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_logs rows cannot be changed or deleted' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION audit_logs_append_only();
-- Accounts are closed, never deleted, so audit rows keep their user.
ALTER TABLE audit_logs DROP CONSTRAINT audit_logs_user_id_fkey;
ALTER TABLE audit_logs ADD CONSTRAINT audit_logs_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id);
CREATE INDEX idx_audit_logs_created ON audit_logs (created_at DESC, id DESC);

CREATE INDEX idx_users_listing ON users (created_at DESC, id DESC);
