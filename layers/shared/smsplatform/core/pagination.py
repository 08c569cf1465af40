"""Keyset (cursor) pagination: a page ends with the sort key of its last row.

Cursors are opaque to clients: URL-safe base64 of the last row's
(created_at, id). Pages never use OFFSET, so page 1,000 costs what page 1 does.
"""

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar
from uuid import UUID

from smsplatform.core.errors import FieldError, InvalidInputError


class Keyed(Protocol):
    @property
    def created_at(self) -> datetime: ...

    @property
    def id(self) -> UUID: ...


T = TypeVar("T", bound=Keyed)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    id: UUID

    def encode(self) -> str:
        raw = json.dumps([self.created_at.isoformat(), str(self.id)]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> "Cursor":
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            created_at, row_id = json.loads(raw)
            return cls(datetime.fromisoformat(created_at), UUID(row_id))
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
            raise InvalidInputError(
                "The cursor is not one this API returned.", errors=[FieldError("cursor", "is invalid")]
            ) from exc


def after(cursor: Cursor | None, table_alias: str = "", column: str = "created_at") -> tuple[str, dict[str, object]]:
    """The WHERE fragment (`AND ...`) and parameters that start a newest-first page after `cursor`.

    Written as a row comparison so an index on (..., `column` DESC, id DESC) serves it as a range.
    """
    if cursor is None:
        return "", {}
    prefix = f"{table_alias}." if table_alias else ""
    return (
        f"AND ({prefix}{column}, {prefix}id) < (%(cursor_created_at)s, %(cursor_id)s)",
        {"cursor_created_at": cursor.created_at, "cursor_id": cursor.id},
    )


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def page_of(rows: list[T], limit: int) -> Page[T]:
    """`rows` were fetched with LIMIT limit + 1; the extra row only says a next page exists."""
    if len(rows) <= limit:
        return Page(rows, None)
    last = rows[limit - 1]
    return Page(rows[:limit], Cursor(last.created_at, last.id).encode())
