"""Route by route: another account's resources are 404, a missing permission is 403."""

import uuid
from typing import Any

import pytest

from smsplatform.accounts import permissions
from tests.support.harness import Api, create_token


def test_another_accounts_token_cannot_be_revoked_or_seen(
    api: Api, user: dict[str, Any], other_user: dict[str, Any]
) -> None:
    alices = create_token(api, user["token"], "billing:read")

    revoke = api.request("DELETE", f"/v1/tokens/{alices['id']}", token=other_user["token"])
    bobs_list = api.request("GET", "/v1/tokens", token=other_user["token"]).json()["data"]

    assert revoke.status == 404
    assert bobs_list == []
    assert api.request("GET", "/v1/billing/transactions", token=alices["token"]).status == 200


def test_an_unknown_token_id_is_the_same_404(api: Api, user: dict[str, Any]) -> None:
    assert api.request("DELETE", f"/v1/tokens/{uuid.uuid4()}", token=user["token"]).status == 404
    assert api.request("DELETE", "/v1/tokens/not-a-uuid", token=user["token"]).status == 422


def test_another_accounts_ledger_and_audit_trail_stay_hidden(
    api: Api, admin: dict[str, Any], user: dict[str, Any], other_user: dict[str, Any]
) -> None:
    api.request("POST", f"/v1/users/{user['id']}/credits", token=admin["token"], json_body={"credits": 50})

    bobs_ledger = api.request("GET", "/v1/billing/transactions", token=other_user["token"]).json()["data"]
    alices_trail_for_bob = api.request("GET", f"/v1/audit-logs?user_id={user['id']}", token=other_user["token"])
    bobs_trail = api.request("GET", "/v1/audit-logs", token=other_user["token"]).json()["data"]

    assert bobs_ledger == []
    assert alices_trail_for_bob.status == 404
    assert {entry["user_id"] for entry in bobs_trail} == {other_user["id"]}


