"""A campaign larger than one release chunk is released in chunks (ADR 0013): its first batches are sent while
the rest of its audience is still being materialised, and every guarantee of the whole release holds: each
recipient gets one message, the campaign cannot complete early, a dispatcher that dies resumes without a
duplicate, a short balance sends and charges nothing beyond what was reserved, and a cancel stops the release.

The audience is real text of 1 to 4 segments (emoji, Arabic, Hebrew, `%`, quotes, backslashes), so the
credits checked are not just message counts.
"""

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from local.runtime import FunctionRuntime
from smsplatform.sending import dispatch
from tests.integration.test_campaign_counters import NOTES, TEMPLATE
from tests.support.harness import Api, Pipeline, scheduler_tick
from tests.support.scenarios import balance_of, give_credits, make_campaign, make_group
from tests.support.sqs import sqs_event

PEOPLE = [
    {
        "phone_number": f"+4474001250{n:02d}",
        "first_name": ["Ann", "Émile", "Zoë", "أحمد", "דנה", "O'Neil"][n % 6],
        "custom_fields": {"note": NOTES[n % len(NOTES)]} if n % 3 else {},
    }
    for n in range(36)
]


def _chunked(configure: Callable[..., None]) -> None:
    # Two workers, batches of 2, chunks growing 2 -> 6 per worker: several chunks each.
    configure(send_batch_size=2, dispatch_workers=2, release_chunk_rows=6)


def _campaign(api: Api, admin: dict[str, Any], user: dict[str, Any], credits: int = 500, **extra: Any) -> str:
    give_credits(api, admin, user, credits)
    group = make_group(api, user["token"], "all", PEOPLE)
    campaign_id = make_campaign(api, user["token"], [group], TEMPLATE, **extra)
    assert api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=user["token"]).status == 202
    return campaign_id


def _ledger(conn: psycopg.Connection[Any], campaign_id: str) -> dict[str, int]:
    row = conn.execute(
        """SELECT coalesce(-sum(credits) FILTER (WHERE transaction_type = 'campaign_reserve'), 0)::int AS reserved,
                  coalesce(sum(settled_credits) FILTER (WHERE transaction_type = 'campaign_spend'), 0)::int AS spent,
                  coalesce(sum(credits) FILTER (WHERE transaction_type = 'campaign_refund'), 0)::int AS refunded
             FROM billing_transactions WHERE reference_id = %s""",
        (campaign_id,),
    ).fetchone()
    return dict(row)


def _accepted_cost(conn: psycopg.Connection[Any], campaign_id: str) -> int:
    row = conn.execute(
        """SELECT coalesce(sum(cost), 0)::int AS n FROM sms_delivery_logs
            WHERE campaign_id = %s AND status IN ('sent', 'delivered', 'undelivered')""",
        (campaign_id,),
    ).fetchone()
    return int(row["n"])


def _send_the_first_batches_at_once(
    monkeypatch: pytest.MonkeyPatch, pipeline: Pipeline, then: Callable[[], None] = lambda: None
) -> None:
    """A sender takes the first announced batches while the dispatcher goes on (as concurrent Lambdas would);
    `then` runs after it."""
    real_announce = dispatch._announce
    once = threading.Lock()  # the workers announce from their own threads

    def announce_then_send(*args: Any) -> Any:
        announced = real_announce(*args)
        if args[2] and once.acquire(blocking=False):
            pipeline.pollers["SenderFunction"].poll_once()
            then()
        return announced

    monkeypatch.setattr(dispatch, "_announce", announce_then_send)


