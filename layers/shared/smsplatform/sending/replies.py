"""The reply a keyword gets: an opt-out confirmation, an opt-in confirmation or the help text.

A reply is an ordinary message of a request of its own per account and
webhook batch: priced, reserved under the request id, and sent, recorded and
settled by the pipeline like `POST /v1/messages`. It goes from the number the
recipient wrote to when that is one of the account's identities (else from
its default identity, else the provider's own: an account sends only as
identities verified for it), and is written in the transaction that stores the
inbound message, so each inbound message gets at most one. None is written
to a number that is opted out of the account, except the opt-out
confirmation itself (the sender's claim lets that one through too), nor for
a closed account, nor to a destination the account's prices block or leave
unpriced, nor when the account's credits are short, nor where the provider
answered the keyword itself: the inbound message then says why in
`reply_skipped`.
"""

from collections import defaultdict
from dataclasses import dataclass
from uuid import UUID, uuid4

from psycopg import Connection, sql
from psycopg.rows import DictRow

from smsplatform.billing import ledger, pricing
from smsplatform.contacts import phones
from smsplatform.core import audit
from smsplatform.core.audit import RequestMeta
from smsplatform.core.config import Settings
from smsplatform.core.errors import InsufficientCreditsError
from smsplatform.sending import encoding, routing
from smsplatform.sending.keywords import Keywords
from smsplatform.sending.messages import Accepted


@dataclass(frozen=True)
class _Reply:
    id: UUID
    user_id: UUID
    request_id: UUID
    inbound_id: UUID
    number: str
    sender: str | None
    body: str
    segments: int
    encoding: str
    price: int
    batch: int
    keyword: str


def reply(
    conn: Connection[DictRow],
    stored: list[DictRow],
    configs: dict[UUID, Keywords],
    settings: Settings,
    answered_by_provider: set[UUID],
) -> list[Accepted]:
    """Writes the replies `stored` (new inbound messages of known accounts) call for; returns them to announce.

    `answered_by_provider`: the ids of messages whose provider answered them itself (no reply of ours).
    """
    wanted = [
        (row, text) for row in stored if row["keyword"] and (text := configs[row["user_id"]].reply_for(row["keyword"]))
    ]
    if not wanted:
        return []
    price_join, price_of = pricing.join(sql.SQL("w.country"), user=sql.SQL("w.user_id"))
    state = {
        row["inbound_id"]: row
        for row in conn.execute(
            sql.SQL(
                """SELECT w.inbound_id, u.account_status, {price} AS price,
                      EXISTS (SELECT 1 FROM opt_outs o
                               WHERE o.user_id = w.user_id AND o.phone_number = w.number) AS opted_out,
                      coalesce((SELECT s.sender_id FROM sender_identities s
                                 WHERE s.user_id = w.user_id AND s.sender_id = w.written_to),
                               (SELECT s.sender_id FROM sender_identities s
                                 WHERE s.user_id = w.user_id AND s.is_default)) AS sender
                 FROM unnest(%(ids)s::uuid[], %(users)s::uuid[], %(numbers)s::text[], %(written_to)s::text[],
                             %(countries)s::text[])
                      AS w(inbound_id, user_id, number, written_to, country)
                 JOIN users u ON u.id = w.user_id {price_join}"""
            ).format(price=price_of, price_join=price_join),
            {
                "ids": [row["id"] for row, _ in wanted],
                "users": [row["user_id"] for row, _ in wanted],
                "numbers": [row["from_number"] for row, _ in wanted],
                "written_to": [row["to_number"] for row, _ in wanted],
                "countries": [phones.region_of(row["from_number"]) for row, _ in wanted],
                "default_price": settings.default_credits_per_segment,
            },
        )
    }
    skipped: dict[UUID, str] = {}
    by_account: dict[UUID, list[tuple[DictRow, str, str | None, int]]] = defaultdict(list)
    for row, text in wanted:
        found = state[row["id"]]
        if row["id"] in answered_by_provider:
            skipped[row["id"]] = "provider_replied"
        elif found["account_status"] == "closed":
            skipped[row["id"]] = "account_closed"
        elif found["opted_out"] and row["keyword"] != "opt_out":
            skipped[row["id"]] = "opted_out"
        elif found["price"] is None:
            skipped[row["id"]] = "destination_blocked"
        else:
            by_account[row["user_id"]].append((row, text, found["sender"], found["price"]))
    accepted: list[Accepted] = []
    written: list[_Reply] = []
    for user_id, items in by_account.items():
        request_id = uuid4()
        size = routing.batch_size(routing.slowest_rate(conn, user_id, settings), settings)
        rows = []
        for position, (row, text, sender, price) in enumerate(items):
            info = encoding.analyse(text)
            rows.append(
                _Reply(
                    uuid4(),
                    user_id,
                    request_id,
                    row["id"],
                    row["from_number"],
                    sender,
                    text,
                    info.segments,
                    info.encoding,
                    info.segments * price,
                    position // size,
                    row["keyword"],
                )
            )
        credits = sum(r.price for r in rows)
        try:
            with conn.transaction():  # a savepoint: a short balance skips this account's replies only
                ledger.reserve(conn, user_id, credits, request_id, "request")
        except InsufficientCreditsError:
            skipped.update({r.inbound_id: "insufficient_credits" for r in rows})
            continue
        audit.record(
            conn,
            user_id,
            "messages.reply",
            {"request_id": str(request_id), "recipients": len(rows), "credits": credits},
            RequestMeta(),
        )
        written.extend(rows)
        accepted.append(Accepted(request_id, [], credits, rows[-1].batch + 1))
    if written:
        _write(conn, written)
    _mark(conn, {r.inbound_id: r.id for r in written}, skipped)
    return accepted


