-- An account's in-flight rows, by account: what closing an account fails and what resuming one
-- announces again, without reading its history.
CREATE INDEX idx_delivery_logs_user_in_flight ON sms_delivery_logs (user_id) WHERE status IN ('queued', 'sending');
