"""The scheduler's sweep: work whose queue message was lost is announced again, and only that work."""

from typing import Any

import psycopg
import pytest

from local.runtime import FunctionRuntime
from tests.support.corpus import MESSAGES
from tests.support.endpoints import Endpoint
from tests.support.harness import Api, Pipeline, scheduler_tick
from tests.support.scenarios import PEOPLE, give_credits, leave_idle, make_campaign, make_group


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

    too_soon = scheduler_tick(runtimes)
    leave_idle(conn, 3)
    swept = scheduler_tick(runtimes)
    pipeline.drain()
    again = scheduler_tick(runtimes)

    assert too_soon["batches_reannounced"] == 0  # its sender may simply not have run yet
    assert swept["batches_reannounced"] == 1
    assert again["batches_reannounced"] == 0
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

        just_due = scheduler_tick(runtimes)
        conn.execute("UPDATE status_callbacks SET next_attempt_at = now() - interval '2 minutes'")
        swept = scheduler_tick(runtimes)
        pipeline.drain()
    finally:
        endpoint.stop()

    assert pending["n"] == 4  # sent and delivered, for each of two messages
    assert just_due["callback_accounts_reannounced"] == 0  # due less than a minute ago: its announcement may come
    assert swept["callback_accounts_reannounced"] == 1
    assert sorted(p["status"] for p in endpoint.payloads()) == ["delivered", "delivered", "sent", "sent"]
    assert conn.execute("SELECT count(*) AS n FROM status_callbacks WHERE status = 'pending'").fetchone()["n"] == 0


def _dispatched_with_its_batches_dead_lettered(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline
) -> str:
    """A six-recipient campaign, dispatched, whose batch descriptors all ended in the dead-letter queue."""
    give_credits(api, admin, user, 100)
    campaign_id = make_campaign(api, user["token"], [make_group(api, user["token"], "all", PEOPLE)])
    api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=user["token"])
    pipeline.pollers["DispatcherFunction"].poll_once()
    pipeline.discard()
    return campaign_id


def test_a_campaign_batch_in_the_dead_letter_queue_is_announced_again_then_expires(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    runtimes: dict[str, FunctionRuntime],
    conn: psycopg.Connection[Any],
) -> None:
    campaign_id = _dispatched_with_its_batches_dead_lettered(api, admin, user, pipeline)
    batches = conn.execute("SELECT count(DISTINCT batch_number) AS n FROM sms_delivery_logs").fetchone()["n"]

    def idle_for(minutes: int) -> dict[str, Any]:
        leave_idle(conn, minutes, "status = 'queued'")
        return scheduler_tick(runtimes)

    not_yet = idle_for(10)  # within the 20-minute horizon: the batches may be in a backlog
    recovered = idle_for(21)
    pipeline.discard()  # ... and again into the dead-letter queue, three times
    for _ in range(2):
        idle_for(21)
        pipeline.discard()
    recoveries = conn.execute("SELECT DISTINCT recoveries FROM sms_delivery_logs").fetchall()
    expired = idle_for(21)
    pipeline.drain()

    assert (not_yet["batches_reannounced"], not_yet["messages_finalised"]) == (0, 0)
    assert recovered["batches_reannounced"] == batches
    assert recoveries == [{"recoveries": 3}]
    assert (expired["batches_reannounced"], expired["messages_finalised"], expired["settled"]) == (0, 6, 1)
    rows = conn.execute("SELECT DISTINCT status, error_code FROM sms_delivery_logs").fetchall()
    assert rows == [{"status": "failed", "error_code": "expired"}]
    campaign = api.request("GET", f"/v1/campaigns/{campaign_id}/stats", token=user["token"]).json()
    assert (campaign["credits_reserved"], campaign["credits_refunded"]) == (6, 6)
    assert api.request("GET", f"/v1/campaigns/{campaign_id}", token=user["token"]).json()["status"] == "completed"