def _write(conn: Connection[DictRow], rows: list[_Reply]) -> None:
    conn.execute(
        """INSERT INTO sms_delivery_logs (id, user_id, request_id, phone_number, status, batch_number, segments,
                                          encoding, cost, body, sender_id, inbound_reply)
           SELECT r.id, r.user_id, r.request_id, r.number, 'queued', r.batch, r.segments, r.encoding, r.price,
                  r.body, r.sender, r.keyword
             FROM unnest(%(ids)s::uuid[], %(users)s::uuid[], %(requests)s::uuid[], %(numbers)s::text[],
                         %(batches)s::int[], %(segments)s::int[], %(encodings)s::text[], %(prices)s::int[],
                         %(bodies)s::text[], %(senders)s::text[], %(keywords)s::text[])
                  AS r(id, user_id, request_id, number, batch, segments, encoding, price, body, sender, keyword)""",
        {
            "ids": [r.id for r in rows],
            "users": [r.user_id for r in rows],
            "requests": [r.request_id for r in rows],
            "numbers": [r.number for r in rows],
            "batches": [r.batch for r in rows],
            "segments": [r.segments for r in rows],
            "encodings": [r.encoding for r in rows],
            "prices": [r.price for r in rows],
            "bodies": [r.body for r in rows],
            "senders": [r.sender for r in rows],
            "keywords": [r.keyword for r in rows],
        },
    )


def _mark(conn: Connection[DictRow], replied: dict[UUID, UUID], skipped: dict[UUID, str]) -> None:
    """Each inbound message's reply, or why it has none."""
    ids = list(replied) + list(skipped)
    if not ids:
        return
    conn.execute(
        """UPDATE inbound_messages m SET reply_message_id = r.reply_id, reply_skipped = r.skipped
             FROM unnest(%s::uuid[], %s::uuid[], %s::text[]) AS r(id, reply_id, skipped)
            WHERE m.id = r.id""",
        (
            ids,
            list(replied.values()) + [None] * len(skipped),
            [None] * len(replied) + list(skipped.values()),
        ),
    )
