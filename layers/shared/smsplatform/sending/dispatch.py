"""The dispatcher: turns a queued campaign into priced delivery-log rows, a reservation and batches.

The audience is materialised set-wise: each of `dispatch_workers` connections
runs one INSERT ... SELECT over its share of the contacts (split by id), which
renders, prices and numbers its recipients into batches.

A campaign whose target groups hold at most `release_chunk_rows` members is
released whole, all or nothing. A coordinating transaction holds the campaign
row (FOR NO KEY UPDATE, so the workers' foreign key checks pass) from the
start, clears rows an earlier, crashed attempt left, and once the workers have
committed, reserves the credits and moves the campaign to `sending`. Rows of a
campaign that is not `sending` are never claimed, so until that commit nothing
can be sent; should it fail, the next delivery of the release message starts
over. Only then are the batch descriptors enqueued.

A larger one is released in chunks (ADR 0013): it becomes `sending` (and
`releasing`) at once, and each worker walks its range of contact ids a chunk at
a time (one batch first, then more), committing the chunk's rows, its
reservation and the share's progress together, then enqueueing the chunk's
batches. The first batches are sent while the rest is materialised. A chunk the
balance cannot cover stops the campaign (`failed`, with the reason): nothing
beyond what was reserved is sent or charged, and what was reserved but not yet
sent is refunded. A dispatcher that dies resumes from the committed progress on
the next delivery of the release message (or the scheduler's re-announcement).
The campaign cannot complete while it is releasing.

A release message delivered again finds the campaign sending and enqueues again
the batches that still have queued rows, which senders treat as the duplicates
they are.
"""

