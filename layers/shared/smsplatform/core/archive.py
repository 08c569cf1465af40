"""Archival of whole months: a partition past retention goes to S3, is verified there, then is dropped.

For each month of a partitioned table older than its retention, ArchiveFunction:

0. lets the table's owner finish what the month still holds unfinished (`before_export`: messages still
   unsent fail and their sends settle, so no credit stays reserved for rows about to go);
1. exports the partition with COPY as gzip JSON Lines (one object per row, every column; the Glue table
   in template.yaml declares them), at `archive/table=<table>/month=YYYY-MM/data.json.gz`;
2. verifies it: reads the object back from S3 and compares its row count and a checksum (the MD5 of
   the sorted ids) with the database's own;
3. detaches the partition (plainly, under a short lock_timeout: the default partition rules out
   CONCURRENTLY, see docs/adr/0010), counts the detached table again and drops it, with the month of
   any table that only points into it (the provider's ids of the month's messages).

`archived_months` records each step, so a crash anywhere repeats safely: an export not yet verified is
exported again, and nothing is dropped before its archive is verified with the rows it then holds.
Not Parquet: pyarrow (about 150 MB installed) next to the shared layer would take the function to Lambda's
250 MB limit for code and layers. Not CSV: message bodies hold line breaks, which Athena's line-based CSV
readers split into broken rows. JSON Lines escapes them, and Athena's JSON SerDe reads it exactly, with
partition projection all the same.
"""

import gzip
import hashlib
import io
import json
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any, BinaryIO

from psycopg import Connection, sql
from psycopg.rows import DictRow

from smsplatform.core import db, storage
from smsplatform.core.maintenance import LOCK_ATTEMPTS, LOCK_TIMEOUT_MS, stored_columns, with_lock_timeout
from smsplatform.core.observability import logger

PREFIX = "archive"
# Tables archived by month, and the setting holding each one's retention in months.
TABLES = {"sms_delivery_logs": "delivery_log_retention_months", "audit_logs": "audit_log_retention_months"}
# Tables partitioned by the same month whose rows only point into an archived table's (sql/0027): the
# provider's ids of the month's messages. Nothing to archive: they go when the month's rows are dropped.
POINTING_INTO = {"sms_delivery_logs": ("provider_message_ids",)}


# What a table's owner does to a month of it before the month is exported (by table name).
BeforeExport = Mapping[str, Callable[[date], object]]


class ArchiveMismatchError(RuntimeError):
    """The object in S3 does not hold exactly the partition's rows: nothing is dropped."""


@dataclass(frozen=True)
class Archived:
    table: str
    month: date
    rows: int
    bytes: int
    object_key: str


def object_key(table: str, month: date) -> str:
    return f"{PREFIX}/table={table}/month={month:%Y-%m}/data.json.gz"


def _partition(table: str, month: date) -> str:
    return f"{table}_{month:%Y_%m}"


def due_months(conn: Connection[DictRow], table: str, retention_months: int) -> list[date]:
    """Months of `table` whose partition still exists and ended `retention_months` or more months ago."""
    rows = conn.execute(
        """SELECT to_date(right(c.relname, 7), 'YYYY_MM') AS month
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = %s::regclass AND c.relname ~ ('^' || %s || '_[0-9]{4}_[0-9]{2}$')
              AND to_date(right(c.relname, 7), 'YYYY_MM')
                  < (date_trunc('month', now() AT TIME ZONE 'UTC') - make_interval(months => %s))::date
            ORDER BY 1""",
        (table, table, retention_months),
    ).fetchall()
    found = [row["month"] for row in rows]
    # A month detached by an earlier run that crashed before dropping it is no longer a partition.
    leftovers = conn.execute(
        "SELECT month FROM archived_months WHERE table_name = %s AND dropped_at IS NULL AND verified_at IS NOT NULL",
        (table,),
    ).fetchall()
    return sorted(set(found) | {row["month"] for row in leftovers})


def columns(conn: Connection[DictRow], table: str) -> list[tuple[str, str]]:
    """The table's columns and their types, in order (what the archive's objects hold): a generated
    column, such as the delivery logs' `phase`, is derived from the others and is not archived."""
    return stored_columns(conn, table)


def _database_digest(conn: Connection[DictRow], partition: str) -> tuple[int, str]:
    row = conn.execute(
        sql.SQL(
            "SELECT count(*) AS n, md5(coalesce(string_agg(id::text, ',' ORDER BY id::text), '')) AS digest FROM {}"
        ).format(sql.Identifier(partition))
    ).fetchone()
    assert row is not None
    return int(row["n"]), str(row["digest"])


def read_rows(stream: BinaryIO) -> Iterator[dict[str, Any]]:
    """The rows of an archived object, as an analyst reading it back gets them."""
    with gzip.GzipFile(fileobj=stream) as unzipped:
        for line in io.TextIOWrapper(unzipped, encoding="utf-8"):
            yield json.loads(line)


def _object_digest(stream: BinaryIO) -> tuple[int, str]:
    """Row count and the MD5 of the sorted ids of an archived object."""
    ids = sorted(str(row["id"]) for row in read_rows(stream))
    return len(ids), hashlib.md5(",".join(ids).encode(), usedforsecurity=False).hexdigest()


