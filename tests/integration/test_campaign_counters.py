"""Campaign statistics come from counters the database keeps with every change of a message (sql/0020).

The suite's teardown compares every campaign's counters with a count of its rows after each test; these
tests check stats step by step while a campaign sends, and that the scheduler's folding keeps them.
"""

import threading
from typing import Any

import psycopg

from local.runtime import FunctionRuntime
from tests.support.harness import Api, Pipeline, scheduler_tick
from tests.support.scenarios import PEOPLE, give_credits, make_campaign, make_group

REJECTED = {"phone_number": "+447400199990"}  # the simulator refuses it for good
UNDELIVERED = {"phone_number": "+447400199991"}  # accepted, then reported undelivered
# Real text of different lengths, so that messages cost 1 to 4 segments (UCS-2: the template's emoji) and the
# counters' credits are not just their message counts.
TEMPLATE = '🎉 {{first_name|friend}}: {{custom_fields.note|50% off — "today" only}}'
NOTES = [
    'C:\\Users\\ann said "see you at 5" \\o/ 100%',
    "مرحبا، خصم 20٪ على كل شيء حتى يوم الأحد. ردّ بكلمة STOP لإلغاء الاشتراك من هذه الرسائل.",
    "שלום! 30% הנחה עד יום ראשון 🛍️ " * 4,
    "Your order #48213 ($129.99) has shipped: https://shop.example.com/t?id=48213&utm=%20sale 🚚 " * 2,
]


def _by_rows(conn: psycopg.Connection[Any], campaign_id: str) -> dict[str, int]:
    rows = conn.execute(
        "SELECT status, count(*)::int AS n FROM sms_delivery_logs WHERE campaign_id = %s GROUP BY status",
        (campaign_id,),
    ).fetchall()
    return {row["status"]: row["n"] for row in rows}


def _by_stats(api: Api, token: str, campaign_id: str) -> dict[str, int]:
    stats = api.request("GET", f"/v1/campaigns/{campaign_id}/stats", token=token).json()
    keys = ("queued", "sending", "sent", "delivered", "failed", "undelivered", "cancelled")
    return {key: stats[key] for key in keys if stats[key]}


def test_stats_are_exact_at_every_step_of_a_send_and_after_the_counters_are_folded(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    conn: psycopg.Connection[Any],
    runtimes: dict[str, FunctionRuntime],
    configure: Any,
) -> None:
    # Eight one-message batches: a sender invocation takes four, so stats are read between invocations.
    configure(send_batch_size=1, dispatch_workers=2, simulator_rules={"99990": "reject", "99991": "undelivered"})
    give_credits(api, admin, user, 100)
    noted = [{**person, "custom_fields": {"note": note}} for person, note in zip(PEOPLE, NOTES, strict=False)]
    people = [*noted, *PEOPLE[len(NOTES) :], REJECTED, UNDELIVERED]
    campaign_id = make_campaign(api, user["token"], [make_group(api, user["token"], "all", people)], TEMPLATE)
    assert api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=user["token"]).status == 202
    pipeline.pollers["DispatcherFunction"].poll_once()
    assert _by_stats(api, user["token"], campaign_id) == _by_rows(conn, campaign_id) == {"queued": 8}
    costs = conn.execute("SELECT DISTINCT cost FROM sms_delivery_logs WHERE campaign_id = %s", (campaign_id,))
    assert len(costs.fetchall()) >= 3

    seen = []
    while pipeline.pollers["SenderFunction"].poll_once() or pipeline.pollers["ReceiptsFunction"].poll_once():
        seen.append(_by_rows(conn, campaign_id))
        assert _by_stats(api, user["token"], campaign_id) == seen[-1]
    assert len(seen) > 2  # it was read mid-send, not only at the ends
    final = {"delivered": 6, "failed": 1, "undelivered": 1}
    assert _by_stats(api, user["token"], campaign_id) == _by_rows(conn, campaign_id) == final
    accepted = conn.execute(
        """SELECT sum(cost)::int AS credits FROM sms_delivery_logs
            WHERE campaign_id = %s AND status IN ('delivered', 'undelivered')""",
        (campaign_id,),
    ).fetchone()["credits"]
    stats = api.request("GET", f"/v1/campaigns/{campaign_id}/stats", token=user["token"]).json()
    assert stats["credits_spent"] == accepted > 7  # settled from the counters' credits, not their counts
    assert stats["credits_reserved"] == stats["credits_spent"] + stats["credits_refunded"]

    unfolded = conn.execute(
        "SELECT count(*)::int AS n FROM campaign_message_counts WHERE campaign_id = %s", (campaign_id,)
    ).fetchone()["n"]
    scheduler_tick(runtimes)
    folded = conn.execute(
        "SELECT state, messages, compacted FROM campaign_message_counts WHERE campaign_id = %s ORDER BY state",
        (campaign_id,),
    ).fetchall()
    assert unfolded > len(folded)
    assert [(row["state"], row["messages"], row["compacted"]) for row in folded] == [
        ("delivered", 6, True),
        ("failed", 1, True),
        ("undelivered", 1, True),
    ]
    assert _by_stats(api, user["token"], campaign_id) == final


