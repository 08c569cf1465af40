"""The claim, the record and the receipt update a message row in place (HOT), adding no index entry
(sql/0022 and 0027, ADRs 0014 and 0017); a message's id is time-ordered, so inserts append to the primary key
(sql/0028, ADR 0018).

Counted by PostgreSQL itself, in the transaction that wrote the rows: an index that names a column one of
these steps writes (the status, `updated_at`, `claimed_at`...) makes every such update a non-HOT one.
"""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.integration.test_campaign_counters import TEMPLATE
from tests.integration.test_chunked_release import PEOPLE
from tests.support.harness import Api, Pipeline
from tests.support.scenarios import give_credits, make_campaign, make_group


def _written(conn: psycopg.Connection[Any], partition: str) -> tuple[int, int]:
    """(updated, of which in place) by this connection, not yet reported to the statistics: read twice
    within one transaction, nothing is reported in between."""
    row = conn.execute(
        """SELECT pg_stat_get_xact_tuples_updated(%(p)s::regclass) AS updated,
                  pg_stat_get_xact_tuples_hot_updated(%(p)s::regclass) AS hot""",
        {"p": partition},
    ).fetchone()
    assert row is not None
    return row["updated"], row["hot"]


@pytest.fixture
def batch(api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: Any) -> dict[str, Any]:
    """A campaign's first batch, released: real text of 1 to 4 segments, so the rows are of a real size."""
    give_credits(api, admin, user, 500)
    campaign_id = make_campaign(api, user["token"], [make_group(api, user["token"], "all", PEOPLE)], TEMPLATE)
    assert api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=user["token"]).status == 202
    pipeline.pollers["DispatcherFunction"].poll_once()
    row = conn.execute(
        """SELECT tableoid::regclass::text AS partition, batch_number, count(*) AS n FROM sms_delivery_logs
            GROUP BY 1, 2 ORDER BY 3 DESC, 2 LIMIT 1"""
    ).fetchone()
    return {"id": campaign_id, **row}


def test_the_claim_the_record_and_the_receipt_update_each_row_in_place(
    batch: dict[str, Any], database_url: str
) -> None:
    from smsplatform.core.config import get_settings
    from smsplatform.core.queue_messages import Receipt
    from smsplatform.providers.base import SendResult
    from smsplatform.sending import receipts, sender

    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        with conn.transaction():
            updated, hot = _written(conn, batch["partition"])
            claimed = sender.claim(conn, "campaign", batch["id"], batch["batch_number"], get_settings())
            assert len(claimed) == batch["n"] > 1
            assert _written(conn, batch["partition"]) == (updated + batch["n"], hot + batch["n"])  # all in place

        results = [
            SendResult(item.id, "accepted", external_id=f"hot-{n}", provider="simulator")
            for n, item in enumerate(claimed)
        ]
        with conn.transaction():
            updated, hot = _written(conn, batch["partition"])
            assert sender.record(conn, claimed, results, "simulator", 5, batch["id"])["sent"] == batch["n"]
            assert _written(conn, batch["partition"]) == (updated + batch["n"], hot + batch["n"])  # all in place

        delivered = [
            Receipt(external_id=f"hot-{n}", status="delivered", timestamp=datetime.now(UTC))
            for n in range(len(claimed))
        ]
        with conn.transaction():
            updated, hot = _written(conn, batch["partition"])
            assert receipts.apply(conn, "simulator", delivered).applied == batch["n"]
            assert _written(conn, batch["partition"]) == (updated + batch["n"], hot + batch["n"])  # all in place

        statuses = conn.execute(
            "SELECT status, phase, count(*) AS n FROM sms_delivery_logs WHERE batch_number = %s GROUP BY 1, 2",
            (batch["batch_number"],),
        ).fetchall()
    assert statuses == [{"status": "delivered", "phase": None, "n": batch["n"]}]


