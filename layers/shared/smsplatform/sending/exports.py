"""Exports: an account's messages as a gzip CSV in S3, handed back as a presigned URL.

`POST /v1/exports` writes the export's row and enqueues it; ExportFunction then
streams the rows out of PostgreSQL with COPY (no row passes through Python one
by one), gzips them into a temporary file as they come, counting rows for the
progress the API shows, and uploads the file. The object expires with the
bucket's lifecycle; until then `GET /v1/exports/{id}` presigns a fresh URL.
An export whose worker is gone (its message in the dead-letter queue) is failed
by the scheduler's sweep, so every export ends completed or failed.
"""

import gzip
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from psycopg import Connection, sql
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from smsplatform.core import audit, db, storage
from smsplatform.core.audit import RequestMeta
from smsplatform.core.config import Settings
from smsplatform.core.errors import NotFoundError
from smsplatform.core.observability import logger

ExportStatus = Literal["queued", "running", "completed", "failed"]
HEADER = "id,campaign_id,to,from,status,segments,cost,provider,external_id,error_code,created_at,sent_at,delivered_at"
# Columns in HEADER's order; timestamps in UTC ISO 8601.
_SELECT = """SELECT id, campaign_id, phone_number, sender_id, status, segments, cost, provider, external_message_id,
                    error_code, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                    to_char(sent_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                    to_char(delivered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
               FROM sms_delivery_logs WHERE user_id = {user}"""
_PROGRESS_SECONDS = 2.0  # how often a running export's row count is written
# An export running (or queued) this long has lost its worker: the function's timeout is 15 minutes.
STALE_AFTER = timedelta(minutes=30)


@dataclass(frozen=True)
class ExportFilters:
    campaign_id: UUID | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {key: str(value) if value is not None else None for key, value in self.__dict__.items()}


@dataclass(frozen=True)
class Export:
    id: UUID
    kind: str
    status: ExportStatus
    rows: int
    bytes: int | None
    object_key: str | None
    error_message: str | None
    filters: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime | None

    @classmethod
    def from_row(cls, row: DictRow) -> "Export":
        return cls(**{key: row[key] for key in cls.__dataclass_fields__})


_COLUMNS = """id, kind, status, rows, bytes, object_key, error_message, filters, created_at, started_at,
              finished_at, expires_at"""


def create(conn: Connection[DictRow], user_id: UUID, filters: ExportFilters, meta: RequestMeta) -> Export:
    """The export's row, queued; the caller enqueues it once committed (`announce`)."""
    if filters.campaign_id is not None:
        owned = conn.execute(
            "SELECT 1 FROM sms_campaigns WHERE id = %s AND user_id = %s", (filters.campaign_id, user_id)
        ).fetchone()
        if owned is None:
            raise NotFoundError("No such campaign.")
    with conn.transaction():
        row = conn.execute(
            f"INSERT INTO exports (user_id, kind, filters) VALUES (%s, 'messages', %s) RETURNING {_COLUMNS}",
            (user_id, Jsonb(filters.as_json())),
        ).fetchone()
        assert row is not None
        audit.record(conn, user_id, "export.create", {"export_id": str(row["id"]), **filters.as_json()}, meta)
    return Export.from_row(row)


def get(conn: Connection[DictRow], user_id: UUID, export_id: UUID) -> Export:
    row = conn.execute(f"SELECT {_COLUMNS} FROM exports WHERE id = %s AND user_id = %s", (export_id, user_id))
    found = row.fetchone()
    if found is None:
        raise NotFoundError("No such export.")
    return Export.from_row(found)


def download_url(export: Export, settings: Settings, now: datetime) -> tuple[str | None, datetime | None]:
    """A presigned GET of a completed export's object, and when that URL stops working."""
    if export.status != "completed" or not export.object_key or not settings.exports_bucket:
        return None, None
    if export.expires_at is not None and export.expires_at <= now:
        return None, None  # the lifecycle has deleted it
    seconds = settings.export_url_ttl_seconds
    if export.expires_at is not None:
        seconds = max(1, min(seconds, int((export.expires_at - now).total_seconds())))
    url = storage.presigned_download_url(settings.exports_bucket, export.object_key, seconds)
    return url, now + timedelta(seconds=seconds)


