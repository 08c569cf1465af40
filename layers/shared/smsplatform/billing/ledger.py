"""The credits ledger: every change of a balance is one row here, written in the same statement.

Balances move only through `_move`, a single UPDATE ... RETURNING feeding an
INSERT: the row lock on the user serialises concurrent movements, the
`sms_credits >= 0` check makes overspending impossible, and the ledger row
carries the balance before and after.

A movement that takes the balance below the account's `low_balance_threshold`
from at or above it writes one `balance.low` event to the callbacks outbox (when
the account has a callback URL) and an audit row, in the same transaction.

Sending follows reserve -> spend | refund per reference (a campaign or a
message): `reserve` takes the credits, `spend` records how many were used (no
credits move), `refund` returns the rest. A reference's reserved credits always
equal spent + refunded once it is settled, and never less.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from psycopg import Connection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from smsplatform.core import audit, pagination
from smsplatform.core.audit import RequestMeta
from smsplatform.core.errors import (
    ConflictError,
    FieldError,
    InsufficientCreditsError,
    InvalidInputError,
    NotFoundError,
)
from smsplatform.core.pagination import Cursor, Page, page_of
from smsplatform.core.queue_messages import SendKind

# A reservation's transaction types name what it is for: campaign_* or, for a POST /v1/messages request, message_*.
_PREFIX: dict[SendKind, str] = {"campaign": "campaign", "request": "message"}
_COLUMNS = """id, user_id, transaction_type, amount, credits, credits_before, credits_after, settled_credits,
              description, payment_method, transaction_status, reference_id, created_at"""


@dataclass(frozen=True)
class LedgerEntry:
    id: UUID
    user_id: UUID
    transaction_type: str
    amount: Decimal
    credits: int
    credits_before: int
    credits_after: int
    settled_credits: int
    description: str | None
    payment_method: str | None
    transaction_status: str
    reference_id: UUID | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: DictRow) -> "LedgerEntry":
        return cls(**{key: row[key] for key in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Reservation:
    reserved: int
    spent: int
    refunded: int

    @property
    def outstanding(self) -> int:
        return self.reserved - self.spent - self.refunded


def _move(
    conn: Connection[DictRow],
    user_id: UUID,
    credits: int,
    transaction_type: str,
    *,
    amount: Decimal = Decimal(0),
    description: str | None = None,
    payment_method: str | None = None,
    reference_id: UUID | None = None,
    settled_credits: int = 0,
) -> LedgerEntry:
    row = conn.execute(
        f"""WITH moved AS (
                UPDATE users SET sms_credits = sms_credits + %(credits)s, updated_at = now()
                 WHERE id = %(user)s AND sms_credits + %(credits)s >= 0
             RETURNING sms_credits - %(credits)s AS before, sms_credits AS after,
                       low_balance_threshold AS threshold, status_callback_url AS callback_url),
            entry AS (
                INSERT INTO billing_transactions (user_id, transaction_type, amount, credits, credits_before,
                                                  credits_after, settled_credits, description, payment_method,
                                                  reference_id)
                SELECT %(user)s, %(type)s, %(amount)s, %(credits)s, before, after, %(settled)s, %(description)s,
                       %(payment_method)s, %(reference)s
                  FROM moved
                RETURNING {_COLUMNS})
            SELECT entry.*, moved.threshold, moved.callback_url FROM entry, moved""",
        {
            "user": user_id,
            "credits": credits,
            "type": transaction_type,
            "amount": amount,
            "settled": settled_credits,
            "description": description,
            "payment_method": payment_method,
            "reference": reference_id,
        },
    ).fetchone()
    if row is None:
        balance = conn.execute("SELECT sms_credits FROM users WHERE id = %s", (user_id,)).fetchone()
        if balance is None:
            raise NotFoundError("No such user.")
        raise InsufficientCreditsError(f"This needs {-credits} credits and the balance is {balance['sms_credits']}.")
    entry = LedgerEntry.from_row(row)
    threshold = row["threshold"]
    if threshold is not None and entry.credits_before >= threshold > entry.credits_after:
        _low_balance(conn, entry, threshold, row["callback_url"])
    return entry


def _low_balance(conn: Connection[DictRow], entry: LedgerEntry, threshold: int, callback_url: str | None) -> None:
    """The balance just fell below the account's threshold: one event, signed and retried like status callbacks."""
    details = {"balance": entry.credits_after, "threshold": threshold, "transaction_id": str(entry.id)}
    audit.record(conn, entry.user_id, "balance.low", details, RequestMeta())
    if callback_url:
        conn.execute(
            "INSERT INTO status_callbacks (user_id, url, payload) VALUES (%s, %s, %s)",
            (
                entry.user_id,
                callback_url,
                Jsonb({"event": "balance.low", **details, "timestamp": entry.created_at.isoformat()}),
            ),
        )


