"""The daily maintenance cannot jam: rows that reach the default partition are moved out, and one failing
step neither stops nor rolls back the others."""

import json
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from local.runtime import FunctionRuntime
from tests.support.paths import ROOT

EVENT = json.loads((ROOT / "events" / "maintenance" / "schedule.json").read_text())


def _month(offset: int) -> datetime:
    now = datetime.now(UTC)
    year, month = divmod(now.month - 1 + offset, 12)
    return datetime(now.year + year, month + 1, 1, tzinfo=UTC)


def _partitions(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'sms_delivery_logs'::regclass"""
    ).fetchall()
    return {row["relname"] for row in rows}


@pytest.fixture
def maintenance(runtimes: dict[str, FunctionRuntime]) -> FunctionRuntime:
    return runtimes["MaintenanceFunction"]


def test_rows_in_the_default_partition_are_moved_out_and_the_other_steps_still_run(
    maintenance: FunctionRuntime,
    user: dict[str, Any],
    conn: psycopg.Connection[Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Maintenance stopped for months: the partition for three months ahead was never made, and rows written
    # for that month went to the default partition (here one, with text that must survive the move).
    ahead = _month(3)
    missing = ahead.strftime("sms_delivery_logs_%Y_%m")
    conn.execute(f"DROP TABLE IF EXISTS {missing}")
    conn.execute(
        """INSERT INTO sms_delivery_logs (user_id, request_id, phone_number, body, created_at)
           VALUES (%s, gen_random_uuid(), '+447400123101', 'Ünïcødé ✅ 50%% off — "quoted" \\ back', %s)""",
        (user["id"], ahead.replace(day=2)),
    )
    campaign = conn.execute(  # and one of a campaign, whose counters must not count it twice once it moves
        """INSERT INTO sms_campaigns (user_id, name, message_template, status)
           VALUES (%s, 'ahead', 'Hi', 'sending') RETURNING id""",
        (user["id"],),
    ).fetchone()["id"]
    conn.execute(
        """INSERT INTO sms_delivery_logs (user_id, campaign_id, phone_number, body, cost, created_at)
           VALUES (%s, %s, '+447400123102', 'Hi', 1, %s)""",
        (user["id"], campaign, ahead.replace(day=3)),
    )
    conn.execute(
        """INSERT INTO status_callbacks (user_id, url, payload, status, created_at)
           VALUES (%s, 'https://x.example/h', '{}', 'delivered', now() - interval '8 days')""",
        (user["id"],),
    )
    assert conn.execute("SELECT count(*) AS n FROM sms_delivery_logs_default").fetchone()["n"] == 2

    first = maintenance.invoke(EVENT)
    second = maintenance.invoke(EVENT)

    placed = conn.execute(
        "SELECT tableoid::regclass::text AS part, body FROM sms_delivery_logs ORDER BY created_at"
    ).fetchall()
    assert [(row["part"], row["body"]) for row in placed] == [
        (missing, 'Ünïcødé ✅ 50% off — "quoted" \\ back'),
        (missing, "Hi"),
    ]
    counted = conn.execute(
        "SELECT sum(messages)::int AS n FROM campaign_message_counts WHERE campaign_id = %s", (campaign,)
    ).fetchone()["n"]
    assert counted == 1
    assert conn.execute("SELECT count(*) AS n FROM sms_delivery_logs_default").fetchone()["n"] == 0
    assert "sms_delivery_logs_default" in _partitions(conn)  # the safety net is back in place
    assert first["default_partition_rows_moved"] == 2
    assert first["default_partition_rows"] == 2
    assert first["status_callbacks_purged"] == 1  # the purges were not rolled back with the partition step
    assert first["failed_steps"] == []
    assert (second["default_partition_rows_moved"], second["partitions_created"]) == (0, [])
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"CloudWatchMetrics"' in line]
    assert [m["DefaultPartitionRows"] for m in metrics if "DefaultPartitionRows" in m] == [[2.0], [0.0]]


def test_a_failing_step_is_reported_and_the_others_still_commit(
    maintenance: FunctionRuntime, user: dict[str, Any], conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from smsplatform.accounts import login_throttle

    def broken(_conn: Any) -> int:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(login_throttle, "purge_expired", broken)
    conn.execute(
        """INSERT INTO status_callbacks (user_id, url, payload, status, created_at)
           VALUES (%s, 'https://x.example/h', '{}', 'failed', now() - interval '9 days')""",
        (user["id"],),
    )

    with pytest.raises(RuntimeError, match="maintenance steps failed: login_failures"):
        maintenance.invoke(EVENT)

    assert conn.execute("SELECT count(*) AS n FROM status_callbacks").fetchone()["n"] == 0


def test_creating_a_partition_waits_for_a_lock_only_briefly_and_retries(
    user: dict[str, Any], conn: psycopg.Connection[Any], database_url: str
) -> None:
    from smsplatform.core import db
    from smsplatform.core import maintenance as upkeep

    far = _month(upkeep.PARTITION_MONTHS_AHEAD + 1).strftime("sms_delivery_logs_%Y_%m")
    far_ids = far.replace("sms_delivery_logs", "provider_message_ids")  # the month's provider ids (sql/0027)
    with psycopg.connect(database_url) as holder:  # a long transaction holds the parent's lock
        holder.execute("LOCK TABLE sms_delivery_logs IN ACCESS SHARE MODE")
        holder.execute("SELECT 1 FROM sms_delivery_logs LIMIT 1")
        with db.transaction() as pooled, pytest.raises(upkeep.LockBusyError):
            upkeep.create_delivery_log_partitions(
                pooled, months_ahead=upkeep.PARTITION_MONTHS_AHEAD + 1, attempts=2, lock_timeout_ms=100
            )
    assert far not in _partitions(conn)
    with db.transaction() as pooled:
        created = upkeep.create_delivery_log_partitions(pooled, months_ahead=upkeep.PARTITION_MONTHS_AHEAD + 1)
    assert created == [far, far_ids]
    conn.execute(f"DROP TABLE {far}, {far_ids}")
