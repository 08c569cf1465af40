"""The sender: one batch descriptor in, each of its messages sent at most once.

1. Claim: one UPDATE moves the batch's `queued` rows to `sending` (and takes
   back rows whose claim outlived the lease: their sender died). A redelivered
   or concurrent descriptor finds nothing left to claim.
2. Send: the account's provider route is called concurrently (a transient
   failure fails over to the next provider), paced by the campaign's and the
   first provider's throughput caps where they are set.
3. Record: one UPDATE ... FROM unnest writes every result. Transient failures go
   back to `queued` (final after `send_max_attempts`) and a delayed descriptor
   is enqueued for them before this one is acknowledged, after the backoff or
   the provider's Retry-After, whichever is longer.
4. Settle: once nothing of the campaign or request is in flight, it completes
   and its credits are settled.

A row whose claim expired may have reached the provider before its sender died,
and so may one the provider answered ambiguously (5xx, lost answer). An
idempotent provider gets it again under the same id and recognises it; with
any other provider it fails as `outcome_unknown` rather than risk a second copy.
"""

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from psycopg import Connection
from psycopg.rows import DictRow

from smsplatform.billing import settlement
from smsplatform.core import db, queues
from smsplatform.core.clock import SYSTEM_CLOCK, Clock
from smsplatform.core.config import Settings
from smsplatform.core.observability import logger
from smsplatform.core.queue_messages import SendBatch, SendKind
from smsplatform.providers.base import OutboundMessage, Provider, SendResult
from smsplatform.providers.registry import route
from smsplatform.sending import status_callbacks, windows
from smsplatform.sending.windows import SendWindow

_COLUMN = {"campaign": "campaign_id", "request": "request_id"}
EXPIRED_TEXT = "The message was not handed to a provider within its validity period; its credits are refunded."


@dataclass(frozen=True)
class Claimed:
    id: UUID
    created_at: datetime
    message: OutboundMessage
    in_doubt: bool  # reclaimed from a sender that died after claiming it


@dataclass(frozen=True)
class BatchOutcome:
    claimed: int
    accepted: int
    failed: int
    retrying: int
    settled: bool
    deferred_seconds: int = 0


def claim(
    conn: Connection[DictRow],
    kind: SendKind,
    reference_id: UUID,
    batch: int,
    settings: Settings,
    now: datetime | None = None,
) -> list[Claimed]:
    """queued -> sending for this batch, in one statement; a campaign only while it is sending (not
    cancelled) and only while the account is active (a suspended account's rows wait, queued).

    Not claimed: messages waiting for their sending window (held, or their window closed: see
    sending/windows.py). Failed here instead of sent: a message past its validity period (`expired`),
    and one whose number opted out of the account since the row was written (a STOP mid-campaign:
    `opted_out`), except the confirmation of an opt-out (sending/replies.py). Their credits are refunded
    when the batch settles.
    """
    campaign_live = (
        "AND EXISTS (SELECT 1 FROM sms_campaigns WHERE id = %(ref)s AND status = 'sending')"
        if kind == "campaign"
        else ""
    )
    with conn.transaction():
        rows = conn.execute(
            f"""WITH target AS (
                    SELECT l.id, l.created_at, l.status AS was,
                           CASE WHEN l.expires_at <= %(now)s THEN 'expired'
                                WHEN o.phone_number IS NOT NULL THEN 'opted_out' END AS stop
                      FROM sms_delivery_logs l
                      LEFT JOIN opt_outs o ON o.user_id = l.user_id AND o.phone_number = l.phone_number
                                          AND l.inbound_reply IS DISTINCT FROM 'opt_out'
                     WHERE l.{_COLUMN[kind]} = %(ref)s AND l.batch_number = %(batch)s
                       AND ((l.status = 'queued' AND NOT l.held
                             AND (l.send_until IS NULL OR l.send_until > %(now)s OR l.expires_at <= %(now)s))
                            OR (l.status = 'sending' AND l.claimed_at < now() - make_interval(secs => %(lease)s)))
                       AND EXISTS (SELECT 1 FROM users u WHERE u.id = l.user_id AND u.account_status = 'active')
                       {campaign_live}
                       FOR UPDATE OF l SKIP LOCKED)
                UPDATE sms_delivery_logs l
                   SET status = CASE WHEN t.stop IS NOT NULL THEN 'failed' ELSE 'sending' END,
                       error_code = coalesce(t.stop, l.error_code),
                       error_message = CASE t.stop WHEN 'opted_out' THEN %(opted_out)s
                                                   WHEN 'expired' THEN %(expired)s ELSE l.error_message END,
                       claimed_at = CASE WHEN t.stop IS NOT NULL THEN NULL ELSE now() END, updated_at = now(),
                       attempts = l.attempts + CASE WHEN t.was = 'queued' AND t.stop IS NULL THEN 1 ELSE 0 END
                  FROM target t
                 WHERE l.id = t.id AND l.created_at = t.created_at
             RETURNING l.id, l.created_at, l.phone_number, l.body, l.sender_id, l.attempts, t.was, t.stop,
                       ceil(extract(epoch FROM l.expires_at - %(now)s))::int AS validity_seconds""",
            {
                "ref": reference_id,
                "batch": batch,
                "lease": settings.send_lease_seconds,
                "now": now or datetime.now(UTC),
                "opted_out": "The recipient opted out of this account's messages before it was sent.",
                "expired": EXPIRED_TEXT,
            },
        ).fetchall()
    return [
        Claimed(
            row["id"],
            row["created_at"],
            OutboundMessage(
                row["id"],
                row["phone_number"],
                row["body"],
                row["sender_id"],
                row["attempts"],
                row["validity_seconds"],
            ),
            row["was"] == "sending",
        )
        for row in rows
        if row["stop"] is None
    ]


