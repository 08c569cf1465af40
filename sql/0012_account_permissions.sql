-- Changing the account's profile (its phone number sets the region numbers are read in) and reading its
-- audit trail were open to any credential of the account; they are permissions now. Sessions have them
-- through their role; an API token only if it was created with them.
UPDATE user_roles SET permissions = permissions || '["account:write", "audit:read"]'
 WHERE user_id IS NULL AND role_name IN ('client', 'admin');
