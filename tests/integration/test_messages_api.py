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
