"""Contact imports from CSV files, at the scale bulk senders work at.

An import is a row in contact_imports and a file in S3 under
imports/<user id>/<import id>.csv; the file's arrival (S3 -> SQS) starts the
work. The file is streamed once: each line is parsed and its number
normalised in Python (libphonenumber has no SQL equivalent) and COPYed into a
temporary staging table; everything after that is set-wise SQL: bad rows are
reported, duplicates within the file collapse to their last line, contacts are
upserted (unchanged rows are not rewritten, so importing a file again changes
nothing), and group membership is added in one statement.
"""

import csv
import io
import json
import multiprocessing
import multiprocessing.connection
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO
from urllib.parse import unquote_plus
from uuid import UUID, uuid4

from psycopg import Connection
from psycopg.rows import DictRow

from smsplatform import audit, contacts, db, groups, phones, storage
from smsplatform.audit import RequestMeta
from smsplatform.errors import FieldError, InvalidInputError, NotFoundError
from smsplatform.observability import logger

MAX_BODY_BYTES = 5 * 1024 * 1024  # Lambda's synchronous payload limit is 6 MB
MAX_STORED_ERRORS = 10_000
ERRORS_SHOWN = 1_000
PROGRESS_EVERY_ROWS = 25_000
PARALLEL_FROM_BYTES = 8 * 1024 * 1024
MAX_WORKERS = 4
PHONE_HEADERS = ("phone", "phone_number", "mobile", "msisdn", "number")
_KNOWN_HEADERS = {"first_name": 50, "last_name": 50, "email": 120, "country_code": 5}
_KEY_PATTERN = re.compile(r"^imports/([0-9a-f-]{36})/([0-9a-f-]{36})\.csv$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_COLUMNS = """id, user_id, status, source, object_key, group_id, default_region, total_rows, processed_rows,
              imported, updated, unchanged, duplicates, invalid, ignored_columns, error_message, created_at,
              started_at, finished_at"""


class ImportFileError(Exception):
    """The file as a whole cannot be imported (no phone column, not UTF-8 ...)."""


@dataclass(frozen=True)
class ContactImport:
    id: UUID
    user_id: UUID
    status: str
    source: str
    object_key: str
    group_id: UUID | None
    default_region: str | None
    total_rows: int
    processed_rows: int
    imported: int
    updated: int
    unchanged: int
    duplicates: int
    invalid: int
    ignored_columns: list[str]
    error_message: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: DictRow) -> "ContactImport":
        return cls(**{key: row[key] for key in cls.__dataclass_fields__})


@dataclass(frozen=True)
class RowError:
    line_number: int
    reason: str


def object_key(user_id: UUID, import_id: UUID) -> str:
    return f"imports/{user_id}/{import_id}.csv"


def import_id_from_key(key: str) -> UUID | None:
    match = _KEY_PATTERN.match(unquote_plus(key))
    return UUID(match[2]) if match else None


def start_import(
    conn: Connection[DictRow],
    user_id: UUID,
    meta: RequestMeta,
    *,
    source: str,
    group_id: UUID | None,
    default_region: str | None,
) -> ContactImport:
    """Records a new import; a posted file is `pending`, an upload is `awaiting_upload` until it lands."""
    if default_region is not None and not phones.is_region(default_region):
        raise InvalidInputError(
            f"{default_region!r} is not a region code.",
            errors=[FieldError("default_region", "must be an ISO 3166 alpha-2 code such as GB or US")],
        )
    if group_id is not None:
        groups.get_group(conn, user_id, group_id)
    import_id = uuid4()
    row = conn.execute(
        f"""INSERT INTO contact_imports (id, user_id, status, source, object_key, group_id, default_region)
            VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}""",
        (
            import_id,
            user_id,
            "pending" if source == "body" else "awaiting_upload",
            source,
            object_key(user_id, import_id),
            group_id,
            default_region.upper() if default_region else None,
        ),
    ).fetchone()
    assert row is not None
    audit.record(conn, user_id, "contacts.import", {"import_id": str(import_id), "source": source}, meta)
    return ContactImport.from_row(row)


def get_import(conn: Connection[DictRow], user_id: UUID, import_id: UUID) -> tuple[ContactImport, list[RowError]]:
    """The import and its first row errors, by line number."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM contact_imports WHERE id = %s AND user_id = %s", (import_id, user_id)
    ).fetchone()
    if row is None:
        raise NotFoundError("No such import.")
    errors = conn.execute(
        """SELECT line_number, reason FROM contact_import_errors WHERE import_id = %s
            ORDER BY line_number LIMIT %s""",
        (import_id, ERRORS_SHOWN),
    ).fetchall()
    return ContactImport.from_row(row), [RowError(e["line_number"], e["reason"]) for e in errors]


