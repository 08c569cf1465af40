"""Campaigns through the API and the whole send pipeline: dispatcher, sender, simulator, receipts."""

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.support.harness import Api, Pipeline, create_token
from tests.support.scenarios import PEOPLE, balance_of, give_credits, make_campaign, make_group


@pytest.fixture
def funded(api: Api, admin: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    give_credits(api, admin, user, 1000)
    return user


def test_a_campaign_reaches_each_recipient_once_and_the_ledger_balances(
    api: Api, funded: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    token = funded["token"]
    first = make_group(api, token, "first", PEOPLE[:4])
    second = make_group(api, token, "second", PEOPLE[2:])  # 103 and 104 are in both
    api.request("POST", "/v1/opt-outs", token=token, json_body={"phone_number": "+447400123106"})
    campaign_id = make_campaign(
        api, token, [first, second], "Hi {{first_name|there}}, plan {{custom_fields.plan|basic}}"
    )

    sent = api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=token)
    assert sent.status == 202
    assert sent.json()["status"] == "queued"
    pipeline.drain()

    campaign = api.request("GET", f"/v1/campaigns/{campaign_id}", token=token).json()
    outbox = conn.execute("SELECT to_number, body FROM simulator_messages ORDER BY to_number").fetchall()
    stats = api.request("GET", f"/v1/campaigns/{campaign_id}/stats", token=token).json()
    assert campaign["status"] == "completed"
    assert campaign["total_recipients"] == 5
    assert [(row["to_number"], row["body"]) for row in outbox] == [
        ("+447400123101", "Hi Ann, plan basic"),
        ("+447400123102", "Hi Ben, plan gold"),
        ("+447400123103", "Hi there, plan basic"),
        ("+447400123104", "Hi Dee, plan basic"),
        ("+447400123105", "Hi Eve, plan basic"),
    ]
    assert stats == {
        "total": 5, "queued": 0, "sending": 0, "sent": 0, "delivered": 5, "failed": 0, "undelivered": 0,
        "cancelled": 0, "waiting": 0, "expired": 0, "skipped_blocked": 0,
        "credits_reserved": 5, "credits_spent": 5, "credits_refunded": 0,
    }  # fmt: skip
    assert balance_of(api, token) == 995


def test_failures_are_refunded_and_undelivered_messages_are_charged(
    api: Api, funded: dict[str, Any], pipeline: Pipeline
) -> None:
    token = funded["token"]
    people = [
        {"phone_number": "+447400199990"},  # simulator: rejected, permanent
        {"phone_number": "+447400199991"},  # throttled on every attempt
        {"phone_number": "+447400199992"},  # fails once, then goes through
        {"phone_number": "+447400199993"},  # accepted, then undelivered
        {"phone_number": "+447400199997"},  # delivered
    ]
    campaign_id = make_campaign(api, token, [make_group(api, token, "mixed", people)], "Two parts: " + "x" * 150)
    api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=token)
    pipeline.drain()

    stats = api.request("GET", f"/v1/campaigns/{campaign_id}/stats", token=token).json()
    page = api.request("GET", f"/v1/campaigns/{campaign_id}/messages?limit=50", token=token).json()["data"]
    by_number = {message["to"]: message for message in page}
    assert stats["delivered"] == 2
    assert stats["undelivered"] == 1
    assert stats["failed"] == 2
    assert (stats["credits_reserved"], stats["credits_spent"], stats["credits_refunded"]) == (10, 6, 4)
    assert by_number["+447400199990"]["error_code"] == "SIM-21211"
    assert by_number["+447400199990"]["attempts"] == 1
    assert by_number["+447400199991"]["error_code"] == "SIM-20429"
    assert by_number["+447400199991"]["attempts"] == 5
    assert by_number["+447400199992"]["status"] == "delivered"
    assert by_number["+447400199992"]["attempts"] == 2
    assert by_number["+447400199993"]["error_code"] == "SIM-30003"
    assert balance_of(api, token) == 1000 - 6


def test_a_short_balance_fails_the_campaign_and_charges_nothing(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    give_credits(api, admin, user, 2)
    token = user["token"]
    campaign_id = make_campaign(api, token, [make_group(api, token, "three", PEOPLE[:3])])

    api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=token)
    pipeline.drain()

    campaign = api.request("GET", f"/v1/campaigns/{campaign_id}", token=token).json()
    assert campaign["status"] == "failed"
    assert "Not enough credits" in campaign["failure_reason"]
    assert balance_of(api, token) == 2
    assert conn.execute("SELECT count(*) AS n FROM sms_delivery_logs").fetchone()["n"] == 0


