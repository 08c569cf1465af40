"""The open batches (sql/0027) are exactly the batches with unsent rows, after every kind of write.

Everything that looks for unsent messages (the recovery sweep, expiry, closing or resuming an account, a
campaign's cancel, the single-send backlog) starts from them: a batch missing here would never be swept,
expired or cancelled, and one left here would be read on every tick for good.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from tests.integration.test_campaign_counters import TEMPLATE
from tests.integration.test_chunked_release import PEOPLE
from tests.support.harness import Api, Pipeline
from tests.support.scenarios import give_credits, make_campaign, make_group


def _from_rows(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return conn.execute(
        """SELECT coalesce(campaign_id, request_id) AS reference_id, batch_number,
                  CASE WHEN campaign_id IS NOT NULL THEN 'campaign' ELSE 'request' END AS kind, user_id,
                  count(*)::int AS unsent, (count(*) FILTER (WHERE held))::int AS held,
                  max(idle_since) AS idle_since, min(expires_at) AS expires_at
             FROM sms_delivery_logs WHERE status IN ('scheduled', 'queued', 'sending')
            GROUP BY 1, 2, 3, 4 ORDER BY 1, 2"""
    ).fetchall()


def _open(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return conn.execute(
        """SELECT reference_id, batch_number, kind, user_id, unsent, held, idle_since, expires_at
             FROM send_batches ORDER BY 1, 2"""
    ).fetchall()


def _assert_open_batches_match_the_rows(conn: psycopg.Connection[Any]) -> int:
    """The same batches, counts, owners and earliest expiry; a batch's idle time is its rows' latest at
    least (a row that was queued last may since have been sent). Returns how many are open."""
    expected, found = _from_rows(conn), _open(conn)
    keys = ("reference_id", "batch_number", "kind", "user_id", "unsent", "held", "expires_at")
    assert [{k: row[k] for k in keys} for row in found] == [{k: row[k] for k in keys} for row in expected]
    assert all(b["idle_since"] >= r["idle_since"] for b, r in zip(found, expected, strict=True))
    return len(found)


def test_the_open_batches_are_the_batches_with_unsent_rows_after_every_write(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    token = user["token"]
    give_credits(api, admin, user, 500)
    rejected, flaky, undelivered = "+447400199990", "+447400199992", "+447400199993"  # the simulator's rules
    people = [*PEOPLE[:5], {"phone_number": rejected}, {"phone_number": flaky}, {"phone_number": undelivered}]
    campaign_id = make_campaign(api, token, [make_group(api, token, "all", people)], TEMPLATE)
    at = (datetime.now(UTC) + timedelta(minutes=30)).replace(microsecond=0)
    scheduled = api.request(
        "POST",
        "/v1/messages",
        token=token,
        json_body={
            "to": ["+447400123301", "+447400123302", "+447400123303"],
            "text": "Rappel : « 50 % » — مرحبا \\ 🎉",
            "send_at": at.isoformat(),
            "validity_period": 3600,
        },
    )
    assert scheduled.status == 202, scheduled.body
    opened = [_assert_open_batches_match_the_rows(conn)]  # scheduled rows: held, with their validity

    assert api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=token).status == 202
    pipeline.pollers["DispatcherFunction"].poll_once()  # inserted
    opened.append(_assert_open_batches_match_the_rows(conn))
    pipeline.drain()  # claimed, recorded (one transient failure queued again, then sent), receipted
    opened.append(_assert_open_batches_match_the_rows(conn))

    first, second, third = (m["id"] for m in scheduled.json()["data"])
    assert api.request("POST", f"/v1/messages/{first}/cancel", token=token).status == 200  # one row of a batch
    opened.append(_assert_open_batches_match_the_rows(conn))
    conn.execute("UPDATE sms_delivery_logs SET held = false, status = 'queued' WHERE id = %s", (second,))
    opened.append(_assert_open_batches_match_the_rows(conn))  # woken: still unsent, no longer held
    conn.execute("DELETE FROM sms_delivery_logs WHERE id = ANY(%s)", ([second, third],))
    opened.append(_assert_open_batches_match_the_rows(conn))

    statuses = conn.execute(
        "SELECT status, count(*)::int AS n FROM sms_delivery_logs WHERE campaign_id = %s GROUP BY 1 ORDER BY 1",
        (campaign_id,),
    ).fetchall()
    assert statuses == [
        {"status": "delivered", "n": 6},
        {"status": "failed", "n": 1},
        {"status": "undelivered", "n": 1},
    ]
    assert opened[0] == 1  # the scheduled send's batch
    assert opened[1] > 1  # and the campaign's
    assert opened[2:] == [1, 1, 1, 0]
