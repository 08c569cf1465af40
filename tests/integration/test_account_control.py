"""What operators and recipients stop: a suspended account sends nothing until resumed, a closed one has
everything unsent cancelled and refunded, an operator can cancel any campaign, and a STOP that arrives
mid-campaign stops the messages still waiting for that number."""

import json
import uuid
from typing import Any

import psycopg

from local.runtime import FunctionRuntime
from smsplatform.providers import simulator
from smsplatform.sending import keywords
from tests.support.harness import SIMULATOR_KEY, Api, Pipeline, scheduler_tick
from tests.support.scenarios import PEOPLE, balance_of, give_credits, leave_idle, make_campaign, make_group


def _status(api: Api, admin: dict[str, Any], user: dict[str, Any], status: str) -> None:
    changed = api.request(
        "PATCH", f"/v1/users/{user['id']}", token=admin["token"], json_body={"account_status": status}
    )
    assert changed.status == 200, changed.body


def _campaign(api: Api, user: dict[str, Any], people: list[dict[str, Any]], **extra: Any) -> str:
    group = make_group(api, user["token"], f"audience {uuid.uuid4().hex[:8]}", people)
    return make_campaign(api, user["token"], [group], **extra)


def _calls(conn: psycopg.Connection[Any]) -> int:
    return int(conn.execute("SELECT count(*) AS n FROM simulator_calls").fetchone()["n"])


def test_a_suspended_account_sends_nothing_and_picks_up_where_it_stopped_when_resumed(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    runtimes: dict[str, FunctionRuntime],
    conn: psycopg.Connection[Any],
) -> None:
    give_credits(api, admin, user, 100)
    running = _campaign(api, user, PEOPLE)
    queued = _campaign(api, user, PEOPLE[:2])
    scheduled = _campaign(api, user, PEOPLE[:3])
    api.request("POST", f"/v1/campaigns/{running}/send", token=user["token"])
    pipeline.pollers["DispatcherFunction"].poll_once()  # dispatched: its batches wait on the send queue
    api.request("POST", f"/v1/campaigns/{queued}/send", token=user["token"])  # its release waits
    api.request(
        "POST",
        f"/v1/campaigns/{scheduled}/schedule",
        token=user["token"],
        json_body={"scheduled_time": "2099-01-01T00:00:00Z"},
    )
    conn.execute("UPDATE sms_campaigns SET scheduled_time = now() WHERE id = %s", (scheduled,))

    _status(api, admin, user, "suspended")
    pipeline.drain()
    ticked = scheduler_tick(runtimes)
    leave_idle(conn, 60)  # however long it lasts
    conn.execute("UPDATE sms_campaigns SET announced_at = now() - interval '1 hour' WHERE status = 'queued'")
    later = scheduler_tick(runtimes)
    pipeline.drain()
    while_suspended = {
        row["id"]: row["status"] for row in conn.execute("SELECT id::text, status FROM sms_campaigns").fetchall()
    }
    calls_while_suspended = _calls(conn)

    _status(api, admin, user, "active")
    scheduler_tick(runtimes)
    pipeline.drain()

    assert calls_while_suspended == 0
    assert while_suspended == {running: "sending", queued: "queued", scheduled: "scheduled"}
    assert (ticked["campaigns_released"], later["batches_reannounced"], later["messages_finalised"]) == (0, 0, 0)
    finished = {row["status"] for row in conn.execute("SELECT status FROM sms_campaigns").fetchall()}
    assert finished == {"completed"}
    assert _calls(conn) == 6 + 2 + 3  # each message once, after the resume
    assert balance_of(api, user["token"]) == 100 - 11


def test_closing_an_account_cancels_and_refunds_everything_unsent(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    runtimes: dict[str, FunctionRuntime],
    conn: psycopg.Connection[Any],
) -> None:
    give_credits(api, admin, user, 100)
    running = _campaign(api, user, PEOPLE)
    draft = _campaign(api, user, PEOPLE[:1])
    api.request("POST", f"/v1/campaigns/{running}/send", token=user["token"])
    pipeline.pollers["DispatcherFunction"].poll_once()
    sent = api.request("POST", "/v1/messages", token=user["token"], json_body={"to": "+447400123300", "text": "Hi"})
    assert sent.status == 202

    _status(api, admin, user, "closed")
    pipeline.drain()
    scheduler_tick(runtimes)

    campaigns = {row["id"]: row["status"] for row in conn.execute("SELECT id::text, status FROM sms_campaigns")}
    rows = conn.execute("SELECT DISTINCT status, error_code FROM sms_delivery_logs").fetchall()
    assert campaigns == {running: "cancelled", draft: "cancelled"}
    assert rows == [{"status": "failed", "error_code": "cancelled"}]
    assert _calls(conn) == 0
    assert conn.execute("SELECT sms_credits FROM users WHERE id = %s", (user["id"],)).fetchone()["sms_credits"] == 100
    reservations = conn.execute(
        """SELECT sum(credits) AS net FROM billing_transactions
            WHERE user_id = %s AND transaction_type NOT IN ('purchase', 'adjustment')""",
        (user["id"],),
    ).fetchone()
    assert reservations["net"] == 0  # every credit reserved came back