def test_cancel_stops_unsent_messages_and_refunds_them(
    api: Api, funded: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    token = funded["token"]
    campaign_id = make_campaign(api, token, [make_group(api, token, "all", PEOPLE)])
    api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=token)
    pipeline.pollers["DispatcherFunction"].poll_once()  # dispatched, nothing sent yet

    cancelled = api.request("POST", f"/v1/campaigns/{campaign_id}/cancel", token=token)
    pipeline.drain()

    stats = api.request("GET", f"/v1/campaigns/{campaign_id}/stats", token=token).json()
    assert cancelled.json()["status"] == "cancelled"
    assert stats["failed"] == 6
    assert stats["credits_refunded"] == 6
    assert stats["credits_spent"] == 0
    assert conn.execute("SELECT count(*) AS n FROM simulator_messages").fetchone()["n"] == 0
    assert balance_of(api, token) == 1000
    again = api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=token)
    assert again.status == 409
    assert "cancelled" in again.json()["detail"]


def test_templates_naming_unknown_fields_are_refused(api: Api, user: dict[str, Any]) -> None:
    token = user["token"]
    group = make_group(api, token, "g", PEOPLE[:1])
    for template in ("Hi {{password_hash}}", "Hi {{ first_name", "{{__class__.__mro__}}", "Hi {{custom_fields.9x}}"):
        response = api.request(
            "POST",
            "/v1/campaigns",
            token=token,
            json_body={"name": "n", "message_template": template, "group_ids": [group]},
        )
        assert response.status == 422, template
        assert response.json()["errors"][0]["field"] == "message_template"
    assert api.request("GET", "/v1/campaigns", token=token).json()["data"] == []


def test_preview_renders_for_a_recipient_and_prices_the_audience(api: Api, user: dict[str, Any]) -> None:
    token = user["token"]
    group = make_group(api, token, "g", PEOPLE[:3])
    campaign_id = make_campaign(api, token, [group], "Grüße {{first_name|Freund}} 😀")

    preview = api.request("POST", f"/v1/campaigns/{campaign_id}/preview", token=token).json()

    assert preview["encoding"] == "UCS-2"
    assert preview["recipients"] == 3
    assert preview["estimated_credits"] == 3
    assert preview["text"].startswith("Grüße ")
    assert preview["text"].endswith(" 😀")


def test_the_status_machine_refuses_illegal_moves(api: Api, user: dict[str, Any]) -> None:
    token = user["token"]
    campaign_id = make_campaign(api, token, [make_group(api, token, "g", PEOPLE[:1])])
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    naive = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None).isoformat()

    assert (
        api.request(
            "POST", f"/v1/campaigns/{campaign_id}/schedule", token=token, json_body={"scheduled_time": past}
        ).status
        == 422
    )
    assert (
        api.request(
            "POST", f"/v1/campaigns/{campaign_id}/schedule", token=token, json_body={"scheduled_time": naive}
        ).status
        == 422
    )
    assert api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=token).status == 202
    assert api.request("PATCH", f"/v1/campaigns/{campaign_id}", token=token, json_body={"name": "x"}).status == 409
    assert api.request("DELETE", f"/v1/campaigns/{campaign_id}", token=token).status == 409
    assert api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=token).status == 409  # fmt: skip


def test_another_accounts_groups_and_campaigns_stay_out_of_reach(
    api: Api, user: dict[str, Any], other_user: dict[str, Any]
) -> None:
    bobs_group = make_group(api, other_user["token"], "bob", [{"phone_number": "+447400123201"}])
    alices = make_campaign(api, user["token"], [make_group(api, user["token"], "alice", PEOPLE[:1])])

    using_bobs = api.request(
        "POST", "/v1/campaigns", token=user["token"],
        json_body={"name": "n", "message_template": "t", "group_ids": [bobs_group]},
    )  # fmt: skip
    assert using_bobs.status == 404
    for method, suffix in (
        ("GET", ""),
        ("POST", "/send"),
        ("POST", "/cancel"),
        ("GET", "/stats"),
        ("GET", "/messages"),
    ):
        assert api.request(method, f"/v1/campaigns/{alices}{suffix}", token=other_user["token"]).status == 404


