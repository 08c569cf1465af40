"""The dispatcher: turns a queued campaign into priced delivery-log rows, a reservation and batches.

The audience is materialised set-wise: each of `dispatch_workers` connections
runs one INSERT ... SELECT over its share of the contacts (split by id), which
renders, prices and numbers its recipients into batches. A coordinating
transaction holds the campaign row (FOR NO KEY UPDATE, so the workers' foreign
key checks pass) from the start, clears rows an earlier, crashed attempt left,
and once the workers have committed, reserves the credits and moves the campaign
to `sending`. Rows of a campaign that is not `sending` are never claimed, so
until that commit nothing can be sent; should it fail, the next delivery of the
release message starts over. Only then are the batch descriptors enqueued. A
release message delivered again finds the campaign sending and enqueues again
the batches that still have queued rows, which senders treat as the duplicates
they are.
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from psycopg import Connection, sql
from psycopg.rows import DictRow

from smsplatform.accounts import sender_ids
from smsplatform.billing import ledger, settlement
from smsplatform.campaigns import campaigns, templates
from smsplatform.core import db, queues
from smsplatform.core.config import Settings
from smsplatform.core.errors import DomainError, InsufficientCreditsError
from smsplatform.core.observability import logger
from smsplatform.core.queue_messages import SendBatch
from smsplatform.sending import routing


@dataclass(frozen=True)
class Dispatched:
    campaign_id: UUID
    status: str
    recipients: int = 0
    credits: int = 0
    batches: int = 0


def dispatch(conn: Connection[DictRow], campaign_id: UUID, settings: Settings) -> Dispatched:
    with conn.transaction():
        campaign = conn.execute(
            """SELECT c.id, c.user_id, c.status, c.message_template, c.sender_id, c.settings,
                      u.account_status
                 FROM sms_campaigns c JOIN users u ON u.id = c.user_id
                WHERE c.id = %s FOR NO KEY UPDATE OF c SKIP LOCKED""",
            (campaign_id,),
        ).fetchone()
        if campaign is None:
            # Gone, or another delivery of this message holds it: that one will finish (or be re-announced).
            return Dispatched(campaign_id, "busy-or-gone")
        if campaign["account_status"] != "active":
            # Suspended: it waits, queued or sending, until the account is active again (which announces it).
            return Dispatched(campaign_id, "held")
        try:  # still verified for the account (an operator may have withdrawn it), or the account's default
            sender = sender_ids.resolve(conn, campaign["user_id"], campaign["sender_id"])
        except DomainError as exc:
            return _fail(conn, campaign_id, f"The sender id cannot be used: {exc.detail}")
        if campaign["status"] != "queued":
            pending = _batches_with_queued_rows(conn, campaign_id) if campaign["status"] == "sending" else []
            return _announce(campaign_id, campaign["status"], pending)

        cap = campaign["settings"].get("throughput_per_second")
        size = routing.batch_size(routing.slowest_rate(conn, campaign["user_id"], settings, cap), settings)
        conn.execute("DELETE FROM sms_delivery_logs WHERE campaign_id = %s", (campaign_id,))  # a crashed attempt's
        try:
            shares = _materialise(campaign, sender, size, settings.dispatch_workers)
        except (DomainError, psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError) as exc:
            # Retrying cannot fix a template or data the database refuses: fail now, with the reason.
            return _fail(conn, campaign_id, f"The messages could not be rendered: {_reason(exc)}")
        recipients = sum(share["recipients"] for share in shares)
        credits = sum(share["credits"] for share in shares)
        try:
            with conn.transaction():
                if recipients == 0:
                    raise _NoRecipientsError
                ledger.reserve(conn, campaign["user_id"], credits, campaign_id, "campaign")
                conn.execute(
                    """UPDATE sms_campaigns SET status = 'sending', started_at = now(), total_recipients = %s,
                              updated_at = now() WHERE id = %s""",
                    (recipients, campaign_id),
                )
        except (InsufficientCreditsError, _NoRecipientsError) as exc:
            reason = (
                f"Not enough credits: {exc.detail}"
                if isinstance(exc, InsufficientCreditsError)
                else "No recipients: no active, opted-in contact of the target groups has a message to send"
                " (a message that renders empty or longer than 1,600 characters is not sent)."
            )
            return _fail(conn, campaign_id, reason)

    batches = [number for share in shares for number in share["batch_numbers"]]
    logger.info(
        "campaign dispatched",
        extra={"campaign_id": str(campaign_id), "recipients": recipients, "credits": credits, "batches": len(batches)},
    )
    _announce(campaign_id, "sending", batches)
    return Dispatched(campaign_id, "sending", recipients, credits, len(batches))


def _fail(conn: Connection[DictRow], campaign_id: UUID, reason: str) -> Dispatched:
    """Before anything is reserved: the campaign fails with a reason its owner reads, and its rows go."""
    conn.execute("DELETE FROM sms_delivery_logs WHERE campaign_id = %s", (campaign_id,))
    conn.execute(
        "UPDATE sms_campaigns SET status = 'failed', failure_reason = %s, updated_at = now() WHERE id = %s",
        (reason, campaign_id),
    )
    logger.info("campaign failed to start", extra={"campaign_id": str(campaign_id), "reason": reason})
    return Dispatched(campaign_id, "failed")


def _reason(exc: Exception) -> str:
    if isinstance(exc, DomainError):
        return exc.detail
    diagnosis = getattr(exc, "diag", None)
    return str(getattr(diagnosis, "message_primary", None) or exc).splitlines()[0][:300]


def _announce(campaign_id: UUID, status: str, batches: list[int]) -> Dispatched:
    queues.send_many("send", (SendBatch(kind="campaign", id=campaign_id, batch=batch) for batch in batches))
    return Dispatched(campaign_id, status, batches=len(batches))


class _NoRecipientsError(Exception):
    pass


def _materialise(campaign: DictRow, sender: str | None, size: int, workers: int) -> list[dict[str, Any]]:
    """Each worker inserts its share of the audience and commits; share k owns batches k, k + workers, ..."""
    rendered, template_params = templates.parse(campaign["message_template"]).sql_expression()
    statement = sql.SQL(
        """WITH audience AS (
               SELECT c.id, c.phone_number, {rendered} AS body """
        + campaigns.RECIPIENTS_SQL
        + """ AND get_byte(uuid_send(c.id), 15) %% %(workers)s = %(share)s),
           priced AS (
               SELECT a.*, sms_encoding(a.body) AS encoding,
                      ((row_number() OVER ()) - 1) / %(size)s * %(workers)s + %(share)s AS batch_number
                 FROM audience a WHERE {sendable}),
           inserted AS (
               INSERT INTO sms_delivery_logs (user_id, campaign_id, recipient_id, phone_number, status,
                                              batch_number, segments, encoding, cost, body, sender_id)
               SELECT %(user)s, %(campaign)s, p.id, p.phone_number, 'queued', p.batch_number, s.segments,
                      p.encoding, s.segments * %(price)s, p.body, %(sender)s
                 FROM priced p CROSS JOIN LATERAL (SELECT sms_segments(p.body, p.encoding) AS segments) s
               RETURNING segments, batch_number)
           SELECT count(*)::int AS recipients, (coalesce(sum(segments), 0) * %(price)s)::int AS credits,
                  coalesce(array_agg(DISTINCT batch_number), '{{}}') AS batch_numbers
             FROM inserted"""
    ).format(rendered=rendered, sendable=templates.sendable(sql.SQL("a.body")))

    def share(index: int) -> dict[str, Any]:
        with db.connect_direct(autocommit=False) as worker:
            row = worker.execute(
                statement,
                {
                    "user": campaign["user_id"],
                    "campaign": campaign["id"],
                    "size": size,
                    "workers": workers,
                    "share": index,
                    "price": settlement.CREDITS_PER_SEGMENT,
                    "sender": sender,
                    **template_params,
                },
            ).fetchone()
            worker.commit()
        assert row is not None
        return dict(row)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(share, range(workers)))


def _batches_with_queued_rows(conn: Connection[DictRow], campaign_id: UUID) -> list[int]:
    rows = conn.execute(
        "SELECT DISTINCT batch_number FROM sms_delivery_logs WHERE campaign_id = %s AND status = 'queued'",
        (campaign_id,),
    ).fetchall()
    return [row["batch_number"] for row in rows]
