"""Recovering work that no queue message will come back for: the scheduler's sweep, every minute.

A batch descriptor can be lost (an enqueue that failed after commit) or end in the
send queue's dead-letter queue (its sender failed on it every time), and a sender
can die holding rows of a campaign that is then cancelled. Without this, such rows
stay `queued` or `sending` for good and their campaign never settles. The sweep:

1. finalises the in-flight rows of campaigns stopped in the last day (cancelled,
   failed): queued rows fail as `cancelled`; rows a sender claimed more than a
   lease ago fail as `outcome_unknown` (they may have reached the provider, so
   they are not sent);
2. finds any row idle past its horizon (`send_stall_seconds`, shorter for API
   sends) and announces its batch again, at most `send_max_recoveries` times;
   after that it fails as `expired` (or `outcome_unknown` if a sender held it),
   and rows of a stopped campaign or a closed account are finalised as in 1.
   A suspended account's rows are held, not lost: the sweep leaves them;
3. settles every campaign and API send whose rows it finalised, and every
   sending campaign left with nothing in flight (a sender died between its last
   record and the settlement). They are noted in `settlements_due` in the
   transaction that finalised them and settled after it commits, so a sweep that
   dies in between leaves them to the next one.

It also does the time-driven work of the pipeline: messages past their validity
period fail as `expired` (and are refunded when their reference settles), and
messages held for a sending window or a scheduled time are woken and their
batches announced (sending/windows.py).

Every statement starts from the open batches (sql/0027) or from campaigns
stopped or sending now, so it stays flat as history grows.

Before a month of messages is archived (core/archive.py), `finalise_month` ends
what it still holds unsent, a suspended account's for instance, and settles it.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from uuid import UUID

from psycopg import Connection
from psycopg.rows import DictRow

from smsplatform.billing import settlement
from smsplatform.core import db, queues
from smsplatform.core.clock import SYSTEM_CLOCK, Clock
from smsplatform.core.config import Settings
from smsplatform.core.observability import logger
from smsplatform.core.queue_messages import SendBatch, SendKind
from smsplatform.sending import exports, open_batches, windows
from smsplatform.sending.sender import EXPIRED_TEXT

_BATCH = 10_000  # rows per statement; a larger backlog is taken over the next ticks
_STOPPED = "The campaign was {status} before this message was sent."
_IN_DOUBT = "A sender stopped mid-call and the message is not sent again: it may have gone out."
_EXPIRED = "No sender took this message within the recovery horizon; its credits are refunded."
_ARCHIVED = "The message was still unsent when its month was archived (past retention); its credits are refunded."


@dataclass(frozen=True)
class Swept:
    finalised: int  # rows of stopped campaigns, and expired rows
    reannounced: int  # batches announced again
    settled: int  # campaigns and API sends settled
    expired: int = 0  # messages past their validity period
    woken: int = 0  # messages whose window opened or whose scheduled time came


def _stopped_campaigns(conn: Connection[DictRow], settings: Settings) -> list[DictRow]:
    return conn.execute(
        """WITH stopped AS (
               SELECT id, status FROM sms_campaigns
                WHERE status IN ('cancelled', 'failed') AND updated_at > now() - interval '1 day'),
           finalised AS (
               UPDATE sms_delivery_logs l
                  SET status = 'failed',
                      error_code = CASE WHEN l.status = 'sending' THEN 'outcome_unknown' ELSE 'cancelled' END,
                      error_message = CASE WHEN l.status = 'sending' THEN %(in_doubt)s
                                           ELSE replace(%(stopped)s, '{status}', s.status) END,
                      claimed_at = NULL, updated_at = now()
                 FROM stopped s JOIN send_batches b ON b.reference_id = s.id AND b.kind = 'campaign'
                WHERE l.campaign_id = b.reference_id AND l.batch_number = b.batch_number
                  AND (l.status = 'queued'
                       OR (l.status = 'sending' AND l.claimed_at < now() - make_interval(secs => %(lease)s)))
               RETURNING l.campaign_id)
           SELECT 'campaign' AS kind, campaign_id AS id, count(*)::int AS n FROM finalised GROUP BY campaign_id""",
        {"lease": settings.send_lease_seconds, "in_doubt": _IN_DOUBT, "stopped": _STOPPED},
    ).fetchall()


# Open batches with rows a sender should have taken by now, oldest first; a suspended account's are held,
# not lost, and left as they are.
_IDLE_BATCHES = """SELECT b.* FROM send_batches b
                     JOIN users u ON u.id = b.user_id AND u.account_status <> 'suspended'
                    WHERE b.unsent > b.held
                      AND b.idle_since < now() - make_interval(secs => least(%(request_stall)s, %(stall)s))"""


def _idle_rows(conn: Connection[DictRow], settings: Settings) -> list[DictRow]:
    """Announces idle rows' batches again (counting it), or finalises them; returns what became of each."""
    candidates = open_batches.rows_of(
        _IDLE_BATCHES,
        "l.id, l.created_at, l.user_id, l.campaign_id, l.recoveries",
        # Not held (they wait on purpose); idle_since is never later than updated_at.
        """NOT l.held
           AND l.updated_at < now() - make_interval(secs => CASE WHEN l.request_id IS NOT NULL
                                                                 THEN %(request_stall)s ELSE %(stall)s END)
           AND (l.status = 'queued'
                OR (l.status = 'sending' AND l.claimed_at < now() - make_interval(secs => %(lease)s)))""",
        "ORDER BY b.idle_since LIMIT %(limit)s FOR UPDATE OF l SKIP LOCKED",
    )
    return conn.execute(
        f"""WITH candidates AS ({candidates}),
           idle AS (
               SELECT i.id, i.created_at, coalesce(c.status, 'sending') AS campaign_status,
                      ((c.status IS NOT NULL AND c.status <> 'sending') OR u.account_status = 'closed') AS stopped,
                      i.recoveries >= %(max)s AS spent
                 FROM candidates i
                 JOIN users u ON u.id = i.user_id
                 LEFT JOIN sms_campaigns c ON c.id = i.campaign_id)
           UPDATE sms_delivery_logs l
              SET status = CASE WHEN i.stopped OR i.spent THEN 'failed' ELSE l.status END,
                  error_code = CASE WHEN NOT (i.stopped OR i.spent) THEN l.error_code
                                    WHEN l.status = 'sending' THEN 'outcome_unknown'
                                    WHEN i.stopped THEN 'cancelled' ELSE 'expired' END,
                  error_message = CASE WHEN NOT (i.stopped OR i.spent) THEN l.error_message
                                       WHEN l.status = 'sending' THEN %(in_doubt)s
                                       WHEN i.stopped THEN replace(%(stopped_text)s, '{{status}}',
                                                                   CASE WHEN i.campaign_status = 'sending'
                                                                        THEN 'stopped' ELSE i.campaign_status END)
                                       ELSE %(expired)s END,
                  claimed_at = CASE WHEN i.stopped OR i.spent THEN NULL ELSE l.claimed_at END,
                  recoveries = l.recoveries + CASE WHEN i.stopped OR i.spent THEN 0 ELSE 1 END,
                  idle_since = now(), updated_at = now()
             FROM idle i
            WHERE l.id = i.id AND l.created_at = i.created_at
        RETURNING CASE WHEN l.campaign_id IS NOT NULL THEN 'campaign' ELSE 'request' END AS kind,
                  coalesce(l.campaign_id, l.request_id) AS id, l.batch_number AS batch,
                  l.status = 'failed' AS finalised""",
        {
            "max": settings.send_max_recoveries,
            "stall": settings.send_stall_seconds,
            "request_stall": settings.send_request_stall_seconds,
            "lease": settings.send_lease_seconds,
            "limit": _BATCH,
            "in_doubt": _IN_DOUBT,
            "stopped_text": _STOPPED,
            "expired": _EXPIRED,
        },
    ).fetchall()


