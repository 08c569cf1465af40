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
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg import Connection, sql
from psycopg.rows import DictRow

from smsplatform.accounts import sender_ids
from smsplatform.billing import ledger, pricing, settlement
from smsplatform.campaigns import campaigns, templates
from smsplatform.contacts import contacts
from smsplatform.core import db, queues
from smsplatform.core.clock import SYSTEM_CLOCK, Clock
from smsplatform.core.config import Settings
from smsplatform.core.errors import DomainError, InsufficientCreditsError
from smsplatform.core.observability import logger
from smsplatform.core.queue_messages import SendBatch
from smsplatform.sending import routing, windows
from smsplatform.sending.windows import SendWindow


@dataclass(frozen=True)
class Dispatched:
    campaign_id: UUID
    status: str
    recipients: int = 0
    credits: int = 0
    batches: int = 0
    skipped_blocked: int = 0


def dispatch(
    conn: Connection[DictRow], campaign_id: UUID, settings: Settings, clock: Clock = SYSTEM_CLOCK
) -> Dispatched:
    now = datetime.fromtimestamp(clock.time(), UTC)
    with conn.transaction():
        prepared = conn.execute(
            "SELECT user_id FROM sms_campaigns WHERE id = %s AND status = 'queued'", (campaign_id,)
        ).fetchone()
    if prepared is not None:
        # Contacts written before numbers carried their zones get them (and a missing country) now, committed,
        # so that the workers see them; once done it is one index probe.
        contacts.fill_number_time_zones(conn, prepared["user_id"])
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
        window = SendWindow.from_settings(campaign["settings"])
        validity = campaign["settings"].get("validity_period")
        expires_at = now + timedelta(seconds=int(validity)) if validity else None
        try:
            zones = _zones(conn, campaign, window, now)
            shares = _materialise(campaign, sender, size, settings, window, zones, expires_at)
        except (DomainError, psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError) as exc:
            # Retrying cannot fix a template or data the database refuses: fail now, with the reason.
            return _fail(conn, campaign_id, f"The messages could not be rendered: {_reason(exc)}")
        recipients = sum(share["recipients"] for share in shares)
        credits = sum(share["credits"] for share in shares)
        skipped = sum(share["skipped"] for share in shares)
        try:
            with conn.transaction():
                if recipients == 0:
                    raise _NoRecipientsError(skipped)
                if credits:  # nothing when no recipient's window ever opens: those rows failed already
                    ledger.reserve(conn, campaign["user_id"], credits, campaign_id, "campaign")
                conn.execute(
                    """UPDATE sms_campaigns SET status = 'sending', started_at = now(), total_recipients = %s,
                              skipped_blocked = %s, updated_at = now() WHERE id = %s""",
                    (recipients, skipped, campaign_id),
                )
        except (InsufficientCreditsError, _NoRecipientsError) as exc:
            reason = (
                f"Not enough credits: {exc.detail}"
                if isinstance(exc, InsufficientCreditsError)
                else "No recipients: no active, opted-in contact of the target groups has a message to send"
                " (a message that renders empty or longer than 1,600 characters is not sent)."
                + (f" {exc.skipped} recipients' destinations are blocked or unpriced." if exc.skipped else "")
            )
            return _fail(conn, campaign_id, reason)

    batches = [number for share in shares for number in share["batch_numbers"]]
    if recipients >= db.ANALYZE_AFTER_ROWS:  # the month's partition just grew by a campaign's audience
        db.analyze(conn, now.strftime("sms_delivery_logs_%Y_%m"))
    logger.info(
        "campaign dispatched",
        extra={
            "campaign_id": str(campaign_id),
            "recipients": recipients,
            "credits": credits,
            "batches": len(batches),
            "skipped_blocked": skipped,
        },
    )
    _announce(campaign_id, "sending", batches)  # batches whose every message waits for its window: woken later
    if not batches:
        with conn.transaction():  # nothing to send now; if nothing waits either (no window ever opens), it ends
            settlement.settle(conn, "campaign", campaign_id)
    return Dispatched(campaign_id, "sending", recipients, credits, len(batches), skipped)


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
    def __init__(self, skipped: int) -> None:
        self.skipped = skipped


def _zone_expression(window: SendWindow | None) -> sql.Composable:
    """The zone key a recipient's window is read in: none, the campaign's zone, or the recipient's."""
    if window is None:
        return sql.SQL("NULL::text")
    if window.timezone != windows.RECIPIENT:
        return sql.Literal(window.timezone)
    return sql.SQL("coalesce(c.timezone, nullif(c.number_time_zones, ''), 'UTC')")


