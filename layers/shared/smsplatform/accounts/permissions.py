"""The permission vocabulary and each role's share of it, as stored in user_roles."""

from typing import Literal

Role = Literal["client", "admin"]

# Every permission a route may require. A session has all of its role's; an
# API token only those it was created with, and never more than its owner's role.
CONTACTS_READ = "contacts:read"
CONTACTS_WRITE = "contacts:write"
CAMPAIGNS_READ = "campaigns:read"
CAMPAIGNS_WRITE = "campaigns:write"
CAMPAIGNS_SEND = "campaigns:send"
MESSAGES_SEND = "messages:send"
MESSAGES_READ = "messages:read"
WEBHOOKS_WRITE = "webhooks:write"
BILLING_READ = "billing:read"
TOKENS_WRITE = "tokens:write"
ACCOUNT_WRITE = "account:write"  # the account's profile: company, phone number (its default region), password
AUDIT_READ = "audit:read"  # the account's own audit trail
USERS_ADMIN = "users:admin"
BILLING_ADMIN = "billing:admin"
AUDIT_ADMIN = "audit:admin"

ALL = frozenset(
    {
        CONTACTS_READ,
        CONTACTS_WRITE,
        CAMPAIGNS_READ,
        CAMPAIGNS_WRITE,
        CAMPAIGNS_SEND,
        MESSAGES_SEND,
        MESSAGES_READ,
        WEBHOOKS_WRITE,
        BILLING_READ,
        TOKENS_WRITE,
        ACCOUNT_WRITE,
        AUDIT_READ,
        USERS_ADMIN,
        BILLING_ADMIN,
        AUDIT_ADMIN,
    }
)

# The permissions of the user row aliased `u`, as a JSON array: its role's
# definition plus any grants of its own.
USER_PERMISSIONS_SQL = """
    coalesce((SELECT jsonb_agg(DISTINCT p)
                FROM user_roles r, jsonb_array_elements_text(r.permissions) p
               WHERE (r.user_id IS NULL AND r.role_name = u.role) OR r.user_id = u.id),
             '[]')"""
