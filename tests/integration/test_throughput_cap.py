"""A campaign's throughput cap holds across senders: each batch books its share of the timeline."""

import time
import uuid
from typing import Any

import psycopg
import pytest

from smsplatform.core import db
from smsplatform.core.config import get_settings
from smsplatform.sending import routing, sender
from tests.support.clocks import RecordingClock


def _capped_campaign(conn: psycopg.Connection[Any], cap: int) -> uuid.UUID:
    user = conn.execute(
        "INSERT INTO users (username, email, password_hash) VALUES ('cap', 'cap@example.com', 'x') RETURNING id"
    ).fetchone()["id"]
    return conn.execute(
        """INSERT INTO sms_campaigns (user_id, name, message_template, status, settings)
           VALUES (%s, 'capped', 'hi', 'sending', jsonb_build_object('throughput_per_second', %s)) RETURNING id""",
        (user, cap),
    ).fetchone()["id"]


def test_batches_book_consecutive_slots_of_the_campaigns_timeline(conn: psycopg.Connection[Any]) -> None:
    campaign = _capped_campaign(conn, cap=10)

    with db.transaction() as pooled:
        first, _, _ = sender.Pacer.book(pooled, 50, 20, campaign=(campaign, 10))
        second, _, _ = sender.Pacer.book(pooled, 50, 20, campaign=(campaign, 10))
        third, _, _ = sender.Pacer.book(pooled, 50, 20, campaign=(campaign, 10))
        later, _, booked = sender.Pacer.book(pooled, 200, 12, campaign=(campaign, 10))
        unchanged, _, _ = sender.Pacer.book(pooled, 1, 60, campaign=(campaign, 10))

    assert second - first == pytest.approx(5.0)
    assert third - second == pytest.approx(5.0)
    # Starts 15 s out: not booked; the sender re-queues the batch to come back nearer the time.
    assert booked is False
    assert later == pytest.approx(first + 15.0)
    assert unchanged == pytest.approx(later)


def test_messages_within_a_batch_are_spaced_by_the_cap() -> None:
    clock = RecordingClock(now=1000.0)
    pace = sender.Pacer(start=1000.0, rate=4, clock=clock)

    for index in range(5):
        pace(index)

    assert clock.waits == [0.25, 0.5, 0.75, 1.0]  # message 0 goes at once


def test_a_capped_campaign_gets_batches_it_can_send_within_a_sender_invocation() -> None:
    settings = get_settings().model_copy(update={"send_batch_size": 1000})

    assert routing.batch_size(5, settings) == 50
    assert routing.batch_size(0.5, settings) == 5
    assert routing.batch_size(0.01, settings) == 1
    assert routing.batch_size(1000, settings) == settings.send_batch_size
    assert routing.batch_size(None, settings) == settings.send_batch_size


def test_unused_time_is_not_banked(conn: psycopg.Connection[Any]) -> None:
    campaign = _capped_campaign(conn, cap=100)
    conn.execute("UPDATE sms_campaigns SET send_slot = now() - interval '1 hour' WHERE id = %s", (campaign,))

    with db.transaction() as pooled:
        start, _, booked = sender.Pacer.book(pooled, 10, 20, campaign=(campaign, 100))

    assert booked
    assert start >= time.time() - 5  # an idle hour does not allow a burst now


def test_a_capped_campaign_is_paced_by_the_sender(
    api: Any, admin: dict[str, Any], user: dict[str, Any], pipeline: Any
) -> None:
    from tests.support.scenarios import PEOPLE, give_credits, make_campaign, make_group

    clock = RecordingClock()  # records the pauses instead of taking them
    give_credits(api, admin, user, 100)
    campaign_id = make_campaign(
        api, user["token"], [make_group(api, user["token"], "all", PEOPLE)], settings={"throughput_per_second": 2}
    )

    api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=user["token"])
    pipeline.drain(send_clock=clock)
    waits = clock.waits

    stats = api.request("GET", f"/v1/campaigns/{campaign_id}/stats", token=user["token"]).json()
    assert stats["delivered"] == 6
    # Six messages at two a second span 2.5 s of the campaign's timeline: every message but the
    # first of the campaign waited for its slot, whichever batch and sender it was in.
    assert len([wait for wait in waits if wait > 0]) >= 5
    assert max(waits) >= 2.0


