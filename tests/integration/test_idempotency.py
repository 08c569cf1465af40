"""Idempotency-Key on POSTs: retries replay the first response and never act twice."""

from typing import Any

import jwt
import psycopg
import pytest

from tests.support.harness import Api, create_token


def _post(api: Api, token: str, path: str, body: Any, key: str | None) -> Any:
    headers = {"idempotency-key": key} if key else {}
    return api.request("POST", path, token=token, json_body=body, headers=headers)


def test_a_retried_top_up_credits_once_and_replays_the_first_answer(
    api: Api, admin: dict[str, Any], user: dict[str, Any], conn: psycopg.Connection[Any]
) -> None:
    path, body = f"/v1/users/{user['id']}/credits", {"credits": 100, "amount": "5.00"}

    first = _post(api, admin["token"], path, body, "topup-2026-11-27-001")
    retry = _post(api, admin["token"], path, body, "topup-2026-11-27-001")

    assert first.status == retry.status == 201
    assert retry.json() == first.json()
    assert retry.headers.get("idempotent-replayed") == "true"
    assert conn.execute("SELECT sms_credits FROM users WHERE id = %s", (user["id"],)).fetchone()["sms_credits"] == 100
    assert conn.execute("SELECT count(*) AS n FROM billing_transactions").fetchone()["n"] == 1


def test_the_same_key_for_a_different_request_is_refused(api: Api, user: dict[str, Any]) -> None:
    _post(api, user["token"], "/v1/contacts", {"phone_number": "+447400000001"}, "k1")

    reused = _post(api, user["token"], "/v1/contacts", {"phone_number": "+447400000002"}, "k1")

    assert reused.status == 422
    assert "different request" in reused.json()["detail"]


def test_keys_belong_to_one_account(api: Api, user: dict[str, Any], other_user: dict[str, Any]) -> None:
    mine = _post(api, user["token"], "/v1/contacts", {"phone_number": "+447400000001"}, "shared-key")
    theirs = _post(api, other_user["token"], "/v1/contacts", {"phone_number": "+447400000001"}, "shared-key")

    assert (mine.status, theirs.status) == (201, 201)
    assert mine.json()["id"] != theirs.json()["id"]


def test_a_request_that_failed_can_be_retried_with_its_key(api: Api, user: dict[str, Any]) -> None:
    existing = _post(api, user["token"], "/v1/groups", {"name": "vip"}, None).json()

    conflict = _post(api, user["token"], "/v1/groups", {"name": "vip"}, "create-vip")
    api.request("DELETE", f"/v1/groups/{existing['id']}", token=user["token"])
    retried = _post(api, user["token"], "/v1/groups", {"name": "vip"}, "create-vip")

    assert conflict.status == 409
    assert retried.status == 201  # the failed attempt changed nothing and did not keep the key
    assert retried.headers.get("idempotent-replayed") is None


def test_a_duplicate_still_in_flight_gets_409(api: Api, user: dict[str, Any], conn: psycopg.Connection[Any]) -> None:
    from smsplatform.core import idempotency

    body = '{"phone_number": "+447400000001"}'
    session = jwt.decode(user["token"], options={"verify_signature": False})["jti"]
    conn.execute(
        """INSERT INTO idempotency_keys (user_id, credential, idempotency_key, request_fingerprint, status)
           VALUES (%s, %s, 'busy', %s, 'in_progress')""",
        (user["id"], f"session:{session}", idempotency.fingerprint("POST /v1/contacts", "", body)),
    )

    response = api.request(
        "POST",
        "/v1/contacts",
        token=user["token"],
        raw_body=body.encode(),
        headers={"content-type": "application/json", "idempotency-key": "busy"},
    )

    assert response.status == 409
    assert conn.execute("SELECT count(*) AS n FROM contacts").fetchone()["n"] == 0


def test_posts_without_a_key_behave_as_before(api: Api, user: dict[str, Any]) -> None:
    assert _post(api, user["token"], "/v1/contacts", {"phone_number": "+447400000001"}, None).status == 201
    assert _post(api, user["token"], "/v1/contacts", {"phone_number": "+447400000001"}, None).status == 409


def test_a_key_is_answered_only_to_the_credential_that_used_it(
    api: Api, user: dict[str, Any], conn: psycopg.Connection[Any]
) -> None:
    writer = create_token(api, user["token"], "contacts:write")["token"]
    reader = create_token(api, user["token"], "contacts:read")["token"]
    body = {"phone_number": "+447400000001", "first_name": "Ada"}

    first = _post(api, writer, "/v1/contacts", body, "import-1")
    by_reader = _post(api, reader, "/v1/contacts", body, "import-1")
    by_session = _post(api, user["token"], "/v1/contacts", body, "import-1")
    again = _post(api, writer, "/v1/contacts", body, "import-1")

    assert first.status == 201
    assert by_reader.status == 403  # not a replay of the writer's answer: its own request, refused
    assert by_session.status == 409  # its own request too: the number exists
    assert by_session.headers.get("idempotent-replayed") is None
    assert (again.status, again.headers.get("idempotent-replayed")) == (201, "true")
    assert again.json() == first.json()


@pytest.mark.parametrize(
    ("path", "body", "secret_field"),
    [
        ("/v1/tokens", {"name": "ci", "permissions": ["contacts:read"]}, "token"),
        ("/v1/status-callback/secret", None, "secret"),
    ],
)
def test_a_response_carrying_a_secret_is_never_stored_and_its_retry_is_told_so(
    api: Api, user: dict[str, Any], conn: psycopg.Connection[Any], path: str, body: Any, secret_field: str
) -> None:
    first = _post(api, user["token"], path, body, "make-secret")
    retry = _post(api, user["token"], path, body, "make-secret")

    secret = first.json()[secret_field]
    stored = conn.execute("SELECT response_status, response_body FROM idempotency_keys").fetchone()
    assert first.status in (200, 201)
    assert (retry.status, retry.headers.get("idempotent-replayed")) == (409, "true")
    assert "shown once" in retry.json()["detail"]
    assert secret not in retry.body.decode()
    assert stored["response_status"] == 409
    assert secret not in stored["response_body"]
    assert api.request("GET", "/v1/tokens", token=user["token"]).json()["data"].__len__() == (
        1 if path == "/v1/tokens" else 0
    )  # the retry created nothing


def test_a_password_change_ends_the_sessions_issued_before_it(api: Api, user: dict[str, Any]) -> None:
    import time

    other_session = api.login("alice")
    time.sleep(1.1)  # sessions carry their issue time to the second
    changed = api.request(
        "PATCH",
        "/v1/users/me",
        token=user["token"],
        json_body={"current_password": "correct horse battery", "new_password": "a brand new long passphrase"},
    )
    fresh = api.login("alice", "a brand new long passphrase")

    assert changed.status == 200
    assert api.request("GET", "/v1/users/me", token=other_session).status == 401
    assert api.request("GET", "/v1/users/me", token=user["token"]).status == 401
    assert api.request("GET", "/v1/users/me", token=fresh).status == 200
