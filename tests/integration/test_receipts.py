"""Delivery receipts: signed webhooks in, applied set-wise, never moving a message backwards."""

import json
import threading
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from local.runtime import FunctionRuntime
from smsplatform.core.queue_messages import Receipt
from smsplatform.providers.simulator import sign
from smsplatform.sending import receipts
from tests.support.harness import SIMULATOR_KEY, Api, Pipeline
from tests.support.scenarios import give_credits, insert_recorded
from tests.support.sqs import sqs_event


def _post(api: Api, payload: dict[str, Any], key: str | None = SIMULATOR_KEY, provider: str = "simulator") -> Any:
    body = json.dumps(payload).encode()
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["x-simulator-signature"] = sign(key, body)
    return api.request("POST", f"/v1/webhooks/{provider}/status", raw_body=body, headers=headers)


def test_two_receipt_webhooks_at_once_each_enqueue_their_own_receipts(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local gateway serves requests on threads of one process, and Powertools' resolver keeps the
    request it is handling on a class attribute that every resolver of the process shares (Lambda runs one
    invocation per process). The first webhook here is held after it starts, until the second has been
    answered or two seconds have passed: it must still read its own body, not the second's."""
    from smsplatform.api import webhooks

    enqueued: list[list[str]] = []
    monkeypatch.setattr(webhooks, "_enqueue", lambda events: enqueued.append([r.external_id for r in events.receipts]))
    first_inside, second_answered, settings_of = threading.Event(), threading.Event(), webhooks.get_settings

    def held_settings() -> Any:
        if not first_inside.is_set():  # the first request waits here, before it reads its event
            first_inside.set()
            second_answered.wait(2)
        return settings_of()

    monkeypatch.setattr(webhooks, "get_settings", held_settings)
    at = datetime.now(UTC).isoformat()
    bodies = {
        name: {"receipts": [{"external_id": f"SM{name}", "status": "delivered", "timestamp": at}]} for name in "AB"
    }
    answers: dict[str, int] = {}
    first = threading.Thread(target=lambda: answers.setdefault("A", _post(api, bodies["A"]).status))
    first.start()
    assert first_inside.wait(10)
    answers["B"] = _post(api, bodies["B"]).status
    second_answered.set()
    first.join()

    assert answers == {"A": 200, "B": 200}
    assert sorted(enqueued) == [["SMA"], ["SMB"]]


def _sent_message(api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: Any) -> str:
    """A message the simulator accepted, with its own receipt not yet applied."""
    give_credits(api, admin, user, 10)
    api.request("POST", "/v1/messages", token=user["token"], json_body={"to": "+447400123999", "text": "hi"})
    pipeline.pollers["SenderFunction"].poll_once()
    pipeline.discard()  # the simulator's own receipt
    row = conn.execute("SELECT external_message_id, status FROM sms_delivery_logs").fetchone()
    assert row["status"] == "sent"
    return str(row["external_message_id"])


def test_a_forged_or_unsigned_receipt_is_refused_and_changes_nothing(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    external_id = _sent_message(api, admin, user, pipeline, conn)
    payload = {"receipts": [{"external_id": external_id, "status": "undelivered", "timestamp": "2026-11-27T12:00:00Z"}]}

    unsigned = _post(api, payload, key=None)
    forged = _post(api, payload, key="not-the-key")
    unknown_provider = _post(api, payload, provider="acme")
    pipeline.drain()

    assert (unsigned.status, forged.status, unknown_provider.status) == (403, 403, 404)
    assert forged.headers["content-type"] == "application/problem+json"
    assert conn.execute("SELECT status FROM sms_delivery_logs").fetchone()["status"] == "sent"


def test_a_signed_receipt_is_applied_and_a_late_one_never_moves_it_back(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    external_id = _sent_message(api, admin, user, pipeline, conn)

    first = _post(
        api, {"receipts": [{"external_id": external_id, "status": "delivered", "timestamp": "2026-11-27T12:00:05Z"}]}
    )
    pipeline.drain()
    late = _post(
        api, {"receipts": [{"external_id": external_id, "status": "undelivered", "timestamp": "2026-11-27T12:00:01Z"}]}
    )
    pipeline.drain()

    row = conn.execute("SELECT status, delivered_at FROM sms_delivery_logs").fetchone()
    assert (first.status, late.status) == (200, 200)
    assert row["status"] == "delivered"
    assert row["delivered_at"] == datetime(2026, 11, 27, 12, 0, 5, tzinfo=UTC)


def test_a_receipt_for_a_message_not_yet_recorded_is_kept_for_later(conn: psycopg.Connection[Any], user: Any) -> None:
    insert_recorded(
        conn,
        {
            "user_id": user["id"],
            "phone_number": "+447400123998",
            "provider": "simulator",
            "external_message_id": "SM-known",
        },
    )
    at = datetime.now(UTC)
    batch = [
        Receipt(external_id="SM-known", status="delivered", timestamp=at),
        Receipt(external_id="SM-not-yet", status="delivered", timestamp=at),
    ]

    from smsplatform.core import db

    with db.transaction() as pooled:
        first = receipts.apply(pooled, "simulator", batch)
        again = receipts.apply(pooled, "simulator", batch)
        other_provider = receipts.apply(
            pooled, "twilio", [Receipt(external_id="SM-known", status="undelivered", timestamp=at)]
        )

    assert (first.applied, first.ignored, first.unknown) == (1, 0, ["SM-not-yet"])
    assert (again.applied, again.ignored, again.unknown) == (0, 1, ["SM-not-yet"])
    assert other_provider.applied == 0


def test_the_receipts_function_hands_an_early_receipt_back_to_the_queue_until_the_send_is_recorded(
    conn: psycopg.Connection[Any], user: Any, runtimes: dict[str, FunctionRuntime]
) -> None:
    # The provider's receipt overtakes the sender's commit: the record must fail (SQS delivers it again), not vanish.
    event = sqs_event(
        {
            "provider": "simulator",
            "receipts": [{"external_id": "SM-early", "status": "delivered", "timestamp": "2026-11-30T12:00:00Z"}],
        }
    )

    early = runtimes["ReceiptsFunction"].invoke(event)
    insert_recorded(
        conn,
        {
            "user_id": user["id"],
            "phone_number": "+447400123998",
            "provider": "simulator",
            "external_message_id": "SM-early",
        },
    )
    redelivered = runtimes["ReceiptsFunction"].invoke(event)

    assert early == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert redelivered == {"batchItemFailures": []}
    assert conn.execute("SELECT status FROM sms_delivery_logs").fetchone()["status"] == "delivered"
