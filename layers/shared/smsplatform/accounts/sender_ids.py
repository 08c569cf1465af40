"""The identities an account may send as, which operators verify and register.

Without them any account could send as "PayPal" or as another tenant's number, and
replies to that number would be credited to the wrong account. A campaign or a
message names one of its account's identities or none (then the account's
default, else the platform's); anything else is a 422 on `sender_id`. Numbers
are normalised to E.164 and, like short codes, belong to one account, so an
inbound message to a registered number belongs to its owner.
"""

import contextlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

import psycopg
from psycopg import Connection
from psycopg.rows import DictRow

from smsplatform.contacts import phones
from smsplatform.core import audit
from smsplatform.core.audit import RequestMeta
from smsplatform.core.errors import ConflictError, FieldError, InvalidInputError, NotFoundError

Kind = Literal["alphanumeric", "number", "short_code"]
# GSM alphanumeric senders: up to 11 letters, digits and spaces, at least one letter.
_ALPHANUMERIC = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
_SHORT_CODE = re.compile(r"^[0-9]{3,8}$")


@dataclass(frozen=True)
class SenderIdentity:
    sender_id: str
    kind: Kind
    default: bool
    created_at: datetime


def normalise(sender_id: str, kind: Kind, field: str = "sender_id") -> str:
    value = sender_id.strip()
    if kind == "number":
        return phones.normalise_e164(value, None, field=field)
    pattern = _ALPHANUMERIC if kind == "alphanumeric" else _SHORT_CODE
    if not pattern.match(value):
        rule = "1 to 11 letters, digits or spaces, one a letter" if kind == "alphanumeric" else "3 to 8 digits"
        raise InvalidInputError(f"A {kind} sender id is {rule}.", errors=[FieldError(field, f"is not a valid {kind}")])
    return value


def add(
    conn: Connection[DictRow],
    operator_id: UUID,
    user_id: UUID,
    sender_id: str,
    kind: Kind,
    default: bool,
    meta: RequestMeta,
) -> SenderIdentity:
    value = normalise(sender_id, kind)
    if conn.execute("SELECT 1 FROM users WHERE id = %s", (user_id,)).fetchone() is None:
        raise NotFoundError("No such user.")
    try:
        with conn.transaction():
            if default:
                conn.execute("UPDATE sender_identities SET is_default = false WHERE user_id = %s", (user_id,))
            row = conn.execute(
                """INSERT INTO sender_identities (user_id, sender_id, kind, is_default) VALUES (%s, %s, %s, %s)
                   RETURNING sender_id, kind, is_default AS default, created_at""",
                (user_id, value, kind, default),
            ).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        raise ConflictError(f"{value} is already registered, to this account or (a number) to another.") from exc
    assert row is not None
    audit.record(conn, operator_id, "sender_id.add", {"user_id": str(user_id), "sender_id": value, "kind": kind}, meta)
    return SenderIdentity(**row)


def list_for(conn: Connection[DictRow], user_id: UUID) -> list[SenderIdentity]:
    rows = conn.execute(
        """SELECT sender_id, kind, is_default AS default, created_at FROM sender_identities
            WHERE user_id = %s ORDER BY is_default DESC, sender_id""",
        (user_id,),
    ).fetchall()
    return [SenderIdentity(**row) for row in rows]


def remove(conn: Connection[DictRow], operator_id: UUID, user_id: UUID, sender_id: str, meta: RequestMeta) -> None:
    gone = conn.execute(
        "DELETE FROM sender_identities WHERE user_id = %s AND sender_id = %s RETURNING sender_id",
        (user_id, sender_id.strip()),
    ).fetchone()
    if gone is None:
        raise NotFoundError("This account has no such sender id.")
    audit.record(conn, operator_id, "sender_id.remove", {"user_id": str(user_id), "sender_id": gone["sender_id"]}, meta)


def resolve(conn: Connection[DictRow], user_id: UUID, requested: str | None) -> str | None:
    """The identity to send as: the one requested if the account holds it, its default if none is
    requested, else None (the provider's own). Raises a 422 on `sender_id` for one it does not hold."""
    if requested is None:
        row = conn.execute(
            "SELECT sender_id FROM sender_identities WHERE user_id = %s AND is_default", (user_id,)
        ).fetchone()
        return row["sender_id"] if row else None
    candidates = [requested.strip()]
    with contextlib.suppress(InvalidInputError):  # "+44 7700 900123" is "+447700900123"
        candidates.append(phones.normalise_e164(requested, None))
    row = conn.execute(
        "SELECT sender_id FROM sender_identities WHERE user_id = %s AND sender_id = ANY(%s)", (user_id, candidates)
    ).fetchone()
    if row is None:
        raise InvalidInputError(
            f"{requested!r} is not a sender id verified for this account; ask an operator to register it.",
            errors=[FieldError("sender_id", "is not one of the account's sender ids")],
        )
    return str(row["sender_id"])
