"""Operators: list accounts, suspend and reactivate, change roles; the operator command."""

import json
import os
import subprocess
import sys
from typing import Any

import psycopg
import pytest
from botocore.stub import ANY

from tests.support.harness import Api
from tests.support.paths import ROOT


def test_operators_list_accounts_page_by_page(api: Api, admin: dict[str, Any]) -> None:
    for n in range(5):
        api.signup(f"client{n}")

    first = api.request("GET", "/v1/users?limit=3&role=client", token=admin["token"]).json()
    second = api.request(
        "GET", f"/v1/users?limit=3&role=client&cursor={first['next_cursor']}", token=admin["token"]
    ).json()

    names = [u["username"] for u in first["data"] + second["data"]]
    assert sorted(names) == [f"client{n}" for n in range(5)]
    assert second["next_cursor"] is None
    assert all("password" not in str(u) for u in first["data"])


def test_clients_cannot_list_or_change_accounts(api: Api, user: dict[str, Any], other_user: dict[str, Any]) -> None:
    assert api.request("GET", "/v1/users", token=user["token"]).status == 403
    response = api.request(
        "PATCH", f"/v1/users/{other_user['id']}", token=user["token"], json_body={"account_status": "suspended"}
    )
    assert response.status == 403


def test_suspension_refuses_sessions_and_tokens_at_once_and_reactivation_restores_them(
    api: Api, admin: dict[str, Any], user: dict[str, Any], conn: psycopg.Connection[Any]
) -> None:
    secret = api.request(
        "POST", "/v1/tokens", token=user["token"], json_body={"name": "ci", "permissions": ["billing:read"]}
    ).json()["token"]

    suspended = api.request(
        "PATCH", f"/v1/users/{user['id']}", token=admin["token"], json_body={"account_status": "suspended"}
    )

    assert suspended.status == 200
    assert suspended.json()["account_status"] == "suspended"
    for credential in (user["token"], secret):
        refused = api.request("GET", "/v1/users/me", token=credential)
        assert refused.status == 403
        assert refused.json()["type"].endswith("/account-suspended")
    api.request("PATCH", f"/v1/users/{user['id']}", token=admin["token"], json_body={"account_status": "active"})
    assert api.request("GET", "/v1/billing/transactions", token=secret).status == 200
    audit = conn.execute("SELECT details FROM audit_logs WHERE action = 'admin.user_update'").fetchall()
    assert audit[0]["details"]["changes"] == {"account_status": {"from": "active", "to": "suspended"}}


def test_a_promoted_client_gains_operator_routes(api: Api, admin: dict[str, Any], user: dict[str, Any]) -> None:
    assert api.request("GET", "/v1/users", token=user["token"]).status == 403

    api.request("PATCH", f"/v1/users/{user['id']}", token=admin["token"], json_body={"role": "admin"})

    assert api.request("GET", "/v1/users", token=user["token"]).status == 200


def test_operators_cannot_change_themselves(api: Api, admin: dict[str, Any]) -> None:
    response = api.request("PATCH", f"/v1/users/{admin['id']}", token=admin["token"], json_body={"role": "client"})

    assert response.status == 403


def test_bad_changes_are_invalid(api: Api, admin: dict[str, Any], user: dict[str, Any]) -> None:
    for body in ({"account_status": "deleted"}, {"role": "root"}, {}, {"sms_credits": 5}):
        response = api.request("PATCH", f"/v1/users/{user['id']}", token=admin["token"], json_body=body)
        assert response.status == 422, body


def test_the_operator_command_creates_then_promotes_admins(
    database_url: str, api: Api, conn: psycopg.Connection[Any]
) -> None:
    api.signup("carol")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "smsplatform.accounts.admin_cli", *args],
            env={
                **os.environ,
                "PYTHONPATH": str(ROOT / "layers" / "shared"),
                "DATABASE_URL": database_url,
                "SMS_ADMIN_PASSWORD": "a long operator passphrase",
            },
            capture_output=True,
            text=True,
            check=False,
        )

    created = run("--username", "root-ops", "--email", "root-ops@example.com")
    promoted = run("--username", "carol", "--email", "carol@example.com")

    assert created.returncode == 0, created.stderr
    assert "created" in created.stdout
    assert "promoted" in promoted.stdout
    roles = {row["username"]: row["role"] for row in conn.execute("SELECT username, role FROM users")}
    assert roles["root-ops"] == roles["carol"] == "admin"
    assert "a long operator passphrase" not in created.stdout + created.stderr
    assert api.login("root-ops", "a long operator passphrase")


def test_the_operator_function_promotes_through_a_lambda_invocation(
    runtimes: dict[str, Any], api: Api, conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make admin FUNCTION=...` sends the action to OperatorFunction; here the Lambda API is a botocore
    Stubber that checks the request and answers with what the real handler returns for it."""
    import io

    import boto3
    from botocore.response import StreamingBody
    from botocore.stub import Stubber

    from smsplatform.accounts import admin_cli

    api.signup("dana")
    event = {"action": "promote_admin", "username": "dana", "email": "dana@example.com", "password": None}
    answer = json.dumps(runtimes["OperatorFunction"].invoke(dict(event))).encode()
    client = boto3.client("lambda", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_response(
        "invoke",
        {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(answer), len(answer))},
        {"FunctionName": "sms-platform-dev-OperatorFunction", "InvocationType": "RequestResponse", "Payload": ANY},
    )
    monkeypatch.setattr(boto3, "client", lambda *args, **kwargs: client)
    monkeypatch.setenv("SMS_ADMIN_PASSWORD", "")

    with stubber:
        code = admin_cli.main(
            ["--username", "dana", "--email", "dana@example.com", "--function", "sms-platform-dev-OperatorFunction"]
        )

    assert code == 0
    assert conn.execute("SELECT role FROM users WHERE username = 'dana'").fetchone()["role"] == "admin"


def test_the_operator_function_refuses_unknown_actions_and_new_accounts_without_a_password(
    runtimes: dict[str, Any], conn: psycopg.Connection[Any]
) -> None:
    operator = runtimes["OperatorFunction"]

    unknown = operator.invoke({"action": "drop_everything"})
    no_password = operator.invoke({"action": "promote_admin", "username": "new", "email": "new@example.com"})

    assert unknown["ok"] is False
    assert "unknown action" in unknown["error"]
    assert no_password == {"ok": False, "error": "A new admin account needs a password."}
    assert conn.execute("SELECT count(*) AS n FROM users").fetchone()["n"] == 0