def test_a_cancelled_and_a_failed_dispatch_leave_counters_that_match_their_rows(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    give_credits(api, admin, user, 4)  # short of the six the first campaign needs
    group = make_group(api, user["token"], "all", PEOPLE)
    short = make_campaign(api, user["token"], [group])
    assert api.request("POST", f"/v1/campaigns/{short}/send", token=user["token"]).status == 202
    pipeline.pollers["DispatcherFunction"].poll_once()  # not enough credits: its rows are deleted
    assert api.request("GET", f"/v1/campaigns/{short}", token=user["token"]).json()["status"] == "failed"
    assert _by_stats(api, user["token"], short) == _by_rows(conn, short) == {}

    give_credits(api, admin, user, 10)
    cancelled = make_campaign(api, user["token"], [group])
    assert api.request("POST", f"/v1/campaigns/{cancelled}/send", token=user["token"]).status == 202
    pipeline.pollers["DispatcherFunction"].poll_once()
    assert api.request("POST", f"/v1/campaigns/{cancelled}/cancel", token=user["token"]).status == 200
    assert _by_stats(api, user["token"], cancelled) == _by_rows(conn, cancelled) == {"failed": 6}


def test_two_folds_at_once_keep_every_count_once(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: Any, database_url: str
) -> None:
    from psycopg.rows import dict_row

    from smsplatform.campaigns import campaigns

    give_credits(api, admin, user, 100)
    campaign_id = make_campaign(api, user["token"], [make_group(api, user["token"], "all", PEOPLE)])
    assert api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=user["token"]).status == 202
    pipeline.drain()
    before = _by_stats(api, user["token"], campaign_id)
    second: list[int] = []
    with psycopg.connect(database_url, row_factory=dict_row) as one:
        campaigns.compact_message_counts(one)  # folded, not committed: its rows stay locked
        other = threading.Thread(
            target=lambda: second.append(_fold_in_own_transaction(database_url, campaigns.compact_message_counts))
        )
        other.start()
        other.join(timeout=1)
        assert other.is_alive()  # the second fold waits for the first ...
        one.commit()
    other.join(timeout=10)
    assert second == [1]  # ... then finds the rows it saw gone, and folds nothing twice
    states = conn.execute(
        "SELECT state, count(*)::int AS n FROM campaign_message_counts WHERE campaign_id = %s GROUP BY state",
        (campaign_id,),
    ).fetchall()
    assert all(row["n"] == 1 for row in states)
    assert _by_stats(api, user["token"], campaign_id) == before == {"delivered": 6}


def _fold_in_own_transaction(database_url: str, fold: Any) -> int:
    from psycopg.rows import dict_row

    with psycopg.connect(database_url, row_factory=dict_row) as connection:
        folded = int(fold(connection))
        connection.commit()
    return folded
