"""Every mutation leaves an audit row; the trail is readable, scoped and append-only."""

from typing import Any

import psycopg
import pytest

from tests.support.harness import Api, create_token


def test_every_mutation_of_the_accounts_api_is_audited(
    api: Api, admin: dict[str, Any], user: dict[str, Any], conn: psycopg.Connection[Any]
) -> None:
    token = create_token(api, user["token"], "billing:read")
    api.request("DELETE", f"/v1/tokens/{token['id']}", token=user["token"])
    api.request("PATCH", "/v1/users/me", token=user["token"], json_body={"company_name": "Acme"})
    api.request("POST", f"/v1/users/{user['id']}/credits", token=admin["token"], json_body={"credits": 10})
    api.request("PATCH", f"/v1/users/{user['id']}", token=admin["token"], json_body={"account_status": "suspended"})
    api.request("POST", "/v1/auth/login", json_body={"login": "alice", "password": "not the password"})

    actions = {row["action"] for row in conn.execute("SELECT action FROM audit_logs")}

    assert actions >= {
        "user.signup",
        "user.login",
        "user.login_failed",
        "token.create",
        "token.revoke",
        "user.update",
        "admin.credits",
        "admin.user_update",
    }
    # Every row the API wrote says where the request came from; a NULL must fail this, not be skipped.
    through_the_api = conn.execute(
        "SELECT ip_address, user_agent FROM audit_logs WHERE user_agent IS DISTINCT FROM 'operator command'"
    ).fetchall()
    assert len(through_the_api) >= 8
    for row in through_the_api:
        assert (row["ip_address"], row["user_agent"]) == ("203.0.113.7", "pytest")


def test_owners_read_their_own_trail_and_operators_anyones(
    api: Api, admin: dict[str, Any], user: dict[str, Any], other_user: dict[str, Any]
) -> None:
    mine = api.request("GET", "/v1/audit-logs", token=user["token"]).json()["data"]
    theirs_for_me = api.request("GET", f"/v1/audit-logs?user_id={other_user['id']}", token=user["token"])
    operator_view = api.request("GET", f"/v1/audit-logs?user_id={other_user['id']}", token=admin["token"]).json()
    everything = api.request("GET", "/v1/audit-logs?limit=200", token=admin["token"]).json()["data"]

    assert {entry["user_id"] for entry in mine} == {user["id"]}
    assert [entry["action"] for entry in mine] == ["user.login", "user.signup"]  # newest first
    assert theirs_for_me.status == 404
    assert {entry["user_id"] for entry in operator_view["data"]} == {other_user["id"]}
    assert {user["id"], other_user["id"], admin["id"]} <= {entry["user_id"] for entry in everything}


def test_audit_rows_cannot_be_changed_or_deleted(user: dict[str, Any], conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("UPDATE audit_logs SET action = 'nothing happened'")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM audit_logs")
