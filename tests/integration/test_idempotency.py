"""Idempotency-Key on POSTs: retries replay the first response and never act twice."""

from typing import Any

import psycopg

from tests.support.harness import Api


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
    conn.execute(
        """INSERT INTO idempotency_keys (user_id, idempotency_key, request_fingerprint, status)
           VALUES (%s, 'busy', %s, 'in_progress')""",
        (user["id"], idempotency.fingerprint("POST /v1/contacts", "", body)),
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