def top_up(
    conn: Connection[DictRow],
    user_id: UUID,
    credits: int,
    *,
    amount: Decimal,
    payment_method: str | None = None,
    description: str | None = None,
) -> LedgerEntry:
    """Credits bought (amount > 0) or granted (amount 0)."""
    if credits <= 0:
        raise InvalidInputError("A top-up adds credits.", errors=[FieldError("credits", "must be positive")])
    kind = "credit_purchase" if amount > 0 else "adjustment"
    return _move(conn, user_id, credits, kind, amount=amount, payment_method=payment_method, description=description)


def adjust(conn: Connection[DictRow], user_id: UUID, credits: int, *, description: str | None = None) -> LedgerEntry:
    """An operator's correction, in either direction; never below zero."""
    if credits == 0:
        raise InvalidInputError("An adjustment changes the balance.", errors=[FieldError("credits", "must not be 0")])
    return _move(conn, user_id, credits, "adjustment", description=description)


def reserve(conn: Connection[DictRow], user_id: UUID, credits: int, reference_id: UUID, kind: SendKind) -> LedgerEntry:
    """Takes `credits` for a campaign or request before it is sent; refuses if the balance is short."""
    if credits <= 0:
        raise ValueError("a reservation takes a positive number of credits")
    return _move(conn, user_id, -credits, f"{_PREFIX[kind]}_reserve", reference_id=reference_id)


def spend(conn: Connection[DictRow], user_id: UUID, credits: int, reference_id: UUID, kind: SendKind) -> LedgerEntry:
    """Records that `credits` of a reservation were used; no credits move."""
    _require_outstanding(conn, user_id, credits, reference_id)
    return _move(conn, user_id, 0, f"{_PREFIX[kind]}_spend", reference_id=reference_id, settled_credits=credits)


def refund(conn: Connection[DictRow], user_id: UUID, credits: int, reference_id: UUID, kind: SendKind) -> LedgerEntry:
    """Returns `credits` of a reservation that will not be used."""
    _require_outstanding(conn, user_id, credits, reference_id)
    return _move(conn, user_id, credits, f"{_PREFIX[kind]}_refund", reference_id=reference_id)


RESERVATION_SQL = """
    SELECT coalesce(-sum(credits) FILTER (WHERE transaction_type LIKE '%%\\_reserve'), 0) AS reserved,
           coalesce(sum(settled_credits) FILTER (WHERE transaction_type LIKE '%%\\_spend'), 0) AS spent,
           coalesce(sum(credits) FILTER (WHERE transaction_type LIKE '%%\\_refund'), 0) AS refunded
      FROM billing_transactions WHERE user_id = %(user)s AND reference_id = %(reference)s"""
"""A reference's credits reserved, spent and refunded; for a statement that reads them beside other figures."""


def reservation(conn: Connection[DictRow], user_id: UUID, reference_id: UUID) -> Reservation:
    row = conn.execute(RESERVATION_SQL, {"user": user_id, "reference": reference_id}).fetchone()
    assert row is not None
    return Reservation(int(row["reserved"]), int(row["spent"]), int(row["refunded"]))


def _require_outstanding(conn: Connection[DictRow], user_id: UUID, credits: int, reference_id: UUID) -> None:
    if credits <= 0:
        raise ValueError("settling takes a positive number of credits")
    # Lock the account first: concurrent settlements of one reference then see each other's rows.
    conn.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (user_id,))
    held = reservation(conn, user_id, reference_id)
    if credits > held.outstanding:
        raise ConflictError(f"Only {held.outstanding} credits of this reservation are outstanding, not {credits}.")


def list_entries(conn: Connection[DictRow], user_id: UUID, limit: int, cursor: Cursor | None) -> Page[LedgerEntry]:
    """The account's ledger, newest first."""
    keyset, params = pagination.after(cursor)
    rows = conn.execute(
        f"""SELECT {_COLUMNS} FROM billing_transactions WHERE user_id = %(user)s {keyset}
             ORDER BY created_at DESC, id DESC LIMIT %(limit)s""",
        {"user": user_id, "limit": limit + 1, **params},
    ).fetchall()
    return page_of([LedgerEntry.from_row(row) for row in rows], limit)
