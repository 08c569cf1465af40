"""API tokens: shown once, hashed at rest, scoped, expiring, revocable, accepted by the authorizer."""

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from smsplatform.accounts import tokens
from tests.support.harness import Api, create_token


def test_a_token_is_shown_once_and_only_its_hash_is_stored(
    api: Api, user: dict[str, Any], conn: psycopg.Connection[Any]
) -> None:
    created = create_token(api, user["token"], "contacts:read", "billing:read")

    secret = created["token"]
    assert secret.startswith("sk_live_")
    assert len(secret) > 40
    assert created["prefix"] == secret[:14]
    assert created["permissions"] == ["billing:read", "contacts:read"]
    stored = conn.execute("SELECT token_hash, token_prefix FROM api_tokens").fetchone()
    assert stored["token_hash"] == tokens.hash_token(secret)
    listed = api.request("GET", "/v1/tokens", token=user["token"]).json()["data"]
    assert [t["id"] for t in listed] == [created["id"]]
    assert "token" not in listed[0]
    assert secret not in api.request("GET", "/v1/tokens", token=user["token"]).body.decode()


def test_the_authorizer_accepts_a_token_with_its_permissions_only(api: Api, user: dict[str, Any]) -> None:
    reader = create_token(api, user["token"], "billing:read")["token"]

    assert api.request("GET", "/v1/billing/transactions", token=reader).status == 200
    assert api.request("GET", "/v1/users/me", token=reader).json()["id"] == user["id"]
    denied = api.request("GET", "/v1/tokens", token=reader)
    assert denied.status == 403
    assert "tokens:write" in denied.json()["detail"]


def test_a_token_cannot_hold_more_than_its_owners_role(
    api: Api, user: dict[str, Any], conn: psycopg.Connection[Any]
) -> None:
    response = api.request(
        "POST", "/v1/tokens", token=user["token"], json_body={"name": "x", "permissions": ["users:admin"]}
    )

    assert response.status == 403
    assert conn.execute("SELECT count(*) AS n FROM api_tokens").fetchone()["n"] == 0


def test_a_token_cannot_mint_a_broader_token(api: Api, user: dict[str, Any]) -> None:
    minter = create_token(api, user["token"], "tokens:write")["token"]

    broader = api.request(
        "POST", "/v1/tokens", token=minter, json_body={"name": "x", "permissions": ["tokens:write", "contacts:write"]}
    )
    narrower = api.request("POST", "/v1/tokens", token=minter, json_body={"name": "x", "permissions": ["tokens:write"]})

    assert broader.status == 403
    assert narrower.status == 201


def test_unknown_permissions_and_past_expiries_are_invalid(api: Api, user: dict[str, Any]) -> None:
    unknown = api.request(
        "POST", "/v1/tokens", token=user["token"], json_body={"name": "x", "permissions": ["contacts:delete"]}
    )
    past = api.request(
        "POST",
        "/v1/tokens",
        token=user["token"],
        json_body={"name": "x", "permissions": ["contacts:read"], "expires_at": "2020-01-01T00:00:00Z"},
    )
    naive = api.request(
        "POST",
        "/v1/tokens",
        token=user["token"],
        json_body={"name": "x", "permissions": ["contacts:read"], "expires_at": "2099-01-01T00:00:00"},
    )

    assert unknown.status == past.status == naive.status == 422
    assert unknown.json()["errors"][0]["field"] == "permissions"
    assert past.json()["errors"][0]["field"] == "expires_at"


def test_a_revoked_token_is_refused_on_its_next_request(api: Api, user: dict[str, Any]) -> None:
    created = create_token(api, user["token"], "billing:read")
    assert api.request("GET", "/v1/billing/transactions", token=created["token"]).status == 200

    revoked = api.request("DELETE", f"/v1/tokens/{created['id']}", token=user["token"])

    assert revoked.status == 204
    refused = api.request("GET", "/v1/billing/transactions", token=created["token"])
    assert refused.status == 401
    assert "revoked" in refused.json()["detail"]
    assert api.request("GET", "/v1/tokens", token=user["token"]).json()["data"][0]["status"] == "revoked"
    assert api.request("DELETE", f"/v1/tokens/{created['id']}", token=user["token"]).status == 204


def test_an_expired_token_is_refused(api: Api, user: dict[str, Any], conn: psycopg.Connection[Any]) -> None:
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    created = create_token(api, user["token"], "billing:read", expires_at=soon)
    conn.execute("UPDATE api_tokens SET expires_at = now() - interval '1 second'")

    refused = api.request("GET", "/v1/billing/transactions", token=created["token"])

    assert refused.status == 401
    assert "expired" in refused.json()["detail"]
    assert api.request("GET", "/v1/tokens", token=user["token"]).json()["data"][0]["status"] == "expired"


def test_an_unknown_token_is_refused(api: Api) -> None:
    response = api.request("GET", "/v1/users/me", token="sk_live_" + "x" * 43)

    assert response.status == 401


def test_last_used_is_kept_without_a_write_per_request(
    api: Api, user: dict[str, Any], conn: psycopg.Connection[Any]
) -> None:
    secret = create_token(api, user["token"], "billing:read")["token"]
    assert conn.execute("SELECT last_used FROM api_tokens").fetchone()["last_used"] is None

    api.request("GET", "/v1/billing/transactions", token=secret)
    first = conn.execute("SELECT last_used, xmin::text AS version FROM api_tokens").fetchone()
    for _ in range(3):
        api.request("GET", "/v1/billing/transactions", token=secret)
    later = conn.execute("SELECT last_used, xmin::text AS version FROM api_tokens").fetchone()

    assert first["last_used"] is not None
    assert later == first  # no new row version within the resolution window


def test_a_demoted_permission_is_lost_by_existing_tokens(
    api: Api, user: dict[str, Any], conn: psycopg.Connection[Any]
) -> None:
    secret = create_token(api, user["token"], "billing:read", "contacts:read")["token"]
    conn.execute("""UPDATE user_roles SET permissions = permissions - 'billing:read'
                     WHERE role_name = 'client' AND user_id IS NULL""")
    try:
        assert api.request("GET", "/v1/billing/transactions", token=secret).status == 403
    finally:
        conn.execute("""UPDATE user_roles SET permissions = permissions || '["billing:read"]'
                         WHERE role_name = 'client' AND user_id IS NULL""")


def test_tokens_list_pages_with_a_cursor(api: Api, user: dict[str, Any]) -> None:
    made = [create_token(api, user["token"], "billing:read")["id"] for _ in range(5)]

    first = api.request("GET", "/v1/tokens?limit=2", token=user["token"]).json()
    second = api.request("GET", f"/v1/tokens?limit=2&cursor={first['next_cursor']}", token=user["token"]).json()
    third = api.request("GET", f"/v1/tokens?limit=2&cursor={second['next_cursor']}", token=user["token"]).json()

    seen = [t["id"] for page in (first, second, third) for t in page["data"]]
    assert sorted(seen) == sorted(made)
    assert third["next_cursor"] is None
    assert api.request("GET", "/v1/tokens?cursor=bogus", token=user["token"]).status == 422
    assert api.request("GET", "/v1/tokens?limit=0", token=user["token"]).status == 422


def test_a_token_cannot_change_the_password(api: Api, user: dict[str, Any]) -> None:
    secret = create_token(api, user["token"], "billing:read")["token"]

    response = api.request(
        "PATCH",
        "/v1/users/me",
        token=secret,
        json_body={"current_password": "correct horse battery", "new_password": "taken over account"},
    )

    assert response.status == 403
    assert api.login("alice")