def _dispatcher_dies_at_chunk(
    n: int, campaign_id: str, runtimes: dict[str, FunctionRuntime], monkeypatch: pytest.MonkeyPatch
) -> Any:
    """The dispatcher's Lambda dies as it starts its n-th chunk (the earlier ones are committed and announced)."""
    real_chunk = dispatch._chunk
    calls = []

    def dies(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == n:
            raise RuntimeError("killed")
        return real_chunk(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(dispatch, "_chunk", dies)
        return runtimes["DispatcherFunction"].invoke(sqs_event({"campaign_id": campaign_id}))


def _released_in_part(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    runtimes: dict[str, FunctionRuntime],
    conn: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
    configure: Callable[..., None],
) -> tuple[str, int]:
    """A chunked campaign whose dispatcher died at its third chunk, what it announced sent: (its id, the rows
    materialised)."""
    _chunked(configure)
    campaign_id = _campaign(api, admin, user)
    pipeline.discard()
    _dispatcher_dies_at_chunk(3, campaign_id, runtimes, monkeypatch)
    pipeline.drain()
    return campaign_id, conn.execute("SELECT count(*) AS n FROM sms_delivery_logs").fetchone()["n"]


def _release_ended(conn: psycopg.Connection[Any], status: str, materialised: int) -> None:
    """Stopped with `status`, no longer releasing, its total what was materialised and its progress rows gone."""
    row = conn.execute("SELECT status, releasing, total_recipients FROM sms_campaigns").fetchone()
    assert (row["status"], row["releasing"], row["total_recipients"]) == (status, False, materialised)
    assert conn.execute("SELECT count(*) AS n FROM campaign_release_shares").fetchone()["n"] == 0


def _completed_once_each(api: Api, conn: psycopg.Connection[Any], token: str, campaign_id: str, expected: int) -> None:
    """Completed with `expected` recipients, one row and at most one handset copy each, charged exactly."""
    campaign = api.request("GET", f"/v1/campaigns/{campaign_id}", token=token).json()
    assert (campaign["status"], campaign["total_recipients"]) == ("completed", expected)
    rows = conn.execute("SELECT count(*) AS n, count(DISTINCT recipient_id) AS d FROM sms_delivery_logs").fetchone()
    calls = conn.execute("SELECT count(*) AS n, count(DISTINCT to_number) AS d FROM simulator_messages").fetchone()
    assert (rows["n"], rows["d"]) == (expected, expected)
    assert calls["n"] == calls["d"]  # no handset got a second copy
    spent = _accepted_cost(conn, campaign_id)
    assert spent > expected  # multi-segment text: credits are not counts
    assert _ledger(conn, campaign_id) == {"reserved": spent, "spent": spent, "refunded": 0}  # each chunk exactly


def test_the_first_batches_are_sent_while_the_audience_is_still_being_released(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    conn: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
    configure: Callable[..., None],
) -> None:
    _chunked(configure)
    configure(dispatch_workers=1)  # while the sender works, nothing else is materialised: all it sees is sent
    campaign_id = _campaign(api, admin, user)
    seen: list[dict[str, Any]] = []

    def look() -> None:
        seen.append(
            conn.execute(
                """SELECT c.status, c.releasing, count(*) FILTER (WHERE l.status = 'sent') AS sent, count(l.id) AS rows
                     FROM sms_campaigns c LEFT JOIN sms_delivery_logs l ON l.campaign_id = c.id
                    WHERE c.id = %s GROUP BY c.id""",
                (campaign_id,),
            ).fetchone()
        )

    _send_the_first_batches_at_once(monkeypatch, pipeline, look)
    pipeline.pollers["DispatcherFunction"].poll_once()
    released = conn.execute("SELECT releasing, total_recipients FROM sms_campaigns").fetchone()
    pipeline.drain()

    first = seen[0]
    assert (first["status"], first["releasing"]) == ("sending", True)  # not completed by its first batches
    assert 0 < first["sent"] == first["rows"] < len(PEOPLE)  # all sent before the rest was materialised
    assert (released["releasing"], released["total_recipients"]) == (False, len(PEOPLE))
    _completed_once_each(api, conn, user["token"], campaign_id, len(PEOPLE))
    numbers = conn.execute("SELECT batch_number, count(*) AS n FROM sms_delivery_logs GROUP BY 1").fetchall()
    assert all(row["n"] <= 2 for row in numbers)  # no two chunks numbered the same batch
    assert conn.execute("SELECT count(*) AS n FROM campaign_release_shares").fetchone()["n"] == 0


def test_a_dispatcher_that_dies_mid_release_is_resumed_by_the_scheduler_without_a_duplicate(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    runtimes: dict[str, FunctionRuntime],
    conn: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
    configure: Callable[..., None],
) -> None:
    _chunked(configure)
    # Windowed in each recipient's own zone (UK numbers: open from an hour ago for three hours), with a validity
    # period: each chunk reads its recipients' zones and writes their windows.
    local = datetime.now(ZoneInfo("Europe/London"))
    hours = {"start": f"{(local.hour - 1) % 24:02d}:00", "end": f"{(local.hour + 2) % 24:02d}:00"}
    window = {"send_window": {**hours, "timezone": "recipient"}, "validity_period": 86_400}
    campaign_id = _campaign(api, admin, user, settings=window)
    pipeline.discard()
    crashed = _dispatcher_dies_at_chunk(4, campaign_id, runtimes, monkeypatch)
    left = conn.execute("SELECT count(*) AS n FROM sms_delivery_logs").fetchone()["n"]
    pipeline.drain()  # the batches it announced are sent; the campaign cannot complete while releasing
    midway = conn.execute("SELECT status, releasing FROM sms_campaigns").fetchone()
    live = scheduler_tick(runtimes)  # within two minutes of its progress: not announced again
    conn.execute("UPDATE campaign_release_shares SET updated_at = now() - interval '3 minutes'")
    conn.execute("UPDATE sms_campaigns SET announced_at = now() - interval '3 minutes'")
    scheduler_tick(runtimes)
    pipeline.drain()

    assert crashed == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert 0 < left < len(PEOPLE)
    assert (midway["status"], midway["releasing"]) == ("sending", True)
    assert live["campaigns_released"] == 0
    _completed_once_each(api, conn, user["token"], campaign_id, len(PEOPLE))
    statuses = conn.execute(
        "SELECT DISTINCT status, window_zone IS NOT NULL AS zoned, expires_at IS NOT NULL AS expiring"
        " FROM sms_delivery_logs"
    ).fetchall()
    assert statuses == [{"status": "delivered", "zoned": True, "expiring": True}]


def test_a_balance_that_runs_short_mid_release_sends_and_charges_nothing_beyond_what_was_reserved(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    conn: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
    configure: Callable[..., None],
) -> None:
    _chunked(configure)
    campaign_id = _campaign(api, admin, user, credits=30)  # the whole audience costs several times more
    _send_the_first_batches_at_once(monkeypatch, pipeline)

    pipeline.drain()

    campaign = api.request("GET", f"/v1/campaigns/{campaign_id}", token=user["token"]).json()
    assert campaign["status"] == "failed"
    assert campaign["failure_reason"].startswith("Not enough credits")
    assert 0 < campaign["total_recipients"] < len(PEOPLE)
    ledger = _ledger(conn, campaign_id)
    spent = _accepted_cost(conn, campaign_id)
    assert 0 < spent <= ledger["reserved"] <= 30
    assert ledger["spent"] == spent
    assert ledger["reserved"] == ledger["spent"] + ledger["refunded"]
    assert balance_of(api, user["token"]) == 30 - spent
    rows = conn.execute("SELECT status, error_code, count(*) AS n FROM sms_delivery_logs GROUP BY 1, 2").fetchall()
    assert {(row["status"], row["error_code"]) for row in rows} <= {("delivered", None), ("failed", "cancelled")}
    sent = conn.execute("SELECT count(*) AS n FROM simulator_messages").fetchone()["n"]
    assert (
        sent == conn.execute("SELECT count(*) AS n FROM sms_delivery_logs WHERE status = 'delivered'").fetchone()["n"]
    )


def test_a_balance_short_of_the_first_chunk_sends_and_charges_nothing(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    conn: psycopg.Connection[Any],
    configure: Callable[..., None],
) -> None:
    _chunked(configure)
    campaign_id = _campaign(api, admin, user, credits=1)

    pipeline.drain()

    campaign = api.request("GET", f"/v1/campaigns/{campaign_id}", token=user["token"]).json()
    assert (campaign["status"], campaign["failure_reason"][:17]) == ("failed", "Not enough credit")
    assert conn.execute("SELECT count(*) AS n FROM simulator_calls").fetchone()["n"] == 0
    assert _ledger(conn, campaign_id)["reserved"] == 0
    assert balance_of(api, user["token"]) == 1


def test_a_cancel_mid_release_stops_it_and_refunds_everything_unsent(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    conn: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
    configure: Callable[..., None],
) -> None:
    _chunked(configure)
    campaign_id = _campaign(api, admin, user)
    cancelled = []
    _send_the_first_batches_at_once(
        monkeypatch,
        pipeline,
        lambda: cancelled.append(
            api.request("POST", f"/v1/campaigns/{campaign_id}/cancel", token=user["token"]).status
        ),
    )
    pipeline.drain()

    assert cancelled == [200]
    campaign = api.request("GET", f"/v1/campaigns/{campaign_id}", token=user["token"]).json()
    assert campaign["status"] == "cancelled"
    rows = conn.execute("SELECT count(*) AS n FROM sms_delivery_logs").fetchone()["n"]
    assert rows < len(PEOPLE)  # the release stopped: the rest was never materialised
    open_rows = conn.execute("SELECT count(*) AS n FROM sms_delivery_logs WHERE status IN ('queued', 'sending')")
    assert open_rows.fetchone()["n"] == 0
    spent = _accepted_cost(conn, campaign_id)
    ledger = _ledger(conn, campaign_id)
    assert spent > 0
    assert ledger["spent"] == spent
    assert ledger["reserved"] == ledger["spent"] + ledger["refunded"]


def test_a_release_that_never_resumes_fails_and_keeps_what_it_sent_charged(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    runtimes: dict[str, FunctionRuntime],
    conn: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
    configure: Callable[..., None],
) -> None:
    campaign_id, _ = _released_in_part(api, admin, user, pipeline, runtimes, conn, monkeypatch, configure)
    delivered = conn.execute("SELECT count(*) AS n FROM sms_delivery_logs WHERE status = 'delivered'").fetchone()["n"]
    conn.execute("UPDATE campaign_release_shares SET updated_at = now() - interval '1 hour'")
    conn.execute("UPDATE sms_campaigns SET announced_at = now() - interval '1 hour', release_attempts = 5")
    scheduler_tick(runtimes)  # its last announcement is spent: it fails, and is stopped and settled at once

    campaign = api.request("GET", f"/v1/campaigns/{campaign_id}", token=user["token"]).json()
    assert campaign["status"] == "failed"
    assert delivered > 0
    kept = conn.execute("SELECT count(*) AS n FROM sms_delivery_logs WHERE status = 'delivered'").fetchone()["n"]
    assert kept == delivered  # its sent messages stay on record, charged
    spent = _accepted_cost(conn, campaign_id)
    assert _ledger(conn, campaign_id) == {"reserved": spent, "spent": spent, "refunded": 0}


def test_a_release_out_of_time_hands_the_rest_to_a_fresh_release_message(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    conn: psycopg.Connection[Any],
    configure: Callable[..., None],
) -> None:
    _chunked(configure)
    configure(release_seconds=0)  # each invocation: one chunk a range, then the rest under a new message
    campaign_id = _campaign(api, admin, user)

    invocations = 0
    while pipeline.pollers["DispatcherFunction"].poll_once():
        invocations += 1
        assert conn.execute("SELECT release_attempts FROM sms_campaigns").fetchone()["release_attempts"] == 1
    pipeline.drain()

    assert invocations > 3  # a chunk a range each time: 36 recipients in chunks of 2, 6, 6 ... over 2 ranges
    _completed_once_each(api, conn, user["token"], campaign_id, len(PEOPLE))


def test_overlapping_groups_and_opted_out_members_are_released_in_chunks_once_each(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    conn: psycopg.Connection[Any],
    configure: Callable[..., None],
) -> None:
    # A chunk is the next members of the target groups, read group by group: a contact in both groups is one
    # recipient, and members left out (opted out) neither end a range early nor take a row.
    _chunked(configure)
    give_credits(api, admin, user, 500)
    groups = [make_group(api, user["token"], "first", PEOPLE[:24]), make_group(api, user["token"], "last", PEOPLE[12:])]
    for person in PEOPLE[::5]:
        api.request("POST", "/v1/opt-outs", token=user["token"], json_body={"phone_number": person["phone_number"]})
    campaign_id = make_campaign(api, user["token"], groups, TEMPLATE)
    assert api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=user["token"]).status == 202

    pipeline.drain()

    expected = {person["phone_number"] for person in PEOPLE} - {person["phone_number"] for person in PEOPLE[::5]}
    _completed_once_each(api, conn, user["token"], campaign_id, len(expected))
    numbers = conn.execute("SELECT phone_number FROM sms_delivery_logs").fetchall()
    assert {row["phone_number"] for row in numbers} == expected


def test_a_cancel_after_its_dispatcher_died_ends_the_release_and_settles(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    runtimes: dict[str, FunctionRuntime],
    conn: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
    configure: Callable[..., None],
) -> None:
    # Nobody resumes a cancelled campaign's release, so the cancel itself ends it: the campaign must not stay
    # `releasing` with its progress rows for good, and its total is what was materialised.
    campaign_id, materialised = _released_in_part(api, admin, user, pipeline, runtimes, conn, monkeypatch, configure)

    assert api.request("POST", f"/v1/campaigns/{campaign_id}/cancel", token=user["token"]).status == 200
    pipeline.drain()

    _release_ended(conn, "cancelled", materialised)
    assert 0 < materialised < len(PEOPLE)
    spent = _accepted_cost(conn, campaign_id)
    assert spent > materialised  # multi-segment text
    assert _ledger(conn, campaign_id) == {"reserved": spent, "spent": spent, "refunded": 0}


def test_closing_the_account_mid_release_ends_the_release_and_settles(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    runtimes: dict[str, FunctionRuntime],
    conn: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
    configure: Callable[..., None],
) -> None:
    campaign_id, materialised = _released_in_part(api, admin, user, pipeline, runtimes, conn, monkeypatch, configure)

    closing = {"account_status": "closed"}
    closed = api.request("PATCH", f"/v1/users/{user['id']}", token=admin["token"], json_body=closing)
    assert closed.status == 200, closed.body
    pipeline.drain()

    _release_ended(conn, "cancelled", materialised)
    ledger = _ledger(conn, campaign_id)
    assert ledger["reserved"] == ledger["spent"] + ledger["refunded"] > 0
