"""Messages recipients send back, and the opt-out and opt-in keywords among them.

An inbound message to a number or short code registered to an account (see
`accounts/sender_ids.py`) belongs to that account. Otherwise it belongs to the
account that last messaged its sender from the number it was sent to (or,
where the provider says which message it answers, to that message's account). Keywords are matched on the whole text,
ignoring case and surrounding whitespace: STOP, STOPALL, UNSUBSCRIBE, CANCEL,
END and QUIT put the sender on that account's opt-out list; START and UNSTOP
take them off. Other accounts' lists are never touched.
"""

from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from psycopg import Connection
from psycopg.rows import DictRow

from smsplatform.core.queue_messages import InboundMessage

Keyword = Literal["opt_out", "opt_in"]
OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN_WORDS = frozenset({"START", "UNSTOP"})


@dataclass(frozen=True)
class Applied:
    stored: int  # new messages (a repeated webhook stores nothing)
    opted_out: int
    opted_in: int


def keyword(body: str) -> Keyword | None:
    word = body.strip().upper()
    if word in OPT_OUT_WORDS:
        return "opt_out"
    if word in OPT_IN_WORDS:
        return "opt_in"
    return None


def apply(conn: Connection[DictRow], provider: str, messages: list[InboundMessage]) -> Applied:
    """Stores the messages and applies their keywords, set-wise; repeats of stored messages change nothing."""
    if not messages:
        return Applied(0, 0, 0)
    with conn.transaction():
        stored = conn.execute(
            """WITH incoming AS (
                   SELECT * FROM unnest(%(ids)s::text[], %(froms)s::text[], %(tos)s::text[], %(bodies)s::text[],
                                        %(keywords)s::text[], %(ats)s::timestamptz[], %(replies)s::text[])
                            AS i(external_id, from_number, to_number, body, keyword, received_at, reply_to))
               INSERT INTO inbound_messages (user_id, provider, external_id, from_number, to_number, body, keyword,
                                             received_at)
               SELECT coalesce(
                          (SELECT s.user_id FROM sender_identities s
                            WHERE s.sender_id = i.to_number AND s.kind IN ('number', 'short_code')),
                          (SELECT d.user_id FROM sms_delivery_logs d
                            WHERE i.reply_to IS NOT NULL AND d.external_message_id = i.reply_to
                              AND d.provider = %(provider)s
                            LIMIT 1),
                          (SELECT d.user_id FROM sms_delivery_logs d
                            WHERE d.phone_number = i.from_number
                              AND (i.to_number IS NULL OR d.sender_id IS NULL OR d.sender_id = i.to_number)
                            ORDER BY d.created_at DESC LIMIT 1)),
                      %(provider)s, i.external_id, i.from_number, i.to_number, i.body, i.keyword, i.received_at
                 FROM incoming i
               ON CONFLICT (provider, external_id) DO NOTHING
               RETURNING user_id, from_number, keyword, received_at""",
            {
                "provider": provider,
                "ids": [m.external_id for m in messages],
                "froms": [m.from_number for m in messages],
                "tos": [m.to_number for m in messages],
                "bodies": [m.body for m in messages],
                "keywords": [keyword(m.body) for m in messages],
                "ats": [m.received_at for m in messages],
                "replies": [m.reply_to_external_id for m in messages],
            },
        ).fetchall()
        latest: dict[tuple[UUID, str], DictRow] = {}  # the recipient's last word per account wins
        for row in sorted((r for r in stored if r["user_id"] and r["keyword"]), key=lambda r: r["received_at"]):
            latest[(row["user_id"], row["from_number"])] = row
        opt_out = [key for key, row in latest.items() if row["keyword"] == "opt_out"]
        opt_in = [key for key, row in latest.items() if row["keyword"] == "opt_in"]
        added = _opt_out(conn, opt_out) if opt_out else 0
        removed = _opt_in(conn, opt_in) if opt_in else 0
    return Applied(len(stored), added, removed)


def _pairs(pairs: list[tuple[UUID, str]]) -> dict[str, list[object]]:
    return {"users": [user for user, _ in pairs], "numbers": [number for _, number in pairs]}


def _opt_out(conn: Connection[DictRow], pairs: list[tuple[UUID, str]]) -> int:
    added = conn.execute(
        """WITH added AS (
               INSERT INTO opt_outs (user_id, phone_number, source, reason)
               SELECT user_id, phone_number, 'inbound', 'The recipient replied with an opt-out keyword.'
                 FROM unnest(%(users)s::uuid[], %(numbers)s::text[]) AS p(user_id, phone_number)
               ON CONFLICT (user_id, phone_number) DO NOTHING
               RETURNING user_id, phone_number),
           unsubscribed AS (
               UPDATE contacts c SET status = 'unsubscribed', updated_at = now()
                 FROM added a WHERE c.user_id = a.user_id AND c.phone_number = a.phone_number
                  AND c.status <> 'unsubscribed'),
           audited AS (
               INSERT INTO audit_logs (user_id, action, details)
               SELECT user_id, 'opt_out.add', jsonb_build_object('phone_number', phone_number, 'source', 'inbound')
                 FROM added)
           SELECT count(*) AS n FROM added""",
        _pairs(pairs),
    ).fetchone()
    return int(added["n"]) if added else 0


def _opt_in(conn: Connection[DictRow], pairs: list[tuple[UUID, str]]) -> int:
    removed = conn.execute(
        """WITH removed AS (
               DELETE FROM opt_outs o USING unnest(%(users)s::uuid[], %(numbers)s::text[]) AS p(user_id, phone_number)
                WHERE o.user_id = p.user_id AND o.phone_number = p.phone_number
               RETURNING o.user_id, o.phone_number),
           resubscribed AS (
               UPDATE contacts c SET status = 'active', updated_at = now()
                 FROM removed r WHERE c.user_id = r.user_id AND c.phone_number = r.phone_number
                  AND c.status = 'unsubscribed'),
           audited AS (
               INSERT INTO audit_logs (user_id, action, details)
               SELECT user_id, 'opt_out.remove', jsonb_build_object('phone_number', phone_number, 'source', 'inbound')
                 FROM removed)
           SELECT count(*) AS n FROM removed""",
        _pairs(pairs),
    ).fetchone()
    return int(removed["n"]) if removed else 0
