"""The scheduler's sweep: work whose queue message was lost is announced again, and only that work."""

import json
from typing import Any

import psycopg

from local.runtime import FunctionRuntime
from tests.integration.test_status_callbacks import Endpoint
from tests.support.harness import Api, Pipeline
from tests.support.paths import ROOT
from tests.support.scenarios import PEOPLE, give_credits, make_campaign, make_group

SCHEDULE = json.loads((ROOT / "events" / "scheduler" / "schedule.json").read_text())


def _tick(runtimes: dict[str, FunctionRuntime]) -> dict[str, Any]:
    return dict(runtimes["SchedulerFunction"].invoke(SCHEDULE))


def test_an_api_send_whose_batch_message_was_lost_is_sent_by_the_sweep_once(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    runtimes: dict[str, FunctionRuntime],
    conn: psycopg.Connection[Any],
) -> None:
    give_credits(api, admin, user, 10)
    accepted = api.request(
        "POST", "/v1/messages", token=user["token"], json_body={"to": ["+447400123300", "+447400123301"], "text": "Hi"}
    )
    assert accepted.status == 202
    pipeline.discard()  # the descriptor never reached the queue

    too_soon = _tick(runtimes)
    conn.execute("UPDATE sms_delivery_logs SET updated_at = now() - interval '3 minutes'")
    swept = _tick(runtimes)
    pipeline.drain()
    again = _tick(runtimes)

    assert too_soon["requests_reannounced"] == 0  # its sender may simply not have run yet
    assert swept["requests_reannounced"] == 1
    assert again["requests_reannounced"] == 0
    statuses = conn.execute("SELECT status FROM sms_delivery_logs").fetchall()
    assert [row["status"] for row in statuses] == ["delivered", "delivered"]
    copies = conn.execute("SELECT to_number, count(*) AS n FROM simulator_messages GROUP BY 1 ORDER BY 1").fetchall()
    assert copies == [{"to_number": "+447400123300", "n": 1}, {"to_number": "+447400123301", "n": 1}]


def test_callbacks_whose_announcement_was_lost_are_delivered_after_the_sweep(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    runtimes: dict[str, FunctionRuntime],
    conn: psycopg.Connection[Any],
) -> None:
    endpoint = Endpoint()
    try:
        give_credits(api, admin, user, 10)
        api.request("PUT", "/v1/status-callback", token=user["token"], json_body={"url": endpoint.url})
        campaign_id = make_campaign(api, user["token"], [make_group(api, user["token"], "two", PEOPLE[:2])])
        api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=user["token"])
        callbacks = pipeline.pollers.pop("CallbacksFunction")
        try:
            pipeline.drain()  # everything but the callbacks function
        finally:
            pipeline.pollers["CallbacksFunction"] = callbacks
        pipeline.discard()  # the accounts' announcements are lost
        pending = conn.execute("SELECT count(*) AS n FROM status_callbacks WHERE status = 'pending'").fetchone()

        just_due = _tick(runtimes)
        conn.execute("UPDATE status_callbacks SET next_attempt_at = now() - interval '2 minutes'")
        swept = _tick(runtimes)
        pipeline.drain()
    finally:
        endpoint.stop()

    assert pending["n"] == 4  # sent and delivered, for each of two messages
    assert just_due["callback_accounts_reannounced"] == 0  # due less than a minute ago: its announcement may come
    assert swept["callback_accounts_reannounced"] == 1
    assert sorted(p["status"] for p in endpoint.payloads()) == ["delivered", "delivered", "sent", "sent"]
    assert conn.execute("SELECT count(*) AS n FROM status_callbacks WHERE status = 'pending'").fetchone()["n"] == 0