def _export(conn: Connection[DictRow], table: str, partition: str, bucket: str, key: str) -> int:
    # jsonb as its text (Athena reads it as a string column); the CSV format with quote and delimiter
    # characters JSON never holds unescaped passes each JSON line through COPY byte for byte.
    listed = sql.SQL(", ").join(
        sql.SQL("{}::text AS {}").format(sql.Identifier(name), sql.Identifier(name))
        if kind == "jsonb"
        else sql.Identifier(name)
        for name, kind in columns(conn, table)
    )
    query = sql.SQL(
        """COPY (SELECT row_to_json(r)::text FROM (SELECT {} FROM {} ORDER BY created_at, id) r)
           TO STDOUT (FORMAT csv, QUOTE e'\x01', DELIMITER e'\x02')"""
    ).format(listed, sql.Identifier(partition))
    with tempfile.NamedTemporaryFile(suffix=".csv.gz") as spool:
        with gzip.GzipFile(fileobj=spool, mode="wb", compresslevel=6) as zipped, conn.cursor().copy(query) as copy:
            for chunk in copy:
                zipped.write(bytes(chunk))
        spool.flush()
        size = spool.tell()
        storage.upload_file(bucket, key, spool.name, "application/gzip")
    return size


def archive_month(
    table: str, month: date, bucket: str, before_export: BeforeExport, *, lock_timeout_ms: int = LOCK_TIMEOUT_MS
) -> Archived:
    """Exports, verifies, detaches and drops one month; each step skipped if an earlier run did it."""
    partition = _partition(table, month)
    key = object_key(table, month)
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO archived_months (table_name, month) VALUES (%s, %s) ON CONFLICT DO NOTHING", (table, month)
        )
        state = conn.execute(
            "SELECT * FROM archived_months WHERE table_name = %s AND month = %s", (table, month)
        ).fetchone()
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL AS found", (partition,)).fetchone()
    assert state is not None
    assert exists is not None
    if state["dropped_at"] is not None:
        return Archived(table, month, state["rows"], state["bytes"], key)
    if not exists["found"]:
        raise ArchiveMismatchError(f"{partition} is gone but was never recorded as dropped")
    if state["verified_at"] is None:
        if table in before_export:
            before_export[table](month)
        _export_and_verify(table, month, partition, bucket, key)
    _detach_and_drop(table, month, partition, bucket, key, lock_timeout_ms)
    with db.transaction() as conn:
        done = conn.execute(
            "SELECT rows, bytes FROM archived_months WHERE table_name = %s AND month = %s", (table, month)
        ).fetchone()
    assert done is not None
    logger.info("month archived", extra={"table": table, "month": str(month), "rows": done["rows"]})
    return Archived(table, month, done["rows"], done["bytes"], key)


def _export_and_verify(table: str, month: date, partition: str, bucket: str, key: str) -> None:
    with db.transaction() as conn:
        size = _export(conn, table, partition, bucket, key)
        rows, digest = _database_digest(conn, partition)
        conn.execute(
            """UPDATE archived_months SET rows = %s, checksum = %s, object_key = %s, bytes = %s, exported_at = now()
                WHERE table_name = %s AND month = %s""",
            (rows, digest, key, size, table, month),
        )
    stream, _ = storage.open_object(bucket, key)
    found_rows, found_digest = _object_digest(stream)
    if (found_rows, found_digest) != (rows, digest):
        raise ArchiveMismatchError(
            f"{key} holds {found_rows} rows (checksum {found_digest}); {partition} has {rows} ({digest})"
        )
    with db.transaction() as conn:
        conn.execute(
            "UPDATE archived_months SET verified_at = now() WHERE table_name = %s AND month = %s", (table, month)
        )


def _detach(conn: Connection[DictRow], table: str, partition: str) -> None:
    """Detaches `partition` from `table` if it is still one of its partitions."""
    attached = conn.execute(
        "SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(%s) AND inhparent = %s::regclass", (partition, table)
    ).fetchone()
    if attached:
        conn.execute(
            sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(sql.Identifier(table), sql.Identifier(partition))
        )


def _detach_and_drop(table: str, month: date, partition: str, bucket: str, key: str, lock_timeout_ms: int) -> None:
    with db.transaction() as conn:
        with_lock_timeout(
            conn, partial(_detach, conn, table, partition), LOCK_ATTEMPTS, lock_timeout_ms, f"detach {partition}"
        )
        for pointing in POINTING_INTO.get(table, ()):
            pointing_partition = _partition(pointing, month)
            with_lock_timeout(
                conn,
                partial(_detach, conn, pointing, pointing_partition),
                LOCK_ATTEMPTS,
                lock_timeout_ms,
                f"detach {pointing_partition}",
            )
        # Detached, nothing writes to it: if it changed since the export, archive it again before dropping.
        rows, digest = _database_digest(conn, partition)
        state = conn.execute(
            "SELECT rows, checksum FROM archived_months WHERE table_name = %s AND month = %s", (table, month)
        ).fetchone()
    assert state is not None
    if (rows, digest) != (state["rows"], state["checksum"]):
        logger.warning("partition changed after its export; archiving it again", extra={"partition": partition})
        _export_and_verify(table, month, partition, bucket, key)
    with db.transaction() as conn, conn.transaction():
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(partition)))
        for pointing in POINTING_INTO.get(table, ()):
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(_partition(pointing, month))))
        conn.execute(
            "UPDATE archived_months SET dropped_at = now() WHERE table_name = %s AND month = %s", (table, month)
        )


def archive_due(settings: Any, bucket: str, before_export: BeforeExport) -> list[Archived]:
    """Every month past retention of every archived table, oldest first."""
    done = []
    for table, setting in TABLES.items():
        with db.transaction() as conn:
            months = due_months(conn, table, int(getattr(settings, setting)))
        for month in months:
            done.append(archive_month(table, month, bucket, before_export))
    return done
