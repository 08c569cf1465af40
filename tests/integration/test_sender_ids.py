"""Sender identities: an account sends only as what an operator verified for it, and replies to its
numbers are its own."""

import json
import uuid
from typing import Any

import psycopg

from smsplatform.providers import simulator
from tests.support.harness import SIMULATOR_KEY, Api, Pipeline
from tests.support.scenarios import PEOPLE, give_credits, make_campaign, make_group, register_sender_id


def _campaign(api: Api, user: dict[str, Any], **extra: Any) -> Any:
    group = make_group(api, user["token"], f"g{uuid.uuid4().hex[:6]}", PEOPLE[:2])
    body = {"name": "Launch", "message_template": "Hi {{first_name|there}}", "group_ids": [group], **extra}
    return api.request("POST", "/v1/campaigns", token=user["token"], json_body=body)


def test_an_account_cannot_send_as_a_name_or_number_it_does_not_hold(
    api: Api, admin: dict[str, Any], user: dict[str, Any], other_user: dict[str, Any], conn: psycopg.Connection[Any]
) -> None:
    give_credits(api, admin, user, 10)
    register_sender_id(api, admin, other_user, "+44 7400 900123", "number")

    as_paypal = _campaign(api, user, sender_id="PayPal")
    as_bobs_number = api.request(
        "POST",
        "/v1/messages",
        token=user["token"],
        json_body={"to": "+447400123300", "text": "Hi", "sender_id": "+447400900123"},
    )
    draft = _campaign(api, user).json()
    renamed = api.request(
        "PATCH", f"/v1/campaigns/{draft['id']}", token=user["token"], json_body={"sender_id": "PayPal"}
    )

    for refused in (as_paypal, as_bobs_number, renamed):
        assert refused.status == 422, refused.body
        assert refused.json()["errors"][0]["field"] == "sender_id"
    assert conn.execute("SELECT count(*) AS n FROM sms_delivery_logs").fetchone()["n"] == 0


def test_operators_register_identities_numbers_belong_to_one_account_and_the_default_is_used(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    other_user: dict[str, Any],
    pipeline: Pipeline,
    conn: psycopg.Connection[Any],
) -> None:
    give_credits(api, admin, user, 100)
    number = register_sender_id(api, admin, user, "+44 7400 900123", "number", default=True)
    register_sender_id(api, admin, user, "ACME Shop", "alphanumeric")
    short = register_sender_id(api, admin, user, "60123", "short_code")
    taken = api.request(
        "POST",
        f"/v1/users/{other_user['id']}/sender-ids",
        token=admin["token"],
        json_body={"sender_id": "+447400900123", "kind": "number"},
    )
    shared_name = register_sender_id(api, admin, other_user, "ACME Shop", "alphanumeric")
    bad = [
        api.request(
            "POST", f"/v1/users/{user['id']}/sender-ids", token=admin["token"], json_body={"sender_id": v, "kind": k}
        ).status
        for v, k in (("Twelve chars", "alphanumeric"), ("123", "alphanumeric"), ("12", "short_code"), ("+1", "number"))
    ]
    by_client = api.request(
        "POST",
        f"/v1/users/{user['id']}/sender-ids",
        token=user["token"],
        json_body={"sender_id": "X", "kind": "alphanumeric"},
    )
    listed = api.request("GET", "/v1/sender-ids", token=user["token"]).json()["data"]

    defaulted = _campaign(api, user).json()
    named = _campaign(api, user, sender_id="ACME Shop").json()
    for campaign in (defaulted, named):
        api.request("POST", f"/v1/campaigns/{campaign['id']}/send", token=user["token"])
    sent = api.request("POST", "/v1/messages", token=user["token"], json_body={"to": "+447400123300", "text": "Hi"})
    pipeline.drain()

    assert (number["sender_id"], number["default"], short["sender_id"]) == ("+447400900123", True, "60123")
    assert taken.status == 409  # a number belongs to one account
    assert shared_name["sender_id"] == "ACME Shop"  # names are registered per account
    assert bad == [422, 422, 422, 422]
    assert by_client.status == 403
    assert [(i["sender_id"], i["default"]) for i in listed] == [
        ("+447400900123", True),
        ("60123", False),
        ("ACME Shop", False),
    ]
    senders = conn.execute(
        "SELECT DISTINCT coalesce(l.campaign_id::text, 'api') AS ref, s.sender_id FROM simulator_messages s "
        "JOIN sms_delivery_logs l ON l.id = s.message_id"
    ).fetchall()
    assert {(row["ref"], row["sender_id"]) for row in senders} == {
        (defaulted["id"], "+447400900123"),
        (named["id"], "ACME Shop"),
        ("api", "+447400900123"),
    }
    assert sent.status == 202


def test_a_withdrawn_identity_fails_the_campaign_that_named_it_and_replies_to_a_number_go_to_its_owner(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    other_user: dict[str, Any],
    pipeline: Pipeline,
    conn: psycopg.Connection[Any],
) -> None:
    give_credits(api, admin, user, 100)
    give_credits(api, admin, other_user, 100)
    register_sender_id(api, admin, user, "SALE", "alphanumeric")
    register_sender_id(api, admin, other_user, "+447400900456", "number")
    campaign = _campaign(api, user, sender_id="SALE").json()
    removed = api.request("DELETE", f"/v1/users/{user['id']}/sender-ids/SALE", token=admin["token"])
    again = api.request("DELETE", f"/v1/users/{user['id']}/sender-ids/SALE", token=admin["token"])
    api.request("POST", f"/v1/campaigns/{campaign['id']}/send", token=user["token"])
    # Alice last messaged the recipient, but the recipient replies STOP to Bob's registered number.
    alice_sends = make_campaign(api, user["token"], [make_group(api, user["token"], "last", PEOPLE[:1])])
    api.request("POST", f"/v1/campaigns/{alice_sends}/send", token=user["token"])
    pipeline.drain()
    reply = {
        "external_id": "in-9",
        "from_number": PEOPLE[0]["phone_number"],
        "to_number": "+447400900456",
        "body": "STOP",
    }
    raw = json.dumps({"messages": [reply]}).encode()
    headers = {"content-type": "application/json", simulator.SIGNATURE_HEADER: simulator.sign(SIMULATOR_KEY, raw)}
    api.request("POST", "/v1/webhooks/simulator/inbound", raw_body=raw, headers=headers)
    pipeline.drain()

    failed = api.request("GET", f"/v1/campaigns/{campaign['id']}", token=user["token"]).json()
    assert (removed.status, again.status) == (204, 404)
    assert failed["status"] == "failed"
    assert "sender id" in failed["failure_reason"]
    owner = conn.execute("SELECT user_id::text FROM inbound_messages").fetchone()["user_id"]
    assert owner == other_user["id"]
    assert (
        api.request("GET", "/v1/opt-outs", token=other_user["token"]).json()["data"][0]["phone_number"]
        == (PEOPLE[0]["phone_number"])
    )
    assert api.request("GET", "/v1/opt-outs", token=user["token"]).json()["data"] == []