def test_a_campaigns_messages_are_listed_by_status_without_the_status_in_an_index(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: Any
) -> None:
    """Failed and undelivered ones along the campaign's phase index; sent and delivered ones only when its
    counters hold any (none sent once every receipt came), both through the campaign's and the account's list."""
    token = user["token"]
    give_credits(api, admin, user, 500)
    rejected, undelivered = "+447400199990", "+447400199993"  # the simulator's rules for these numbers
    people = [*PEOPLE[:4], {"phone_number": rejected}, {"phone_number": undelivered}]
    campaign_id = make_campaign(api, token, [make_group(api, token, "all", people)], TEMPLATE)
    assert api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=token).status == 202
    pipeline.drain()

    def listed(status: str) -> list[list[str]]:
        """The numbers with `status`, from the campaign's list and from the account's list of the campaign."""
        lists = (
            f"/v1/campaigns/{campaign_id}/messages?status={status}&limit=100",
            f"/v1/messages?campaign_id={campaign_id}&status={status}&limit=100",
        )
        found = [api.request("GET", path, token=token) for path in lists]
        assert [response.status for response in found] == [200, 200], [response.body for response in found]
        return [sorted(m["to"] for m in response.json()["data"]) for response in found]

    others = sorted(person["phone_number"] for person in PEOPLE[:4])
    assert listed("failed") == [[rejected], [rejected]]
    assert listed("undelivered") == [[undelivered], [undelivered]]
    assert listed("delivered") == [others, others]
    assert listed("sent") == [[], []]  # every receipt came: not one row of the campaign is read
    # A receipt still to come (the counters follow the row, as for any write of it).
    conn.execute(
        "UPDATE sms_delivery_logs SET status = 'sent', delivered_at = NULL WHERE phone_number = %s",
        (others[0],),
    )
    assert listed("sent") == [[others[0]], [others[0]]]
    assert listed("delivered") == [others[1:], others[1:]]


def test_phase_of_names_the_phase_the_database_derives_for_every_status(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: Any
) -> None:
    """The lists and cancels name `messages.phase_of(status)` beside the status: a status it maps wrongly
    would be looked for in the wrong part of an index, and listed or cancelled as none."""
    from smsplatform.sending.messages import MessageStatus, phase_of

    give_credits(api, admin, user, 5)
    accepted = api.request(
        "POST", "/v1/messages", token=user["token"], json_body={"to": ["+447400123300"], "text": TEMPLATE}
    )
    assert accepted.status == 202
    derived = {}
    for status in get_args(MessageStatus):
        row = conn.execute("UPDATE sms_delivery_logs SET status = %s RETURNING phase", (status,)).fetchone()
        derived[status] = row["phase"]
    assert derived == {status: phase_of(status) for status in get_args(MessageStatus)}
    assert set(derived.values()) == {None, "scheduled", "undelivered", "failed", "cancelled"}


def _written_at(message_id: uuid.UUID) -> datetime:
    """The Unix milliseconds a version 7 id begins with."""
    return datetime.fromtimestamp((message_id.int >> 80) / 1000, UTC)


def test_message_ids_are_time_ordered_so_that_inserts_append_to_the_primary_key(
    batch: dict[str, Any], api: Api, user: dict[str, Any], conn: Any
) -> None:
    """Released and single-send messages alike: UUID version 7, written in their row's transaction, unique;
    and ids made one after another never go back in time (a random id would put each insert on a random
    leaf of the primary key)."""
    single = {"to": ["+447400123301"], "text": TEMPLATE}
    sent = api.request("POST", "/v1/messages", token=user["token"], json_body=single)
    assert sent.status == 202
    rows = conn.execute(
        "SELECT id, created_at, clock_timestamp() AS now, campaign_id FROM sms_delivery_logs"
    ).fetchall()
    assert {row["campaign_id"] for row in rows} == {uuid.UUID(batch["id"]), None}
    for row in rows:
        assert (row["id"].version, row["id"].variant) == (7, uuid.RFC_4122)
        assert row["created_at"] - timedelta(milliseconds=1) <= _written_at(row["id"]) <= row["now"]
    assert len({row["id"] for row in rows}) == len(rows)

    made = conn.execute(
        "SELECT uuid_v7() AS id, clock_timestamp() AS at FROM generate_series(1, 100000) g ORDER BY g"
    ).fetchall()
    assert len({row["id"] for row in made}) == len(made)
    moments = [_written_at(row["id"]) for row in made]
    assert moments == sorted(moments)
    # Each stamped when it was made, not when its statement began: the ids span the statement's own time, to
    # their milliseconds' rounding (a row's two clock reads are microseconds apart).
    spanned, took = moments[-1] - moments[0], made[-1]["at"] - made[0]["at"]
    assert abs(spanned - took) <= timedelta(milliseconds=2)