def _query(user_id: UUID, filters: dict[str, Any]) -> sql.Composed:
    conditions = [sql.SQL(_SELECT).format(user=sql.Literal(user_id))]
    for column, key, operator in (
        ("campaign_id", "campaign_id", "="),
        ("status", "status", "="),
        ("created_at", "since", ">="),
        ("created_at", "until", "<"),
    ):
        if filters.get(key) is not None:
            conditions.append(
                sql.SQL("{} {} {}").format(sql.Identifier(column), sql.SQL(operator), sql.Literal(filters[key]))
            )
    query = sql.SQL(" AND ").join(conditions)
    return sql.SQL("COPY ({} ORDER BY created_at, id) TO STDOUT (FORMAT csv)").format(query)


def run(export_id: UUID, settings: Settings) -> Export | None:
    """Builds the export: claims it, streams COPY into a gzip file, uploads it, records the outcome.

    A repeat of the queue message for an export already finished, or running under another worker that is
    still alive, does nothing.
    """
    if not settings.exports_bucket:  # before claiming it: a misconfigured worker leaves the export queued
        raise RuntimeError("no exports bucket configured: set SMS_EXPORTS_BUCKET")
    with db.transaction() as conn:
        row = conn.execute(
            f"""UPDATE exports SET status = 'running', started_at = now(), rows = 0
                 WHERE id = %s AND (status = 'queued'
                                    OR (status = 'running' AND started_at < now() - make_interval(secs => %s)))
             RETURNING user_id, {_COLUMNS}""",
            (export_id, STALE_AFTER.total_seconds()),
        ).fetchone()
    if row is None:
        return None
    key = f"exports/{row['user_id']}/{export_id}.csv.gz"
    try:
        rows, size = _stream(export_id, row["user_id"], row["filters"], key, settings.exports_bucket)
    except Exception as exc:
        logger.exception("export failed", extra={"export_id": str(export_id)})
        with db.transaction() as conn:
            conn.execute(
                """UPDATE exports SET status = 'failed', error_message = %s, finished_at = now()
                    WHERE id = %s AND status = 'running'""",
                (f"The export could not be built ({type(exc).__name__}).", export_id),
            )
        raise
    with db.transaction() as conn:
        done = conn.execute(
            f"""UPDATE exports SET status = 'completed', rows = %s, bytes = %s, object_key = %s, finished_at = now(),
                                   expires_at = now() + make_interval(days => %s)
                 WHERE id = %s RETURNING {_COLUMNS}""",
            (rows, size, key, settings.export_retention_days, export_id),
        ).fetchone()
    assert done is not None
    logger.info("export completed", extra={"export_id": str(export_id), "rows": rows, "bytes": size})
    return Export.from_row(done)


def _stream(export_id: UUID, user_id: UUID, filters: dict[str, Any], key: str, bucket: str) -> tuple[int, int]:
    """COPY's CSV, gzipped into a temporary file as it arrives; the row count is written every few seconds
    (counted by line ends: no exported column holds free text) and, at the end, taken from COPY itself."""
    with tempfile.NamedTemporaryFile(suffix=".csv.gz") as spool:
        seen = 0
        last = time.monotonic()
        with gzip.GzipFile(fileobj=spool, mode="wb", compresslevel=5) as zipped:
            zipped.write((HEADER + "\n").encode())
            with db.reads() as conn, conn.cursor() as cursor:
                with cursor.copy(_query(user_id, filters)) as copy:
                    for chunk in copy:
                        data = bytes(chunk)
                        zipped.write(data)
                        seen += data.count(b"\n")
                        if time.monotonic() - last > _PROGRESS_SECONDS:
                            last = time.monotonic()
                            _progress(export_id, seen)
                rows = cursor.rowcount
        spool.flush()
        size = spool.tell()
        storage.upload_file(bucket, key, spool.name, "application/gzip")
    return rows, size


def _progress(export_id: UUID, rows: int) -> None:
    with db.transaction() as conn:
        conn.execute("UPDATE exports SET rows = %s WHERE id = %s AND status = 'running'", (rows, export_id))


def fail_stale(conn: Connection[DictRow]) -> int:
    """Exports whose worker is gone (queued or running past STALE_AFTER) fail: every export ends final."""
    cursor = conn.execute(
        """UPDATE exports SET status = 'failed', finished_at = now(),
                              error_message = 'The export was not finished in time; request it again.'
            WHERE status IN ('queued', 'running')
              AND coalesce(started_at, created_at) < now() - make_interval(secs => %s)""",
        (STALE_AFTER.total_seconds(),),
    )
    return cursor.rowcount
