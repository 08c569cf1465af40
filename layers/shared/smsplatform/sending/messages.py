"""Messages: one row of sms_delivery_logs each, whether a campaign or POST /v1/messages sent it.

An API send request prices each message by its destination, reserves their
credits under one ledger reference (the request id) and enqueues its batch
descriptors, so it goes through the same sender, receipts and settlement as a
campaign. One with `send_at` waits, `scheduled` and held, until the
scheduler's tick wakes it (sending/windows.py); it can be cancelled until a
sender takes it.
"""

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID, uuid4

from psycopg import Connection
from psycopg.rows import DictRow

from smsplatform.billing import ledger, pricing, settlement
from smsplatform.core import audit, queues
from smsplatform.core.audit import RequestMeta
from smsplatform.core.errors import ConflictError, FieldError, InvalidInputError, NotFoundError, QueueFullError
from smsplatform.core.observability import logger
from smsplatform.core.queue_messages import SendBatch, SendKind
from smsplatform.sending import encoding

COLUMNS = """id, campaign_id, request_id, recipient_id, phone_number, status, batch_number, attempts, segments,
              encoding, cost, body, sender_id, provider, external_message_id, created_at, updated_at, sent_at,
              delivered_at, error_code, error_message, not_before, expires_at"""


MessageStatus = Literal["scheduled", "queued", "sending", "sent", "delivered", "undelivered", "failed", "cancelled"]


# For a campaign's sent or delivered messages, which no index finds: whether its counters (sql/0020) hold
# any. Uncorrelated, so PostgreSQL evaluates it once, and skips the walk of the campaign when there are none
# (`?status=sent` of a finished 1M campaign whose receipts all came). Needs %(campaign)s and %(status)s.
ANY_COUNTED = """(SELECT coalesce(sum(k.messages), 0) > 0 FROM campaign_message_counts k
                   WHERE k.campaign_id = %(campaign)s AND k.state = %(status)s)"""


# For a campaign's queued or sending messages: they are in its open batches (sql/0027), which start at the
# first one still open. Needs %(campaign)s.
FROM_FIRST_OPEN = """batch_number >= (SELECT coalesce(min(o.batch_number), 2147483647) FROM send_batches o
                                        WHERE o.reference_id = %(campaign)s)"""


def phase_of(status: str) -> str | None:
    """The row's `phase` for a status (sql/0027): what the partial indexes name instead of the status, so
    that the claim (queued to sending), the record (to sent) and the receipt (to delivered) update a row in
    place. A query for a status that has a phase names the phase too, to read along those indexes."""
    return None if status in ("queued", "sending", "sent", "delivered") else status


def in_open_batches(status: str | None) -> bool:
    """Whether a status filter's rows are read from the open batches (sql/0027): queued and sending have
    no phase to read them by."""
    return status in ("queued", "sending")


@dataclass(frozen=True)
class Message:
    id: UUID
    campaign_id: UUID | None
    request_id: UUID | None
    recipient_id: UUID | None
    phone_number: str
    status: MessageStatus
    batch_number: int | None
    attempts: int
    segments: int | None
    encoding: str | None
    cost: Decimal | None
    body: str | None
    sender_id: str | None
    provider: str | None
    external_message_id: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    error_code: str | None
    error_message: str | None
    not_before: datetime | None
    expires_at: datetime | None

    @classmethod
    def from_row(cls, row: DictRow) -> "Message":
        return cls(**{key: row[key] for key in cls.__dataclass_fields__})


def get_message(conn: Connection[DictRow], user_id: UUID, message_id: UUID) -> Message:
    row = conn.execute(
        f"SELECT {COLUMNS} FROM sms_delivery_logs WHERE id = %s AND user_id = %s", (message_id, user_id)
    ).fetchone()
    if row is None:
        raise NotFoundError("No such message.")
    return Message.from_row(row)


@dataclass(frozen=True)
class Accepted:
    request_id: UUID
    messages: list[Message]
    credits: int
    batches: int = 1  # batch numbers 0 .. batches - 1


@dataclass(frozen=True)
class Destination:
    number: str  # E.164
    country: str | None  # ISO 3166-1 alpha-2 of the number
    field: str  # where the request named it, for errors