# Each protected route with the permission it needs and a request that would otherwise succeed.
ROUTES = [
    ("POST", "/v1/tokens", permissions.TOKENS_WRITE, {"name": "n", "permissions": ["billing:read"]}),
    ("GET", "/v1/tokens", permissions.TOKENS_WRITE, None),
    ("DELETE", "/v1/tokens/{token_id}", permissions.TOKENS_WRITE, None),
    ("GET", "/v1/billing/transactions", permissions.BILLING_READ, None),
    ("GET", "/v1/users", permissions.USERS_ADMIN, None),
    ("PATCH", "/v1/users/{user_id}", permissions.USERS_ADMIN, {"account_status": "active"}),
    ("POST", "/v1/users/{user_id}/credits", permissions.BILLING_ADMIN, {"credits": 1}),
    ("POST", "/v1/contacts", permissions.CONTACTS_WRITE, {"phone_number": "+447911123999"}),
    ("GET", "/v1/contacts", permissions.CONTACTS_READ, None),
    ("GET", "/v1/contacts/{contact_id}", permissions.CONTACTS_READ, None),
    ("PATCH", "/v1/contacts/{contact_id}", permissions.CONTACTS_WRITE, {"first_name": "Ann"}),
    ("DELETE", "/v1/contacts/{contact_id}", permissions.CONTACTS_WRITE, None),
    ("POST", "/v1/contacts/imports", permissions.CONTACTS_WRITE, {"upload": True}),
    ("GET", "/v1/contacts/imports/{import_id}", permissions.CONTACTS_READ, None),
    ("POST", "/v1/groups", permissions.CONTACTS_WRITE, {"name": "another"}),
    ("GET", "/v1/groups", permissions.CONTACTS_READ, None),
    ("GET", "/v1/groups/{group_id}", permissions.CONTACTS_READ, None),
    ("PATCH", "/v1/groups/{group_id}", permissions.CONTACTS_WRITE, {"description": "d"}),
    ("DELETE", "/v1/groups/{group_id}", permissions.CONTACTS_WRITE, None),
    ("POST", "/v1/groups/{group_id}/members", permissions.CONTACTS_WRITE, {"contact_ids": ["{contact_id}"]}),
    ("DELETE", "/v1/groups/{group_id}/members/{contact_id}", permissions.CONTACTS_WRITE, None),
    ("GET", "/v1/opt-outs", permissions.CONTACTS_READ, None),
    ("POST", "/v1/opt-outs", permissions.CONTACTS_WRITE, {"phone_number": "+447911123998"}),
    ("DELETE", "/v1/opt-outs/{phone_number}", permissions.CONTACTS_WRITE, None),
    (
        "POST",
        "/v1/campaigns",
        permissions.CAMPAIGNS_WRITE,
        {"name": "n", "message_template": "t", "group_ids": ["{group_id}"]},
    ),
    ("GET", "/v1/campaigns", permissions.CAMPAIGNS_READ, None),
    ("GET", "/v1/campaigns/{campaign_id}", permissions.CAMPAIGNS_READ, None),
    ("PATCH", "/v1/campaigns/{campaign_id}", permissions.CAMPAIGNS_WRITE, {"name": "renamed"}),
    ("DELETE", "/v1/campaigns/{campaign_id}", permissions.CAMPAIGNS_WRITE, None),
    ("POST", "/v1/campaigns/{campaign_id}/preview", permissions.CAMPAIGNS_READ, {}),
    ("POST", "/v1/campaigns/{campaign_id}/send", permissions.CAMPAIGNS_SEND, None),
    (
        "POST",
        "/v1/campaigns/{campaign_id}/schedule",
        permissions.CAMPAIGNS_SEND,
        {"scheduled_time": "2099-01-01T00:00:00Z"},
    ),
    ("POST", "/v1/campaigns/{campaign_id}/cancel", permissions.CAMPAIGNS_SEND, None),
    ("GET", "/v1/campaigns/{campaign_id}/stats", permissions.CAMPAIGNS_READ, None),
    ("GET", "/v1/campaigns/{campaign_id}/messages", permissions.CAMPAIGNS_READ, None),
    ("POST", "/v1/messages", permissions.MESSAGES_SEND, {"to": "+447911123456", "text": "hi"}),
    ("GET", "/v1/messages/{message_id}", permissions.MESSAGES_READ, None),
    ("GET", "/v1/messages", permissions.MESSAGES_READ, None),
    ("GET", "/v1/inbound-messages", permissions.MESSAGES_READ, None),
    ("GET", "/v1/contacts/{contact_id}/conversation", permissions.MESSAGES_READ, None),
    ("GET", "/v1/keywords", permissions.MESSAGES_READ, None),
    # Keywords decide who is opted out and what the account pays for replies: an account setting.
    ("PUT", "/v1/keywords", permissions.ACCOUNT_WRITE, {"help": ["HELP", "INFO", "SOS"]}),
    ("GET", "/v1/inbound-callback", permissions.WEBHOOKS_WRITE, None),
    ("PUT", "/v1/inbound-callback", permissions.WEBHOOKS_WRITE, {"url": "https://hooks.example.com/inbound"}),
    ("PUT", "/v1/users/{user_id}/providers", permissions.USERS_ADMIN, {"route": ["simulator"]}),
    ("GET", "/v1/status-callback", permissions.WEBHOOKS_WRITE, None),
    ("PUT", "/v1/status-callback", permissions.WEBHOOKS_WRITE, {"url": "https://hooks.example.com/sms"}),
    ("POST", "/v1/status-callback/secret", permissions.WEBHOOKS_WRITE, None),
    # The account's own settings: its phone number sets the default region numbers are read in.
    ("PATCH", "/v1/users/me", permissions.ACCOUNT_WRITE, {"phone_number": "+12025550123"}),
    ("GET", "/v1/audit-logs", permissions.AUDIT_READ, None),
    ("POST", "/v1/users/{user_id}/campaigns/{campaign_id}/cancel", permissions.USERS_ADMIN, None),
    ("POST", "/v1/users/{user_id}/sender-ids", permissions.USERS_ADMIN, {"sender_id": "NEWS", "kind": "alphanumeric"}),
    ("DELETE", "/v1/users/{user_id}/sender-ids/{sender_id}", permissions.USERS_ADMIN, None),
    ("PUT", "/v1/users/me", permissions.ACCOUNT_WRITE, {"low_balance_threshold": 5}),
    ("POST", "/v1/messages/{message_id}/cancel", permissions.MESSAGES_SEND, None),
    ("POST", "/v1/exports", permissions.MESSAGES_READ, {"kind": "messages"}),
    ("GET", "/v1/exports/{export_id}", permissions.MESSAGES_READ, None),
    ("GET", "/v1/pricing", permissions.BILLING_READ, None),
    # Prices are what every account pays: operators' billing.
    ("PUT", "/v1/pricing/{country}", permissions.BILLING_ADMIN, {"credits_per_segment": 2}),
    ("DELETE", "/v1/pricing/{country}", permissions.BILLING_ADMIN, None),
    ("GET", "/v1/users/{user_id}/pricing", permissions.BILLING_ADMIN, None),
    ("PUT", "/v1/users/{user_id}/pricing/{country}", permissions.BILLING_ADMIN, {"blocked": True}),
    ("DELETE", "/v1/users/{user_id}/pricing/{country}", permissions.BILLING_ADMIN, None),
]


