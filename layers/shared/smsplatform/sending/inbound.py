"""Messages recipients send back: stored once, attributed to one account, and acted on.

An inbound message to a number or short code registered to an account (see
`accounts/sender_ids.py`) belongs to that account. Otherwise it belongs to the
account that last messaged its sender from the number it was sent to (or,
where the provider says which message it answers, to that message's account).
The account's keywords (sending/keywords.py) then decide what it means: an
opt-out puts the sender on that account's opt-out list, an opt-in takes them
off it; other accounts' lists are never touched. In the same transaction the
keyword's reply is written (sending/replies.py; not where the provider answers
that keyword itself, as Twilio and End User Messaging do for STOP and HELP)
and the message is put in the
callbacks outbox for the account's `inbound_url`. A repeated webhook stores
nothing, so it replies and calls back nothing either.
"""

from dataclasses import dataclass, field
from uuid import UUID

from psycopg import Connection
from psycopg.rows import DictRow

from smsplatform.core.config import Settings
from smsplatform.core.queue_messages import InboundMessage
from smsplatform.providers.registry import provider_class
from smsplatform.sending import keywords, replies
from smsplatform.sending.messages import Accepted


@dataclass(frozen=True)
class Applied:
    stored: int  # new messages (a repeated webhook stores nothing)
    opted_out: int
    opted_in: int
    replies: list[Accepted] = field(default_factory=list)  # announce once committed
    callback_accounts: list[UUID] = field(default_factory=list)  # whose inbound callbacks are due


def apply(conn: Connection[DictRow], provider: str, messages: list[InboundMessage], settings: Settings) -> Applied:
    """Stores the messages and acts on their keywords, set-wise; repeats of stored messages change nothing."""
    if not messages:
        return Applied(0, 0, 0)
    with conn.transaction():
        owners = _owners(conn, provider, messages)
        configs = keywords.for_accounts(conn, list({owner for owner in owners if owner}))
        stored = conn.execute(
            """INSERT INTO inbound_messages (user_id, provider, external_id, from_number, to_number, body, keyword,
                                             received_at)
               SELECT i.user_id, %(provider)s, i.external_id, i.from_number, i.to_number, i.body, i.keyword,
                      i.received_at
                 FROM unnest(%(users)s::uuid[], %(ids)s::text[], %(froms)s::text[], %(tos)s::text[],
                             %(bodies)s::text[], %(keywords)s::text[], %(ats)s::timestamptz[])
                      AS i(user_id, external_id, from_number, to_number, body, keyword, received_at)
               ON CONFLICT (provider, external_id) DO NOTHING
               RETURNING id, user_id, external_id, from_number, to_number, keyword, received_at""",
            {
                "provider": provider,
                "users": owners,
                "ids": [m.external_id for m in messages],
                "froms": [m.from_number for m in messages],
                "tos": [m.to_number for m in messages],
                "bodies": [m.body for m in messages],
                "keywords": [
                    configs.get(owner, keywords.DEFAULTS).match(m.body) if owner else keywords.DEFAULTS.match(m.body)
                    for m, owner in zip(messages, owners, strict=True)
                ],
                "ats": [m.received_at for m in messages],
            },
        ).fetchall()
        latest: dict[tuple[UUID, str], DictRow] = {}  # the recipient's last word per account wins
        for row in sorted((r for r in stored if r["user_id"] and r["keyword"]), key=lambda r: r["received_at"]):
            if row["keyword"] in ("opt_out", "opt_in"):
                latest[(row["user_id"], row["from_number"])] = row
        opt_out = [key for key, row in latest.items() if row["keyword"] == "opt_out"]
        opt_in = [key for key, row in latest.items() if row["keyword"] == "opt_in"]
        added = _opt_out(conn, opt_out) if opt_out else 0
        removed = _opt_in(conn, opt_in) if opt_in else 0
        owned = [row for row in stored if row["user_id"]]
        answered = provider_class(provider).answers_keywords
        by_provider = {m.external_id for m in messages if keywords.normalise(m.body) in answered}
        sent = replies.reply(
            conn, owned, configs, settings, {row["id"] for row in owned if row["external_id"] in by_provider}
        )
        called = _queue_callbacks(conn, [row["id"] for row in owned])
    return Applied(len(stored), added, removed, sent, called)


def _owners(conn: Connection[DictRow], provider: str, messages: list[InboundMessage]) -> list[UUID | None]:
    """The account each message belongs to (None: no account), in the order given."""
    rows = conn.execute(
        """SELECT coalesce(
                      (SELECT s.user_id FROM sender_identities s
                        WHERE s.sender_id = i.to_number AND s.kind IN ('number', 'short_code')),
                      (SELECT d.user_id FROM provider_message_ids p
                         JOIN sms_delivery_logs d ON d.id = p.message_id AND d.created_at = p.created_at
                        WHERE i.reply_to IS NOT NULL AND p.provider = %(provider)s AND p.external_id = i.reply_to
                        LIMIT 1),
                      (SELECT d.user_id FROM sms_delivery_logs d
                        WHERE d.phone_number = i.from_number
                          AND (i.to_number IS NULL OR d.sender_id IS NULL OR d.sender_id = i.to_number)
                        ORDER BY d.created_at DESC LIMIT 1)) AS user_id
             FROM unnest(%(froms)s::text[], %(tos)s::text[], %(replies)s::text[]) WITH ORDINALITY
                  AS i(from_number, to_number, reply_to, position)
            ORDER BY i.position""",
        {
            "provider": provider,
            "froms": [m.from_number for m in messages],
            "tos": [m.to_number for m in messages],
            "replies": [m.reply_to_external_id for m in messages],
        },
    ).fetchall()
    return [row["user_id"] for row in rows]


def _queue_callbacks(conn: Connection[DictRow], inbound_ids: list[UUID]) -> list[UUID]:
    """One `message.inbound` callback per message whose account has an inbound URL; returns those accounts."""
    if not inbound_ids:
        return []
    rows = conn.execute(
        """INSERT INTO status_callbacks (user_id, url, payload)
           SELECT m.user_id, u.inbound_callback_url,
                  jsonb_build_object(
                      'event', 'message.inbound', 'inbound_message_id', m.id, 'from', m.from_number,
                      'to', m.to_number, 'body', m.body, 'keyword', m.keyword, 'contact_id', c.id,
                      'reply_message_id', m.reply_message_id, 'received_at', m.received_at)
             FROM inbound_messages m
             JOIN users u ON u.id = m.user_id AND u.inbound_callback_url IS NOT NULL
             LEFT JOIN contacts c ON c.user_id = m.user_id AND c.phone_number = m.from_number
            WHERE m.id = ANY(%s)
           RETURNING user_id""",
        (inbound_ids,),
    ).fetchall()
    return list(dict.fromkeys(row["user_id"] for row in rows))


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


def purge_expired(conn: Connection[DictRow], keep_days: int, chunk: int = 10_000) -> int:
    """Deletes inbound messages received more than `keep_days` ago, oldest first, `chunk` rows a statement
    along the received_at index, so neither a statement nor the daily run grows with the table."""
    purged = 0
    while True:
        deleted = conn.execute(
            """DELETE FROM inbound_messages WHERE id IN (
                   SELECT id FROM inbound_messages
                    WHERE received_at < now() - make_interval(days => %s) ORDER BY received_at LIMIT %s)""",
            (keep_days, chunk),
        ).rowcount
        purged += deleted
        if deleted < chunk:
            return purged