def claim(conn: Connection[DictRow], import_id: UUID) -> ContactImport | None:
    """Marks the import as processing; None if it is finished already (a redelivered event).

    A `processing` import may be claimed again: the run that held it died, and a
    second run is harmless because the load is one transaction and idempotent.
    """
    row = conn.execute(
        f"""UPDATE contact_imports SET status = 'processing', started_at = now(), processed_rows = 0
             WHERE id = %s AND status IN ('awaiting_upload', 'pending', 'processing') RETURNING {_COLUMNS}""",
        (import_id,),
    ).fetchone()
    return ContactImport.from_row(row) if row else None


def fail(conn: Connection[DictRow], import_id: UUID, reason: str) -> None:
    conn.execute(
        """UPDATE contact_imports SET status = 'failed', error_message = %s, finished_at = now()
            WHERE id = %s AND status <> 'completed'""",
        (reason, import_id),
    )


# -- reading the file --------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    delimiter: str
    phone: int
    known: dict[str, int]
    custom: list[tuple[int, str]]
    ignored: list[str]


def _layout(header_line: str) -> _Layout:
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    originals = next(csv.reader([header_line], delimiter=delimiter))
    names = [re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_") for name in originals]
    phone = next((names.index(name) for name in PHONE_HEADERS if name in names), None)
    if phone is None:
        raise ImportFileError(f"The header has no phone column (one of: {', '.join(PHONE_HEADERS)}).")
    known = {name: names.index(name) for name in _KNOWN_HEADERS if name in names}
    taken = {phone, *known.values()}
    usable = [
        (index, name)
        for index, name in enumerate(names)
        if index not in taken and name and contacts.CUSTOM_FIELD_KEY.match(name)
    ]
    custom = usable[: contacts.MAX_CUSTOM_FIELDS]
    kept = taken | {index for index, _ in custom}
    ignored = [originals[index].strip() for index in range(len(names)) if index not in kept]
    return _Layout(delimiter, phone, known, custom, ignored)


Row = tuple[int, list[str]]  # (line number, fields); the header is line 1


def _open(stream: BinaryIO) -> tuple[_Layout, Iterator[Row]]:
    """Reads the header now (a file without a usable one fails here) and the data rows as they are consumed."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    with _as_file_error():
        header = text.readline()
    if not header.strip():
        raise ImportFileError("The file is empty.")
    layout = _layout(header)

    def rows() -> Iterator[Row]:
        with _as_file_error():
            reader = csv.reader(text, delimiter=layout.delimiter)
            consumed = 0
            for fields in reader:
                line_number = 2 + consumed
                consumed = reader.line_num
                if any(field.strip() for field in fields):
                    yield line_number, fields

    return layout, rows()


@contextmanager
def _as_file_error() -> Iterator[None]:
    try:
        yield
    except UnicodeDecodeError as exc:
        raise ImportFileError("The file is not UTF-8 text.") from exc
    except csv.Error as exc:
        raise ImportFileError(f"The file is not valid CSV: {exc}.") from exc


def _staged(
    line_number: int, fields: list[str], layout: _Layout, default_region: str | None
) -> tuple[int, str | None, str | None, str | None, str | None, str | None, str, str | None]:
    """One staging row: the normalised values, or the reason the row is skipped."""

    def field(index: int | None) -> str | None:
        if index is None or index >= len(fields):
            return None
        value = fields[index].strip()
        return value or None

    known = {name: field(index) for name, index in layout.known.items()}
    custom = {name: value for index, name in layout.custom if (value := field(index)) is not None}
    custom_json = json.dumps(custom) if custom else "{}"
    raw_phone = field(layout.phone)
    error = None
    phone = region = None
    if raw_phone is None:
        error = "has no phone number"
    else:
        try:
            phone, region = phones.parse(raw_phone, known.get("country_code") or default_region)
        except phones.UnusableNumberError as exc:
            error = f"phone number {raw_phone!r} {exc}"
    if error is None:
        for name, limit in _KNOWN_HEADERS.items():
            if known.get(name) is not None and len(known[name] or "") > limit:
                error = f"{name} is longer than {limit} characters"
        if known.get("email") and not _EMAIL.match(known["email"] or ""):
            error = f"email {known['email']!r} is not an e-mail address"
    return (
        line_number,
        phone,
        region,
        known.get("first_name"),
        known.get("last_name"),
        known.get("email"),
        custom_json,
        error,
    )


# -- normalising in parallel ------------------------------------------------------------

_BATCH_ROWS = 5_000


def _normalise_batches(
    connection: "multiprocessing.connection.Connection", layout: _Layout, default_region: str | None
) -> None:
    """Worker process: staging rows for each batch it is sent, until it is sent None."""
    while (batch := connection.recv()) is not None:
        connection.send([_staged(line_number, fields, layout, default_region) for line_number, fields in batch])


def _staged_rows(
    layout: _Layout, rows: Iterator[Row], default_region: str | None, workers: int
) -> Iterator[tuple[Any, ...]]:
    """Staging rows in file order. Normalising numbers is CPU-bound pure Python, so a large file is
    cut into batches that `workers` processes normalise while this one feeds COPY.

    Worker processes are spawned (not forked: this process has threads) and talk over pipes,
    which work in Lambda, where multiprocessing's queues and pools do not.
    """
    if workers <= 1:
        for line_number, fields in rows:
            yield _staged(line_number, fields, layout, default_region)
        return
    context = multiprocessing.get_context("spawn")
    pipes, processes = [], []
    for _ in range(workers):
        ours, theirs = context.Pipe()
        process = context.Process(target=_normalise_batches, args=(theirs, layout, default_region), daemon=True)
        process.start()
        theirs.close()
        pipes.append(ours)
        processes.append(process)
    # One batch in flight per worker, collected in the order sent: file order is kept, and
    # no worker can block sending results while this process blocks sending it more.
    in_flight: deque[int] = deque()
    sent = 0
    try:
        for batch in _batches(rows):
            worker = sent % workers
            if len(in_flight) == workers:
                yield from pipes[in_flight.popleft()].recv()
            pipes[worker].send(batch)
            in_flight.append(worker)
            sent += 1
        while in_flight:
            yield from pipes[in_flight.popleft()].recv()
    finally:
        for pipe in pipes:
            with suppress(OSError):
                pipe.send(None)
            pipe.close()
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()


def _batches(rows: Iterator[Row]) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) == _BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


# -- loading -----------------------------------------------------------------------------


def load(
    conn: Connection[DictRow],
    job: ContactImport,
    stream: BinaryIO,
    report_progress: Callable[[int], None] = lambda rows: None,
    workers: int = 1,
) -> ContactImport:
    """Streams the file into staging and applies it; runs inside the caller's transaction."""
    started = time.perf_counter()
    conn.execute("SET LOCAL work_mem = '256MB'")
    conn.execute(
        """CREATE TEMP TABLE import_staging (
               line_number integer, phone text, country_code text, first_name text, last_name text,
               email text, custom_fields jsonb, error text) ON COMMIT DROP"""
    )
    layout, rows = _open(stream)
    total = 0
    with conn.cursor().copy("COPY import_staging FROM STDIN") as copy:
        for staged in _staged_rows(layout, rows, job.default_region, workers):
            copy.write_row(staged)
            total += 1
            if total % PROGRESS_EVERY_ROWS == 0:
                report_progress(total)
    report_progress(total)
    staged_at = time.perf_counter()

    conn.execute(
        """INSERT INTO contact_import_errors (import_id, line_number, reason)
           SELECT %s, line_number, error FROM import_staging WHERE error IS NOT NULL
            ORDER BY line_number LIMIT %s""",
        (job.id, MAX_STORED_ERRORS),
    )
    counts = conn.execute(
        """SELECT count(*) FILTER (WHERE error IS NOT NULL) AS invalid,
                  count(*) FILTER (WHERE error IS NULL) - count(DISTINCT phone) FILTER (WHERE error IS NULL)
                      AS duplicates
             FROM import_staging"""
    ).fetchone()
    assert counts is not None
    upserted = conn.execute(
        """WITH latest AS (
               SELECT DISTINCT ON (phone) phone, country_code, first_name, last_name, email, custom_fields
                 FROM import_staging WHERE error IS NULL
                ORDER BY phone, line_number DESC
           ), written AS (
               INSERT INTO contacts AS c (user_id, phone_number, country_code, first_name, last_name, email,
                                          custom_fields, status)
               SELECT %(user)s, l.phone, l.country_code, l.first_name, l.last_name, l.email, l.custom_fields,
                      CASE WHEN o.phone_number IS NULL THEN 'active' ELSE 'unsubscribed' END
                 FROM latest l
                 LEFT JOIN opt_outs o ON o.user_id = %(user)s AND o.phone_number = l.phone
               ON CONFLICT (user_id, phone_number) DO UPDATE SET
                   country_code = coalesce(EXCLUDED.country_code, c.country_code),
                   first_name = coalesce(EXCLUDED.first_name, c.first_name),
                   last_name = coalesce(EXCLUDED.last_name, c.last_name),
                   email = coalesce(EXCLUDED.email, c.email),
                   custom_fields = c.custom_fields || EXCLUDED.custom_fields,
                   updated_at = now()
               WHERE (c.country_code, c.first_name, c.last_name, c.email, c.custom_fields)
                     IS DISTINCT FROM (coalesce(EXCLUDED.country_code, c.country_code),
                                       coalesce(EXCLUDED.first_name, c.first_name),
                                       coalesce(EXCLUDED.last_name, c.last_name),
                                       coalesce(EXCLUDED.email, c.email),
                                       c.custom_fields || EXCLUDED.custom_fields)
               RETURNING (xmax = 0) AS inserted
           )
           SELECT count(*) FILTER (WHERE inserted) AS imported, count(*) FILTER (WHERE NOT inserted) AS updated
             FROM written""",
        {"user": job.user_id},
    ).fetchone()
    assert upserted is not None
    if job.group_id is not None:
        conn.execute(
            """INSERT INTO contact_group_members (group_id, contact_id)
               SELECT %(group)s, c.id
                 FROM (SELECT DISTINCT phone FROM import_staging WHERE error IS NULL) s
                 JOIN contacts c ON c.user_id = %(user)s AND c.phone_number = s.phone
               ON CONFLICT DO NOTHING""",
            {"group": job.group_id, "user": job.user_id},
        )
    valid_unique = total - counts["invalid"] - counts["duplicates"]
    row = conn.execute(
        f"""UPDATE contact_imports
               SET status = 'completed', finished_at = now(), total_rows = %(total)s, processed_rows = %(total)s,
                   imported = %(imported)s, updated = %(updated)s, unchanged = %(unchanged)s,
                   duplicates = %(duplicates)s, invalid = %(invalid)s, ignored_columns = %(ignored)s,
                   error_message = NULL
             WHERE id = %(id)s RETURNING {_COLUMNS}""",
        {
            "id": job.id,
            "total": total,
            "imported": upserted["imported"],
            "updated": upserted["updated"],
            "unchanged": valid_unique - upserted["imported"] - upserted["updated"],
            "duplicates": counts["duplicates"],
            "invalid": counts["invalid"],
            "ignored": layout.ignored,
        },
    ).fetchone()
    assert row is not None
    logger.info(
        "import applied",
        extra={
            "import_id": str(job.id),
            "rows": total,
            "workers": workers,
            "staging_seconds": round(staged_at - started, 2),
            "apply_seconds": round(time.perf_counter() - staged_at, 2),
        },
    )
    return ContactImport.from_row(row)


def _workers_for(size_bytes: int) -> int:
    """Worker processes for a file: none for small files (spawning costs ~0.3 s each)."""
    if size_bytes < PARALLEL_FROM_BYTES:
        return 1
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def process_uploaded_file(bucket: str, key: str) -> ContactImport | None:
    """Runs the import a file under imports/ belongs to; None when there is nothing (more) to do.

    Failures of the file itself end the import as `failed` with the reason;
    anything else (the database, S3) raises, so the queue delivers the event again.
    """
    import_id = import_id_from_key(key)
    if import_id is None:
        logger.warning("object is not an import file; ignored", extra={"key": key})
        return None
    with db.transaction() as conn:
        job = claim(conn, import_id)
    if job is None:
        logger.info("import already finished; event ignored", extra={"import_id": str(import_id)})
        return None
    try:
        stream, size = storage.open_object(bucket, job.object_key)
    except storage.MissingObjectError:
        with db.transaction() as conn:
            fail(conn, job.id, "The uploaded file could not be found.")
        return None
    with db.connect_direct() as progress:

        def report(rows: int) -> None:
            progress.execute("UPDATE contact_imports SET processed_rows = %s WHERE id = %s", (rows, job.id))

        try:
            with db.transaction() as conn:
                done = load(conn, job, stream, report, workers=_workers_for(size))
        except ImportFileError as exc:
            with db.transaction() as conn:
                fail(conn, job.id, str(exc))
            return None
    logger.info(
        "import completed",
        extra={"import_id": str(done.id), "rows": done.total_rows, "imported": done.imported, "invalid": done.invalid},
    )
    return done