def test_a_recovered_batch_is_sent_once(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    runtimes: dict[str, FunctionRuntime],
    conn: psycopg.Connection[Any],
) -> None:
    campaign_id = _dispatched_with_its_batches_dead_lettered(api, admin, user, pipeline)
    leave_idle(conn, 21)

    scheduler_tick(runtimes)
    pipeline.drain()

    assert api.request("GET", f"/v1/campaigns/{campaign_id}", token=user["token"]).json()["status"] == "completed"
    copies = conn.execute("SELECT count(*) AS n, count(DISTINCT to_number) AS d FROM simulator_messages").fetchone()
    assert (copies["n"], copies["d"]) == (6, 6)


def test_an_api_send_the_sweep_ends_is_settled_by_the_next_tick_when_the_sweep_dies_before_settling_it(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    runtimes: dict[str, FunctionRuntime],
    conn: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sweep ends messages in one transaction and settles their sends after it commits; dying in between
    (a timeout, say) must not keep their credits reserved for good: nothing else would ever settle an API send
    whose messages are all final."""
    from smsplatform.sending import recovery

    give_credits(api, admin, user, 10)
    text = MESSAGES[3][1]
    accepted = api.request(
        "POST", "/v1/messages", token=user["token"], json_body={"to": ["+447400123300", "+447400123301"], "text": text}
    )
    assert accepted.status == 202
    pipeline.discard()  # the descriptor never reached the queue ...
    conn.execute("UPDATE sms_delivery_logs SET recoveries = 3")  # ... and was announced again as often as it may be
    leave_idle(conn, 3)

    def killed(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("the scheduler was killed before it settled")

    monkeypatch.setattr(recovery, "_settle_owed", killed)  # dies once the sweep's transaction has committed
    with pytest.raises(RuntimeError, match="killed"):
        scheduler_tick(runtimes)
    ended = conn.execute("SELECT DISTINCT status, error_code FROM sms_delivery_logs").fetchall()
    credits_meanwhile = _credits(api, user)
    monkeypatch.undo()
    next_tick = scheduler_tick(runtimes)
    again = scheduler_tick(runtimes)

    assert ended == [{"status": "failed", "error_code": "expired"}]  # committed before it died
    assert credits_meanwhile < 10
    assert _credits(api, user) == 10
    assert (next_tick["settled"], again["settled"]) == (1, 0)


def _credits(api: Api, user: dict[str, Any]) -> int:
    return int(api.request("GET", "/v1/users/me", token=user["token"]).json()["sms_credits"])


def test_a_send_whose_settlement_fails_holds_up_no_other_and_is_settled_when_it_can_be(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    runtimes: dict[str, FunctionRuntime],
    conn: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Owed settlements are taken oldest first: one that fails every time must not keep the rest waiting."""
    from smsplatform.billing import settlement

    give_credits(api, admin, user, 10)
    for number, (_, text) in zip(("+447400123300", "+447400123301"), MESSAGES[4:6], strict=True):
        sent = api.request("POST", "/v1/messages", token=user["token"], json_body={"to": [number], "text": text})
        assert sent.status == 202
    pipeline.discard()
    conn.execute("UPDATE sms_delivery_logs SET recoveries = 3")
    leave_idle(conn, 3)
    first = min(row["request_id"] for row in conn.execute("SELECT request_id FROM sms_delivery_logs"))
    real = settlement.settle

    def failing_for_the_first(conn: Any, kind: str, reference_id: Any) -> bool:
        if reference_id == first:
            raise RuntimeError("the ledger refused")
        return real(conn, kind, reference_id)

    monkeypatch.setattr(settlement, "settle", failing_for_the_first)
    stuck = scheduler_tick(runtimes)
    owed = conn.execute("SELECT reference_id FROM settlements_due").fetchall()
    monkeypatch.undo()
    freed = scheduler_tick(runtimes)

    assert stuck["settled"] == 1  # the other send, though the failing one comes first
    assert [row["reference_id"] for row in owed] == [first]
    assert freed["settled"] == 1
    assert _credits(api, user) == 10
    assert conn.execute("SELECT count(*) AS n FROM settlements_due").fetchone()["n"] == 0
