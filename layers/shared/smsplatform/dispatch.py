"""The dispatcher: turns a queued campaign into priced delivery-log rows, a reservation and batches.

One transaction materialises the audience set-wise (rendered, priced and cut
into batches in a single INSERT ... SELECT), reserves the credits and moves the
campaign to `sending`; only then are the batch descriptors enqueued. A
redelivered release message finds the campaign already sending and enqueues
again the batches that still have queued rows, which senders treat as the
duplicates they are.
"""

import math
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg import Connection, sql
from psycopg.rows import DictRow

from smsplatform import campaigns, ledger, queues, settlement, templates
from smsplatform.config import Settings
from smsplatform.errors import InsufficientCreditsError
from smsplatform.observability import logger

# A capped campaign's batch should take about this long to send, within the sender's timeout.
_CAPPED_BATCH_SECONDS = 10


@dataclass(frozen=True)
class Dispatched:
    campaign_id: UUID
    status: str
    recipients: int = 0
    credits: int = 0
    batches: int = 0


def batch_size(campaign_settings: dict[str, Any], settings: Settings) -> int:
    cap = campaign_settings.get("throughput_per_second")
    if cap:
        return max(1, min(settings.send_batch_size, int(cap) * _CAPPED_BATCH_SECONDS))
    return settings.send_batch_size


def batch_descriptor(kind: settlement.Reference, reference_id: UUID, batch: int) -> dict[str, Any]:
    return {"kind": kind, "id": str(reference_id), "batch": batch}


def dispatch(conn: Connection[DictRow], campaign_id: UUID, settings: Settings) -> Dispatched:
    with conn.transaction():
        campaign = conn.execute(
            """SELECT id, user_id, status, message_template, sender_id, settings FROM sms_campaigns
                WHERE id = %s FOR UPDATE""",
            (campaign_id,),
        ).fetchone()
        if campaign is None:
            return Dispatched(campaign_id, "gone")
        if campaign["status"] != "queued":
            pending = [] if campaign["status"] != "sending" else _batches_with_queued_rows(conn, campaign_id)
            status = campaign["status"]
        else:
            pending = None
    if pending is not None:
        # Not ours to start (cancelled, or already started): re-announce what is still waiting.
        queues.send_many("send", (batch_descriptor("campaign", campaign_id, batch) for batch in pending))
        return Dispatched(campaign_id, status, batches=len(pending))

    size = batch_size(campaign["settings"], settings)
    try:
        with conn.transaction():
            totals = _materialise(conn, campaign, size)
            if totals["recipients"] == 0:
                raise _NoRecipientsError
            ledger.reserve(conn, campaign["user_id"], totals["credits"], campaign_id, "campaign")
            conn.execute(
                """UPDATE sms_campaigns SET status = 'sending', started_at = now(), total_recipients = %s,
                          updated_at = now() WHERE id = %s""",
                (totals["recipients"], campaign_id),
            )
    except InsufficientCreditsError as exc:
        return _fail(conn, campaign_id, f"Not enough credits: {exc.detail}")
    except _NoRecipientsError:
        return _fail(conn, campaign_id, "No recipients: the target groups have no active, opted-in contacts.")

    batches = math.ceil(totals["recipients"] / size)
    queues.send_many("send", (batch_descriptor("campaign", campaign_id, batch) for batch in range(batches)))
    logger.info("campaign dispatched", extra={"campaign_id": str(campaign_id), **totals, "batches": batches})
    return Dispatched(campaign_id, "sending", totals["recipients"], totals["credits"], batches)


class _NoRecipientsError(Exception):
    pass


def _materialise(conn: Connection[DictRow], campaign: DictRow, size: int) -> DictRow:
    """Inserts one priced row per recipient, numbered into batches; returns the totals."""
    rendered = templates.parse(campaign["message_template"]).sql_expression()
    row = conn.execute(
        sql.SQL(
            """WITH audience AS (
                   SELECT c.id, c.phone_number, {rendered} AS body """
            + campaigns.RECIPIENTS_SQL
            + """),
               priced AS (
                   SELECT a.*, sms_encoding(a.body) AS encoding,
                          ((row_number() OVER ()) - 1) / %(size)s AS batch_number
                     FROM audience a WHERE a.body <> ''),
               inserted AS (
                   INSERT INTO sms_delivery_logs (user_id, campaign_id, recipient_id, phone_number, status,
                                                  batch_number, segments, encoding, cost, body, sender_id)
                   SELECT %(user)s, %(campaign)s, p.id, p.phone_number, 'queued', p.batch_number, s.segments,
                          p.encoding, s.segments * %(price)s, p.body, %(sender)s
                     FROM priced p CROSS JOIN LATERAL (SELECT sms_segments(p.body, p.encoding) AS segments) s
                   RETURNING segments)
               SELECT count(*)::int AS recipients, (coalesce(sum(segments), 0) * %(price)s)::int AS credits
                 FROM inserted"""
        ).format(rendered=rendered),
        {
            "user": campaign["user_id"],
            "campaign": campaign["id"],
            "size": size,
            "price": settlement.CREDITS_PER_SEGMENT,
            "sender": campaign["sender_id"],
        },
    ).fetchone()
    assert row is not None
    return row


def _batches_with_queued_rows(conn: Connection[DictRow], campaign_id: UUID) -> list[int]:
    rows = conn.execute(
        "SELECT DISTINCT batch_number FROM sms_delivery_logs WHERE campaign_id = %s AND status = 'queued'",
        (campaign_id,),
    ).fetchall()
    return [row["batch_number"] for row in rows]


def _fail(conn: Connection[DictRow], campaign_id: UUID, reason: str) -> Dispatched:
    with conn.transaction():
        conn.execute(
            """UPDATE sms_campaigns SET status = 'failed', failure_reason = %s, updated_at = now()
                WHERE id = %s AND status = 'queued'""",
            (reason, campaign_id),
        )
    logger.info("campaign failed to start", extra={"campaign_id": str(campaign_id), "reason": reason})
    return Dispatched(campaign_id, "failed")
