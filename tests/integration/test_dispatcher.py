"""The dispatcher: a crash mid-dispatch starts over cleanly, an audience of nobody fails the campaign, and
workers number their batches without colliding."""

import math
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from local.runtime import FunctionRuntime
from smsplatform.billing import ledger
from tests.support.harness import Api, Pipeline
from tests.support.scenarios import PEOPLE, give_credits, make_campaign, make_group
from tests.support.sqs import sqs_event


def _campaign(api: Api, admin: dict[str, Any], user: dict[str, Any], people: list[dict[str, Any]]) -> str:
    give_credits(api, admin, user, 100)
    campaign_id = make_campaign(api, user["token"], [make_group(api, user["token"], "audience", people)])
    assert api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=user["token"]).status == 202
    return campaign_id


def test_a_dispatcher_that_dies_after_materialising_starts_over_and_sends_each_recipient_once(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    runtimes: dict[str, FunctionRuntime],
    conn: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    campaign_id = _campaign(api, admin, user, PEOPLE)
    pipeline.discard()
    release = sqs_event({"campaign_id": campaign_id})

    with monkeypatch.context() as patch:
        patch.setattr(ledger, "reserve", lambda *args, **kwargs: (_ for _ in ()).throw(RuntimeError("killed")))
        crashed = runtimes["DispatcherFunction"].invoke(release)
    left = conn.execute("SELECT count(*) AS n FROM sms_delivery_logs").fetchone()["n"]
    status = conn.execute("SELECT status FROM sms_campaigns").fetchone()["status"]
    reserved = conn.execute("SELECT count(*) AS n FROM billing_transactions WHERE reference_id = %s", (campaign_id,))
    reserved_while_crashed = reserved.fetchone()["n"]
    retried = runtimes["DispatcherFunction"].invoke(release)
    pipeline.drain()

    assert crashed == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert left == 6  # the workers had committed their shares; nothing could send them (not `sending`)
    assert (status, reserved_while_crashed) == ("queued", 0)
    assert retried == {"batchItemFailures": []}
    rows = conn.execute("SELECT phone_number, status FROM sms_delivery_logs").fetchall()
    assert sorted(row["phone_number"] for row in rows) == sorted(p["phone_number"] for p in PEOPLE)  # no leftovers
    assert {row["status"] for row in rows} == {"delivered"}
    copies = conn.execute("SELECT count(*) AS n, count(DISTINCT to_number) AS d FROM simulator_messages").fetchone()
    assert (copies["n"], copies["d"]) == (6, 6)
    stats = api.request("GET", f"/v1/campaigns/{campaign_id}/stats", token=user["token"]).json()
    assert (stats["credits_reserved"], stats["credits_spent"], stats["credits_refunded"]) == (6, 6, 0)


def test_a_campaign_whose_audience_has_nobody_to_message_fails_with_nothing_reserved(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    conn: psycopg.Connection[Any],
) -> None:
    for person in PEOPLE[:2]:
        api.request("POST", "/v1/opt-outs", token=user["token"], json_body={"phone_number": person["phone_number"]})
    campaign_id = _campaign(api, admin, user, PEOPLE[:2])

    pipeline.drain()

    campaign = api.request("GET", f"/v1/campaigns/{campaign_id}", token=user["token"]).json()
    assert campaign["status"] == "failed"
    assert campaign["failure_reason"].startswith("No recipients")
    assert conn.execute("SELECT count(*) AS n FROM sms_delivery_logs").fetchone()["n"] == 0
    assert (
        conn.execute(
            "SELECT count(*) AS n FROM billing_transactions WHERE reference_id = %s", (campaign_id,)
        ).fetchone()["n"]
        == 0
    )


def test_each_worker_numbers_its_own_batches_and_none_collide(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    conn: psycopg.Connection[Any],
    configure: Callable[..., None],
) -> None:
    configure(send_batch_size=3, dispatch_workers=3)
    people = [{"phone_number": f"+4474001240{n:02d}", "first_name": f"P{n}"} for n in range(40)]
    campaign_id = _campaign(api, admin, user, people)

    pipeline.pollers["DispatcherFunction"].poll_once()
    rows = conn.execute(
        """SELECT batch_number, get_byte(uuid_send(recipient_id), 15) %% 3 AS share
             FROM sms_delivery_logs WHERE campaign_id = %s""",
        (campaign_id,),
    ).fetchall()
    pipeline.drain()

    by_batch: dict[int, list[int]] = {}
    by_share: dict[int, int] = {}
    for row in rows:
        by_batch.setdefault(row["batch_number"], []).append(row["share"])
        by_share[row["share"]] = by_share.get(row["share"], 0) + 1
    assert len(rows) == 40
    assert all(len(shares) <= 3 for shares in by_batch.values())  # no batch over the size
    assert all({batch % 3} == set(shares) for batch, shares in by_batch.items())  # share k owns k, k+3, ...
    assert len(by_batch) == sum(math.ceil(n / 3) for n in by_share.values())  # full batches, one short at most
    assert min(by_share.values()) > 3  # every worker filled more than one batch
    statuses = conn.execute("SELECT status, count(*) AS n FROM sms_delivery_logs GROUP BY 1").fetchall()
    assert statuses == [{"status": "delivered", "n": 40}]
    assert conn.execute("SELECT count(*) AS n FROM simulator_calls").fetchone()["n"] == 40