def _zones(
    conn: Connection[DictRow], campaign: DictRow, window: SendWindow | None, now: datetime
) -> windows.Openings | None:
    """When each of the audience's zone keys may be sent to: a handful of keys, however large the audience."""
    if window is None:
        return None
    if window.timezone != windows.RECIPIENT:
        return windows.openings(window, [window.timezone], now)
    rows = conn.execute(
        sql.SQL("SELECT DISTINCT {} AS zone " + campaigns.RECIPIENTS_SQL).format(_zone_expression(window)),
        {"user": campaign["user_id"], "campaign": campaign["id"]},
    ).fetchall()
    return windows.openings(window, [row["zone"] for row in rows], now)


def _materialise(
    campaign: DictRow,
    sender: str | None,
    size: int,
    settings: Settings,
    window: SendWindow | None,
    zones: windows.Openings | None,
    expires_at: datetime | None,
) -> list[dict[str, Any]]:
    """Each worker inserts its share of the audience and commits; share k owns batches k, k + workers, ...

    In the same statement each recipient is priced by its destination (blocked and unpriced ones are left
    out and counted) and, with a sending window, given its zone's opening: rows of a closed zone are held,
    and rows are numbered zone by zone so that a batch is, as far as it can be, all of one opening.
    """
    rendered, template_params = templates.parse(campaign["message_template"]).sql_expression()
    price_join, price = pricing.join(sql.SQL("a.country_code"))
    workers = settings.dispatch_workers
    order = sql.SQL("ORDER BY c.not_before NULLS FIRST, c.zone") if window else sql.SQL("")
    statement = sql.SQL(
        """WITH audience AS (
               SELECT c.id, c.phone_number, c.country_code, {zone} AS zone, {rendered} AS body """
        + campaigns.RECIPIENTS_SQL
        + """ AND get_byte(uuid_send(c.id), 15) %% %(workers)s = %(share)s),
           candidates AS (
               SELECT a.*, {price} AS price, sms_encoding(a.body) AS encoding,
                      a.zone IS NOT NULL AND z.key IS NULL AS never, z.not_before, z.send_until
                 FROM audience a {price_join}
                 LEFT JOIN unnest(%(zone_keys)s::text[], %(zone_not_before)s::timestamptz[],
                                  %(zone_send_until)s::timestamptz[]) AS z(key, not_before, send_until)
                        ON z.key = a.zone
                WHERE {sendable}),
           priced AS (
               SELECT c.*, ((row_number() OVER ({order})) - 1) / %(size)s * %(workers)s + %(share)s AS batch_number
                 FROM candidates c WHERE c.price IS NOT NULL),
           inserted AS (
               INSERT INTO sms_delivery_logs (user_id, campaign_id, recipient_id, phone_number, status,
                                              batch_number, segments, encoding, cost, body, sender_id,
                                              window_zone, not_before, held, send_until, expires_at,
                                              error_code, error_message)
               SELECT %(user)s, %(campaign)s, p.id, p.phone_number,
                      CASE WHEN p.never THEN 'failed' ELSE 'queued' END, p.batch_number, s.segments,
                      p.encoding, CASE WHEN p.never THEN 0 ELSE s.segments * p.price END, p.body, %(sender)s,
                      p.zone, p.not_before, p.not_before IS NOT NULL, p.send_until, %(expires_at)s,
                      CASE WHEN p.never THEN %(never_code)s END, CASE WHEN p.never THEN %(never_text)s END
                 FROM priced p CROSS JOIN LATERAL (SELECT sms_segments(p.body, p.encoding) AS segments) s
               RETURNING cost, batch_number, status, held)
           SELECT count(*)::int AS recipients, coalesce(sum(cost), 0)::int AS credits,
                  coalesce(array_agg(DISTINCT batch_number) FILTER (WHERE status = 'queued' AND NOT held), '{{}}')
                      AS batch_numbers,
                  (SELECT count(*) FROM candidates WHERE price IS NULL)::int AS skipped
             FROM inserted"""
    ).format(
        zone=_zone_expression(window),
        rendered=rendered,
        price=price,
        price_join=price_join,
        order=order,
        sendable=templates.sendable(sql.SQL("a.body")),
    )
    no_zones = windows.Openings([], [], [], [])

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
                    "sender": sender,
                    "expires_at": expires_at,
                    "never_code": windows.NO_WINDOW,
                    "never_text": windows.NO_WINDOW_TEXT,
                    **(zones or no_zones).params(),
                    **pricing.params(campaign["user_id"], settings.default_credits_per_segment),
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
        """SELECT DISTINCT batch_number FROM sms_delivery_logs
            WHERE campaign_id = %s AND status = 'queued' AND NOT held""",
        (campaign_id,),
    ).fetchall()
    return [row["batch_number"] for row in rows]