def test_a_providers_cap_is_shared_by_every_campaign_and_the_slower_cap_paces(conn: psycopg.Connection[Any]) -> None:
    fast = _capped_campaign(conn, cap=100)
    other = conn.execute(
        """INSERT INTO sms_campaigns (user_id, name, message_template, status)
           SELECT user_id, 'uncapped', 'hi', 'sending' FROM sms_campaigns WHERE id = %s RETURNING id""",
        (fast,),
    ).fetchone()["id"]

    with db.transaction() as pooled:
        first, first_rate, _ = sender.Pacer.book(pooled, 50, 60, provider=("twilio", 10))
        second, _, _ = sender.Pacer.book(pooled, 50, 60, provider=("twilio", 10))
        both, both_rate, _ = sender.Pacer.book(pooled, 50, 60, campaign=(fast, 100), provider=("twilio", 10))
        elsewhere, _, _ = sender.Pacer.book(pooled, 50, 60, campaign=(other, 5), provider=("sns", 1000))
    slot = conn.execute("SELECT send_slot FROM sms_campaigns WHERE id = %s", (fast,)).fetchone()["send_slot"]

    assert first_rate == 10
    assert second - first == pytest.approx(5.0)  # another batch, any campaign: after the first on twilio's line
    assert both_rate == 10  # the slower of the campaign's 100/s and twilio's 10/s
    assert both - first == pytest.approx(10.0)  # the later of the two timelines
    assert slot.timestamp() == pytest.approx(both + 5.0)  # the campaign's line moved on with it
    assert elsewhere < second  # another provider's line is its own


def test_a_provider_cap_paces_the_sender_without_a_campaign_cap(
    api: Any, admin: dict[str, Any], user: dict[str, Any], pipeline: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.scenarios import PEOPLE, give_credits, make_campaign, make_group

    clock = RecordingClock()
    waits = clock.waits
    monkeypatch.setenv("SMS_PROVIDER_CAPS", '{"simulator": 2}')
    get_settings.cache_clear()
    try:
        give_credits(api, admin, user, 100)
        campaign_id = make_campaign(api, user["token"], [make_group(api, user["token"], "all", PEOPLE)])
        api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=user["token"])
        pipeline.drain(send_clock=clock)
    finally:
        monkeypatch.delenv("SMS_PROVIDER_CAPS")
        get_settings.cache_clear()

    stats = api.request("GET", f"/v1/campaigns/{campaign_id}/stats", token=user["token"]).json()
    assert stats["delivered"] == 6
    assert len([wait for wait in waits if wait > 0]) >= 5  # six messages at two a second
    assert max(waits) >= 2.0


def test_a_slow_provider_cap_makes_small_batches_for_campaigns_and_api_sends(
    api: Any, admin: dict[str, Any], user: dict[str, Any], pipeline: Any, conn: psycopg.Connection[Any]
) -> None:
    from tests.support.scenarios import PEOPLE, give_credits, make_campaign, make_group

    # A provider taking 0.3 messages a second: a batch of 1,000 would take 55 minutes, far past the sender's
    # timeout; ten seconds' worth is 3.
    settings_env = {
        "SMS_PROVIDER_CAPS": '{"simulator": 0.3}',
        "SMS_SEND_BATCH_SIZE": "1000",
        "SMS_DISPATCH_WORKERS": "1",
        "SMS_SEND_MAX_WAIT_SECONDS": "600",  # every batch books its slot at once (no re-queue with a delay)
    }
    patch = pytest.MonkeyPatch()
    for key, value in settings_env.items():
        patch.setenv(key, value)
    get_settings.cache_clear()
    try:
        give_credits(api, admin, user, 100)
        campaign_id = make_campaign(api, user["token"], [make_group(api, user["token"], "all", PEOPLE)])
        api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=user["token"])
        numbers = [f"+4474001233{n:02d}" for n in range(7)]
        sent = api.request("POST", "/v1/messages", token=user["token"], json_body={"to": numbers, "text": "Hi"})
        pipeline.drain(send_clock=RecordingClock())  # the pacing's waits are recorded, not taken
    finally:
        patch.undo()
        get_settings.cache_clear()

    batches = conn.execute(
        """SELECT campaign_id IS NOT NULL AS campaign, batch_number, count(*) AS n FROM sms_delivery_logs
            GROUP BY 1, 2 ORDER BY 1, 2"""
    ).fetchall()
    assert sent.status == 202
    assert [(row["batch_number"], row["n"]) for row in batches if row["campaign"]] == [(0, 3), (1, 3)]
    assert [(row["batch_number"], row["n"]) for row in batches if not row["campaign"]] == [(0, 3), (1, 3), (2, 1)]
    statuses = conn.execute("SELECT DISTINCT status FROM sms_delivery_logs").fetchall()
    assert statuses == [{"status": "delivered"}]