def test_the_scheduler_releases_a_duemake_campaign(
    api: Api, funded: dict[str, Any], pipeline: Pipeline, runtimes: Any, conn: psycopg.Connection[Any]
) -> None:
    token = funded["token"]
    at = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    campaign_id = make_campaign(api, token, [make_group(api, token, "g", PEOPLE[:2])], scheduled_time=at)
    assert api.request("GET", f"/v1/campaigns/{campaign_id}", token=token).json()["status"] == "scheduled"

    early = runtimes["SchedulerFunction"].invoke({"detail-type": "Scheduled Event"})
    conn.execute("UPDATE sms_campaigns SET scheduled_time = now() - interval '1 second'")  # the minute passes
    due = runtimes["SchedulerFunction"].invoke({"detail-type": "Scheduled Event"})
    again = runtimes["SchedulerFunction"].invoke({"detail-type": "Scheduled Event"})
    pipeline.drain()

    assert (early["campaigns_released"], due["campaigns_released"], again["campaigns_released"]) == (0, 1, 0)
    assert api.request("GET", f"/v1/campaigns/{campaign_id}", token=token).json()["status"] == "completed"
    assert conn.execute("SELECT count(*) AS n FROM simulator_messages").fetchone()["n"] == 2


def test_single_messages_go_through_the_same_pipeline(
    api: Api, funded: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    token = create_token(api, funded["token"], "messages:send", "messages:read")["token"]
    api.request("POST", "/v1/opt-outs", token=funded["token"], json_body={"phone_number": "+447400123301"})

    accepted = api.request(
        "POST", "/v1/messages", token=token,
        json_body={"to": ["+447400123300", "+447400123301", "+447400123300"], "text": "Your code is 4821"},
    )  # fmt: skip
    pipeline.drain()

    body = accepted.json()
    assert accepted.status == 202
    assert body["credits_reserved"] == 1
    assert [m["to"] for m in body["data"]] == ["+447400123300", "+447400123301"]
    delivered = api.request("GET", f"/v1/messages/{body['data'][0]['id']}", token=token).json()
    opted_out = api.request("GET", f"/v1/messages/{body['data'][1]['id']}", token=token).json()
    assert delivered["status"] == "delivered"
    assert delivered["external_id"]
    assert delivered["sent_at"]
    assert opted_out["status"] == "failed"
    assert opted_out["error_code"] == "opted_out"
    assert balance_of(api, funded["token"]) == 999
    assert conn.execute("SELECT to_number FROM simulator_messages").fetchall() == [{"to_number": "+447400123300"}]


def test_an_api_send_with_failures_settles_what_went_out_and_refunds_the_rest(
    api: Api, funded: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    numbers = [
        "+447400199997",
        "+447400199990",
        "+447400199991",
        "+447400199993",
    ]  # ok, rejected, throttled, undelivered
    before = balance_of(api, funded["token"])

    text = 'Code %s, 50%% off "today" \\o/ {0} 🎉 مرحبا'  # one UCS-2 segment of real-world awkwardness
    accepted = api.request("POST", "/v1/messages", token=funded["token"], json_body={"to": numbers, "text": text})
    pipeline.drain()
    handsets = conn.execute("SELECT to_number, body FROM simulator_messages ORDER BY to_number").fetchall()
    assert [(row["to_number"], row["body"]) for row in handsets] == [(numbers[3], text), (numbers[0], text)]

    request_id = conn.execute("SELECT DISTINCT request_id FROM sms_delivery_logs").fetchone()["request_id"]
    ledger = conn.execute(
        """SELECT transaction_type,
                  sum(CASE WHEN transaction_type LIKE '%%spend' THEN settled_credits ELSE credits END)::int AS credits
             FROM billing_transactions WHERE reference_id = %s GROUP BY 1""",
        (request_id,),
    ).fetchall()
    statuses = {m["to"]: m["status"] for m in accepted.json()["data"]}
    final = {
        row["phone_number"]: row["status"]
        for row in conn.execute("SELECT phone_number, status FROM sms_delivery_logs").fetchall()
    }
    assert accepted.status == 202
    assert set(statuses.values()) == {"queued"}
    assert final == dict(zip(numbers, ["delivered", "failed", "failed", "undelivered"], strict=True))
    # Reserved 4; the delivered and the undelivered one are paid, the two failures given back.
    assert {row["transaction_type"]: row["credits"] for row in ledger} == {
        "message_reserve": -4,
        "message_spend": 2,
        "message_refund": 2,
    }
    assert balance_of(api, funded["token"]) == before - 2


def test_a_message_the_balance_cannot_cover_is_refused_with_402(api: Api, user: dict[str, Any]) -> None:
    response = api.request("POST", "/v1/messages", token=user["token"], json_body={"to": "+447400123300", "text": "hi"})

    assert response.status == 402
    assert response.headers["content-type"] == "application/problem+json"
