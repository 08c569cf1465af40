"""Two-way messaging: keyword replies sent once each, inbound callbacks, inbound lists and conversations."""

import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from smsplatform.core.queue_messages import InboundMessage, ProviderEvents
from smsplatform.providers import simulator
from smsplatform.sending import encoding, keywords, receipts
from tests.support.corpus import MESSAGES
from tests.support.endpoints import Endpoint
from tests.support.harness import SIMULATOR_KEY, Api, Pipeline
from tests.support.scenarios import PEOPLE, balance_of, give_credits, make_group, register_sender_id

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


def _pages(api: Api, token: str, path: str) -> list[list[dict[str, Any]]]:
    """Every page of a list, following next_cursor."""
    pages, cursor = [], ""
    while True:
        page = api.request("GET", f"{path}{cursor}", token=token).json()
        pages.append(page["data"])
        if not page["next_cursor"]:
            return pages
        cursor = f"&cursor={page['next_cursor']}"


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


def test_each_account_has_its_own_keywords_and_replies(
    api: Api, admin: dict[str, Any], account: dict[str, Any], other_user: dict[str, Any], pipeline: Pipeline,
    conn: psycopg.Connection[Any],
) -> None:  # fmt: skip
    give_credits(api, admin, other_user, 20)
    register_sender_id(api, admin, other_user, OTHER_NUMBER, kind="number")
    help_text = 'Acme 🛒: "50% off" help at acme.example/h?x=1&y=\\2 — نحن هنا'
    chosen = {
        "opt_out": ["stop", "Pare", "unsubscribe"],
        "help": ["help", "sos"],
        "replies": {"help": help_text, "opt_in": None},
    }
    put = api.request("PUT", "/v1/keywords", token=account["token"], json_body=chosen)
    refused = [
        api.request("PUT", "/v1/keywords", token=account["token"], json_body=body)
        for body in (
            {"opt_out": ["PARE"]},  # no STOP
            {"opt_out": ["STOP"], "help": ["STOP"]},  # in two lists
            {"help": ["call me"]},  # not one word
            {"replies": {"help": ""}},
        )
    ]
    shown = api.request("GET", "/v1/keywords", token=account["token"]).json()
    others = api.request("GET", "/v1/keywords", token=other_user["token"]).json()

    assert _inbound(api, (ANN, "pare."), (BEN, "SOS"), (CAT, "Baja"), (DAN, "start")) == 200
    assert _inbound(api, (ANN, "pare"), (BEN, "sos"), (CAT, "baja"), to=OTHER_NUMBER) == 200
    pipeline.drain()

    assert put.status == 200, put.body
    assert [r.status for r in refused] == [422, 422, 422, 422]
    assert shown == {
        "opt_out": ["STOP", "PARE", "UNSUBSCRIBE"],
        "opt_in": list(keywords.DEFAULT_OPT_IN),
        "help": ["HELP", "SOS"],
        "replies": {"opt_out": keywords.DEFAULT_REPLIES["opt_out"], "opt_in": None, "help": help_text},
    }
    assert others["opt_out"] == list(keywords.DEFAULT_OPT_OUT)
    alices = {m["from"]: m["keyword"] for m in _inbound_list(api, account["token"])}
    bobs = {m["from"]: m["keyword"] for m in _inbound_list(api, other_user["token"])}
    assert alices == {ANN: "opt_out", BEN: "help", CAT: None, DAN: "opt_in"}
    assert bobs == {ANN: None, BEN: None, CAT: "opt_out"}
    alices_replies = {m["to"]: m["body"] for m in _messages(api, account["token"])}
    assert alices_replies == {ANN: keywords.DEFAULT_REPLIES["opt_out"], BEN: help_text}  # no opt-in reply: null
    assert {m["to"] for m in _messages(api, other_user["token"])} == {CAT}
    handset = conn.execute("SELECT body, sender_id FROM simulator_messages WHERE to_number = %s", (BEN,)).fetchall()
    assert handset == [{"body": help_text, "sender_id": NUMBER}]  # byte for byte, from the number written to
    cats = conn.execute("SELECT sender_id FROM simulator_messages WHERE to_number = %s", (CAT,)).fetchall()
    assert cats == [{"sender_id": OTHER_NUMBER}]


