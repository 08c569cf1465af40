"""What an account sent and received, for integrators: outbound history, inbound messages, conversations.

Every list is newest first and keyset-paged on (time, id) over an index that
starts with the account (or the number, then the account), so page 1,000 costs
what page 1 does at any history size. A `status` filter reads along that index
and skips what does not match: an index on status would be one more entry for
the pipeline to write at every status change.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

from psycopg import Connection
from psycopg.rows import DictRow

from smsplatform.core import pagination
from smsplatform.core.errors import NotFoundError
from smsplatform.core.pagination import Cursor, Page
from smsplatform.sending.keywords import Keyword
from smsplatform.sending.messages import (
    ANY_COUNTED,
    COLUMNS,
    FROM_FIRST_OPEN,
    Message,
    MessageCursor,
    MessageStatus,
    in_open_batches,
    phase_of,
)


@dataclass(frozen=True)
class MessageFilter:
    status: MessageStatus | None = None
    campaign_id: UUID | None = None
    to: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    sender_id: str | None = None
    sent_since: datetime | None = None
    sent_until: datetime | None = None


def _conditions(given: dict[str, tuple[str, object]]) -> tuple[str, dict[str, object]]:
    """`AND ...` for each filter given, and its parameters: a filter left out is not in the SQL at all, so
    the planner never has to plan for "this value or NULL"."""
    chosen = {name: (sql, value) for name, (sql, value) in given.items() if value is not None}
    return "".join(f" AND {sql}" for sql, _ in chosen.values()), {name: value for name, (_, value) in chosen.items()}


def list_messages(
    conn: Connection[DictRow], user_id: UUID, where: MessageFilter, limit: int, cursor: str | None
) -> Page[Message]:
    """The account's outbound messages, campaigns' and single sends' alike; `until` is exclusive.

    With a campaign, its messages come in reverse send order (last batch first) off the campaign's own
    index, which a newest-first order would need another index on the table to read.
    """
    # A campaign's rows of a status: along its index of scheduled and failed rows when the status has a phase
    # (no other list reads it), queued and sending ones from its first open batch on, sent and delivered ones
    # only if the campaign's counters hold any.
    status_in_campaign = where.status if where.campaign_id else None
    phase = phase_of(status_in_campaign) if status_in_campaign else None
    from_open = in_open_batches(status_in_campaign)
    conditions, values = _conditions(
        {
            "status": ("status = %(status)s", where.status),
            "phase": ("phase = %(phase)s", phase),
            "counted": (ANY_COUNTED, True if status_in_campaign and not phase and not from_open else None),
            "open": (FROM_FIRST_OPEN, True if from_open else None),
            "to": ("phone_number = %(to)s", where.to),
            "since": ("created_at >= %(since)s", where.since),
            "until": ("created_at < %(until)s", where.until),
            "sender": ("sender_id = %(sender)s", where.sender_id),
            "sent_since": ("sent_at >= %(sent_since)s", where.sent_since),
            # Nothing is sent before it is created: the bound on created_at lets the index stop early.
            "sent_until": ("sent_at < %(sent_until)s AND created_at < %(sent_until)s", where.sent_until),
        }
    )
    params: dict[str, object] = {"user": user_id, "limit": limit + 1, **values}
    if where.campaign_id is None:
        after = pagination.Cursor.decode(cursor) if cursor else None
        keyset, keys = pagination.after(after)
        rows = conn.execute(
            f"""SELECT {COLUMNS} FROM sms_delivery_logs
                 WHERE user_id = %(user)s {conditions} {keyset}
                 ORDER BY created_at DESC, id DESC LIMIT %(limit)s""",
            params | keys,
        ).fetchall()
        return pagination.page_of([Message.from_row(row) for row in rows], limit)
    position = MessageCursor.decode(cursor) if cursor else None
    keyset = "AND (batch_number, id) < (%(batch)s, %(after)s)" if position else ""
    rows = conn.execute(
        f"""SELECT {COLUMNS} FROM sms_delivery_logs
             WHERE campaign_id = %(campaign)s AND user_id = %(user)s {conditions} {keyset}
             ORDER BY batch_number DESC, id DESC LIMIT %(limit)s""",
        params
        | {"campaign": where.campaign_id}
        | ({"batch": position.batch_number, "after": position.id} if position else {}),
    ).fetchall()
    page = [Message.from_row(row) for row in rows[:limit]]
    more = len(rows) > limit and page
    return Page(page, MessageCursor(page[-1].batch_number or 0, page[-1].id).encode() if more else None)


@dataclass(frozen=True)
class Inbound:
    id: UUID
    from_number: str
    to_number: str | None
    body: str
    keyword: Keyword | None
    contact_id: UUID | None
    reply_message_id: UUID | None
    reply_skipped: str | None
    received_at: datetime

    @property
    def created_at(self) -> datetime:
        """The key pages are cut on: when the recipient sent it."""
        return self.received_at

    @classmethod
    def from_row(cls, row: DictRow) -> "Inbound":
        return cls(**{key: row[key] for key in cls.__dataclass_fields__})


@dataclass(frozen=True)
class InboundFilter:
    from_number: str | None = None
    keyword: Keyword | None = None
    since: datetime | None = None
    until: datetime | None = None


_INBOUND_COLUMNS = """m.id, m.from_number, m.to_number, m.body, m.keyword, c.id AS contact_id, m.reply_message_id,
                      m.reply_skipped, m.received_at"""


def list_inbound(
    conn: Connection[DictRow], user_id: UUID, where: InboundFilter, limit: int, cursor: Cursor | None
) -> Page[Inbound]:
    """Messages the account received, each with the contact it came from (if one has that number)."""
    keyset, params = pagination.after(cursor, "m", column="received_at")
    conditions, values = _conditions(
        {
            "from": ("m.from_number = %(from)s", where.from_number),
            "keyword": ("m.keyword = %(keyword)s", where.keyword),
            "since": ("m.received_at >= %(since)s", where.since),
            "until": ("m.received_at < %(until)s", where.until),
        }
    )
    rows = conn.execute(
        f"""SELECT {_INBOUND_COLUMNS}
              FROM inbound_messages m
              LEFT JOIN contacts c ON c.user_id = m.user_id AND c.phone_number = m.from_number
             WHERE m.user_id = %(user)s {conditions} {keyset}
             ORDER BY m.received_at DESC, m.id DESC LIMIT %(limit)s""",
        {"user": user_id, "limit": limit + 1, **values, **params},
    ).fetchall()
    return pagination.page_of([Inbound.from_row(row) for row in rows], limit)


Direction = Literal["outbound", "inbound"]


@dataclass(frozen=True)
class ConversationItem:
    direction: Direction
    id: UUID
    created_at: datetime  # outbound: when it was written; inbound: when the recipient sent it
    from_number: str | None
    to_number: str | None
    body: str | None
    status: str | None  # outbound only
    keyword: Keyword | None  # inbound only
    campaign_id: UUID | None


def conversation(
    conn: Connection[DictRow], user_id: UUID, contact_id: UUID, limit: int, cursor: Cursor | None
) -> Page[ConversationItem]:
    """Messages to and from one contact's number, newest first: each side read by its own index, then merged."""
    contact = conn.execute(
        "SELECT phone_number FROM contacts WHERE id = %s AND user_id = %s", (contact_id, user_id)
    ).fetchone()
    if contact is None:
        raise NotFoundError("No such contact.")
    before = "< (%(cursor_created_at)s, %(cursor_id)s)"
    sent_before, received_before = (
        (f"AND (created_at, id) {before}", f"AND (received_at, id) {before}") if cursor else ("", "")
    )
    rows = conn.execute(
        f"""(SELECT 'outbound' AS direction, id, created_at AS at, sender_id AS from_number, phone_number AS to_number,
                    body, status, NULL AS keyword, campaign_id
               FROM sms_delivery_logs
              WHERE phone_number = %(number)s AND user_id = %(user)s
                    {sent_before}
              ORDER BY created_at DESC, id DESC LIMIT %(limit)s)
           UNION ALL
           (SELECT 'inbound', id, received_at, from_number, to_number, body, NULL, keyword, NULL
               FROM inbound_messages
              WHERE user_id = %(user)s AND from_number = %(number)s
                    {received_before}
              ORDER BY received_at DESC, id DESC LIMIT %(limit)s)
           ORDER BY at DESC, id DESC LIMIT %(limit)s""",
        {
            "number": contact["phone_number"],
            "user": user_id,
            "limit": limit + 1,
            "cursor_created_at": cursor.created_at if cursor else None,
            "cursor_id": cursor.id if cursor else None,
        },
    ).fetchall()
    items = [
        ConversationItem(
            row["direction"],
            row["id"],
            row["at"],
            row["from_number"],
            row["to_number"],
            row["body"],
            row["status"],
            row["keyword"],
            row["campaign_id"],
        )
        for row in rows
    ]
    return pagination.page_of(items, limit)
