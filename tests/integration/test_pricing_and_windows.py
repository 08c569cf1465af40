"""Prices per destination, sending windows in the recipient's zone, validity periods, scheduled single
messages and the low-balance alert, with the pipeline driven on a fixed clock."""

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from smsplatform.core.config import get_settings
from smsplatform.sending import dispatch, recovery
from tests.support.clocks import RecordingClock
from tests.support.corpus import MESSAGES
from tests.support.endpoints import Endpoint
from tests.support.harness import Api, Pipeline
from tests.support.scenarios import balance_of, give_credits, make_campaign, make_group

NEW_YORK = "+12025550123"  # Washington DC: America/New_York
LONDON = "+447400123101"  # a UK mobile: Europe/London (and the Crown Dependencies, same clock)
KOLKATA = "+919876543210"  # India: Asia/Calcutta, UTC+05:30
TUESDAY_10_UTC = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
WINDOW = {"start": "09:00", "end": "20:00", "timezone": "recipient"}
ONE_SEGMENT = '50% off "today" only \\o/ — ¡gracias! 🎉'  # UCS-2, one segment: one credit at the default price


def _at(moment: datetime) -> RecordingClock:
    return RecordingClock(now=moment.timestamp())


def _price(api: Api, admin: dict[str, Any], country: str, body: dict[str, Any], user_id: str | None = None) -> None:
    path = f"/v1/users/{user_id}/pricing/{country}" if user_id else f"/v1/pricing/{country}"
    response = api.request("PUT", path, token=admin["token"], json_body=body)
    assert response.status == 200, response.body


def _sent_to(conn: psycopg.Connection[Any]) -> list[str]:
    return sorted(row["to_number"] for row in conn.execute("SELECT to_number FROM simulator_messages"))


def _release_at(
    api: Api, token: str, campaign_id: str, pipeline: Pipeline, conn: psycopg.Connection[Any], clock: RecordingClock
) -> dispatch.Dispatched:
    """POST /send, then the dispatcher at `clock`'s time (instead of the release message's real-time one)."""
    assert api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=token).status == 202
    pipeline.discard()
    return dispatch.dispatch(conn, campaign_id, get_settings(), clock)  # type: ignore[arg-type]


