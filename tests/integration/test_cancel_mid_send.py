"""A campaign cancelled while its messages are with a sender: every row still ends final, and every
reserved credit is spent or refunded."""

from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from local.runtime import FunctionRuntime
from smsplatform.sending import sender
from tests.support.harness import Api, Pipeline, scheduler_tick
from tests.support.scenarios import PEOPLE, give_credits, make_campaign, make_group

FLAKY = {"phone_number": "+447400199992"}  # the simulator answers 429 to its first attempt


def _campaign(api: Api, admin: dict[str, Any], user: dict[str, Any]) -> str:
    give_credits(api, admin, user, 100)
    campaign_id = make_campaign(api, user["token"], [make_group(api, user["token"], "all", [*PEOPLE[:3], FLAKY])])
    assert api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=user["token"]).status == 202
    return campaign_id


def _assert_final_and_balanced(api: Api, conn: psycopg.Connection[Any], campaign_id: str, token: str) -> None:
    rows = conn.execute("SELECT status FROM sms_delivery_logs WHERE status IN ('queued', 'sending')").fetchall()
    stats = api.request("GET", f"/v1/campaigns/{campaign_id}/stats", token=token).json()
    assert rows == []
    assert stats["credits_reserved"] == stats["credits_spent"] + stats["credits_refunded"] == 4


def test_a_message_in_flight_that_fails_transiently_after_the_cancel_ends_cancelled_and_refunded(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    conn: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
    configure: Callable[..., None],
) -> None:
    configure(send_batch_size=10, dispatch_workers=1)  # one batch holds them all
    campaign_id = _campaign(api, admin, user)
    real_call = sender.call_provider

    def cancel_then_call(*args: Any, **kwargs: Any) -> Any:
        # The owner cancels while the sender holds the batch: the claimed rows are no longer `queued`.
        assert api.request("POST", f"/v1/campaigns/{campaign_id}/cancel", token=user["token"]).status == 200
        return real_call(*args, **kwargs)

    monkeypatch.setattr(sender, "call_provider", cancel_then_call)
    pipeline.drain()

    flaky = conn.execute(
        "SELECT status, error_code FROM sms_delivery_logs WHERE phone_number = %s", (FLAKY["phone_number"],)
    ).fetchone()
    assert (flaky["status"], flaky["error_code"]) == ("failed", "cancelled")
    campaign = api.request("GET", f"/v1/campaigns/{campaign_id}", token=user["token"]).json()
    assert campaign["status"] == "cancelled"
    _assert_final_and_balanced(api, conn, campaign_id, user["token"])
    stats = api.request("GET", f"/v1/campaigns/{campaign_id}/stats", token=user["token"]).json()
    assert (stats["delivered"], stats["credits_spent"], stats["credits_refunded"]) == (3, 3, 1)


def test_rows_held_by_a_sender_that_died_end_final_once_its_lease_is_over(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    runtimes: dict[str, FunctionRuntime],
    conn: psycopg.Connection[Any],
    configure: Callable[..., None],
) -> None:
    configure(send_batch_size=10, dispatch_workers=1)
    campaign_id = _campaign(api, admin, user)
    pipeline.pollers["DispatcherFunction"].poll_once()
    conn.execute("UPDATE sms_delivery_logs SET status = 'sending', claimed_at = now(), attempts = 1")  # then it died
    pipeline.discard()
    api.request("POST", f"/v1/campaigns/{campaign_id}/cancel", token=user["token"])

    within_lease = scheduler_tick(runtimes)
    held = conn.execute("SELECT count(*) AS n FROM sms_delivery_logs WHERE status = 'sending'").fetchone()["n"]
    conn.execute("UPDATE sms_delivery_logs SET claimed_at = now() - interval '1 hour'")
    after_lease = scheduler_tick(runtimes)
    pipeline.drain()

    assert (within_lease["messages_finalised"], held) == (0, 4)  # the sender may still be at work
    assert after_lease["messages_finalised"] == 4
    codes = conn.execute("SELECT DISTINCT status, error_code FROM sms_delivery_logs").fetchall()
    assert codes == [{"status": "failed", "error_code": "outcome_unknown"}]  # they may have gone out: not resent
    _assert_final_and_balanced(api, conn, campaign_id, user["token"])


def test_cancel_before_any_send_still_refunds_at_once(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    campaign_id = _campaign(api, admin, user)
    pipeline.pollers["DispatcherFunction"].poll_once()

    api.request("POST", f"/v1/campaigns/{campaign_id}/cancel", token=user["token"])
    stopped = conn.execute("SELECT count(*) AS n FROM sms_delivery_logs WHERE error_code = 'cancelled'").fetchone()
    pipeline.drain()  # the batch descriptors still waiting find nothing to claim

    assert stopped["n"] == 4
    _assert_final_and_balanced(api, conn, campaign_id, user["token"])
    assert conn.execute("SELECT count(*) AS n FROM simulator_calls").fetchone()["n"] == 0
