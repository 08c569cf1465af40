"""Inbound messages: stored once, and their opt-out and opt-in keywords applied to the right account only."""

import json
import uuid
from typing import Any

import psycopg
import pytest

from local import aws
from smsplatform.providers import simulator
from tests.support.harness import SIMULATOR_KEY, Api, Pipeline
from tests.support.scenarios import PEOPLE, give_credits, make_campaign, make_group, register_sender_id

SHARED = PEOPLE[0]["phone_number"]  # a recipient of both accounts


def _reply(api: Api, body: str, to: str | None, *, sender: str = SHARED, key: str = SIMULATOR_KEY, **extra: Any) -> int:
    message = {"external_id": extra.get("external_id") or str(uuid.uuid4()), "from_number": sender, "body": body}
    if to is not None:
        message["to_number"] = to
    raw = json.dumps({"messages": [message]}).encode()
    headers = {"content-type": "application/json", simulator.SIGNATURE_HEADER: simulator.sign(key, raw)}
    return api.request("POST", "/v1/webhooks/simulator/inbound", raw_body=raw, headers=headers).status


def _send(api: Api, token: str, group: str, sender_id: str) -> str:
    campaign_id = make_campaign(api, token, [group], "News from {{first_name|us}}", sender_id=sender_id)
    assert api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=token).status == 202
    return campaign_id


def _recipients(conn: psycopg.Connection[Any], campaign_id: str) -> list[str]:
    rows = conn.execute(
        "SELECT phone_number FROM sms_delivery_logs WHERE campaign_id = %s ORDER BY phone_number", (campaign_id,)
    )
    return [row["phone_number"] for row in rows]


def _opt_outs(api: Api, token: str) -> list[tuple[str, str]]:
    listed = api.request("GET", "/v1/opt-outs", token=token).json()["data"]
    return [(entry["phone_number"], entry["source"]) for entry in listed]


@pytest.fixture
def two_accounts(
    api: Api, admin: dict[str, Any], user: dict[str, Any], other_user: dict[str, Any], pipeline: Pipeline
) -> dict[str, Any]:
    """Alice (sender id ALICE) and Bob (BOB) have each messaged the shared recipient."""
    accounts = {}
    for account, sender_id, people in ((user, "ALICE", PEOPLE[:3]), (other_user, "BOB", [PEOPLE[0], PEOPLE[3]])):
        give_credits(api, admin, account, 100)
        register_sender_id(api, admin, account, sender_id)
        group = make_group(api, account["token"], "customers", people)
        _send(api, account["token"], group, sender_id)
        accounts[sender_id] = {**account, "group": group}
    pipeline.drain()
    return accounts