def _expired(conn: Connection[DictRow], now: datetime) -> list[DictRow]:
    """Unsent messages past their validity period fail as expired; read from the open batches whose
    earliest validity end has passed."""
    due = open_batches.rows_of(
        "SELECT * FROM send_batches WHERE expires_at <= %(now)s",
        "l.id, l.created_at",
        "l.expires_at <= %(now)s AND l.status IN ('scheduled', 'queued')",
        "ORDER BY b.expires_at LIMIT %(limit)s FOR UPDATE OF l SKIP LOCKED",
    )
    return conn.execute(
        f"""WITH due AS ({due})
           UPDATE sms_delivery_logs l
              SET status = 'failed', error_code = 'expired', error_message = %(text)s, held = false,
                  updated_at = now()
             FROM due WHERE l.id = due.id AND l.created_at = due.created_at
        RETURNING CASE WHEN l.campaign_id IS NOT NULL THEN 'campaign' ELSE 'request' END AS kind,
                  coalesce(l.campaign_id, l.request_id) AS id""",
        {"now": now, "limit": _BATCH, "text": EXPIRED_TEXT},
    ).fetchall()


def _sending_with_nothing_in_flight(conn: Connection[DictRow]) -> list[UUID]:
    rows = conn.execute(
        """SELECT c.id FROM sms_campaigns c
            WHERE c.status = 'sending' AND NOT c.releasing
              AND NOT EXISTS (SELECT 1 FROM campaign_message_counts k
                               WHERE k.campaign_id = c.id AND k.state = ANY(%s) HAVING sum(k.messages) > 0)""",
        (list(settlement.IN_FLIGHT_STATES),),
    ).fetchall()
    return [row["id"] for row in rows]


