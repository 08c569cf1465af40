"""No response, log line or audit row carries a password, a password hash or a full token."""

import io
import logging
from typing import Any

import psycopg

from smsplatform.core.observability import logger
from tests.support.harness import Api


def test_a_whole_account_session_leaks_no_secret(
    api: Api, admin: dict[str, Any], conn: psycopg.Connection[Any]
) -> None:
    logger.setLevel("DEBUG")
    stream = io.StringIO()
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous_stream = handler.setStream(stream)
    try:
        password, new_password = "correct horse battery", "another long passphrase"
        bodies: list[bytes] = []

        def call(*args: Any, **kwargs: Any) -> Any:
            response = api.request(*args, **kwargs)
            bodies.append(response.body)
            return response

        call("POST", "/v1/auth/signup", json_body={"username": "dave", "email": "d@example.com", "password": password})
        call("POST", "/v1/auth/login", json_body={"login": "dave", "password": "a wrong one"})
        session = api.login("dave", password)
        created = api.request(
            "POST", "/v1/tokens", token=session, json_body={"name": "ci", "permissions": ["billing:read"]}
        ).json()
        secret = created["token"]
        call("GET", "/v1/tokens", token=session)
        call("GET", "/v1/billing/transactions", token=secret)
        call("GET", "/v1/users/me", token=secret)
        call(
            "PATCH",
            "/v1/users/me",
            token=session,
            json_body={"current_password": password, "new_password": new_password},
        )
        call("PATCH", "/v1/users/me", token=session, json_body={"current_password": "wrong", "new_password": "x" * 12})
        call("DELETE", f"/v1/tokens/{created['id']}", token=session)
        call("GET", "/v1/audit-logs?limit=200", token=admin["token"])
        call("GET", "/v1/users?limit=200", token=admin["token"])
    finally:
        handler.setStream(previous_stream)
        logger.setLevel("INFO")
    logs = stream.getvalue()

    hashes = [row["password_hash"] for row in conn.execute("SELECT password_hash FROM users")]
    audit_rows = " ".join(str(row) for row in conn.execute("SELECT * FROM audit_logs"))
    secrets = [password, new_password, secret, session, *hashes, "$argon2id$"]
    for haystack_name, haystack in (
        ("responses", b" ".join(bodies).decode()),
        ("logs", logs),
        ("audit rows", audit_rows),
    ):
        for needle in secrets:
            assert needle not in haystack, f"a secret appears in the {haystack_name}"
    assert created["prefix"] in audit_rows  # what is kept is the display prefix
    assert '"route":"PATCH /v1/users/me"' in logs  # the handlers did log every request