import threading
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
from smsplatform.core.queue_messages import Release, SendBatch
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
            """SELECT c.id, c.user_id, c.status, c.releasing, c.started_at, c.message_template, c.sender_id,
                      c.settings, u.account_status
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
        releasing = campaign["status"] == "sending" and campaign["releasing"]
        if campaign["status"] != "queued" and not releasing:
            pending = _batches_with_queued_rows(conn, campaign_id) if campaign["status"] == "sending" else []
            return _announce(campaign_id, campaign["status"], pending)

        cap = campaign["settings"].get("throughput_per_second")
        size = routing.batch_size(routing.slowest_rate(conn, campaign["user_id"], settings, cap), settings)
        window = SendWindow.from_settings(campaign["settings"])
        validity = campaign["settings"].get("validity_period")
        started = campaign["started_at"] if releasing else now
        expires_at = started + timedelta(seconds=int(validity)) if validity else None
        if releasing:  # a dispatcher died mid-release: what it committed but may not have announced goes again
            pending = _batches_with_queued_rows(conn, campaign_id)
        else:
            _discard_earlier_attempt(conn, campaign_id)
            if _members_exceed(conn, campaign_id, settings.release_chunk_rows):
                _begin_release(conn, campaign_id, size, settings)
                releasing, pending = True, []
        if not releasing:
            whole = _release_whole(conn, campaign, sender, size, settings, window, expires_at, now)
            if isinstance(whole, Dispatched):
                return whole
            recipients, credits, skipped, batches = whole
    if releasing:
        _announce(campaign_id, "sending", pending)
        return _release_in_chunks(conn, campaign, sender, size, settings, window, expires_at, clock)

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


def _release_whole(
    conn: Connection[DictRow],
    campaign: DictRow,
    sender: str | None,
    size: int,
    settings: Settings,
    window: SendWindow | None,
    expires_at: datetime | None,
    now: datetime,
) -> Dispatched | tuple[int, int, int, list[int]]:
    """All or nothing, in the coordinating transaction: (recipients, credits, skipped, batches), or the failure."""
    campaign_id = campaign["id"]
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
        return _fail(conn, campaign_id, _refusal(exc))
    return recipients, credits, skipped, [number for share in shares for number in share["batch_numbers"]]


def _refusal(exc: "InsufficientCreditsError | _NoRecipientsError") -> str:
    if isinstance(exc, InsufficientCreditsError):
        return f"Not enough credits: {exc.detail}"
    return (
        "No recipients: no active, opted-in contact of the target groups has a message to send"
        " (a message that renders empty or longer than 1,600 characters is not sent)."
        + (f" {exc.skipped} recipients' destinations are blocked or unpriced." if exc.skipped else "")
    )


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


# The whole release's share of the audience for worker `share`: the contact id's last byte.
_SHARE = " AND get_byte(uuid_send(c.id), 15) %% %(workers)s = %(share)s"


def _zones(
    conn: Connection[DictRow],
    campaign: DictRow,
    window: SendWindow | None,
    now: datetime,
    chunk: dict[str, Any] | None = None,
) -> windows.Openings | None:
    """When each of the audience's (or a chunk's) zone keys may be sent to: a handful of keys, however large."""
    if window is None:
        return None
    if window.timezone != windows.RECIPIENT:
        return windows.openings(window, [window.timezone], now)
    audience = (
        "WITH members AS ("
        + campaigns.CHUNK_MEMBERS_SQL
        + ") SELECT DISTINCT {} AS zone "
        + campaigns.CHUNK_RECIPIENTS_SQL
        if chunk is not None
        else "SELECT DISTINCT {} AS zone " + campaigns.RECIPIENTS_SQL
    )
    rows = conn.execute(
        sql.SQL(audience).format(_zone_expression(window)),
        {"user": campaign["user_id"], "campaign": campaign["id"], **(chunk or {})},
    ).fetchall()
    return windows.openings(window, [row["zone"] for row in rows], now)


def _statement(campaign: DictRow, window: SendWindow | None, chunked: bool) -> tuple[sql.Composed, dict[str, str]]:
    """One INSERT ... SELECT of a worker's recipients (its share, or a chunk), and the template's parameters.

    In the same statement each recipient is priced by its destination (blocked and unpriced ones are left
    out and counted) and, with a sending window, given its zone's opening: rows of a closed zone are held,
    and rows are numbered zone by zone so that a batch is, as far as it can be, all of one opening. A
    worker numbers its batches first_batch, first_batch + workers, ... so that workers never collide.
    """
    rendered, template_params = templates.parse(campaign["message_template"]).sql_expression()
    price_join, price = pricing.join(sql.SQL("a.country_code"))
    order = sql.SQL("ORDER BY c.not_before NULLS FIRST, c.zone") if window else sql.SQL("")
    statement = sql.SQL(
        ("WITH members AS (" + campaigns.CHUNK_MEMBERS_SQL + ")," if chunked else "WITH")
        + """ audience AS (
               SELECT c.id, c.phone_number, c.country_code, {zone} AS zone, {rendered} AS body """
        + (campaigns.CHUNK_RECIPIENTS_SQL if chunked else campaigns.RECIPIENTS_SQL + _SHARE)
        + """),
           candidates AS (
               SELECT a.*, {price} AS price, sms_encoding(a.body) AS encoding,
                      a.zone IS NOT NULL AND z.key IS NULL AS never, z.not_before, z.send_until
                 FROM audience a {price_join}
                 LEFT JOIN unnest(%(zone_keys)s::text[], %(zone_not_before)s::timestamptz[],
                                  %(zone_send_until)s::timestamptz[]) AS z(key, not_before, send_until)
                        ON z.key = a.zone
                WHERE {sendable}),
           priced AS (
               SELECT c.*, %(first_batch)s + ((row_number() OVER ({order})) - 1) / %(size)s * %(workers)s
                          AS batch_number
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
                  max(batch_number) AS last_batch,
                  (SELECT count(*) FROM candidates WHERE price IS NULL)::int AS skipped"""
        + (
            """,
                  (SELECT count(*) FROM members)::int AS scanned,
                  (SELECT id FROM members ORDER BY id DESC LIMIT 1) AS last_contact"""
            if chunked
            else ""
        )
        + """
             FROM inserted"""
    ).format(
        zone=_zone_expression(window),
        rendered=rendered,
        price=price,
        price_join=price_join,
        order=order,
        sendable=templates.sendable(sql.SQL("a.body")),
    )
    return statement, template_params


def _parameters(
    campaign: DictRow,
    sender: str | None,
    size: int,
    settings: Settings,
    expires_at: datetime | None,
    zones: windows.Openings | None,
    template_params: dict[str, str],
) -> dict[str, Any]:
    return {
        "user": campaign["user_id"],
        "campaign": campaign["id"],
        "size": size,
        "sender": sender,
        "expires_at": expires_at,
        "never_code": windows.NO_WINDOW,
        "never_text": windows.NO_WINDOW_TEXT,
        **(zones or windows.Openings([], [], [], [])).params(),
        **pricing.params(campaign["user_id"], settings.default_credits_per_segment),
        **template_params,
    }


def _materialise(
    campaign: DictRow,
    sender: str | None,
    size: int,
    settings: Settings,
    window: SendWindow | None,
    zones: windows.Openings | None,
    expires_at: datetime | None,
) -> list[dict[str, Any]]:
    """Each worker inserts its share of the audience and commits; share k owns batches k, k + workers, ..."""
    statement, template_params = _statement(campaign, window, chunked=False)
    params = _parameters(campaign, sender, size, settings, expires_at, zones, template_params)
    workers = settings.dispatch_workers

    def share(index: int) -> dict[str, Any]:
        with db.connect_direct(autocommit=False) as worker:
            row = worker.execute(
                statement, {**params, "workers": workers, "share": index, "first_batch": index}
            ).fetchone()
            worker.commit()
        assert row is not None
        return dict(row)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(share, range(workers)))


def _discard_earlier_attempt(conn: Connection[DictRow], campaign_id: UUID) -> None:
    """Deletes the rows a crashed attempt's workers committed, and commits, before the workers insert again.

    Not in the coordinating transaction: the open batches' trigger (sql/0027) locks the batches it deletes
    from until the deletion commits, and the workers, on connections of their own, would wait for the
    coordinator that waits for them. The coordinator's lock on the campaign row keeps every other dispatcher
    of it out meanwhile."""
    found = conn.execute("SELECT 1 FROM sms_delivery_logs WHERE campaign_id = %s LIMIT 1", (campaign_id,)).fetchone()
    if found is not None:
        with db.connect_direct() as other:
            other.execute("DELETE FROM sms_delivery_logs WHERE campaign_id = %s", (campaign_id,))


def _batches_with_queued_rows(conn: Connection[DictRow], campaign_id: UUID) -> list[int]:
    rows = conn.execute(
        "SELECT batch_number FROM send_batches WHERE reference_id = %s AND unsent > held ORDER BY batch_number",
        (campaign_id,),
    ).fetchall()
    return [row["batch_number"] for row in rows]


def _members_exceed(conn: Connection[DictRow], campaign_id: UUID, limit: int) -> bool:
    """Whether the target groups hold more than `limit` memberships: at most limit + 1 index entries read."""
    row = conn.execute(
        """SELECT count(*) > %(limit)s AS more
             FROM (SELECT 1 FROM campaign_target_groups t JOIN contact_group_members m ON m.group_id = t.group_id
                    WHERE t.campaign_id = %(campaign)s LIMIT %(limit)s + 1) x""",
        {"campaign": campaign_id, "limit": limit},
    ).fetchone()
    return bool(row and row["more"])


def _upper(share: int, shares: int) -> UUID | None:
    """The end (exclusive) of a share's range of contact ids; the last share's is open."""
    return UUID(int=(share + 1) * (1 << 128) // shares) if share < shares - 1 else None


def _begin_release(conn: Connection[DictRow], campaign_id: UUID, size: int, settings: Settings) -> None:
    """The campaign becomes sending and releasing, with one progress row per worker's range of contact ids."""
    shares = settings.dispatch_workers
    starts = [UUID(int=max(share * (1 << 128) // shares - 1, 0)) for share in range(shares)]
    conn.execute(
        """INSERT INTO campaign_release_shares (campaign_id, share, shares, after_contact, next_batch, chunk_rows)
           SELECT %s, s.share, %s, s.after_contact, s.share, %s
             FROM unnest(%s::int[], %s::uuid[]) AS s(share, after_contact)""",
        (campaign_id, shares, size, list(range(shares)), starts),
    )
    conn.execute(
        """UPDATE sms_campaigns SET status = 'sending', releasing = true, started_at = now(), total_recipients = 0,
                  skipped_blocked = 0, updated_at = now() WHERE id = %s""",
        (campaign_id,),
    )


@dataclass(frozen=True)
class _Chunk:
    batches: list[int]
    done: bool  # the share's range has no contact left


class _StoppedError(Exception):
    """The campaign cannot go on: it fails with this reason."""


def _release_in_chunks(
    conn: Connection[DictRow],
    campaign: DictRow,
    sender: str | None,
    size: int,
    settings: Settings,
    window: SendWindow | None,
    expires_at: datetime | None,
    clock: Clock,
) -> Dispatched:
    """Each worker walks its range a chunk at a time, announcing each chunk's batches once it is committed."""
    with conn.transaction():
        shares = conn.execute(
            "SELECT share, shares FROM campaign_release_shares WHERE campaign_id = %s AND NOT done ORDER BY share",
            (campaign["id"],),
        ).fetchall()
        groups = conn.execute(
            "SELECT coalesce(array_agg(group_id), '{}') AS ids FROM campaign_target_groups WHERE campaign_id = %s",
            (campaign["id"],),
        ).fetchone()
    assert groups is not None
    statement, template_params = _statement(campaign, window, chunked=True)
    params = _parameters(campaign, sender, size, settings, expires_at, None, template_params)
    params["groups"] = groups["ids"]  # a sending campaign's target groups cannot change

    deadline = clock.time() + settings.release_seconds
    out_of_time = threading.Event()

    def walk(share: DictRow) -> int:
        announced = 0
        with db.connect_direct(autocommit=False) as worker:
            while True:
                if announced and clock.time() >= deadline:  # at least one chunk an invocation
                    out_of_time.set()
                    return announced
                try:
                    chunk = _chunk(worker, statement, params, campaign, share["share"], share["shares"], settings,
                                   window, clock)  # fmt: skip
                except (InsufficientCreditsError, _StoppedError) as exc:
                    worker.rollback()
                    _stop(worker, campaign, _refusal(exc) if isinstance(exc, InsufficientCreditsError) else str(exc))
                    return announced
                worker.commit()
                if chunk is None:  # stopped, or another dispatcher holds this range now
                    return announced
                _announce(campaign["id"], "sending", chunk.batches)
                announced += len(chunk.batches)
                if chunk.done:
                    return announced

    with ThreadPoolExecutor(max_workers=max(len(shares), 1)) as pool:
        announced = sum(pool.map(walk, shares))
    return _finish_release(conn, campaign["id"], announced, out_of_time.is_set())


def _chunk(
    worker: Connection[DictRow],
    statement: sql.Composed,
    params: dict[str, Any],
    campaign: DictRow,
    share: int,
    shares: int,
    settings: Settings,
    window: SendWindow | None,
    clock: Clock,
) -> _Chunk | None:
    """One chunk of a share, in the worker's open transaction: its rows, their reservation and the progress.

    The campaign row is read FOR SHARE: a stop (cancel, account closure, a short balance) either waits for this
    chunk's commit, then stops its rows too and ends the release (its progress rows go), or commits first and
    this chunk finds no progress left.
    """
    live = worker.execute(
        "SELECT 1 FROM sms_campaigns WHERE id = %s AND status = 'sending' FOR SHARE", (campaign["id"],)
    ).fetchone()
    if live is None:
        return None
    progress = worker.execute(
        """SELECT after_contact, next_batch, chunk_rows FROM campaign_release_shares
            WHERE campaign_id = %s AND share = %s AND NOT done FOR UPDATE SKIP LOCKED""",
        (campaign["id"], share),
    ).fetchone()
    if progress is None:  # the range is done, or held by another dispatcher
        return None
    keyset = {
        "after": progress["after_contact"],
        "upper": _upper(share, shares),
        "chunk": progress["chunk_rows"],
        "groups": params["groups"],
    }
    zones = _zones(worker, campaign, window, datetime.fromtimestamp(clock.time(), UTC), keyset)
    try:
        with worker.transaction():
            row = worker.execute(
                statement,
                {
                    **params,
                    **(zones or windows.Openings([], [], [], [])).params(),
                    **keyset,
                    "workers": shares,
                    "share": share,
                    "first_batch": progress["next_batch"],
                },
            ).fetchone()
    except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError) as exc:
        raise _StoppedError(f"The messages could not be rendered: {_reason(exc)}") from exc
    assert row is not None
    if row["credits"]:
        ledger.reserve(worker, campaign["user_id"], row["credits"], campaign["id"], "campaign")
    done = row["scanned"] < progress["chunk_rows"]
    size = params["size"]  # chunks grow by whole batches, up to release_chunk_rows
    grown = min(progress["chunk_rows"] * 4, max(settings.release_chunk_rows // size * size, size))
    worker.execute(
        """UPDATE campaign_release_shares
              SET after_contact = coalesce(%(last)s, after_contact), next_batch = %(next)s, chunk_rows = %(grown)s,
                  recipients = recipients + %(recipients)s, credits = credits + %(credits)s,
                  skipped = skipped + %(skipped)s, done = %(done)s, updated_at = now()
            WHERE campaign_id = %(campaign)s AND share = %(share)s""",
        {
            "last": row["last_contact"],
            "next": progress["next_batch"] if row["last_batch"] is None else row["last_batch"] + shares,
            "grown": grown,
            "recipients": row["recipients"],
            "credits": row["credits"],
            "skipped": row["skipped"],
            "done": done,
            "campaign": campaign["id"],
            "share": share,
        },
    )
    return _Chunk(list(row["batch_numbers"]), done)


def _stop(worker: Connection[DictRow], campaign: DictRow, reason: str) -> None:
    """A chunk that cannot be reserved or rendered fails the campaign: what is queued is refunded, nothing more
    is materialised (the other workers find it no longer sending), and what senders hold finishes."""
    with worker.transaction():
        stopped = worker.execute(
            """UPDATE sms_campaigns SET status = 'failed', failure_reason = %s, updated_at = now()
                WHERE id = %s AND status = 'sending'""",
            (reason, campaign["id"]),
        ).rowcount
        if stopped:
            text = f"The campaign stopped before this message was sent: {reason}"
            campaigns.stop_queued(worker, campaign["user_id"], campaign["id"], text)
    worker.commit()
    if stopped:
        logger.info("campaign stopped while releasing", extra={"campaign_id": str(campaign["id"]), "reason": reason})


def _finish_release(conn: Connection[DictRow], campaign_id: UUID, announced: int, out_of_time: bool) -> Dispatched:
    """Once every range is done: the release ends (its totals), and the campaign may complete from now on. A
    stopped campaign's release ended when it stopped (campaigns.stop_queued)."""
    with conn.transaction():
        campaign = conn.execute(
            "SELECT status, releasing FROM sms_campaigns WHERE id = %s FOR NO KEY UPDATE", (campaign_id,)
        ).fetchone()
        if campaign is None or not campaign["releasing"]:  # finished by another dispatcher, or stopped
            return Dispatched(campaign_id, campaign["status"] if campaign else "gone", batches=announced)
        open_ranges = conn.execute(
            "SELECT count(*) AS n FROM campaign_release_shares WHERE campaign_id = %s AND NOT done", (campaign_id,)
        ).fetchone()
        if open_ranges and open_ranges["n"]:
            # Out of time for this invocation: a fresh release message carries on from the progress (it is not
            # an announcement, so it counts no release attempt). Otherwise another dispatcher holds the open
            # ranges and finishes them, or the scheduler re-announces them once they stall.
            if out_of_time:
                queues.send_many("release", [Release(campaign_id=campaign_id)])
            return Dispatched(campaign_id, "releasing", batches=announced)
        (totals,) = campaigns.end_releases(conn, [campaign_id])
        if totals["recipients"] == 0:
            return _fail(conn, campaign_id, _refusal(_NoRecipientsError(totals["skipped"])))
    if totals["recipients"] >= db.ANALYZE_AFTER_ROWS:
        db.analyze(conn, datetime.now(UTC).strftime("sms_delivery_logs_%Y_%m"))
    with conn.transaction():  # its last batches may all be sent already: nobody else would settle it
        settlement.settle(conn, "campaign", campaign_id)
    logger.info(
        "campaign released",
        extra={
            "campaign_id": str(campaign_id),
            "recipients": totals["recipients"],
            "credits": totals["credits"],
            "batches": announced,
            "skipped_blocked": totals["skipped"],
        },
    )
    return Dispatched(
        campaign_id, campaign["status"], totals["recipients"], totals["credits"], announced, totals["skipped"]
    )