def _owned_resources(api: Api, session: str) -> dict[str, str]:
    """One of each resource the contacts routes address, owned by the session's account."""
    contact = api.request("POST", "/v1/contacts", token=session, json_body={"phone_number": "+447911123456"}).json()
    group = api.request("POST", "/v1/groups", token=session, json_body={"name": "vip"}).json()
    api.request("POST", f"/v1/groups/{group['id']}/members", token=session, json_body={"contact_ids": [contact["id"]]})
    api.request("POST", "/v1/opt-outs", token=session, json_body={"phone_number": "+447911123457"})
    started = api.request("POST", "/v1/contacts/imports", token=session, json_body={"upload": True}).json()
    campaign = api.request(
        "POST",
        "/v1/campaigns",
        token=session,
        json_body={"name": "c", "message_template": "t", "group_ids": [group["id"]]},
    ).json()
    sent = api.request("POST", "/v1/messages", token=session, json_body={"to": "+447911123456", "text": "hi"}).json()
    exported = api.request("POST", "/v1/exports", token=session, json_body={"kind": "messages"}).json()
    me = api.request("GET", "/v1/users/me", token=session).json()
    api.request(
        "POST",
        f"/v1/users/{me['id']}/sender-ids",
        token=session,
        json_body={"sender_id": "OWNED", "kind": "alphanumeric"},
    )
    return {
        "contact_id": contact["id"],
        "group_id": group["id"],
        "import_id": started["import_id"],
        "phone_number": "%2B447911123457",
        "campaign_id": campaign["id"],
        "message_id": sent["data"][0]["id"],
        "export_id": exported["export_id"],
        "sender_id": "OWNED",
        "country": "GB",
    }


@pytest.mark.parametrize(("method", "path", "needed", "body"), ROUTES)
def test_a_token_without_the_routes_permission_is_refused(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    method: str,
    path: str,
    needed: str,
    body: dict[str, Any] | None,
) -> None:
    # audit:admin reads every trail, the caller's included: a token lacking audit:read lacks it too.
    implied_by = {permissions.AUDIT_READ: {permissions.AUDIT_ADMIN}}
    everything_else = sorted(permissions.ALL - {needed} - implied_by.get(needed, set()))
    lacking = create_token(api, admin["token"], *everything_else)["token"]
    holding = create_token(api, admin["token"], needed, permissions.BILLING_READ)
    api.request("POST", f"/v1/users/{admin['id']}/credits", token=admin["token"], json_body={"credits": 10})
    owned = _owned_resources(api, admin["token"])
    # {user_id} is another account, except where the route names the owner of the resources it addresses.
    names_owned_resource = path.startswith("/v1/users/{user_id}/") and path.count("_id}") > 1
    owner = admin["id"] if names_owned_resource else user["id"]
    target = path.format(token_id=holding["id"], user_id=owner, **owned)
    if body and "contact_ids" in body:
        body = {"contact_ids": [owned["contact_id"]]}
    if body and "group_ids" in body:
        body = {**body, "group_ids": [owned["group_id"]]}
    if method == "DELETE" and "/pricing/" in path:  # a price to remove
        assert api.request("PUT", target, token=admin["token"], json_body={"credits_per_segment": 2}).status == 200

    refused = api.request(method, target, token=lacking, json_body=body)
    allowed = api.request(method, target, token=holding["token"], json_body=body)

    assert refused.status == 403, refused.body
    assert needed in refused.json()["detail"]
    assert allowed.status < 300, allowed.body


def test_every_protected_route_is_in_the_table_above(api: Api) -> None:
    from local.template import load_stack
    from tests.support.paths import ROOT

    spec = load_stack(ROOT / "template.yaml")
    # Routes any authenticated principal may call: reading its own profile, previewing a text.
    open_to_any_principal = {
        "GET /v1/users/me",
        "POST /v1/messages/preview",
        "GET /v1/sender-ids",
    }
    # The Twilio-compatible routes answer in Twilio's shape; test_twilio_api.py checks their permissions.
    twilio = {route.route_key for route in spec.routes if route.path.startswith("/2010-04-01/")}
    protected = {route.route_key for route in spec.routes if route.authorized} - open_to_any_principal - twilio

    assert protected == {f"{method} {path}" for method, path, _, _ in ROUTES}


def test_a_campaign_callback_url_needs_webhooks_write_as_well(api: Api, user: dict[str, Any]) -> None:
    group = api.request("POST", "/v1/groups", token=user["token"], json_body={"name": "g"}).json()
    body = {
        "name": "c",
        "message_template": "t",
        "group_ids": [group["id"]],
        "settings": {"status_callback_url": "https://hooks.example.com/sms"},
    }
    writer = create_token(api, user["token"], permissions.CAMPAIGNS_WRITE)["token"]
    both = create_token(api, user["token"], permissions.CAMPAIGNS_WRITE, permissions.WEBHOOKS_WRITE)["token"]

    refused = api.request("POST", "/v1/campaigns", token=writer, json_body=body)
    created = api.request("POST", "/v1/campaigns", token=both, json_body=body)
    plain = api.request("POST", "/v1/campaigns", token=writer, json_body={**body, "settings": {}})
    redirected = api.request(
        "PATCH", f"/v1/campaigns/{plain.json()['id']}", token=writer, json_body={"settings": body["settings"]}
    )

    assert (refused.status, created.status, plain.status, redirected.status) == (403, 201, 201, 403)
    assert "webhooks:write" in refused.json()["detail"]
