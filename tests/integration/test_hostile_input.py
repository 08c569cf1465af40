"""Hostile input gets a 4xx problem, never a 5xx, and changes nothing."""

import json
from typing import Any

import psycopg
import pytest

from tests.support.harness import Api

NUL, SURROGATE = "a\u0000b", "a\ud800b"


def _rows(conn: psycopg.Connection[Any]) -> tuple[int, int, int]:
    counts = conn.execute(
        """SELECT (SELECT count(*) FROM contact_groups) AS g, (SELECT count(*) FROM contacts) AS c,
                  (SELECT count(*) FROM audit_logs) AS a"""
    ).fetchone()
    return counts["g"], counts["c"], counts["a"]


def _raw_json(value: Any) -> bytes:
    # json.dumps writes NUL and lone surrogates as \\u escapes, exactly as a hostile client would send them.
    return json.dumps(value).encode()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/groups", {"name": NUL}),
        ("POST", "/v1/groups", {"name": SURROGATE}),
        ("POST", "/v1/contacts", {"phone_number": "+447400123101", "custom_fields": {"plan": NUL}}),
        ("POST", "/v1/contacts", {"phone_number": "+447400123101", "custom_fields": {"p\u0000": "x"}}),
        ("POST", "/v1/campaigns", {"name": "x", "message_template": "Hi\u0000", "group_ids": []}),
        ("POST", "/v1/auth/login", {"login": NUL, "password": "correct horse battery"}),
        ("POST", "/v1/auth/signup", {"username": SURROGATE, "email": "x@example.com", "password": "long enough pw"}),
    ],
)
def test_text_no_database_can_hold_is_refused_in_bodies(
    api: Api, user: dict[str, Any], conn: psycopg.Connection[Any], method: str, path: str, body: Any
) -> None:
    before = _rows(conn)

    response = api.request(
        method, path, raw_body=_raw_json(body), headers={"content-type": "application/json"}, token=user["token"]
    )

    assert response.status == 422, response.body
    assert response.headers["content-type"] == "application/problem+json"
    assert "NUL character or an unpaired surrogate" in response.json()["detail"]
    assert _rows(conn) == before


@pytest.mark.parametrize("query", ["q=a%00b", "cursor=%00", "status=%00active", "a%00=1"])
def test_text_no_database_can_hold_is_refused_in_queries(api: Api, user: dict[str, Any], query: str) -> None:
    response = api.request("GET", f"/v1/contacts?{query}", token=user["token"])

    assert 400 <= response.status < 500, response.body
    assert response.headers["content-type"] == "application/problem+json"


def test_a_surrogate_encoded_in_a_query_is_read_as_a_replacement_character(api: Api, user: dict[str, Any]) -> None:
    # Invalid UTF-8 in the URL becomes U+FFFD on the way in, as API Gateway decodes it: harmless text.
    response = api.request("GET", "/v1/contacts?q=%ED%A0%80", token=user["token"])

    assert response.status == 200, response.body


def test_json_sent_as_another_media_type_is_415(api: Api, user: dict[str, Any], conn: psycopg.Connection[Any]) -> None:
    before = _rows(conn)
    for path, body in (("/v1/groups", b'{"name": "x"}'), ("/v1/contacts", b'{"phone_number": "+447400123101"}')):
        for content_type in ("text/plain", "application/xml", "image/png"):
            response = api.request(
                "POST", path, raw_body=body, headers={"content-type": content_type}, token=user["token"]
            )
            assert response.status == 415, (path, content_type, response.body)
            assert response.headers["content-type"] == "application/problem+json"
    assert _rows(conn) == before


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": NaN}',
        b'{"name": "x", "description": Infinity}',
        b"[" * 5000 + b"]" * 5000,
        b'{"name": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b"}",
    ],
)
def test_non_json_numbers_and_deep_nesting_are_refused(api: Api, user: dict[str, Any], body: bytes) -> None:
    response = api.request(
        "POST", "/v1/groups", raw_body=body, headers={"content-type": "application/json"}, token=user["token"]
    )

    assert response.status in (400, 422), response.body
    assert response.headers["content-type"] == "application/problem+json"


def test_a_patch_without_a_body_or_a_field_is_refused(api: Api, user: dict[str, Any]) -> None:
    group = api.request("POST", "/v1/groups", json_body={"name": "VIP"}, token=user["token"]).json()

    response = api.request("PATCH", f"/v1/groups/{group['id']}", raw_body=b"", token=user["token"])
    nothing = api.request("PATCH", f"/v1/groups/{group['id']}", json_body={}, token=user["token"])

    assert response.status == 422, response.body
    assert nothing.status == 422, nothing.body
    assert api.request("GET", f"/v1/groups/{group['id']}", token=user["token"]).json()["name"] == "VIP"


def test_custom_field_values_are_capped(api: Api, user: dict[str, Any], conn: psycopg.Connection[Any]) -> None:
    fields = {f"k{i}": "x" * 501 for i in range(3)}

    response = api.request(
        "POST",
        "/v1/contacts",
        json_body={"phone_number": "+447400123101", "custom_fields": fields},
        token=user["token"],
    )

    assert response.status == 422, response.body
    assert conn.execute("SELECT count(*) AS n FROM contacts").fetchone()["n"] == 0


def test_an_unknown_method_gets_api_gateways_json_404(api: Api) -> None:
    for method in ("TRACE", "PROPFIND"):
        response = api.request(method, "/v1/contacts")
        assert response.status == 404
        assert response.json() == {"message": "Not Found"}


def test_the_openapi_document_declares_every_problem_as_problem_json(api: Api) -> None:
    document = api.request("GET", "/v1/openapi.json").json()

    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert "security" in operation, (method, path)
            for status, response in operation["responses"].items():
                if int(status) >= 400 and int(status) != 503:
                    assert list(response["content"]) == ["application/problem+json"], (method, path, status)
            assert {"422", "500"} <= set(operation["responses"]), (method, path)
            if operation["security"]:
                assert {"401", "403", "404"} <= set(operation["responses"]), (method, path)
            if "requestBody" in operation:
                assert {"400", "415"} <= set(operation["responses"]), (method, path)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/v1/users/me", {"low_balance_threshold": True}),
        ("POST", "/v1/messages", {"to": "+447400123101", "text": "Hi 👋", "validity_period": True}),
        ("PUT", "/v1/pricing/GB", {"credits_per_segment": True}),
        ("POST", "/v1/messages", {"to": "+447400123101", "text": "Hi", "validity_period": 3600.0}),
    ],
)
def test_a_json_boolean_or_float_is_not_a_whole_number(
    api: Api, admin: dict[str, Any], method: str, path: str, body: dict[str, Any]
) -> None:
    refused = api.request(method, path, token=admin["token"], json_body=body)

    assert refused.status == 422, refused.body
    assert refused.headers["content-type"] == "application/problem+json"