def test_stop_removes_the_recipient_from_that_accounts_next_campaign_and_from_no_other(
    api: Api, two_accounts: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    alice, bob = two_accounts["ALICE"], two_accounts["BOB"]

    assert _reply(api, "  stop \n", "ALICE") == 200
    pipeline.drain()
    alices_next = _send(api, alice["token"], alice["group"], "ALICE")
    bobs_next = _send(api, bob["token"], bob["group"], "BOB")
    pipeline.drain()

    assert _opt_outs(api, alice["token"]) == [(SHARED, "inbound")]
    assert _opt_outs(api, bob["token"]) == []
    assert SHARED not in _recipients(conn, alices_next)
    assert _recipients(conn, alices_next) == [PEOPLE[1]["phone_number"], PEOPLE[2]["phone_number"]]
    assert SHARED in _recipients(conn, bobs_next)
    contacts = api.request("GET", "/v1/contacts", token=alice["token"]).json()["data"]
    assert {c["phone_number"]: c["status"] for c in contacts}[SHARED] == "unsubscribed"
    stored = conn.execute("SELECT user_id::text, body, keyword FROM inbound_messages").fetchall()
    assert stored == [{"user_id": alice["id"], "body": "  stop \n", "keyword": "opt_out"}]


def test_start_opts_back_in_and_a_repeated_webhook_changes_nothing(
    api: Api, two_accounts: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    bob = two_accounts["BOB"]

    _reply(api, "UNSUBSCRIBE", "BOB", external_id="in-1")
    pipeline.drain()
    opted_out = _opt_outs(api, bob["token"])
    _reply(api, "Start", "BOB", external_id="in-2")
    pipeline.drain()
    opted_in = _opt_outs(api, bob["token"])
    _reply(api, "UNSUBSCRIBE", "BOB", external_id="in-1")  # the provider retried an old webhook
    _reply(api, "Stop sending me these please", "BOB", external_id="in-3")  # not a keyword
    pipeline.drain()

    assert opted_out == [(SHARED, "inbound")]
    assert opted_in == []
    assert _opt_outs(api, bob["token"]) == []
    assert conn.execute("SELECT count(*) AS n FROM inbound_messages").fetchone()["n"] == 3
    actions = conn.execute(
        "SELECT action FROM audit_logs WHERE details ->> 'source' = 'inbound' ORDER BY id"
    ).fetchall()
    assert sorted(row["action"] for row in actions) == ["opt_out.add", "opt_out.remove"]


def test_a_forged_or_unsigned_inbound_message_is_refused_and_stores_nothing(
    api: Api, two_accounts: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    raw = json.dumps({"messages": [{"external_id": "x", "from_number": SHARED, "body": "STOP"}]}).encode()

    forged = _reply(api, "STOP", "ALICE", key="not-the-simulator-key")
    unsigned = api.request(
        "POST", "/v1/webhooks/simulator/inbound", raw_body=raw, headers={"content-type": "application/json"}
    ).status
    unknown = api.request("POST", "/v1/webhooks/carrier-pigeon/inbound", raw_body=raw).status
    pipeline.drain()

    assert (forged, unsigned, unknown) == (403, 403, 404)
    assert conn.execute("SELECT count(*) AS n FROM inbound_messages").fetchone()["n"] == 0
    assert conn.execute("SELECT count(*) AS n FROM opt_outs").fetchone()["n"] == 0


def test_an_inbound_message_for_nobody_is_kept_without_an_account(
    api: Api, two_accounts: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    assert _reply(api, "STOP", "ALICE", sender="+447400123177") == 200  # never messaged by anyone
    pipeline.drain()

    stored = conn.execute("SELECT user_id, keyword FROM inbound_messages").fetchone()
    assert (stored["user_id"], stored["keyword"]) == (None, "opt_out")
    assert conn.execute("SELECT count(*) AS n FROM opt_outs").fetchone()["n"] == 0


def test_a_two_way_message_from_end_user_messaging_arrives_through_the_events_topic(
    two_accounts: dict[str, Any], pipeline: Pipeline, api: Api, aws_resources: aws.Resources
) -> None:
    sns = aws.client("sns", aws_resources.endpoint_url)
    event = {
        "originationNumber": SHARED,
        "destinationNumber": "BOB",
        "messageKeyword": "KEYWORD_123456789012",
        "messageBody": "QUIT",
        "inboundMessageId": str(uuid.uuid4()),
    }

    sns.publish(TopicArn=aws_resources.refs["SmsEventsTopic"], Message=json.dumps(event))
    pipeline.drain()

    assert _opt_outs(api, two_accounts["BOB"]["token"]) == [(SHARED, "inbound")]
    assert _opt_outs(api, two_accounts["ALICE"]["token"]) == []


def test_a_reply_that_names_no_number_goes_to_the_account_that_messaged_the_sender_last(
    api: Api, two_accounts: dict[str, Any], pipeline: Pipeline
) -> None:
    alice, bob = two_accounts["ALICE"], two_accounts["BOB"]

    def message_shared(account: dict[str, Any]) -> None:
        sent = api.request("POST", "/v1/messages", token=account["token"], json_body={"to": SHARED, "text": "Hi"})
        assert sent.status == 202
        pipeline.drain()

    message_shared(alice)
    assert _reply(api, "STOP", None) == 200
    pipeline.drain()
    after_alice = (_opt_outs(api, alice["token"]), _opt_outs(api, bob["token"]))
    message_shared(bob)
    assert _reply(api, "STOP", None) == 200
    pipeline.drain()

    assert after_alice == ([(SHARED, "inbound")], [])
    assert _opt_outs(api, bob["token"]) == [(SHARED, "inbound")]