def call_provider(
    provider: Provider, claimed: list[Claimed], concurrency: int, pace: Callable[[int], None] | None = None
) -> list[SendResult]:
    """Every claimed message through the provider, `concurrency` calls at a time; in-doubt ones per its idempotency."""
    results: dict[UUID, SendResult] = {}
    to_send = []
    for item in claimed:
        if item.in_doubt and not provider.idempotent:
            results[item.id] = SendResult(
                item.id, "permanent", None, "outcome_unknown", "A sender stopped mid-call; not resent to avoid a copy."
            )
        else:
            to_send.append(item.message)

    def one(indexed: tuple[int, OutboundMessage]) -> SendResult:
        if pace is not None:
            pace(indexed[0])
        return provider.call(indexed[1])

    if len(to_send) <= 1 or concurrency == 1 or not (provider.blocking or pace):
        sent = [one(pair) for pair in enumerate(to_send)]
    else:
        with ThreadPoolExecutor(max_workers=min(concurrency, len(to_send))) as pool:
            sent = list(pool.map(one, enumerate(to_send)))
    results.update((result.message_id, result) for result in sent)
    provider.flush()
    return [results[item.id] for item in claimed]


def record(
    conn: Connection[DictRow],
    claimed: list[Claimed],
    results: list[SendResult],
    provider_name: str,
    max_attempts: int,
    campaign_id: UUID | None = None,
) -> dict[str, int]:
    """All results in one statement; counts of rows now sent, failed and back in the queue.

    `provider_name` stands for results that name no provider (failed before any was called). A message
    that would go back to the queue of a campaign no longer sending (cancelled while the batch was out)
    fails instead: nothing would ever send it. The campaign row is read FOR SHARE, so a cancel either
    commits first (and is seen here) or waits for this commit (and then stops these rows itself).
    """
    attempts = {item.id: item.message.attempt for item in claimed}
    stopped = None
    with conn.transaction():
        if campaign_id is not None:
            row = conn.execute("SELECT status FROM sms_campaigns WHERE id = %s FOR SHARE", (campaign_id,)).fetchone()
            stopped = row["status"] if row is not None and row["status"] != "sending" else None
        statuses, codes, texts = [], [], []
        for result in results:
            code, text = result.error_code, result.error_message
            if result.outcome == "accepted":
                status = "sent"
            elif result.outcome == "transient" and attempts[result.message_id] < max_attempts:
                status = "queued"
                if stopped:
                    status, code = "failed", "cancelled"
                    text = (
                        f"The campaign was {stopped} before this message could be sent again ({_failure_text(result)})."
                    )
            else:
                status = "failed"
            statuses.append(status)
            codes.append(code)
            texts.append(text)
        # The arrays go in binary (%b): as text, psycopg spends ~2.6 ms of Python on 1,000 timestamps alone.
        # No index names a column this writes, so each row is updated in place; receipts find a message by
        # the provider's id through provider_message_ids, written in the same statement (sql/0027).
        conn.execute(
            """WITH recorded AS (
               UPDATE sms_delivery_logs l
                  SET status = r.status, provider = r.provider, external_message_id = r.external_id,
                      sent_at = CASE WHEN r.status = 'sent' THEN now() END,
                      error_code = r.code, error_message = r.message, claimed_at = NULL, updated_at = now(),
                      idle_since = CASE WHEN r.status = 'queued' THEN now() ELSE l.idle_since END
                 FROM unnest(%(ids)b::uuid[], %(created)b::timestamptz[], %(statuses)b::text[],
                             %(external)b::text[], %(codes)b::text[], %(texts)b::text[], %(providers)b::text[])
                      AS r(id, created_at, status, external_id, code, message, provider)
                WHERE l.id = r.id AND l.created_at = r.created_at AND l.status = 'sending'
            RETURNING l.provider, l.external_message_id, l.id, l.created_at)
               INSERT INTO provider_message_ids (provider, external_id, message_id, created_at)
               SELECT provider, external_message_id, id, created_at FROM recorded
                WHERE external_message_id IS NOT NULL
               ON CONFLICT DO NOTHING""",
            {
                "providers": [result.provider or provider_name for result in results],
                "ids": [item.id for item in claimed],
                "created": [item.created_at for item in claimed],
                "statuses": statuses,
                "external": [result.external_id for result in results],
                "codes": codes,
                "texts": texts,
            },
        )
    return {status: statuses.count(status) for status in ("sent", "failed", "queued")}


