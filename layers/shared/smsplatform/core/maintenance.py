"""Scheduled upkeep that keeps the database ready without anyone present, and cannot jam.

Each step runs in its own transaction (`run_steps`): one that fails is reported,
and fails the function so its alarm fires, without undoing or stopping the
others. DDL waits for a lock only briefly (`lock_timeout`) and retries, so it
never queues the pipeline's statements behind it for long.

The default partition of sms_delivery_logs stays as a safety net: a row whose
month has no partition still lands somewhere instead of failing a send. Such a
row blocks creating its month's partition, so maintenance moves those rows out
first (`move_default_partition_rows`) and reports how many it found (the
DefaultPartitionRows metric, which alarms above zero). See docs/adr/0010.
"""

import time
from collections.abc import Callable
from typing import Any

from psycopg import Connection, errors, sql
from psycopg.rows import DictRow

from smsplatform.core import db
from smsplatform.core.observability import logger

# Partitions exist this many months ahead, so a missed run or two never sends
# rows into the default partition.
PARTITION_MONTHS_AHEAD = 3
LOCK_TIMEOUT_MS = 2_000
LOCK_ATTEMPTS = 5


class LockBusyError(RuntimeError):
    """The lock a DDL step needs stayed taken through every attempt; the next run tries again."""


def with_lock_timeout(
    conn: Connection[DictRow], work: Callable[[], Any], attempts: int, lock_timeout_ms: int, what: str
) -> Any:
    for attempt in range(attempts):
        try:
            with conn.transaction():
                conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{int(lock_timeout_ms)}ms")))
                return work()
        except errors.LockNotAvailable:
            logger.warning("lock busy; retrying", extra={"step": what, "attempt": attempt + 1})
            time.sleep(min(0.1 * 2**attempt, 2.0))
    raise LockBusyError(f"{what}: the lock stayed busy through {attempts} attempts")


def create_delivery_log_partitions(
    conn: Connection[DictRow],
    months_ahead: int = PARTITION_MONTHS_AHEAD,
    *,
    attempts: int = LOCK_ATTEMPTS,
    lock_timeout_ms: int = LOCK_TIMEOUT_MS,
) -> list[str]:
    """Creates the monthly sms_delivery_logs partitions still missing; returns their names."""

    def create() -> list[str]:
        rows = conn.execute("SELECT create_delivery_log_partitions(%s) AS name", (months_ahead,)).fetchall()
        return [row["name"] for row in rows]

    result: list[str] = with_lock_timeout(conn, create, attempts, lock_timeout_ms, "create partitions")
    return result


def create_audit_log_partitions(conn: Connection[DictRow], months_ahead: int = PARTITION_MONTHS_AHEAD) -> list[str]:
    def create() -> list[str]:
        rows = conn.execute("SELECT create_month_partitions('audit_logs', %s) AS name", (months_ahead,)).fetchall()
        return [row["name"] for row in rows]

    result: list[str] = with_lock_timeout(conn, create, LOCK_ATTEMPTS, LOCK_TIMEOUT_MS, "create audit partitions")
    return result


def default_partition_rows(conn: Connection[DictRow], table: str = "sms_delivery_logs") -> int:
    row = conn.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(f"{table}_default"))).fetchone()
    return int(row["n"]) if row else 0


def stored_columns(conn: Connection[DictRow], table: str) -> list[tuple[str, str]]:
    """The table's columns and their types, in order, without generated ones: what a copy of its rows
    writes (a generated column is computed again from the others, and cannot be written)."""
    rows = conn.execute(
        """SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute
            WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
            ORDER BY attnum""",
        (table,),
    ).fetchall()
    return [(row["attname"], row["type"]) for row in rows]


def move_default_partition_rows(
    conn: Connection[DictRow],
    table: str = "sms_delivery_logs",
    *,
    attempts: int = LOCK_ATTEMPTS,
    lock_timeout_ms: int = LOCK_TIMEOUT_MS,
) -> int:
    """Moves rows out of the default partition into partitions of their months (created for them), in one
    transaction: detach the default, create the months, re-insert, empty and re-attach it. Returns the count.

    Rows only get there when partitions were not made ahead (maintenance stopped for months) or a row was
    written with an old or far-future created_at; the probe is one read of an empty table otherwise.
    """
    if default_partition_rows(conn, table) == 0:
        return 0
    parent, default = sql.Identifier(table), sql.Identifier(f"{table}_default")

    def move() -> int:
        conn.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(parent, default))
        months = conn.execute(
            sql.SQL("SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS month FROM {}").format(
                default
            )
        ).fetchall()
        for row in months:
            conn.execute("SELECT create_month_partition(%s, %s)", (table, row["month"]))
        listed = sql.SQL(", ").join(sql.Identifier(name) for name, _ in stored_columns(conn, table))
        conn.execute("SET LOCAL sms.moving_partition_rows = 'on'")  # counted once already (sql/0020)
        moved = conn.execute(
            sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(parent, listed, listed, default)
        ).rowcount
        conn.execute("SET LOCAL sms.moving_partition_rows = 'off'")
        conn.execute(sql.SQL("TRUNCATE {}").format(default))
        conn.execute(sql.SQL("ALTER TABLE {} ATTACH PARTITION {} DEFAULT").format(parent, default))
        return moved

    moved: int = with_lock_timeout(conn, move, attempts, lock_timeout_ms, f"move {table}'s default partition rows")
    logger.warning("rows moved out of the default partition", extra={"table": table, "rows": moved})
    return moved


Step = tuple[str, Callable[[Connection[DictRow]], Any]]


def run_steps(steps: list[Step]) -> tuple[dict[str, Any], list[str]]:
    """Runs each step in its own transaction; returns each step's result and the names of those that failed."""
    results: dict[str, Any] = {}
    failed: list[str] = []
    for name, step in steps:
        try:
            with db.transaction() as conn:
                results[name] = step(conn)
        except Exception:
            logger.exception("maintenance step failed", extra={"step": name})
            failed.append(name)
    return results, failed
