"""Redeliveries, concurrency, crashes and the faults real providers show: no recipient gets two
messages, no credit is lost or made.

The checks read the simulator's call log and its handsets' copies, which record repeats (the
simulator is not idempotent unless a test says so), so a second send shows here as it would on a phone.
"""

import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from local.runtime import FunctionRuntime
from tests.integration.test_campaign_counters import TEMPLATE
from tests.integration.test_chunked_release import PEOPLE as VOICES
from tests.support.harness import Api, Pipeline
from tests.support.scenarios import PEOPLE, balance_of, give_credits, make_campaign, make_group
from tests.support.sqs import CompressedDelays, sqs_event, sqs_record


def _a_batch(conn: Any) -> tuple[int, int]:
    """The campaign's largest batch (the dispatcher's workers share batch numbers out) and its size."""
    row = conn.execute(
        "SELECT batch_number, count(*) AS n FROM sms_delivery_logs GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1"
    ).fetchone()
    return row["batch_number"], row["n"]


def _calls(conn: Any) -> dict[str, list[str]]:
    """Number -> the outcomes of the calls made for it, in order."""
    rows = conn.execute("SELECT to_number, outcome FROM simulator_calls ORDER BY id").fetchall()
    calls: dict[str, list[str]] = {}
    for row in rows:
        calls.setdefault(row["to_number"], []).append(row["outcome"])
    return calls


def _copies(conn: Any) -> dict[str, int]:
    """Number -> copies its handset received."""
    rows = conn.execute("SELECT to_number, count(*) AS n FROM simulator_messages GROUP BY 1").fetchall()
    return {row["to_number"]: row["n"] for row in rows}


@pytest.fixture
def sent_campaign(api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline) -> dict[str, Any]:
    """A six-recipient campaign, queued (POST /send done), credits 100."""
    give_credits(api, admin, user, 100)
    campaign_id = make_campaign(api, user["token"], [make_group(api, user["token"], "all", PEOPLE)])
    assert api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=user["token"]).status == 202
    return {"id": campaign_id, "token": user["token"]}


def _stats(api: Api, campaign: dict[str, Any]) -> dict[str, Any]:
    return dict(api.request("GET", f"/v1/campaigns/{campaign['id']}/stats", token=campaign["token"]).json())


def _assert_each_recipient_once_and_balanced(api: Api, conn: psycopg.Connection[Any], campaign: dict[str, Any]) -> None:
    stats = _stats(api, campaign)
    assert _copies(conn) == {person["phone_number"]: 1 for person in PEOPLE}
    assert _calls(conn) == {person["phone_number"]: ["accepted"] for person in PEOPLE}
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
    start = threading.Barrier(2 * len(batches))

    def deliver(batch: int, copy: int) -> None:
        event = sqs_event({"kind": "campaign", "id": sent_campaign["id"], "batch": batch}, f"m-{batch}-{copy}")
        start.wait()
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


def test_the_batches_of_one_invocation_are_sent_side_by_side_each_with_its_own_text_once(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    runtimes: dict[str, FunctionRuntime],
    pipeline: Pipeline,
    conn: Any,
    monkeypatch: pytest.MonkeyPatch,
    configure: Callable[..., None],
) -> None:
    from smsplatform.sending import sender

    # One release worker and two recipients a batch make exactly four batches: with several workers each takes
    # the contacts whose random ids fall in its share, and the batch count would vary from run to run.
    configure(dispatch_workers=1, send_batch_size=2)
    # Real text of 1 to 4 segments (emoji, Arabic, Hebrew, %, quotes), so a batch recording another's results
    # or sending another's bodies would show on the handsets and in the credits.
    give_credits(api, admin, user, 200)
    people = VOICES[:8]
    campaign_id = make_campaign(api, user["token"], [make_group(api, user["token"], "all", people)], TEMPLATE)
    assert api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=user["token"]).status == 202
    pipeline.pollers["DispatcherFunction"].poll_once()
    batches = [row["batch_number"] for row in conn.execute("SELECT DISTINCT batch_number FROM sms_delivery_logs")]
    assert len(batches) == 4  # BatchSize records at most, as SQS hands them over
    # Each batch's provider calls start only once every batch of the invocation has claimed its rows: a
    # handler that took its records one after another would break the barrier and fail them.
    together = threading.Barrier(len(batches), timeout=15)
    call_provider = sender.call_provider

    def side_by_side(*args: Any, **kwargs: Any) -> Any:
        together.wait()
        return call_provider(*args, **kwargs)

    monkeypatch.setattr(sender, "call_provider", side_by_side)
    event = {
        "Records": [
            sqs_record({"kind": "campaign", "id": campaign_id, "batch": batch}, f"m-{batch}") for batch in batches
        ]
    }

    assert runtimes["SenderFunction"].invoke(event) == {"batchItemFailures": []}
    pipeline.drain()

    assert api.request("GET", f"/v1/campaigns/{campaign_id}", token=user["token"]).json()["status"] == "completed"
    written = conn.execute("SELECT phone_number, body, cost FROM sms_delivery_logs WHERE status = 'delivered'")
    rows = {row["phone_number"]: row["body"] for row in written.fetchall()}
    handsets = conn.execute("SELECT to_number, body FROM simulator_messages").fetchall()
    assert len(handsets) == len(rows) == len(people)  # one copy each
    assert {row["to_number"]: row["body"] for row in handsets} == rows  # each its own text
    assert _calls(conn) == {person["phone_number"]: ["accepted"] for person in people}
    stats = _stats(api, {"id": campaign_id, "token": user["token"]})
    assert stats["credits_spent"] == stats["credits_reserved"] > len(people)  # multi-segment: credits, not counts
    assert balance_of(api, user["token"]) == 200 - stats["credits_spent"]


