"""Two-way messaging: keyword replies sent once each, inbound callbacks, inbound lists and conversations."""

import json
import uuid
from typing import Any

import psycopg
import pytest

from smsplatform.providers import simulator
from smsplatform.sending import encoding, keywords
from tests.integration.test_status_callbacks import Endpoint
from tests.support.corpus import MESSAGES
from tests.support.harness import SIMULATOR_KEY, Api, Pipeline
from tests.support.scenarios import PEOPLE, balance_of, give_credits, register_sender_id

NUMBER = "+447400100001"  # the account's registered number: what recipients write to
OTHER_NUMBER = "+447400100002"
ANN, BEN, CAT, DAN = (person["phone_number"] for person in PEOPLE[:4])


def _inbound(api: Api, *messages: tuple[str, str] | tuple[str, str, str], to: str = NUMBER) -> int:
    """Posts (from, body[, external id]) messages in one signed simulator webhook; returns its status."""
    body = json.dumps(
        {
            "messages": [
                {
                    "external_id": m[2] if len(m) > 2 else str(uuid.uuid4()),
                    "from_number": m[0],
                    "to_number": to,
                    "body": m[1],
                }
                for m in messages
            ]
        }
    ).encode()
    headers = {"content-type": "application/json", simulator.SIGNATURE_HEADER: simulator.sign(SIMULATOR_KEY, body)}
    return api.request("POST", "/v1/webhooks/simulator/inbound", raw_body=body, headers=headers).status


def _messages(api: Api, token: str, query: str = "") -> list[dict[str, Any]]:
    response = api.request("GET", f"/v1/messages{query}", token=token)
    assert response.status == 200, response.body
    return list(response.json()["data"])


def _inbound_list(api: Api, token: str, query: str = "") -> list[dict[str, Any]]:
    response = api.request("GET", f"/v1/inbound-messages{query}", token=token)
    assert response.status == 200, response.body
    return list(response.json()["data"])


def _calls_to(conn: psycopg.Connection[Any], number: str) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT body, outcome FROM simulator_calls WHERE to_number = %s ORDER BY id", (number,)
    ).fetchall()


@pytest.fixture
def account(api: Api, admin: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """Alice, with 20 credits and the number recipients write to."""
    give_credits(api, admin, user, 20)
    register_sender_id(api, admin, user, NUMBER, kind="number")
    return user


def test_help_gets_exactly_one_reply_from_the_number_written_to_charged_like_any_message(
    api: Api, account: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    token = account["token"]
    assert _inbound(api, (ANN, " Help? ", "MO-help-1")) == 200
    pipeline.drain()
    assert _inbound(api, (ANN, " Help? ", "MO-help-1")) == 200  # the provider retried its webhook
    pipeline.drain()

    sent = _messages(api, token)
    (received,) = _inbound_list(api, token)
    assert [(m["to"], m["sender_id"], m["body"], m["status"]) for m in sent] == [
        (ANN, NUMBER, keywords.DEFAULT_REPLIES["help"], "delivered")
    ]
    assert [call["body"] for call in _calls_to(conn, ANN)] == [keywords.DEFAULT_REPLIES["help"]]
    assert (received["keyword"], received["reply_message_id"], received["body"]) == ("help", sent[0]["id"], " Help? ")
    assert balance_of(api, token) == 20 - encoding.analyse(keywords.DEFAULT_REPLIES["help"] or "").segments


def test_stop_in_three_languages_opts_out_and_confirms_once_each_and_start_opts_back_in(
    api: Api, account: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    token = account["token"]
    confirmation = keywords.DEFAULT_REPLIES["opt_out"]
    assert _inbound(api, (ANN, "STOP"), (BEN, "Arrêt"), (CAT, "¡BAJA!")) == 200
    pipeline.drain()
    assert _inbound(api, (ANN, "help")) == 200  # opted out: no help text
    pipeline.drain()
    opted_out = {entry["phone_number"] for entry in api.request("GET", "/v1/opt-outs", token=token).json()["data"]}
    after_stop = {number: [c["body"] for c in _calls_to(conn, number)] for number in (ANN, BEN, CAT)}
    send = api.request("POST", "/v1/messages", token=token, json_body={"to": [ANN, BEN], "text": "Sale today"})

    assert _inbound(api, (BEN, "start")) == 200
    pipeline.drain()
    assert _inbound(api, (BEN, "HELP")) == 200
    pipeline.drain()

    assert opted_out == {ANN, BEN, CAT}
    assert after_stop == {ANN: [confirmation], BEN: [confirmation], CAT: [confirmation]}
    assert [m["error_code"] for m in send.json()["data"]] == ["opted_out", "opted_out"]
    assert [c["body"] for c in _calls_to(conn, BEN)] == [
        confirmation,
        keywords.DEFAULT_REPLIES["opt_in"],
        keywords.DEFAULT_REPLIES["help"],
    ]
    assert [c["body"] for c in _calls_to(conn, ANN)] == [confirmation]
    remaining = {entry["phone_number"] for entry in api.request("GET", "/v1/opt-outs", token=token).json()["data"]}
    assert remaining == {ANN, CAT}
    skipped = {(m["from"], m["body"]): m["reply_skipped"] for m in _inbound_list(api, token)}
    assert skipped[(ANN, "help")] == "opted_out"
    assert {m["status"] for m in _messages(api, token, "?status=delivered")} == {"delivered"}
    replies = [m for m in _messages(api, token) if m["request_id"] != send.json()["request_id"]]
    assert len(replies) == 5
    assert {m["status"] for m in replies} == {"delivered"}


def test_replayed_inbound_webhooks_change_nothing_and_send_nothing_twice(
    api: Api, account: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    endpoint = Endpoint()
    try:
        set_url = api.request("PUT", "/v1/inbound-callback", token=account["token"], json_body={"url": endpoint.url})
        assert set_url.status == 200, set_url.body
        batch = [(ANN, "STOP", "MO-1"), (BEN, "HELP", "MO-2"), (CAT, MESSAGES[8][1], "MO-3"), (DAN, "START", "MO-4")]
        assert _inbound(api, *batch) == 200
        pipeline.drain()
        counts = _counts(conn)
        balance = balance_of(api, account["token"])
        for replay in (batch, batch[::-1], batch[1:3]):  # again, reordered, and in part
            assert _inbound(api, *replay) == 200
            pipeline.drain()
        callbacks = endpoint.payloads()
    finally:
        endpoint.stop()

    assert _counts(conn) == counts
    assert balance_of(api, account["token"]) == balance
    assert counts["inbound_messages"] == 4
    assert counts["replies"] == 3  # STOP's and START's confirmations, HELP's text; the plain text gets none
    assert counts["calls"] == 3
    assert len(callbacks) == 4
    assert {c["event"] for c in callbacks} == {"message.inbound"}


def _counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    row = conn.execute(
        """SELECT (SELECT count(*) FROM inbound_messages) AS inbound_messages,
                  (SELECT count(*) FROM sms_delivery_logs WHERE inbound_reply IS NOT NULL) AS replies,
                  (SELECT count(*) FROM simulator_calls) AS calls,
                  (SELECT count(*) FROM status_callbacks) AS callbacks,
                  (SELECT count(*) FROM billing_transactions) AS ledger,
                  (SELECT count(*) FROM opt_outs) AS opt_outs,
                  (SELECT count(*) FROM audit_logs) AS audit"""
    ).fetchone()
    assert row is not None
    return dict(row)