def send(
    conn: Connection[DictRow],
    user_id: UUID,
    destinations: list[Destination],
    text: str,
    sender_id: str | None,
    meta: RequestMeta,
    *,
    batch_size: int,
    default_price: int,
    send_at: datetime | None = None,
    validity_period: int | None = None,
    status_callback_url: str | None = None,
    max_queued: int | None = None,
) -> Accepted:
    """Numbers are E.164 and distinct. Opted-out numbers get a failed row and no charge; a destination the
    account's prices block or leave unpriced is a 422 naming it (nothing is written); 402 if credits are short.

    Nothing is enqueued here: the caller's transaction may still be open. `announce` once it has committed.
    """
    info = encoding.analyse(text)
    prices = pricing.quote(conn, user_id, [d.country for d in destinations], default_price)
    refused = [d for d in destinations if prices[d.country] is None]
    if refused:
        raise InvalidInputError(
            "These destinations cannot be sent to: " + ", ".join(d.number for d in refused) + ".",
            errors=[
                FieldError(d.field, f"{d.number} ({d.country or 'unknown country'}) is blocked or unpriced")
                for d in refused
            ],
        )
    _check_backlog(conn, user_id, len(destinations), max_queued)
    request_id = uuid4()
    with conn.transaction():
        rows = conn.execute(
            f"""INSERT INTO sms_delivery_logs (user_id, request_id, phone_number, status, batch_number, segments,
                                               encoding, cost, body, sender_id, error_code, error_message,
                                               not_before, held, expires_at, status_callback_url)
                SELECT %(user)s, %(request)s, n.number,
                       CASE WHEN o.phone_number IS NOT NULL THEN 'failed'
                            WHEN %(send_at)s::timestamptz IS NOT NULL THEN 'scheduled' ELSE 'queued' END,
                       (n.position - 1) / %(batch_size)s, %(segments)s,
                       %(encoding)s, CASE WHEN o.phone_number IS NULL THEN n.price * %(segments)s ELSE 0 END,
                       %(body)s, %(sender)s,
                       CASE WHEN o.phone_number IS NOT NULL THEN 'opted_out' END,
                       CASE WHEN o.phone_number IS NOT NULL THEN 'The recipient opted out of this account''s messages.'
                       END,
                       %(send_at)s, %(send_at)s::timestamptz IS NOT NULL AND o.phone_number IS NULL,
                       coalesce(%(send_at)s, now()) + make_interval(secs => %(validity)s),
                       %(callback)s
                  FROM unnest(%(numbers)s::text[], %(prices)s::int[]) WITH ORDINALITY AS n(number, price, position)
                  LEFT JOIN opt_outs o ON o.user_id = %(user)s AND o.phone_number = n.number
                 ORDER BY n.position
             RETURNING {COLUMNS}""",
            {
                "user": user_id,
                "request": request_id,
                "numbers": [d.number for d in destinations],
                "prices": [prices[d.country] for d in destinations],
                "segments": info.segments,
                "encoding": info.encoding,
                "body": text,
                "sender": sender_id,
                "batch_size": batch_size,
                "send_at": send_at,
                "validity": validity_period,
                "callback": status_callback_url,
            },
        ).fetchall()
        messages = [Message.from_row(row) for row in rows]
        credits = int(sum(m.cost or 0 for m in messages))
        if credits:
            ledger.reserve(conn, user_id, credits, request_id, "request")
        details: dict[str, object] = {"request_id": str(request_id), "recipients": len(messages), "credits": credits}
        if send_at is not None:
            details["send_at"] = send_at.isoformat()
        audit.record(conn, user_id, "messages.send", details, meta)
    batches = max(1, -(-len(destinations) // batch_size))
    return Accepted(request_id, messages, credits, 0 if send_at is not None else batches)


def _check_backlog(conn: Connection[DictRow], user_id: UUID, adding: int, limit: int | None) -> None:
    """Refuses a send that would take the account's waiting single messages past `limit`: the unsent rows
    its open single-send batches count (sql/0027), a row per batch."""
    if limit is None:
        return
    row = conn.execute(
        "SELECT coalesce(sum(unsent), 0)::int AS n FROM send_batches WHERE user_id = %s AND kind = 'request'",
        (user_id,),
    ).fetchone()
    waiting = row["n"] if row else 0
    if waiting + adding > limit:
        raise QueueFullError(
            f"The account has {waiting} messages waiting to be sent, and at most {limit} may wait; "
            "retry once some have gone."
        )


def cancel(conn: Connection[DictRow], user_id: UUID, message_id: UUID, meta: RequestMeta) -> Message:
    """A scheduled or queued message that no sender has taken: cancelled, its credits refunded at once."""
    with conn.transaction():
        row = conn.execute(
            """UPDATE sms_delivery_logs
                  SET status = 'cancelled', held = false, error_code = 'cancelled',
                      error_message = 'Cancelled before it was sent.', updated_at = now()
                WHERE id = %s AND user_id = %s AND status IN ('scheduled', 'queued')
            RETURNING campaign_id, request_id, cost""",
            (message_id, user_id),
        ).fetchone()
        if row is None:
            current = get_message(conn, user_id, message_id)  # 404 if it is not the account's
            raise ConflictError(f"The message is {current.status}; only a scheduled or queued one can be cancelled.")
        kind: SendKind = "campaign" if row["campaign_id"] is not None else "request"
        reference = row["campaign_id"] or row["request_id"]
        if row["cost"]:
            ledger.refund(conn, user_id, int(row["cost"]), reference, kind)
        audit.record(
            conn,
            user_id,
            "message.cancel",
            {"message_id": str(message_id), "credits_refunded": int(row["cost"] or 0)},
            meta,
        )
        settlement.settle(conn, kind, reference)
    return get_message(conn, user_id, message_id)


def announce(accepted: Accepted) -> None:
    """Enqueues the request's batch; call it after the transaction `send` wrote in has committed.

    Should SQS refuse, the rows stay queued and reserved, and the recovery sweep announces them.
    """
    if not accepted.credits or not accepted.batches:  # nothing to send, or scheduled: the scheduler wakes it
        return
    try:
        queues.send_many(
            "send", (SendBatch(kind="request", id=accepted.request_id, batch=n) for n in range(accepted.batches))
        )
    except Exception:
        logger.exception("send request not announced", extra={"request_id": str(accepted.request_id)})


@dataclass(frozen=True)
class MessageCursor:
    """Campaign messages are listed in send order: by (batch_number, id)."""

    batch_number: int
    id: UUID

    def encode(self) -> str:
        return base64.urlsafe_b64encode(json.dumps([self.batch_number, str(self.id)]).encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> "MessageCursor":
        try:
            batch, row_id = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
            return cls(int(batch), UUID(row_id))
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
            raise InvalidInputError(
                "The cursor is not one this API returned.", errors=[FieldError("cursor", "is invalid")]
            ) from exc


def list_campaign_messages(
    conn: Connection[DictRow],
    user_id: UUID,
    campaign_id: UUID,
    limit: int,
    cursor: MessageCursor | None,
    status: str | None = None,
) -> tuple[list[Message], str | None]:
    owned = conn.execute("SELECT 1 FROM sms_campaigns WHERE id = %s AND user_id = %s", (campaign_id, user_id))
    if owned.fetchone() is None:
        raise NotFoundError("No such campaign.")
    keyset = "AND (batch_number, id) > (%(batch)s, %(after)s)" if cursor else ""
    phase = phase_of(status) if status else None
    # A status with a phase reads the campaign's few rows of that phase; queued or sending ones are read from
    # its first open batch on, sent and delivered ones only if its counters hold any.
    only = ("AND status = %(status)s" if status else "") + (" AND phase = %(phase)s" if phase else "")
    if in_open_batches(status):
        only += f" AND {FROM_FIRST_OPEN}"
    elif status and not phase:
        only += f" AND {ANY_COUNTED}"
    rows = conn.execute(
        f"""SELECT {COLUMNS} FROM sms_delivery_logs
             WHERE campaign_id = %(campaign)s {only} {keyset}
             ORDER BY batch_number, id LIMIT %(limit)s""",
        {
            "campaign": campaign_id,
            "status": status,
            "phase": phase,
            "limit": limit + 1,
            "batch": cursor.batch_number if cursor else None,
            "after": cursor.id if cursor else None,
        },
    ).fetchall()
    page = [Message.from_row(row) for row in rows[:limit]]
    more = len(rows) > limit
    next_cursor = MessageCursor(page[-1].batch_number or 0, page[-1].id).encode() if more and page else None
    return page, next_cursor
