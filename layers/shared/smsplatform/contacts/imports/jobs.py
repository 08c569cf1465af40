"""Contact import jobs: one row of contact_imports each, from `awaiting_upload` or `pending` to a final state.

An import is a row in contact_imports and a file in S3 under
imports/<user id>/<import id>.csv; the file's arrival (S3 -> SQS) starts the
work (`runs`).
"""

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import unquote_plus
from uuid import UUID, uuid4

from psycopg import Connection
from psycopg.rows import DictRow

from smsplatform.contacts import groups, phones
from smsplatform.core import audit
from smsplatform.core.audit import RequestMeta
from smsplatform.core.errors import FieldError, InvalidInputError, NotFoundError

ImportStatus = Literal["awaiting_upload", "pending", "processing", "completed", "failed"]
ImportSource = Literal["body", "upload"]
ERRORS_SHOWN = 1_000
_KEY_PATTERN = re.compile(r"^imports/([0-9a-f-]{36})/([0-9a-f-]{36})\.csv$")
COLUMNS = """id, user_id, status, source, object_key, group_id, default_region, total_rows, processed_rows,
              imported, updated, unchanged, duplicates, invalid, ignored_columns, error_message, created_at,
              started_at, finished_at"""


@dataclass(frozen=True)
class ContactImport:
    id: UUID
    user_id: UUID
    status: ImportStatus
    source: ImportSource
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
    source: ImportSource,
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
            VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {COLUMNS}""",
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
        f"SELECT {COLUMNS} FROM contact_imports WHERE id = %s AND user_id = %s", (import_id, user_id)
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
             WHERE id = %s AND status IN ('awaiting_upload', 'pending', 'processing') RETURNING {COLUMNS}""",
        (import_id,),
    ).fetchone()
    return ContactImport.from_row(row) if row else None


def fail(conn: Connection[DictRow], import_id: UUID, reason: str) -> None:
    conn.execute(
        """UPDATE contact_imports SET status = 'failed', error_message = %s, finished_at = now()
            WHERE id = %s AND status <> 'completed'""",
        (reason, import_id),
    )