def _failure_text(result: SendResult) -> str:
    return f"{result.error_code}: {result.error_message}" if result.error_message else str(result.error_code)


def retry_delay(attempt: int, base_seconds: int) -> int:
    """Exponential backoff for transient failures: base, 2 x base, 4 x base ... at most 15 minutes (SQS's cap)."""
    return int(min(900, base_seconds * 2 ** max(0, attempt - 1)))


class Pacer:
    """Throughput caps shared by every sender: the campaign's (`sms_campaigns.send_slot`) and the
    provider's (`provider_slots`).

    A batch books the next `n / rate` seconds of each capped timeline in one
    transaction, at the slower of the two rates and from the later of their
    starts, then sends message i no earlier than start + i / rate.
    """

    def __init__(self, start: float, rate: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self.start = start
        self.rate = rate
        self.clock = clock

    def __call__(self, index: int) -> None:
        delay = self.start + index / self.rate - self.clock.time()
        if delay > 0:
            self.clock.sleep(delay)

    @staticmethod
    def book(
        conn: Connection[DictRow],
        messages: int,
        max_wait: int,
        campaign: tuple[UUID, float] | None = None,
        provider: tuple[str, float] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> tuple[float, float, bool]:
        """(epoch seconds the batch may start at, rate, whether it was booked): not if that is over `max_wait` away.

        The campaign row is locked before the provider's, always, so bookings never deadlock.
        """
        starts, rates = [clock.time()], []
        with conn.transaction():
            if campaign is not None:
                row = conn.execute(
                    """SELECT extract(epoch FROM greatest(coalesce(send_slot, now()), now())) AS start
                         FROM sms_campaigns WHERE id = %s FOR UPDATE""",
                    (campaign[0],),
                ).fetchone()
                if row is not None:
                    starts.append(float(row["start"]))
                    rates.append(campaign[1])
            if provider is not None:
                conn.execute(
                    "INSERT INTO provider_slots (provider, send_slot) VALUES (%s, now()) ON CONFLICT DO NOTHING",
                    (provider[0],),
                )
                row = conn.execute(
                    """SELECT extract(epoch FROM greatest(send_slot, now())) AS start
                         FROM provider_slots WHERE provider = %s FOR UPDATE""",
                    (provider[0],),
                ).fetchone()
                assert row is not None
                starts.append(float(row["start"]))
                rates.append(provider[1])
            start = max(starts)
            rate = min(rates) if rates else 0.0
            if not rates:
                return start, rate, True
            if start - clock.time() > max_wait:
                return start, rate, False
            end = start + messages / rate
            if campaign is not None:
                conn.execute("UPDATE sms_campaigns SET send_slot = to_timestamp(%s) WHERE id = %s", (end, campaign[0]))
            if provider is not None:
                conn.execute(
                    "UPDATE provider_slots SET send_slot = to_timestamp(%s) WHERE provider = %s", (end, provider[0])
                )
        return start, rate, True


@dataclass(frozen=True)
class BatchContext:
    """Whose batch this is, the campaign's cap if any, and the account's own provider route if any."""

    user_id: UUID | None
    cap: float | None
    route: list[str] | None
    window: SendWindow | None = None


def _context(conn: Connection[DictRow], kind: SendKind, reference_id: UUID) -> BatchContext:
    if kind == "campaign":
        row = conn.execute(
            """SELECT c.user_id, (c.settings ->> 'throughput_per_second')::float AS cap, u.provider_route,
                      c.settings
                 FROM sms_campaigns c JOIN users u ON u.id = c.user_id WHERE c.id = %s""",
            (reference_id,),
        ).fetchone()
    else:
        row = conn.execute(
            """SELECT u.id AS user_id, NULL::float AS cap, u.provider_route, NULL::jsonb AS settings
                 FROM users u
                WHERE u.id = (SELECT user_id FROM sms_delivery_logs WHERE request_id = %s LIMIT 1)""",
            (reference_id,),
        ).fetchone()
    if row is None:
        return BatchContext(None, None, None)
    return BatchContext(
        row["user_id"],
        row["cap"] or None,
        list(row["provider_route"] or []) or None,
        SendWindow.from_settings(row["settings"]),
    )


RouteFactory = Callable[[list[str] | None, Settings], Provider]


def process_batch(
    descriptor: SendBatch, settings: Settings, make_route: RouteFactory = route, clock: Clock = SYSTEM_CLOCK
) -> BatchOutcome:
    kind, reference_id, batch = descriptor.kind, descriptor.id, descriptor.batch
    now = datetime.fromtimestamp(clock.time(), UTC)
    with db.transaction() as conn:
        context = _context(conn, kind, reference_id)
        if context.window is not None:
            with conn.transaction():  # arrived after its window closed (a cap, a retry): wait for the next
                windows.rehold(conn, reference_id, batch, context.window, now)
        provider = make_route(context.route, settings)
        provider_cap = settings.provider_caps.get(provider.name)
        pacer = None
        size = _batch_rows(conn, kind, reference_id, batch) if context.cap or provider_cap else 0
        if size:
            start, rate, booked = Pacer.book(
                conn,
                size,
                settings.send_max_wait_seconds,
                campaign=(reference_id, context.cap) if context.cap else None,
                provider=(provider.name, provider_cap) if provider_cap else None,
                clock=clock,
            )
            if not booked:
                # Too far ahead for this invocation: come back when the slot nears, under a fresh descriptor.
                delay = max(1, int(start - clock.time()) - settings.send_max_wait_seconds // 2)
                _touch(conn, kind, reference_id, batch)  # still on its way: not idle for the recovery sweep
                queues.send("send", descriptor, delay_seconds=delay)
                return BatchOutcome(0, 0, 0, 0, False, min(delay, 900))
            pacer = Pacer(start, rate, clock)
        claimed = claim(conn, kind, reference_id, batch, settings, now)
    if not claimed:
        with db.transaction() as conn:
            settled = settlement.settle(conn, kind, reference_id)
        return BatchOutcome(0, 0, 0, 0, settled)

    results = call_provider(provider, claimed, settings.send_concurrency, pacer)
    with db.transaction() as conn:
        counts = record(
            conn,
            claimed,
            results,
            provider.name,
            settings.send_max_attempts,
            reference_id if kind == "campaign" else None,
        )
        callbacks_due = status_callbacks.accounts_due(conn, [context.user_id] if context.user_id else [])
    try:
        provider.after_recorded(results)
    except Exception:
        # The results are committed; retrying the batch would not bring these receipts back.
        logger.exception("provider's after-record step failed", extra={"reference": str(reference_id)})
    if counts["queued"]:
        attempt = max(item.message.attempt for item in claimed)
        asked = max((result.retry_after or 0 for result in results if result.outcome == "transient"), default=0)
        queues.send(
            "send",
            descriptor,
            delay_seconds=max(retry_delay(attempt, settings.send_retry_base_seconds), math.ceil(asked)),
        )
    with db.transaction() as conn:
        settled = settlement.settle(conn, kind, reference_id)
    try:
        status_callbacks.announce(callbacks_due)
    except Exception:
        # The callbacks wait in their outbox; the scheduler's sweep announces them within minutes.
        logger.exception("announcing status callbacks failed", extra={"reference": str(reference_id)})
    logger.debug("batch sent", extra={"reference": str(reference_id), "batch": batch, **counts})
    return BatchOutcome(len(claimed), counts["sent"], counts["failed"], counts["queued"], settled)


def _batch_rows(conn: Connection[DictRow], kind: SendKind, reference_id: UUID, batch: int) -> int:
    row = conn.execute(
        f"""SELECT count(*) AS n FROM sms_delivery_logs
             WHERE {_COLUMN[kind]} = %s AND batch_number = %s AND status = 'queued' AND NOT held""",
        (reference_id, batch),
    ).fetchone()
    return int(row["n"]) if row else 0


def _touch(conn: Connection[DictRow], kind: SendKind, reference_id: UUID, batch: int) -> None:
    conn.execute(
        f"""UPDATE sms_delivery_logs SET idle_since = now(), updated_at = now()
             WHERE {_COLUMN[kind]} = %s AND batch_number = %s AND status = 'queued'""",
        (reference_id, batch),
    )
