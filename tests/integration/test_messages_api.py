"""POST /v1/messages/preview: encoding and segments, for any valid credential, at no charge."""

from typing import Any

import psycopg

from tests.support.harness import Api, create_token


def test_a_preview_reports_encoding_and_segments(api: Api, user: dict[str, Any]) -> None:
    gsm = api.request("POST", "/v1/messages/preview", token=user["token"], json_body={"text": "a" * 161})
    ucs = api.request("POST", "/v1/messages/preview", token=user["token"], json_body={"text": "Привет 😀"})

    assert gsm.status == 200
    assert gsm.json() == {
        "encoding": "GSM-7",
        "segments": 2,
        "characters": 161,
        "characters_per_segment": 153,
        "remaining_in_segment": 145,
    }
    assert (ucs.json()["encoding"], ucs.json()["characters"], ucs.json()["segments"]) == ("UCS-2", 9, 1)


def test_any_valid_credential_may_preview_and_nothing_is_charged(
    api: Api, user: dict[str, Any], conn: psycopg.Connection[Any]
) -> None:
    narrow = create_token(api, user["token"], "billing:read")["token"]

    assert api.request("POST", "/v1/messages/preview", token=narrow, json_body={"text": "hi"}).status == 200
    assert api.request("POST", "/v1/messages/preview", json_body={"text": "hi"}).status == 401
    assert conn.execute("SELECT count(*) AS n FROM billing_transactions").fetchone()["n"] == 0


def test_spaces_count_and_bad_texts_are_refused(api: Api, user: dict[str, Any]) -> None:
    spaced = api.request("POST", "/v1/messages/preview", token=user["token"], json_body={"text": "  hi  "})
    empty = api.request("POST", "/v1/messages/preview", token=user["token"], json_body={"text": ""})
    huge = api.request("POST", "/v1/messages/preview", token=user["token"], json_body={"text": "a" * 1601})

    assert spaced.json()["characters"] == 6
    assert empty.status == huge.status == 422
    assert empty.json()["errors"][0]["field"] == "text"


def test_a_send_past_the_accounts_queue_limit_is_refused_and_writes_nothing(
    api: Api, admin: dict[str, Any], user: dict[str, Any], configure: Any, conn: psycopg.Connection[Any]
) -> None:
    configure(max_queued_messages=3)
    api.request("POST", f"/v1/users/{user['id']}/credits", token=admin["token"], json_body={"credits": 50})
    text = "Ваш код: 4821 — don't share it. 100% secure ✅"
    first = api.request(
        "POST", "/v1/messages", token=user["token"], json_body={"to": ["+447400123101", "+447400123102"], "text": text}
    )
    refused = api.request(
        "POST", "/v1/messages", token=user["token"], json_body={"to": ["+447400123103", "+447400123104"], "text": text}
    )
    one_more = api.request("POST", "/v1/messages", token=user["token"], json_body={"to": "+447400123105", "text": text})

    assert first.status == 202
    assert (refused.status, refused.json()["type"].rsplit("/", 1)[1], refused.headers["retry-after"]) == (
        429,
        "queue-full",
        "60",
    )
    assert one_more.status == 202  # two waiting and one more: at the limit, not past it
    rows = conn.execute("SELECT phone_number FROM sms_delivery_logs ORDER BY phone_number").fetchall()
    assert [row["phone_number"] for row in rows] == ["+447400123101", "+447400123102", "+447400123105"]