def test_an_operator_cancels_any_accounts_campaign(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    give_credits(api, admin, user, 100)
    campaign_id = _campaign(api, user, PEOPLE)
    api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=user["token"])
    pipeline.pollers["DispatcherFunction"].poll_once()

    by_owner_elsewhere = api.request(
        "POST", f"/v1/users/{user['id']}/campaigns/{campaign_id}/cancel", token=user["token"]
    )
    wrong_owner = api.request("POST", f"/v1/users/{admin['id']}/campaigns/{campaign_id}/cancel", token=admin["token"])
    cancelled = api.request("POST", f"/v1/users/{user['id']}/campaigns/{campaign_id}/cancel", token=admin["token"])
    pipeline.drain()

    assert (by_owner_elsewhere.status, wrong_owner.status, cancelled.status) == (403, 404, 200)
    assert cancelled.json()["status"] == "cancelled"
    assert _calls(conn) == 0
    assert balance_of(api, user["token"]) == 100
    trail = conn.execute("SELECT user_id::text, action FROM audit_logs WHERE action = 'campaign.cancel'").fetchone()
    assert trail == {"user_id": admin["id"], "action": "campaign.cancel"}  # the operator did it


def test_a_stop_during_a_campaign_stops_that_numbers_messages_still_waiting(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    give_credits(api, admin, user, 100)
    campaign_id = _campaign(api, user, PEOPLE)
    api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=user["token"])
    pipeline.pollers["DispatcherFunction"].poll_once()  # materialised before the STOP came
    stopper = PEOPLE[4]["phone_number"]
    body = json.dumps({"messages": [{"external_id": "in-1", "from_number": stopper, "body": "stop"}]}).encode()
    conn.execute(  # the recipient had an earlier message from this account, so the STOP is attributed to it
        """INSERT INTO sms_delivery_logs (user_id, request_id, phone_number, status, provider, external_message_id)
           VALUES (%s, gen_random_uuid(), %s, 'delivered', 'simulator', 'SM-earlier')""",
        (user["id"], stopper),
    )
    headers = {"content-type": "application/json", simulator.SIGNATURE_HEADER: simulator.sign(SIMULATOR_KEY, body)}
    assert api.request("POST", "/v1/webhooks/simulator/inbound", raw_body=body, headers=headers).status == 200
    pipeline.pollers["ReceiptsFunction"].poll_once()  # the STOP is applied before the senders reach the number

    pipeline.drain()

    row = conn.execute(
        "SELECT status, error_code FROM sms_delivery_logs WHERE campaign_id = %s AND phone_number = %s",
        (campaign_id, stopper),
    ).fetchone()
    assert (row["status"], row["error_code"]) == ("failed", "opted_out")
    calls = conn.execute("SELECT body FROM simulator_calls WHERE to_number = %s", (stopper,)).fetchall()
    assert calls == [{"body": keywords.DEFAULT_REPLIES["opt_out"]}]  # the confirmation only, not the campaign's
    stats = api.request("GET", f"/v1/campaigns/{campaign_id}/stats", token=user["token"]).json()
    assert (stats["delivered"], stats["credits_spent"], stats["credits_refunded"]) == (5, 5, 1)


def test_closing_settles_a_campaign_whose_sender_died_before_settling_it(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    give_credits(api, admin, user, 100)
    campaign_id = _campaign(api, user, PEOPLE)
    api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=user["token"])
    pipeline.pollers["DispatcherFunction"].poll_once()
    pipeline.discard()
    # Every message went out and was delivered; the sender died before the settlement.
    conn.execute("UPDATE sms_delivery_logs SET status = 'delivered', sent_at = now(), delivered_at = now()")

    _status(api, admin, user, "closed")

    stats = api.request("GET", f"/v1/campaigns/{campaign_id}/stats", token=admin["token"])
    row = conn.execute("SELECT status FROM sms_campaigns").fetchone()
    held = conn.execute(
        """SELECT coalesce(-sum(credits) FILTER (WHERE transaction_type = 'campaign_reserve'), 0) AS reserved,
                  coalesce(sum(settled_credits) FILTER (WHERE transaction_type = 'campaign_spend'), 0) AS spent
             FROM billing_transactions WHERE reference_id = %s""",
        (campaign_id,),
    ).fetchone()
    assert stats.status == 404  # another account's campaign, even to an operator's own routes
    assert row["status"] == "cancelled"
    assert (held["reserved"], held["spent"]) == (6, 6)  # settled: what was delivered is paid, nothing held