def _owe(conn: Connection[DictRow], references: set[tuple[SendKind, UUID]]) -> None:
    """In the transaction that ended their messages: the sends to settle once it commits (sql/0029)."""
    if references:
        kinds, ids = zip(*sorted(references), strict=True)
        conn.execute(
            """INSERT INTO settlements_due (kind, reference_id) SELECT * FROM unnest(%s::text[], %s::uuid[])
               ON CONFLICT DO NOTHING""",
            (list(kinds), list(ids)),
        )


def _settle_owed(limit: int = 1000) -> int:
    """Settles what this tick owes and what an earlier one died owing, one send a transaction (a handful a
    tick); each leaves the table as it is settled, and one that fails stays for the next tick without holding
    up the others. Returns how many settled (completed, or had credits move).

    The row is deleted before the send is settled, in the same transaction: a tick that meanwhile ends more of
    the send's messages either committed first (this settlement sees them) or waits on the row and owes it
    anew."""
    with db.transaction() as conn:
        owed = conn.execute(
            "SELECT kind, reference_id FROM settlements_due ORDER BY since, reference_id LIMIT %s", (limit,)
        ).fetchall()
    settled = 0
    for row in owed:
        try:
            with db.transaction() as conn:
                conn.execute("DELETE FROM settlements_due WHERE reference_id = %s", (row["reference_id"],))
                settled += settlement.settle(conn, row["kind"], row["reference_id"])
        except Exception:
            logger.exception(
                "settling failed; the next tick tries again", extra={"reference": str(row["reference_id"])}
            )
    return settled


def sweep(settings: Settings, clock: Clock = SYSTEM_CLOCK) -> Swept:
    now = datetime.fromtimestamp(clock.time(), UTC)
    with db.transaction() as conn:
        expired = _expired(conn, now)
        woken = windows.wake(conn, now)
        stopped = _stopped_campaigns(conn, settings)
        idle = _idle_rows(conn, settings)
        idle_campaigns = _sending_with_nothing_in_flight(conn)
        exports.fail_stale(conn)
        to_settle: set[tuple[SendKind, UUID]] = {(row["kind"], row["id"]) for row in stopped}
        to_settle |= {(row["kind"], row["id"]) for row in expired}
        to_settle |= {(row["kind"], row["id"]) for row in idle if row["finalised"]}
        to_settle |= {("campaign", campaign_id) for campaign_id in idle_campaigns}
        _owe(conn, to_settle)
    again = sorted({(row["kind"], row["id"], row["batch"]) for row in idle if not row["finalised"]})
    queues.send_many("send", (SendBatch(kind=kind, id=ref, batch=batch) for kind, ref, batch in again))
    # Should this fail, the woken rows are queued and idle: the stall sweep announces them.
    queues.send_many("send", woken.batches)
    settled = _settle_owed()
    finalised = sum(row["n"] for row in stopped) + sum(1 for row in idle if row["finalised"])
    if finalised or again:
        logger.warning(
            "recovered stranded work",
            extra={"finalised": finalised, "batches_reannounced": len(again), "settled": settled},
        )
    return Swept(finalised, len(again), settled, len(expired), woken.messages)


def finalise_month(month: date) -> int:
    """Before a month of messages is exported and dropped: its unsent ones fail (as `expired`, or
    `outcome_unknown` where a sender held one) and their sends settle, so no credit stays reserved for rows
    that are about to go and no open batch points at them. One transaction, so a crash before the
    settlements commit leaves the rows unsent for the next run to end again. A scan of the month, which its
    export reads whole anyway; returns how many it ended."""
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)
    with db.transaction() as conn:
        ended = conn.execute(
            """WITH ended AS (
               UPDATE sms_delivery_logs l
                  SET status = 'failed',
                      error_code = CASE WHEN l.status = 'sending' THEN 'outcome_unknown' ELSE 'expired' END,
                      error_message = CASE WHEN l.status = 'sending' THEN %(in_doubt)s ELSE %(archived)s END,
                      held = false, claimed_at = NULL, updated_at = now()
                WHERE l.created_at >= %(start)s AND l.created_at < %(end)s
                  AND l.status IN ('scheduled', 'queued', 'sending')
            RETURNING CASE WHEN l.campaign_id IS NOT NULL THEN 'campaign' ELSE 'request' END AS kind,
                      coalesce(l.campaign_id, l.request_id) AS id)
               SELECT kind, id, count(*)::int AS n FROM ended GROUP BY 1, 2 ORDER BY 1, 2""",
            {"start": start, "end": end, "in_doubt": _IN_DOUBT, "archived": _ARCHIVED},
        ).fetchall()
        for row in ended:
            settlement.settle(conn, row["kind"], row["id"])
    messages = sum(row["n"] for row in ended)
    if messages:
        logger.warning(
            "unsent messages ended before their month was archived", extra={"month": str(month), "messages": messages}
        )
    return messages


# What the archive (core/archive.py, `before_export`) has the delivery logs' owner do to a month before exporting it.
BEFORE_ARCHIVE: dict[str, Callable[[date], int]] = {"sms_delivery_logs": finalise_month}