def _rows(conn: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
    """Every delivery-log row, by number."""
    return {row["phone_number"]: row for row in conn.execute("SELECT * FROM sms_delivery_logs")}


def _campaign_status(api: Api, token: str, campaign_id: str) -> str:
    return str(api.request("GET", f"/v1/campaigns/{campaign_id}", token=token).json()["status"])


def _stats(api: Api, token: str, campaign_id: str) -> dict[str, Any]:
    response = api.request("GET", f"/v1/campaigns/{campaign_id}/stats", token=token)
    assert response.status == 200, response.body
    return dict(response.json())


def _tick(pipeline: Pipeline, clock: RecordingClock) -> recovery.Swept:
    """The scheduler's sweep at `clock`'s time, then the pipeline drained on the same clock."""
    swept = recovery.sweep(get_settings(), clock)
    pipeline.drain(send_clock=clock)
    return swept


def test_a_campaign_over_three_zones_sends_each_only_inside_its_window_and_completes(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    conn: psycopg.Connection[Any],
    configure: Callable[..., None],
) -> None:
    configure(dispatch_workers=1)  # one share, one batch: the waiting message rides with the two that go now
    token = user["token"]
    give_credits(api, admin, user, 10)
    people = [{"phone_number": n, "first_name": "Zoë"} for n in (NEW_YORK, LONDON, KOLKATA)]
    campaign_id = make_campaign(api, token, [make_group(api, token, "world", people)], settings={"send_window": WINDOW})

    # Tuesday 10:00 UTC: London 10:00 and Kolkata 15:30 are inside 09:00-20:00, New York (05:00) is not.
    ten = _at(TUESDAY_10_UTC)
    released = _release_at(api, token, campaign_id, pipeline, conn, ten)
    pipeline.drain(send_clock=ten)
    after_release = _sent_to(conn)
    waiting = api.request("GET", f"/v1/campaigns/{campaign_id}/messages?status=queued", token=token).json()["data"]
    waiting_in_history = api.request(
        "GET", f"/v1/messages?campaign_id={campaign_id}&status=queued", token=token
    ).json()["data"]
    stats_before = _stats(api, token, campaign_id)
    # 13:00: New York is 08:00, still closed; Kolkata closed at 14:30 UTC but was sent already.
    early = _tick(pipeline, _at(TUESDAY_10_UTC + timedelta(hours=3)))
    still = _sent_to(conn)
    # 14:05: New York is 09:05: the scheduler wakes its message and the sender sends it.
    opened = _tick(pipeline, _at(TUESDAY_10_UTC + timedelta(hours=4, minutes=5)))

    assert released.status == "sending"
    assert released.batches == 1
    assert conn.execute("SELECT count(DISTINCT batch_number) AS n FROM sms_delivery_logs").fetchone()["n"] == 1
    assert after_release == sorted([LONDON, KOLKATA])
    assert [(m["to"], m["not_before"]) for m in waiting] == [(NEW_YORK, "2026-12-01T14:00:00Z")]
    assert [m["id"] for m in waiting_in_history] == [m["id"] for m in waiting]  # the account's list agrees
    assert (stats_before["waiting"], stats_before["queued"], stats_before["delivered"]) == (1, 1, 2)
    assert early.woken == 0
    assert still == after_release
    assert opened.woken == 1
    assert _sent_to(conn) == sorted([NEW_YORK, LONDON, KOLKATA])
    stats = _stats(api, token, campaign_id)
    assert _campaign_status(api, token, campaign_id) == "completed"
    assert (stats["delivered"], stats["waiting"], stats["credits_spent"], stats["credits_refunded"]) == (3, 0, 3, 0)


def test_a_campaign_message_waiting_for_its_window_can_be_cancelled_and_is_refunded_at_once(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    token = user["token"]
    give_credits(api, admin, user, 10)
    _price(api, admin, "US", {"credits_per_segment": 3})
    people = [{"phone_number": NEW_YORK, "first_name": "O'Neil"}, {"phone_number": LONDON, "first_name": "Zoë"}]
    campaign_id = make_campaign(api, token, [make_group(api, token, "two", people)], settings={"send_window": WINDOW})

    ten = _at(TUESDAY_10_UTC)  # New York waits for 14:00 UTC, London goes now
    _release_at(api, token, campaign_id, pipeline, conn, ten)
    pipeline.drain(send_clock=ten)
    waiting = _rows(conn)[NEW_YORK]
    cancelled = api.request("POST", f"/v1/messages/{waiting['id']}/cancel", token=token)
    swept = _tick(pipeline, _at(TUESDAY_10_UTC + timedelta(hours=4, minutes=5)))  # its window opens: nothing left
    stats = _stats(api, token, campaign_id)

    assert cancelled.status == 200, cancelled.body
    assert (cancelled.json()["status"], cancelled.json()["campaign_id"]) == ("cancelled", campaign_id)
    assert swept.woken == 0
    assert _sent_to(conn) == [LONDON]
    assert (stats["cancelled"], stats["delivered"], stats["waiting"]) == (1, 1, 0)
    assert (stats["credits_reserved"], stats["credits_spent"], stats["credits_refunded"]) == (4, 1, 3)
    assert balance_of(api, token) == 10 - 1
    assert _campaign_status(api, token, campaign_id) == "completed"


def test_a_campaign_still_being_dispatched_keeps_its_messages_held_until_it_is_sending(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    token = user["token"]
    give_credits(api, admin, user, 10)
    people = [{"phone_number": NEW_YORK, "first_name": "Zoë"}]
    campaign_id = make_campaign(api, token, [make_group(api, token, "ny", people)], settings={"send_window": WINDOW})
    _release_at(api, token, campaign_id, pipeline, conn, _at(TUESDAY_10_UTC))
    # As if a dispatcher had committed its rows but not yet moved the campaign to sending.
    conn.execute("UPDATE sms_campaigns SET status = 'queued' WHERE id = %s", (campaign_id,))

    opened = _at(TUESDAY_10_UTC + timedelta(hours=4, minutes=5))
    while_dispatching = _tick(pipeline, opened)
    still_held = _rows(conn)[NEW_YORK]["held"]
    conn.execute("UPDATE sms_campaigns SET status = 'sending' WHERE id = %s", (campaign_id,))
    once_sending = _tick(pipeline, opened)

    assert while_dispatching.woken == 0
    assert still_held is True
    assert once_sending.woken == 1
    assert _sent_to(conn) == [NEW_YORK]
    assert _campaign_status(api, token, campaign_id) == "completed"


def test_a_batch_that_arrives_after_its_window_closed_waits_for_the_next_opening(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    token = user["token"]
    give_credits(api, admin, user, 10)
    window = {"start": "09:00", "end": "20:00", "days": ["mon", "tue", "wed", "thu", "fri"], "timezone": "Asia/Kolkata"}
    campaign_id = make_campaign(
        api, token, [make_group(api, token, "india", [{"phone_number": KOLKATA}])], settings={"send_window": window}
    )

    # Released at 14:00 UTC (19:30 in Kolkata, open); the batch only reaches a sender at 14:45 (20:15).
    _release_at(api, token, campaign_id, pipeline, conn, _at(TUESDAY_10_UTC + timedelta(hours=4)))
    late = _at(TUESDAY_10_UTC + timedelta(hours=4, minutes=45))
    pipeline.drain(send_clock=late)
    held = _rows(conn)[KOLKATA]
    # Wednesday 03:31 UTC is 09:01 in Kolkata.
    _tick(pipeline, _at(datetime(2026, 12, 2, 3, 31, tzinfo=UTC)))

    assert (held["status"], held["held"]) == ("queued", True)
    assert held["not_before"] == datetime(2026, 12, 2, 3, 30, tzinfo=UTC)
    assert _sent_to(conn) == [KOLKATA]
    assert _campaign_status(api, token, campaign_id) == "completed"


def test_a_number_whose_zones_never_share_the_window_fails_at_release_uncharged(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    token = user["token"]
    give_credits(api, admin, user, 10)
    congo = "+243991234567"  # a DR Congo mobile: Kinshasa (UTC+1) or Lubumbashi (UTC+2)
    window = {"start": "09:00", "end": "09:30", "timezone": "recipient"}
    people = [{"phone_number": congo}, {"phone_number": LONDON}]
    campaign_id = make_campaign(api, token, [make_group(api, token, "two", people)], settings={"send_window": window})

    at_nine = _at(datetime(2026, 12, 1, 9, 5, tzinfo=UTC))
    _release_at(api, token, campaign_id, pipeline, conn, at_nine)
    pipeline.drain(send_clock=at_nine)

    rows = _rows(conn)
    stats = _stats(api, token, campaign_id)
    assert (rows[congo]["status"], rows[congo]["error_code"], rows[congo]["cost"]) == ("failed", "no_send_window", 0)
    assert rows[LONDON]["status"] == "delivered"
    assert _sent_to(conn) == [LONDON]
    assert (stats["credits_reserved"], stats["credits_spent"], stats["credits_refunded"]) == (1, 1, 0)
    assert _campaign_status(api, token, campaign_id) == "completed"


def test_a_validity_period_expires_what_still_waits_and_refunds_it_exactly(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    token = user["token"]
    give_credits(api, admin, user, 20)
    _price(api, admin, "US", {"credits_per_segment": 3})
    people = [{"phone_number": n} for n in (NEW_YORK, LONDON)]
    campaign_id = make_campaign(
        api,
        token,
        [make_group(api, token, "both", people)],
        template=MESSAGES[3][1],
        settings={"send_window": WINDOW, "validity_period": 3600},
    )

    ten = _at(TUESDAY_10_UTC)
    _release_at(api, token, campaign_id, pipeline, conn, ten)
    pipeline.drain(send_clock=ten)
    reserved = _stats(api, token, campaign_id)["credits_reserved"]
    swept = _tick(pipeline, _at(TUESDAY_10_UTC + timedelta(hours=4, minutes=5)))  # New York opens, too late

    rows = _rows(conn)
    stats = _stats(api, token, campaign_id)
    assert swept.expired == 1
    assert (rows[NEW_YORK]["status"], rows[NEW_YORK]["error_code"]) == ("failed", "expired")
    assert rows[NEW_YORK]["expires_at"] == TUESDAY_10_UTC + timedelta(hours=1)
    assert rows[LONDON]["status"] == "delivered"
    assert _sent_to(conn) == [LONDON]
    assert stats["expired"] == 1
    assert stats["credits_reserved"] == reserved == int(rows[NEW_YORK]["cost"] + rows[LONDON]["cost"])
    assert stats["credits_refunded"] == int(rows[NEW_YORK]["cost"])
    assert stats["credits_spent"] == int(rows[LONDON]["cost"])
    assert balance_of(api, token) == 20 - int(rows[LONDON]["cost"])
    assert _campaign_status(api, token, campaign_id) == "completed"


def test_preview_stats_and_ledger_agree_over_mixed_prices_and_a_blocked_country(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    token = user["token"]
    give_credits(api, admin, user, 100)
    _price(api, admin, "US", {"credits_per_segment": 3})
    _price(api, admin, "GB", {"credits_per_segment": 2})
    _price(api, admin, "IN", {"blocked": True})
    _price(api, admin, "GB", {"credits_per_segment": 5}, user_id=user["id"])  # this account pays more for GB
    people = [
        {"phone_number": NEW_YORK, "first_name": "שרה"},
        {"phone_number": LONDON, "first_name": "Zoë"},
        {"phone_number": "+447400123102", "first_name": "O'Brien"},
        {"phone_number": KOLKATA, "first_name": "प्रिया"},
    ]
    template = '{{first_name}}: 50% off — "today" only \\o/ 🎉'  # UCS-2, one segment each
    campaign_id = make_campaign(api, token, [make_group(api, token, "mixed", people)], template=template)

    preview = api.request("POST", f"/v1/campaigns/{campaign_id}/preview", token=token, json_body={}).json()
    prices = api.request("GET", "/v1/pricing", token=token).json()
    seen_by_operator = api.request("GET", f"/v1/users/{user['id']}/pricing", token=admin["token"]).json()
    _release_at(api, token, campaign_id, pipeline, conn, _at(datetime.now(UTC)))
    _price(api, admin, "GB", {"credits_per_segment": 50}, user_id=user["id"])  # after release: changes nothing
    pipeline.drain()
    stats = _stats(api, token, campaign_id)
    ledger = api.request("GET", "/v1/billing/transactions", token=token).json()["data"]

    by_country = {c["country"]: c for c in preview["cost_by_country"]}
    assert by_country["US"] == {
        "country": "US", "recipients": 1, "segments": 1, "credits": 3, "credits_per_segment": 3, "blocked": False,
    }  # fmt: skip
    assert (by_country["GB"]["recipients"], by_country["GB"]["credits"]) == (2, 10)
    assert (by_country["IN"]["blocked"], by_country["IN"]["credits"]) == (True, 0)
    assert (preview["recipients"], preview["estimated_credits"], preview["skipped_blocked"]) == (3, 13, 1)
    assert {p["country"]: (p["credits_per_segment"], p["blocked"], p["source"]) for p in prices["data"]} == {
        "GB": (5, False, "account"),
        "IN": (None, True, "platform"),
        "US": (3, False, "platform"),
    }
    assert seen_by_operator == prices
    assert (stats["total"], stats["delivered"], stats["skipped_blocked"]) == (3, 3, 1)
    assert (stats["credits_reserved"], stats["credits_spent"], stats["credits_refunded"]) == (13, 13, 0)
    assert sorted(_sent_to(conn)) == sorted([NEW_YORK, LONDON, "+447400123102"])
    assert balance_of(api, token) == 100 - 13
    reserve = next(e for e in ledger if e["transaction_type"] == "campaign_reserve")
    assert reserve["credits"] == -13


def test_a_single_send_is_priced_per_number_and_refused_whole_for_a_blocked_one(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    token = user["token"]
    give_credits(api, admin, user, 50)
    _price(api, admin, "US", {"credits_per_segment": 3})
    _price(api, admin, "IN", {"blocked": True})
    text = MESSAGES[5][1]

    refused = api.request("POST", "/v1/messages", token=token, json_body={"to": [LONDON, KOLKATA], "text": text})
    written = conn.execute("SELECT count(*) AS n FROM sms_delivery_logs").fetchone()["n"]
    sent = api.request("POST", "/v1/messages", token=token, json_body={"to": [LONDON, NEW_YORK], "text": text})
    pipeline.drain()

    assert refused.status == 422
    assert refused.json()["errors"] == [
        {"field": "to[1]", "message": f"{KOLKATA} (IN) is blocked or unpriced"}
    ]  # fmt: skip
    assert KOLKATA in refused.json()["detail"]
    assert written == 0
    assert sent.status == 202, sent.body
    costs = {m["to"]: (m["cost"], m["segments"]) for m in sent.json()["data"]}
    assert float(costs[NEW_YORK][0]) == 3 * costs[NEW_YORK][1]
    assert float(costs[LONDON][0]) == 1 * costs[LONDON][1]  # the platform default
    assert sent.json()["credits_reserved"] == 4 * costs[LONDON][1]
    assert balance_of(api, token) == 50 - sent.json()["credits_reserved"]


def test_a_scheduled_message_waits_can_be_cancelled_and_otherwise_goes_at_its_time(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    token = user["token"]
    give_credits(api, admin, user, 10)
    at = (datetime.now(UTC) + timedelta(minutes=30)).replace(microsecond=0)
    body = {"text": "Tu mesa está lista: 20:30 — Café «Ñandú» 🍷", "send_at": at.isoformat(), "validity_period": 600}

    kept = api.request("POST", "/v1/messages", token=token, json_body={**body, "to": LONDON})
    dropped = api.request("POST", "/v1/messages", token=token, json_body={**body, "to": NEW_YORK})
    pipeline.drain()
    balance_while_scheduled = balance_of(api, token)
    nothing_yet = _sent_to(conn)
    too_early = _tick(pipeline, _at(at - timedelta(minutes=1)))  # the scheduler a minute before: not yet
    dropped_id = dropped.json()["data"][0]["id"]
    cancelled = api.request("POST", f"/v1/messages/{dropped_id}/cancel", token=token)
    again = api.request("POST", f"/v1/messages/{dropped_id}/cancel", token=token)
    _tick(pipeline, _at(at + timedelta(seconds=30)))
    kept_now = api.request("GET", f"/v1/messages/{kept.json()['data'][0]['id']}", token=token).json()

    assert kept.status == 202, kept.body
    first = kept.json()["data"][0]
    assert (first["status"], first["not_before"]) == ("scheduled", at.isoformat().replace("+00:00", "Z"))
    assert first["expires_at"] == (at + timedelta(seconds=600)).isoformat().replace("+00:00", "Z")
    assert nothing_yet == []
    assert too_early.woken == 0
    assert balance_while_scheduled == 10 - 2  # reserved when scheduled
    assert cancelled.status == 200, cancelled.body
    assert (cancelled.json()["status"], cancelled.json()["error_code"]) == ("cancelled", "cancelled")
    assert again.status == 409
    assert _sent_to(conn) == [LONDON]
    assert kept_now["status"] == "delivered"
    assert balance_of(api, token) == 10 - 1


@pytest.mark.parametrize(
    ("send_at", "field"),
    [
        (lambda: (datetime.now(UTC) + timedelta(minutes=1)).isoformat(), "send_at"),
        (lambda: (datetime.now(UTC) + timedelta(days=36)).isoformat(), "send_at"),
        (lambda: (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None).isoformat(), "send_at"),
    ],
)
def test_send_at_must_be_5_minutes_to_35_days_ahead_with_an_offset(
    api: Api, admin: dict[str, Any], user: dict[str, Any], send_at: Any, field: str
) -> None:
    give_credits(api, admin, user, 5)
    response = api.request(
        "POST",
        "/v1/messages",
        token=user["token"],
        json_body={"to": LONDON, "text": MESSAGES[2][1], "send_at": send_at()},
    )

    assert response.status == 422
    assert response.json()["errors"][0]["field"].endswith(field)
    assert balance_of(api, user["token"]) == 5


def test_crossing_the_low_balance_threshold_emits_one_signed_event_and_an_audit_row(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    token = user["token"]
    endpoint = Endpoint()
    try:
        url = {"url": endpoint.url}
        assert api.request("PUT", "/v1/status-callback", token=token, json_body=url).status == 200
        secret = api.request("POST", "/v1/status-callback/secret", token=token).json()
        threshold = {"low_balance_threshold": 10}
        assert api.request("PUT", "/v1/users/me", token=token, json_body=threshold).status == 200
        give_credits(api, admin, user, 12)
        for number in ("+447400123101", "+447400123102", "+447400123103"):  # 12 -> 11 -> 10 -> 9: crosses once
            sent = api.request("POST", "/v1/messages", token=token, json_body={"to": number, "text": ONE_SEGMENT})
            assert sent.status == 202
        pipeline.drain()
        give_credits(api, admin, user, 10)  # 19: above again
        for number in ("+447400123104",) * 10:  # ... and below once more
            api.request("POST", "/v1/messages", token=token, json_body={"to": number, "text": ONE_SEGMENT})
        pipeline.drain()  # each batch's sender announces the account's callbacks: the alerts among them
        received = [
            (headers, body) for headers, body in endpoint.received if json.loads(body)["event"] == "balance.low"
        ]
    finally:
        endpoint.stop()

    events = [json.loads(body) for _, body in received]
    audit = conn.execute("SELECT details FROM audit_logs WHERE action = 'balance.low' ORDER BY created_at").fetchall()
    assert [(e["balance"], e["threshold"]) for e in events] == [(9, 10), (9, 10)]
    assert [(row["details"]["balance"], row["details"]["threshold"]) for row in audit] == [(9, 10), (9, 10)]
    for headers, body in received:
        expected = hmac.new(secret["secret"].encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-signature"], expected)
    assert api.request("GET", "/v1/users/me", token=token).json()["low_balance_threshold"] == 10
