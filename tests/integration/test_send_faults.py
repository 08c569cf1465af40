"""Redeliveries, concurrency and crashes: no recipient gets two messages, no credit is lost or made."""

import threading
from typing import Any

import psycopg
import pytest

from local.runtime import FunctionRuntime
from smsplatform.providers.simulator import Simulator
from smsplatform.sending import sender
from tests.support.harness import Api, Pipeline
from tests.support.scenarios import PEOPLE, balance_of, give_credits, make_campaign, make_group
from tests.support.sqs import sqs_event


def _a_batch(conn: Any) -> tuple[int, int]:
    """The campaign's largest batch (the dispatcher's workers share batch numbers out) and its size."""
    row = conn.execute(
        "SELECT batch_number, count(*) AS n FROM sms_delivery_logs GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1"
    ).fetchone()
    return row["batch_number"], row["n"]


@pytest.fixture
def sent_campaign(api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline) -> dict[str, Any]:
    """A six-recipient campaign, queued (POST /send done), credits 100."""
    give_credits(api, admin, user, 100)
    campaign_id = make_campaign(api, user["token"], [make_group(api, user["token"], "all", PEOPLE)])
    assert api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=user["token"]).status == 202
    return {"id": campaign_id, "token": user["token"]}


def _assert_each_recipient_once_and_balanced(api: Api, conn: psycopg.Connection[Any], campaign: dict[str, Any]) -> None:
    copies = conn.execute("SELECT to_number, count(*) AS n FROM simulator_messages GROUP BY to_number").fetchall()
    stats = api.request("GET", f"/v1/campaigns/{campaign['id']}/stats", token=campaign["token"]).json()
    assert {row["to_number"] for row in copies} == {person["phone_number"] for person in PEOPLE}
    assert all(row["n"] == 1 for row in copies)
    assert stats["total"] == 6
    assert stats["credits_reserved"] == 6
    assert stats["credits_reserved"] == stats["credits_spent"] + stats["credits_refunded"]
    assert balance_of(api, campaign["token"]) == 100 - stats["credits_spent"]


def test_a_release_message_delivered_twice_dispatches_once(
    api: Api, sent_campaign: dict[str, Any], runtimes: dict[str, FunctionRuntime], pipeline: Pipeline, conn: Any
) -> None:
    release = sqs_event({"campaign_id": sent_campaign["id"]})

    runtimes["DispatcherFunction"].invoke(release)
    runtimes["DispatcherFunction"].invoke(release)
    pipeline.drain()

    reserves = conn.execute(
        "SELECT count(*) AS n FROM billing_transactions WHERE transaction_type = 'campaign_reserve'"
    )
    assert reserves.fetchone()["n"] == 1
    _assert_each_recipient_once_and_balanced(api, conn, sent_campaign)


def test_a_batch_delivered_twice_at_once_is_sent_once(
    api: Api, sent_campaign: dict[str, Any], runtimes: dict[str, FunctionRuntime], pipeline: Pipeline, conn: Any
) -> None:
    pipeline.pollers["DispatcherFunction"].poll_once()
    batches = conn.execute("SELECT DISTINCT batch_number FROM sms_delivery_logs ORDER BY 1").fetchall()
    sender_function = runtimes["SenderFunction"]
    results: list[Any] = []

    def deliver(batch: int, copy: int) -> None:
        event = sqs_event({"kind": "campaign", "id": sent_campaign["id"], "batch": batch}, f"m-{batch}-{copy}")
        results.append(sender_function.invoke(event))

    threads = [threading.Thread(target=deliver, args=(row["batch_number"], copy)) for row in batches for copy in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pipeline.drain()

    assert all(result == {"batchItemFailures": []} for result in results)
    assert (
        api.request("GET", f"/v1/campaigns/{sent_campaign['id']}", token=sent_campaign["token"]).json()["status"]
        == "completed"
    )
    _assert_each_recipient_once_and_balanced(api, conn, sent_campaign)


def test_a_crash_between_the_provider_call_and_recording_sends_nothing_twice(
    api: Api,
    sent_campaign: dict[str, Any],
    runtimes: dict[str, FunctionRuntime],
    pipeline: Pipeline,
    conn: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipeline.pollers["DispatcherFunction"].poll_once()
    real_record = sender.record

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the sender's container died")

    batch, in_batch = _a_batch(conn)
    monkeypatch.setattr(sender, "record", crash)
    event = sqs_event({"kind": "campaign", "id": sent_campaign["id"], "batch": batch})
    failed = runtimes["SenderFunction"].invoke(event)
    monkeypatch.setattr(sender, "record", real_record)
    in_doubt = conn.execute("SELECT count(*) AS n FROM sms_delivery_logs WHERE status = 'sending'").fetchone()["n"]
    redelivered_too_soon = runtimes["SenderFunction"].invoke(event)
    still_in_doubt = conn.execute("SELECT count(*) AS n FROM sms_delivery_logs WHERE status = 'sending'")
    conn.execute("UPDATE sms_delivery_logs SET claimed_at = now() - interval '1 hour' WHERE status = 'sending'")
    runtimes["SenderFunction"].invoke(event)  # after the lease: the same ids again, recognised by the provider
    pipeline.drain()

    assert failed["batchItemFailures"] == [{"itemIdentifier": "m-1"}]
    assert in_batch > 0
    assert in_doubt == in_batch  # the batch's rows reached the simulator, then nothing was recorded
    assert redelivered_too_soon == {"batchItemFailures": []}
    assert still_in_doubt.fetchone()["n"] == in_batch
    _assert_each_recipient_once_and_balanced(api, conn, sent_campaign)
    assert (
        api.request("GET", f"/v1/campaigns/{sent_campaign['id']}/stats", token=sent_campaign["token"]).json()[
            "delivered"
        ]
        == 6
    )


def test_without_an_idempotent_provider_an_in_doubt_message_fails_and_is_refunded(
    api: Api,
    sent_campaign: dict[str, Any],
    runtimes: dict[str, FunctionRuntime],
    pipeline: Pipeline,
    conn: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipeline.pollers["DispatcherFunction"].poll_once()
    monkeypatch.setattr(Simulator, "idempotent", False)
    batch, in_batch = _a_batch(conn)
    conn.execute(
        """UPDATE sms_delivery_logs SET status = 'sending', claimed_at = now() - interval '1 hour', attempts = 1
            WHERE batch_number = %s""",
        (batch,),
    )  # a sender claimed batch 0 an hour ago and vanished

    pipeline.drain()

    stats = api.request("GET", f"/v1/campaigns/{sent_campaign['id']}/stats", token=sent_campaign["token"]).json()
    unknown = conn.execute("SELECT count(*) AS n FROM sms_delivery_logs WHERE error_code = 'outcome_unknown'")
    assert in_batch > 0
    assert unknown.fetchone()["n"] == in_batch
    assert (stats["delivered"], stats["failed"]) == (6 - in_batch, in_batch)
    assert (stats["credits_spent"], stats["credits_refunded"]) == (6 - in_batch, in_batch)
    assert conn.execute("SELECT count(*) AS n FROM simulator_messages").fetchone()["n"] == 6 - in_batch
    assert balance_of(api, sent_campaign["token"]) == 100 - (6 - in_batch)
