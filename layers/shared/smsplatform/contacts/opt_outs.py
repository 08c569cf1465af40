"""The per-account suppression list. A number on it is never a campaign recipient, and its
contact (if any) shows as unsubscribed for as long as it stays on the list."""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from psycopg import Connection
from psycopg.rows import DictRow

from smsplatform.core import audit, pagination
from smsplatform.core.audit import RequestMeta
from smsplatform.core.errors import NotFoundError
from smsplatform.core.pagination import Cursor, Page, page_of

_COLUMNS = "id, phone_number, source, reason, created_at"


@dataclass(frozen=True)
class OptOut:
    id: UUID
    phone_number: str
    source: str
    reason: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: DictRow) -> "OptOut":
        return cls(**{key: row[key] for key in cls.__dataclass_fields__})


def add_opt_out(
    conn: Connection[DictRow],
    user_id: UUID,
    phone_number: str,
    meta: RequestMeta,
    *,
    source: str = "api",
    reason: str | None = None,
) -> tuple[OptOut, bool]:
    """Returns the entry and whether it is new; adding a listed number again changes nothing."""
    row = conn.execute(
        f"""INSERT INTO opt_outs (user_id, phone_number, source, reason) VALUES (%s, %s, %s, %s)
            ON CONFLICT (user_id, phone_number) DO NOTHING RETURNING {_COLUMNS}""",
        (user_id, phone_number, source, reason),
    ).fetchone()
    if row is None:
        existing = conn.execute(
            f"SELECT {_COLUMNS} FROM opt_outs WHERE user_id = %s AND phone_number = %s", (user_id, phone_number)
        ).fetchone()
        assert existing is not None
        return OptOut.from_row(existing), False
    conn.execute(
        """UPDATE contacts SET status = 'unsubscribed', updated_at = now()
            WHERE user_id = %s AND phone_number = %s AND status <> 'unsubscribed'""",
        (user_id, phone_number),
    )
    audit.record(conn, user_id, "opt_out.add", {"phone_number": phone_number, "source": source}, meta)
    return OptOut.from_row(row), True


def remove_opt_out(conn: Connection[DictRow], user_id: UUID, phone_number: str, meta: RequestMeta) -> None:
    removed = conn.execute(
        "DELETE FROM opt_outs WHERE user_id = %s AND phone_number = %s RETURNING phone_number",
        (user_id, phone_number),
    ).fetchone()
    if removed is None:
        raise NotFoundError("This number is not on the opt-out list.")
    conn.execute(
        """UPDATE contacts SET status = 'active', updated_at = now()
            WHERE user_id = %s AND phone_number = %s AND status = 'unsubscribed'""",
        (user_id, phone_number),
    )
    audit.record(conn, user_id, "opt_out.remove", {"phone_number": phone_number}, meta)


def is_opted_out(conn: Connection[DictRow], user_id: UUID, phone_number: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM opt_outs WHERE user_id = %s AND phone_number = %s", (user_id, phone_number)
    ).fetchone()
    return row is not None


def list_opt_outs(conn: Connection[DictRow], user_id: UUID, limit: int, cursor: Cursor | None) -> Page[OptOut]:
    keyset, params = pagination.after(cursor)
    rows = conn.execute(
        f"""SELECT {_COLUMNS} FROM opt_outs WHERE user_id = %(user)s {keyset}
             ORDER BY created_at DESC, id DESC LIMIT %(limit)s""",
        {"user": user_id, "limit": limit + 1, **params},
    ).fetchall()
    return page_of([OptOut.from_row(row) for row in rows], limit)