def test_a_reply_the_credits_do_not_cover_is_not_sent_and_says_why(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    register_sender_id(api, admin, user, NUMBER, kind="number")
    assert _inbound(api, (ANN, "HELP"), (BEN, "STOP")) == 200
    pipeline.drain()

    listed = {m["from"]: m for m in _inbound_list(api, user["token"])}
    assert {number: m["reply_skipped"] for number, m in listed.items()} == {
        ANN: "insufficient_credits",
        BEN: "insufficient_credits",
    }
    assert _messages(api, user["token"]) == []
    assert conn.execute("SELECT count(*) AS n FROM billing_transactions").fetchone() == {"n": 0}
    assert [
        entry["phone_number"] for entry in api.request("GET", "/v1/opt-outs", token=user["token"]).json()["data"]
    ] == [BEN]


def test_an_inbound_message_reaches_the_inbound_url_signed_and_shows_in_the_lists_and_the_conversation(
    api: Api, account: dict[str, Any], pipeline: Pipeline
) -> None:
    token = account["token"]
    contact = api.request("POST", "/v1/contacts", token=token, json_body=PEOPLE[0]).json()
    endpoint = Endpoint(failures=1)
    try:
        assert api.request("PUT", "/v1/inbound-callback", token=token, json_body={"url": endpoint.url}).status == 200
        secret = api.request("POST", "/v1/status-callback/secret", token=token).json()["secret"]
        outbound = api.request("POST", "/v1/messages", token=token, json_body={"to": ANN, "text": MESSAGES[9][1]})
        pipeline.drain()
        replies = [body for _, body in MESSAGES[6:12]]  # quotes, backslashes, emoji, Arabic, Hebrew, Chinese
        for position, text in enumerate(replies):
            assert _inbound(api, (ANN, text, f"MO-{position}")) == 200
        assert _inbound(api, (BEN, "Who is this?")) == 200
        pipeline.drain()
        shown = api.request("GET", "/v1/inbound-callback", token=token).json()
    finally:
        endpoint.stop()

    assert shown["url"] == endpoint.url
    assert len(endpoint.received) == len(replies) + 1  # each once, after one failed attempt each
    for headers, body in endpoint.received:
        assert headers["x-signature"] == hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    anns = [p for p in endpoint.payloads() if p["from"] == ANN]
    assert sorted(p["body"] for p in anns) == sorted(replies)
    assert {(p["event"], p["to"], p["contact_id"], p["keyword"]) for p in anns} == {
        ("message.inbound", NUMBER, contact["id"], None)
    }

    listed = _inbound_list(api, token)
    assert [m["body"] for m in listed] == ["Who is this?", *replies[::-1]]
    assert {m["from"]: m["contact_id"] for m in listed} == {ANN: contact["id"], BEN: None}
    assert [m["body"] for m in _inbound_list(api, token, "?from=%2B" + BEN[1:])] == ["Who is this?"]
    assert _inbound_list(api, token, "?keyword=help") == []
    assert api.request("GET", "/v1/inbound-messages?from=nonsense", token=token).status == 422
    pages = _pages(api, token, f"/v1/contacts/{contact['id']}/conversation?limit=2")
    conversation = [item for page in pages for item in page]
    assert len(pages) == 4
    assert [item["direction"] for item in conversation] == ["inbound"] * len(replies) + ["outbound"]
    assert sorted(item["body"] for item in conversation[:-1]) == sorted(replies)
    assert conversation[-1]["id"] == outbound.json()["data"][0]["id"]
    assert conversation[-1]["body"] == MESSAGES[9][1]
    times = [item["at"] for item in conversation]
    assert times == sorted(times, reverse=True)


def test_message_history_lists_every_outbound_message_of_the_account_only_with_filters_and_pages(
    api: Api, admin: dict[str, Any], account: dict[str, Any], other_user: dict[str, Any], pipeline: Pipeline
) -> None:
    token = account["token"]
    give_credits(api, admin, other_user, 5)
    api.request("POST", "/v1/messages", token=other_user["token"], json_body={"to": ANN, "text": "Bob's"})
    group = make_group(api, token, "all", PEOPLE[:3])
    campaign = api.request(
        "POST", "/v1/campaigns", token=token, json_body={"name": "c", "message_template": "Hi", "group_ids": [group]}
    ).json()
    assert api.request("POST", f"/v1/campaigns/{campaign['id']}/send", token=token).status == 202
    pipeline.drain()
    single = api.request(
        "POST", "/v1/messages", token=token, json_body={"to": [ANN, "+447400199990"], "text": "Single"}
    ).json()
    pipeline.drain()

    everything = _messages(api, token)
    paged = [m for page in _pages(api, token, "/v1/messages?limit=2") for m in page]
    campaign_pages = [
        m for page in _pages(api, token, f"/v1/messages?campaign_id={campaign['id']}&limit=2") for m in page
    ]
    since = single["data"][0]["created_at"].replace("+", "%2B")

    assert len(everything) == 5
    assert [m["id"] for m in paged] == [m["id"] for m in everything]
    assert [(m["created_at"], m["id"]) for m in everything] == sorted(
        ((m["created_at"], m["id"]) for m in everything), reverse=True
    )
    assert sorted(m["to"] for m in campaign_pages) == sorted(p["phone_number"] for p in PEOPLE[:3])
    assert {m["campaign_id"] for m in campaign_pages} == {campaign["id"]}
    assert [m["to"] for m in _messages(api, token, "?status=failed")] == ["+447400199990"]
    assert sorted(m["body"] for m in _messages(api, token, "?to=%2B" + ANN[1:])) == ["Hi", "Single"]
    assert {m["request_id"] for m in _messages(api, token, f"?since={since}")} == {single["request_id"]}
    assert {m["campaign_id"] for m in _messages(api, token, f"?until={since}")} == {campaign["id"]}
    assert api.request("GET", "/v1/messages?since=2026-11-30T10:00:00", token=token).status == 422  # no offset
    assert api.request("GET", "/v1/messages?cursor=bm90LWEtY3Vyc29y", token=token).status == 422
    assert {m["body"] for m in _messages(api, other_user["token"])} == {"Bob's"}


def test_a_reply_to_a_number_the_account_does_not_own_goes_from_its_own_default_identity(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    give_credits(api, admin, user, 10)
    api.request("POST", "/v1/messages", token=user["token"], json_body={"to": ANN, "text": "Your parcel is here"})
    pipeline.drain()
    platform_number = "+447400999999"  # the provider's own number sent it: nobody's identity
    register_sender_id(api, admin, user, "ACME", default=True)
    assert _inbound(api, (ANN, "info"), to=platform_number) == 200
    pipeline.drain()

    (received,) = _inbound_list(api, user["token"])
    reply = api.request("GET", f"/v1/messages/{received['reply_message_id']}", token=user["token"]).json()
    assert (received["to"], received["keyword"]) == (platform_number, "help")
    assert (reply["sender_id"], reply["status"]) == ("ACME", "delivered")
    assert conn.execute("SELECT count(*) AS n FROM simulator_calls WHERE to_number = %s", (ANN,)).fetchone() == {"n": 2}


def test_keywords_a_provider_answers_itself_get_no_second_reply_from_us(
    api: Api, account: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    """Twilio answers STOP and HELP on its numbers; BAJA it does not know, so the confirmation is ours."""
    now = datetime.now(UTC)
    receipts.apply_events(
        ProviderEvents(
            provider="twilio",
            inbound=[
                InboundMessage(external_id=f"SM{n}", from_number=number, to_number=NUMBER, body=body, received_at=now)
                for n, (number, body) in enumerate(((ANN, "stop"), (BEN, "Help"), (CAT, "Baja")))
            ],
        )
    )
    pipeline.drain()

    listed = {m["from"]: (m["keyword"], m["reply_skipped"]) for m in _inbound_list(api, account["token"])}
    assert listed == {ANN: ("opt_out", "provider_replied"), BEN: ("help", "provider_replied"), CAT: ("opt_out", None)}
    assert [(m["to"], m["body"]) for m in _messages(api, account["token"])] == [
        (CAT, keywords.DEFAULT_REPLIES["opt_out"])
    ]
    opted_out = {
        entry["phone_number"] for entry in api.request("GET", "/v1/opt-outs", token=account["token"]).json()["data"]
    }
    assert opted_out == {ANN, CAT}