def test_a_sender_claiming_a_batch_another_holds_gets_none_of_its_rows_and_does_not_wait(
    sent_campaign: dict[str, Any], pipeline: Pipeline, conn: Any, database_url: str
) -> None:
    from smsplatform.core.config import get_settings
    from smsplatform.sending import sender

    pipeline.pollers["DispatcherFunction"].poll_once()
    batch, in_batch = _a_batch(conn)
    second: list[Any] = []
    with (
        psycopg.connect(database_url, row_factory=dict_row) as one,
        psycopg.connect(database_url, row_factory=dict_row) as two,
    ):
        with one.transaction():  # the first sender's claim is not committed yet
            first = sender.claim(one, "campaign", sent_campaign["id"], batch, get_settings())
            other = threading.Thread(
                target=lambda: second.extend(sender.claim(two, "campaign", sent_campaign["id"], batch, get_settings()))
            )
            other.start()
            other.join(timeout=5)
            waited = other.is_alive()
        other.join()

    assert len(first) == in_batch > 0
    assert not waited  # SKIP LOCKED: it moves on rather than queue behind the first
    assert {c.id for c in first} & {c.id for c in second} == set()


def _crash_after_the_calls(
    sent_campaign: dict[str, Any],
    runtimes: dict[str, FunctionRuntime],
    pipeline: Pipeline,
    conn: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[int, dict[str, Any]]:
    """Sends one batch whose sender dies after the provider took it, before recording; returns its size
    and the redelivered descriptor's event. The rows stay `sending` until their lease ends."""
    from smsplatform.sending import sender

    pipeline.pollers["DispatcherFunction"].poll_once()
    batch, in_batch = _a_batch(conn)
    event = sqs_event({"kind": "campaign", "id": sent_campaign["id"], "batch": batch})
    with monkeypatch.context() as patch:
        patch.setattr(sender, "record", lambda *args, **kwargs: (_ for _ in ()).throw(RuntimeError("container died")))
        failed = runtimes["SenderFunction"].invoke(event)
    assert failed["batchItemFailures"] == [{"itemIdentifier": "m-1"}]
    in_doubt = conn.execute("SELECT count(*) AS n FROM sms_delivery_logs WHERE status = 'sending'").fetchone()["n"]
    assert in_doubt == in_batch > 0  # the batch's rows reached the simulator, then nothing was recorded
    assert runtimes["SenderFunction"].invoke(event) == {"batchItemFailures": []}  # redelivered within the lease
    assert conn.execute("SELECT count(*) AS n FROM sms_delivery_logs WHERE status = 'sending'").fetchone()["n"] == (
        in_batch
    )
    # Every other batch goes, and each sender that finds nothing left tries to settle: nothing settles while a
    # sender may hold messages.
    pipeline.drain()
    status = conn.execute("SELECT status FROM sms_campaigns WHERE id = %s", (sent_campaign["id"],)).fetchone()
    assert status["status"] == "sending"
    conn.execute("UPDATE sms_delivery_logs SET claimed_at = now() - interval '1 hour' WHERE status = 'sending'")
    return in_batch, event


def test_after_a_crash_between_the_call_and_recording_nothing_is_sent_again_and_the_unknown_is_refunded(
    api: Api,
    sent_campaign: dict[str, Any],
    runtimes: dict[str, FunctionRuntime],
    pipeline: Pipeline,
    conn: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    in_batch, event = _crash_after_the_calls(sent_campaign, runtimes, pipeline, conn, monkeypatch)

    runtimes["SenderFunction"].invoke(event)  # after the lease: reclaimed, and not resent
    pipeline.drain()

    stats = _stats(api, sent_campaign)
    unknown = conn.execute("SELECT count(*) AS n FROM sms_delivery_logs WHERE error_code = 'outcome_unknown'")
    assert unknown.fetchone()["n"] == in_batch
    _assert_each_recipient_once_and_balanced(api, conn, sent_campaign)  # one call each: none repeated
    assert (stats["delivered"], stats["failed"]) == (6 - in_batch, in_batch)
    assert (stats["credits_spent"], stats["credits_refunded"]) == (6 - in_batch, in_batch)


def test_with_an_idempotent_provider_a_message_in_doubt_is_resent_under_its_id_and_arrives_once(
    api: Api,
    sent_campaign: dict[str, Any],
    runtimes: dict[str, FunctionRuntime],
    pipeline: Pipeline,
    conn: Any,
    monkeypatch: pytest.MonkeyPatch,
    configure: Callable[..., None],
) -> None:
    configure(simulator_idempotent=True)
    in_batch, event = _crash_after_the_calls(sent_campaign, runtimes, pipeline, conn, monkeypatch)

    runtimes["SenderFunction"].invoke(event)
    pipeline.drain()

    calls = _calls(conn)
    assert sorted(len(outcomes) for outcomes in calls.values()) == [1] * (6 - in_batch) + [2] * in_batch
    assert all(outcomes in (["accepted"], ["accepted", "repeat"]) for outcomes in calls.values())
    assert _copies(conn) == {person["phone_number"]: 1 for person in PEOPLE}
    stats = _stats(api, sent_campaign)
    assert (stats["delivered"], stats["credits_spent"], stats["credits_refunded"]) == (6, 6, 0)


# One number per fault the simulator models (the suffixes in Settings.simulator_rules).
FAULTY = {
    "+447400199990": "reject",
    "+447400199991": "throttle",
    "+447400199992": "flaky",
    "+447400199993": "undelivered",
    "+447400199994": "ambiguous",
    "+447400199995": "timeout",
    "+447400199996": "slow",
    "+447400199997": "deliver",
}


@pytest.mark.parametrize("idempotent", [False, True], ids=["provider-not-idempotent", "provider-idempotent"])
def test_every_provider_fault_ends_final_with_at_most_one_copy_each(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    conn: Any,
    configure: Callable[..., None],
    idempotent: bool,
) -> None:
    configure(simulator_idempotent=idempotent)
    give_credits(api, admin, user, 100)
    people = [{"phone_number": number} for number in FAULTY]
    campaign = {"id": make_campaign(api, user["token"], [make_group(api, user["token"], "faults", people)])}
    campaign["token"] = user["token"]
    assert api.request("POST", f"/v1/campaigns/{campaign['id']}/send", token=user["token"]).status == 202

    pipeline.drain()

    rows = conn.execute("SELECT phone_number, status, error_code, attempts FROM sms_delivery_logs").fetchall()
    final = {FAULTY[row["phone_number"]]: (row["status"], row["error_code"]) for row in rows}
    calls = {FAULTY[number]: outcomes for number, outcomes in _calls(conn).items()}
    copies = {FAULTY[number]: n for number, n in _copies(conn).items()}
    in_doubt_final = ("delivered", None) if idempotent else ("failed", "outcome_unknown")
    in_doubt_calls = ["repeat"] if idempotent else []
    assert final == {
        "reject": ("failed", "SIM-21211"),
        "throttle": ("failed", "SIM-20429"),
        "flaky": ("delivered", None),
        "undelivered": ("undelivered", "SIM-30003"),
        "ambiguous": in_doubt_final,
        "timeout": in_doubt_final,
        "slow": ("delivered", None),
        "deliver": ("delivered", None),
    }
    assert calls == {
        "reject": ["rejected"],
        "throttle": ["throttled"] * 5,  # send_max_attempts
        "flaky": ["throttled", "accepted"],
        "undelivered": ["accepted"],
        "ambiguous": ["ambiguous", *in_doubt_calls],
        "timeout": ["timeout", *in_doubt_calls],
        "slow": ["accepted"],
        "deliver": ["accepted"],
    }
    # Whatever the provider answered, a handset has at most one copy: the in-doubt ones got theirs at once.
    assert copies == dict.fromkeys(["flaky", "undelivered", "ambiguous", "timeout", "slow", "deliver"], 1)
    stats = _stats(api, campaign)
    spent = 6 if idempotent else 4  # sent and undelivered are paid; failed (and unknown) are refunded
    assert (stats["credits_reserved"], stats["credits_spent"], stats["credits_refunded"]) == (8, spent, 8 - spent)
    assert balance_of(api, user["token"]) == 100 - spent


def test_a_throttled_batch_comes_back_after_the_providers_retry_after_or_the_backoff_if_longer(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    conn: Any,
    configure: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    delays = CompressedDelays(monkeypatch)  # recorded, not waited for
    give_credits(api, admin, user, 100)
    group = make_group(api, user["token"], "flaky", [{"phone_number": "+447400199992"}])
    configure(simulator_retry_after_seconds=7, send_retry_base_seconds=0)
    first = make_campaign(api, user["token"], [group])
    api.request("POST", f"/v1/campaigns/{first}/send", token=user["token"])
    pipeline.drain()
    configure(simulator_retry_after_seconds=7, send_retry_base_seconds=30)
    second = make_campaign(api, user["token"], [group])
    api.request("POST", f"/v1/campaigns/{second}/send", token=user["token"])
    pipeline.drain()

    assert delays.delays("send") == [7, 30]  # Retry-After when it is longer; the first backoff step when that is
    statuses = conn.execute("SELECT status, attempts FROM sms_delivery_logs").fetchall()
    assert statuses == [{"status": "delivered", "attempts": 2}] * 2
