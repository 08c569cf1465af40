"""Campaigns: their definition, their lifecycle, and what they sent.

Status machine: draft -> scheduled -> queued -> sending -> completed, with
cancelled (from any state before completion) and failed (the dispatcher could
not start it). Every transition is one conditional UPDATE; one that does not
apply to the current status is a 409 naming it.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from psycopg import Connection, sql
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from smsplatform.accounts import sender_ids
from smsplatform.billing import ledger, pricing, settlement
from smsplatform.campaigns import templates
from smsplatform.contacts import contacts
from smsplatform.core import audit, db, pagination, queues
from smsplatform.core.audit import RequestMeta
from smsplatform.core.errors import ConflictError, FieldError, InvalidInputError, NotFoundError
from smsplatform.core.observability import logger
from smsplatform.core.pagination import Cursor, Page, page_of
from smsplatform.core.queue_messages import Release
from smsplatform.sending import encoding

EDITABLE = ("draft", "scheduled")
# While a large campaign is still being released, its recipients so far (ADR 0013).
_COLUMNS = """c.id, c.name, c.message_template, c.sender_id, c.status, c.scheduled_time,
              CASE WHEN c.releasing
                   THEN (SELECT coalesce(sum(r.recipients), 0)::int FROM campaign_release_shares r
                          WHERE r.campaign_id = c.id)
                   ELSE c.total_recipients END AS total_recipients,
              c.created_at, c.updated_at, c.queued_at, c.started_at, c.completed_at, c.cancelled_at,
              c.failure_reason, c.settings,
              ARRAY(SELECT t.group_id FROM campaign_target_groups t WHERE t.campaign_id = c.id ORDER BY t.group_id)
                  AS group_ids"""


CampaignStatus = Literal["draft", "scheduled", "queued", "sending", "completed", "cancelled", "failed"]


@dataclass(frozen=True)
class Campaign:
    id: UUID
    name: str
    message_template: str
    sender_id: str | None
    group_ids: list[UUID]
    total_recipients: int
    status: CampaignStatus
    scheduled_time: datetime | None
    settings: dict[str, Any]
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    queued_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None

    @classmethod
    def from_row(cls, row: DictRow) -> "Campaign":
        return cls(**{key: row[key] for key in cls.__dataclass_fields__})


def _fetch(conn: Connection[DictRow], user_id: UUID, campaign_id: UUID, *, lock: bool = False) -> Campaign:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM sms_campaigns c WHERE c.id = %s AND c.user_id = %s {'FOR UPDATE' if lock else ''}",
        (campaign_id, user_id),
    ).fetchone()
    if row is None:
        raise NotFoundError("No such campaign.")
    return Campaign.from_row(row)


def _check_future(scheduled_time: datetime, field: str = "scheduled_time") -> None:
    if scheduled_time.tzinfo is None:
        raise InvalidInputError(
            "A scheduled time needs a UTC offset.", errors=[FieldError(field, "needs a UTC offset, e.g. Z")]
        )
    if scheduled_time <= datetime.now(UTC):
        raise InvalidInputError(
            "A scheduled time lies in the future.", errors=[FieldError(field, "is not in the future")]
        )


def _set_groups(conn: Connection[DictRow], user_id: UUID, campaign_id: UUID, group_ids: list[UUID]) -> None:
    unique = list(dict.fromkeys(group_ids))
    if not unique:
        raise InvalidInputError("A campaign targets at least one group.", errors=[FieldError("group_ids", "is empty")])
    conn.execute("DELETE FROM campaign_target_groups WHERE campaign_id = %s", (campaign_id,))
    inserted = conn.execute(
        """INSERT INTO campaign_target_groups (campaign_id, group_id)
           SELECT %s, g.id FROM contact_groups g WHERE g.user_id = %s AND g.id = ANY(%s)""",
        (campaign_id, user_id, unique),
    ).rowcount
    if inserted != len(unique):
        raise NotFoundError("One or more of the groups do not exist.")


def create_campaign(
    conn: Connection[DictRow],
    user_id: UUID,
    *,
    name: str,
    message_template: str,
    sender_id: str | None,
    group_ids: list[UUID],
    scheduled_time: datetime | None,
    settings: dict[str, Any],
    meta: RequestMeta,
) -> Campaign:
    templates.parse(message_template)
    if scheduled_time is not None:
        _check_future(scheduled_time)
    if sender_id is not None:  # one the account holds (None: its default, chosen when it is dispatched)
        sender_id = sender_ids.resolve(conn, user_id, sender_id)
    with conn.transaction():
        row = conn.execute(
            """INSERT INTO sms_campaigns (user_id, name, message_template, sender_id, status, scheduled_time, settings)
               VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id""",
            (
                user_id,
                name,
                message_template,
                sender_id,
                "scheduled" if scheduled_time else "draft",
                scheduled_time,
                Jsonb(settings),
            ),
        ).fetchone()
        assert row is not None
        _set_groups(conn, user_id, row["id"], group_ids)
        audit.record(conn, user_id, "campaign.create", {"campaign_id": str(row["id"]), "name": name}, meta)
    return _fetch(conn, user_id, row["id"])


def get_campaign(conn: Connection[DictRow], user_id: UUID, campaign_id: UUID) -> Campaign:
    return _fetch(conn, user_id, campaign_id)


def list_campaigns(
    conn: Connection[DictRow], user_id: UUID, limit: int, cursor: Cursor | None, status: str | None = None
) -> Page[Campaign]:
    keyset, params = pagination.after(cursor, "c")
    rows = conn.execute(
        f"""SELECT {_COLUMNS} FROM sms_campaigns c
             WHERE c.user_id = %(user)s AND (%(status)s::text IS NULL OR c.status = %(status)s) {keyset}
             ORDER BY c.created_at DESC, c.id DESC LIMIT %(limit)s""",
        {"user": user_id, "status": status, "limit": limit + 1, **params},
    ).fetchall()
    return page_of([Campaign.from_row(row) for row in rows], limit)


def _require_editable(campaign: Campaign, action: str) -> None:
    if campaign.status not in EDITABLE:
        raise ConflictError(f"A {campaign.status} campaign cannot be {action}; only draft or scheduled ones can.")


def update_campaign(
    conn: Connection[DictRow], user_id: UUID, campaign_id: UUID, changes: dict[str, Any], meta: RequestMeta
) -> Campaign:
    if "message_template" in changes:
        templates.parse(changes["message_template"])
    if changes.get("sender_id") is not None:
        changes["sender_id"] = sender_ids.resolve(conn, user_id, changes["sender_id"])
    with conn.transaction():
        campaign = _fetch(conn, user_id, campaign_id, lock=True)
        _require_editable(campaign, "edited")
        group_ids = changes.pop("group_ids", None)
        if group_ids is not None:
            _set_groups(conn, user_id, campaign_id, group_ids)
        if "settings" in changes:
            changes["settings"] = Jsonb(changes["settings"])
        if changes:
            conn.execute(
                sql.SQL("UPDATE sms_campaigns SET {}, updated_at = now() WHERE id = %(id)s").format(
                    db.set_clause(changes)
                ),
                {**changes, "id": campaign_id},
            )
        audit.record(
            conn, user_id, "campaign.update", {"campaign_id": str(campaign_id), "fields": sorted(changes)}, meta
        )
    return _fetch(conn, user_id, campaign_id)


def delete_campaign(conn: Connection[DictRow], user_id: UUID, campaign_id: UUID, meta: RequestMeta) -> None:
    with conn.transaction():
        campaign = _fetch(conn, user_id, campaign_id, lock=True)
        _require_editable(campaign, "deleted")
        conn.execute("DELETE FROM sms_campaigns WHERE id = %s", (campaign_id,))
        audit.record(conn, user_id, "campaign.delete", {"campaign_id": str(campaign_id)}, meta)


def _transition(
    conn: Connection[DictRow],
    user_id: UUID,
    campaign_id: UUID,
    allowed: tuple[str, ...],
    assignments: str,
    **params: Any,
) -> None:
    """One conditional UPDATE from any of `allowed`; a 404 or a 409 naming the current status otherwise."""
    moved = conn.execute(
        f"""UPDATE sms_campaigns SET {assignments}, updated_at = now()
             WHERE id = %(id)s AND user_id = %(user)s AND status = ANY(%(allowed)s)""",
        {"id": campaign_id, "user": user_id, "allowed": list(allowed), **params},
    ).rowcount
    if not moved:
        current = _fetch(conn, user_id, campaign_id)
        raise ConflictError(f"The campaign is {current.status}; this needs it {' or '.join(allowed)}.")


def schedule(
    conn: Connection[DictRow], user_id: UUID, campaign_id: UUID, scheduled_time: datetime, meta: RequestMeta
) -> Campaign:
    _check_future(scheduled_time)
    with conn.transaction():
        _transition(
            conn, user_id, campaign_id, EDITABLE, "status = 'scheduled', scheduled_time = %(at)s", at=scheduled_time
        )
        audit.record(
            conn,
            user_id,
            "campaign.schedule",
            {"campaign_id": str(campaign_id), "at": scheduled_time.isoformat()},
            meta,
        )
    return _fetch(conn, user_id, campaign_id)


def send_now(conn: Connection[DictRow], user_id: UUID, campaign_id: UUID, meta: RequestMeta) -> Campaign:
    """draft|scheduled -> queued, then one release message; the dispatcher does the rest."""
    with conn.transaction():
        _transition(
            conn,
            user_id,
            campaign_id,
            EDITABLE,
            "status = 'queued', queued_at = now(), announced_at = now(), release_attempts = 1",
        )
        audit.record(conn, user_id, "campaign.send", {"campaign_id": str(campaign_id)}, meta)
    db.require_committed(conn)
    _announce_release([campaign_id])
    return _fetch(conn, user_id, campaign_id)


def _announce_release(campaign_ids: list[UUID]) -> None:
    """After the commit. Should SQS refuse, the campaign stays queued and the scheduler re-announces it."""
    try:
        queues.send_many("release", (Release(campaign_id=campaign_id) for campaign_id in campaign_ids))
    except Exception:
        logger.exception("release not announced; the scheduler will retry", extra={"campaigns": len(campaign_ids)})


# A campaign still queued after its announcement lost its release message, or its dispatch keeps failing:
# it is announced again after 2, 4, 8, 16 minutes, and after the fifth announcement it fails.
_STUCK_AFTER_SECONDS = 120
MAX_RELEASE_ATTEMPTS = 5


def release_due(conn: Connection[DictRow], limit: int = 500) -> list[UUID]:
    """The scheduler's tick: scheduled campaigns whose time has come become queued and are announced.

    SKIP LOCKED lets overlapping ticks share the work without releasing one twice.
    Campaigns left queued (a lost announcement, a dispatch that keeps failing), and campaigns whose chunked
    release made no progress for two minutes (its dispatcher died), are announced again with backoff;
    dispatching is idempotent and a release resumes where it stopped. One still stuck after
    MAX_RELEASE_ATTEMPTS announcements fails with a reason its owner can read. A queued one's rows (a
    crashed dispatch's) are removed: nothing was reserved. A releasing one keeps what it sent, charged; its
    queued rows are stopped and it is settled.
    """
    with conn.transaction():
        due = conn.execute(
            """WITH due AS (
                   SELECT c.id FROM sms_campaigns c JOIN users u ON u.id = c.user_id
                    WHERE c.status = 'scheduled' AND c.scheduled_time <= now() AND u.account_status = 'active'
                    ORDER BY c.scheduled_time LIMIT %s FOR UPDATE OF c SKIP LOCKED)
               UPDATE sms_campaigns c SET status = 'queued', queued_at = now(), announced_at = now(),
                                          release_attempts = 1, updated_at = now()
                 FROM due WHERE c.id = due.id RETURNING c.id""",
            (limit,),
        ).fetchall()
        stuck = conn.execute(
            """WITH stuck AS (
                   SELECT c.id, c.status, c.release_attempts FROM sms_campaigns c JOIN users u ON u.id = c.user_id
                    WHERE (c.status = 'queued'
                           OR (c.status = 'sending' AND c.releasing  -- its dispatcher stopped mid-release
                               AND NOT EXISTS (SELECT 1 FROM campaign_release_shares r
                                                WHERE r.campaign_id = c.id
                                                  AND r.updated_at > now() - make_interval(secs => %(after)s))))
                      AND u.account_status = 'active'
                      AND coalesce(c.announced_at, c.queued_at)
                          < now() - make_interval(secs => %(after)s * 2 ^ greatest(c.release_attempts - 1, 0))
                    ORDER BY c.queued_at LIMIT %(limit)s FOR UPDATE OF c SKIP LOCKED),
               given_up AS (
                   UPDATE sms_campaigns c
                      SET status = 'failed', updated_at = now(),
                          failure_reason = CASE WHEN s.status = 'queued'
                                                THEN 'The campaign could not be dispatched after '
                                                     || s.release_attempts
                                                     || ' attempts; create it again, or contact support if it recurs.'
                                                ELSE 'The campaign''s release stopped after ' || s.release_attempts
                                                     || ' attempts: what was sent is charged, the rest refunded.'
                                                     || ' Contact support if it recurs.' END
                     FROM stuck s WHERE c.id = s.id AND s.release_attempts >= %(max)s
                   RETURNING c.id, c.user_id, s.status AS was),
               cleared AS (  -- a releasing one's rows may have been sent: they are stopped and settled below
                   DELETE FROM sms_delivery_logs l USING given_up g WHERE l.campaign_id = g.id AND g.was = 'queued'),
               again AS (
                   UPDATE sms_campaigns c
                      SET release_attempts = c.release_attempts + 1, announced_at = now()
                     FROM stuck s WHERE c.id = s.id AND s.release_attempts < %(max)s
                   RETURNING c.id)
               SELECT id, NULL::uuid AS user_id, false AS failed, NULL AS was FROM again
               UNION ALL SELECT id, user_id, true, was FROM given_up""",
            {"after": _STUCK_AFTER_SECONDS, "limit": limit, "max": MAX_RELEASE_ATTEMPTS},
        ).fetchall()
    db.require_committed(conn)
    released = [row["id"] for row in due]
    again = [row["id"] for row in stuck if not row["failed"]]
    for row in stuck:
        if row["failed"]:
            what = "its release given up" if row["was"] == "sending" else "never dispatched"
            logger.warning(f"campaign failed: {what}", extra={"campaign_id": str(row["id"])})
        if row["was"] == "sending":  # part of it went out: what is queued is stopped and the rest settled now
            with conn.transaction():
                stop_queued(conn, row["user_id"], row["id"], "The campaign's release stopped before this was sent.")
                settlement.settle(conn, "campaign", row["id"])
    if released or again:
        _announce_release(released + again)
    return released


def cancel(
    conn: Connection[DictRow], user_id: UUID, campaign_id: UUID, meta: RequestMeta, *, actor: UUID | None = None
) -> Campaign:
    """Stops the campaign: unsent messages fail as cancelled and their credits return at once.

    Messages a sender already holds finish; the campaign settles when they have. `actor` is the operator
    cancelling another account's campaign (the audit entry is theirs); by default the owner.
    """
    with conn.transaction():
        _transition(
            conn,
            user_id,
            campaign_id,
            ("draft", "scheduled", "queued", "sending"),
            "status = 'cancelled', cancelled_at = now()",
        )
        text = "The campaign was cancelled before this message was sent."
        messages, credits = stop_queued(conn, user_id, campaign_id, text)
        details = {"campaign_id": str(campaign_id), "messages_stopped": messages, "credits_refunded": credits}
        if actor is not None and actor != user_id:
            details["owner_id"] = str(user_id)
        audit.record(conn, actor or user_id, "campaign.cancel", details, meta)
    settlement.settle(conn, "campaign", campaign_id)
    return _fetch(conn, user_id, campaign_id)


def stop_queued(conn: Connection[DictRow], user_id: UUID, campaign_id: UUID, reason: str) -> tuple[int, int]:
    """A stopped campaign's queued messages fail as `cancelled` and their credits return at once; (messages,
    credits). Rows a sender holds finish, and the campaign settles when they have. A release in progress ends
    here too (whether or not its dispatcher is still alive): nothing more is materialised for a stopped campaign."""
    end_releases(conn, [campaign_id])
    row = conn.execute(
        """WITH stopped AS (
               UPDATE sms_delivery_logs SET status = 'failed', error_code = 'cancelled', error_message = %(text)s,
                      updated_at = now()
                WHERE campaign_id = %(campaign)s AND status = 'queued'
                  AND batch_number IN (SELECT batch_number FROM send_batches WHERE reference_id = %(campaign)s)
            RETURNING cost)
           SELECT count(*) AS messages, coalesce(sum(cost), 0)::int AS credits FROM stopped""",
        {"text": reason, "campaign": campaign_id},
    ).fetchone()
    assert row is not None
    if row["credits"]:
        ledger.refund(conn, user_id, row["credits"], campaign_id, "campaign")
    return row["messages"], row["credits"]


def end_releases(conn: Connection[DictRow], campaign_ids: list[UUID]) -> list[DictRow]:
    """Chunked releases' end (ADR 0013): the totals of each one's ranges written to its campaign, which may
    complete from then on, and their progress rows gone. Every path that stops a campaign ends its release, so a
    campaign is `releasing` exactly while it is sending with ranges left. One row (id, recipients, credits,
    skipped) per campaign that was releasing."""
    return conn.execute(
        """WITH totals AS (
               SELECT campaign_id, sum(recipients)::int AS recipients, sum(credits)::int AS credits,
                      sum(skipped)::int AS skipped
                 FROM campaign_release_shares WHERE campaign_id = ANY(%(ids)s) GROUP BY campaign_id),
           gone AS (DELETE FROM campaign_release_shares WHERE campaign_id = ANY(%(ids)s))
           UPDATE sms_campaigns c
              SET releasing = false, total_recipients = t.recipients, skipped_blocked = t.skipped, updated_at = now()
             FROM totals t WHERE c.id = t.campaign_id AND c.releasing
        RETURNING c.id, t.recipients, t.credits, t.skipped""",
        {"ids": campaign_ids},
    ).fetchall()


@dataclass(frozen=True)
class CountryCost:
    country: str | None
    recipients: int
    segments: int
    credits: int
    credits_per_segment: int | None
    blocked: bool


@dataclass(frozen=True)
class Preview:
    text: str
    encoding: str
    segments: int
    characters: int
    recipients: int
    estimated_credits: int
    skipped_blocked: int
    cost_by_country: list[CountryCost]
    sample_contact_id: UUID | None


RECIPIENTS_SQL = """
    FROM contacts c
   WHERE c.user_id = %(user)s AND c.status = 'active'
     AND EXISTS (SELECT 1 FROM contact_group_members m JOIN campaign_target_groups t ON t.group_id = m.group_id
                  WHERE t.campaign_id = %(campaign)s AND m.contact_id = c.id)
     AND NOT EXISTS (SELECT 1 FROM opt_outs o WHERE o.user_id = %(user)s AND o.phone_number = c.phone_number)"""
"""The campaign's audience: members of any target group (once each), active, not opted out."""

CHUNK_MEMBERS_SQL = """
    SELECT DISTINCT g.contact_id AS id
      FROM unnest(%(groups)s::uuid[]) AS t(group_id)
      CROSS JOIN LATERAL (
          SELECT m.contact_id FROM contact_group_members m
           WHERE m.group_id = t.group_id AND m.contact_id > %(after)s
             AND (%(upper)s::uuid IS NULL OR m.contact_id < %(upper)s)
           ORDER BY m.contact_id LIMIT %(chunk)s) g
     ORDER BY 1 LIMIT %(chunk)s"""
"""The chunked release's next `chunk` members of the target groups (`groups`) after `after`, below `upper`
if any, in id order (ADR 0013). Each group's part is a range scan of its primary key that stops at `chunk`,
so a chunk costs what it takes, however large the audience and however many other accounts' contacts there
are: 16 ms for the first 1,000 of a 1M audience, where joining the whole audience takes 2 s."""

CHUNK_RECIPIENTS_SQL = """
    FROM members k CROSS JOIN LATERAL (SELECT * FROM contacts c WHERE c.id = k.id LIMIT 1) c
   WHERE c.user_id = %(user)s AND c.status = 'active'
     AND NOT EXISTS (SELECT 1 FROM opt_outs o WHERE o.user_id = %(user)s AND o.phone_number = c.phone_number)"""
"""Those of a chunk's members (CTE `members`, CHUNK_MEMBERS_SQL) in the audience: active, not opted out. Each
is found by its primary key (the LIMIT keeps the planner from hash-joining every contact of the table for a
chunk of 50,000: 1 s a chunk at 1M)."""


def preview(
    conn: Connection[DictRow], user_id: UUID, campaign_id: UUID, contact_id: UUID | None, default_price: int
) -> Preview:
    """The text one recipient would get, and what the whole audience would cost now, country by country."""
    campaign = _fetch(conn, user_id, campaign_id)
    contacts.fill_number_time_zones(conn, user_id)  # each contact's country, as the dispatcher will see it
    template = templates.parse(campaign.message_template)
    rendered, template_params = template.sql_expression()
    params = {"user": user_id, "campaign": campaign_id, "contact": contact_id, **template_params}
    sample = conn.execute(
        sql.SQL("SELECT c.id, {} AS body FROM contacts c WHERE c.user_id = %(user)s AND c.id = %(contact)s").format(
            rendered
        )
        if contact_id
        else sql.SQL("SELECT c.id, {} AS body " + RECIPIENTS_SQL + " LIMIT 1").format(rendered),
        params,
    ).fetchone()
    if contact_id and sample is None:
        raise NotFoundError("No such contact.")
    price_join, price = pricing.join(sql.SQL("r.country_code"))
    by_country = conn.execute(
        sql.SQL(
            """SELECT r.country_code AS country, {price} AS price, count(*)::int AS recipients,
                      coalesce(sum(sms_segments(r.body, sms_encoding(r.body))), 0)::int AS segments
                 FROM (SELECT c.country_code, {rendered} AS body """
            + RECIPIENTS_SQL
            + """) r {price_join}
                WHERE {sendable}
                GROUP BY 1, 2 ORDER BY 3 DESC, 1"""
        ).format(price=price, rendered=rendered, price_join=price_join, sendable=templates.sendable(sql.SQL("r.body"))),
        {**params, **pricing.params(user_id, default_price)},
    ).fetchall()
    costs = [
        CountryCost(
            row["country"],
            row["recipients"],
            row["segments"],
            row["segments"] * (row["price"] or 0),
            row["price"],
            row["price"] is None,
        )
        for row in by_country
    ]
    text = sample["body"] if sample else template.render_fallbacks()
    info = encoding.analyse(text)
    return Preview(
        text,
        info.encoding,
        info.segments,
        info.characters,
        sum(cost.recipients for cost in costs if not cost.blocked),
        sum(cost.credits for cost in costs),
        sum(cost.recipients for cost in costs if cost.blocked),
        costs,
        sample["id"] if sample else None,
    )


@dataclass(frozen=True)
class Stats:
    total: int
    queued: int
    sending: int
    sent: int
    delivered: int
    failed: int
    undelivered: int
    cancelled: int
    waiting: int
    expired: int
    skipped_blocked: int
    credits_reserved: int
    credits_spent: int
    credits_refunded: int


def stats(conn: Connection[DictRow], user_id: UUID, campaign_id: UUID) -> Stats:
    """Counts by state from the campaign's counters (sql/0020): a few hundred rows however large the
    campaign, and exact, since they commit with the messages they count.

    One statement, so the counts and the credits come from one snapshot, in one round trip (they were three:
    a polled endpoint on a busy database waits for each).
    """
    row = conn.execute(
        f"""SELECT c.skipped_blocked, r.reserved, r.spent, r.refunded,
                   (SELECT coalesce(jsonb_object_agg(k.state, k.n), '{{}}')
                      FROM (SELECT state, sum(messages) AS n FROM campaign_message_counts
                             WHERE campaign_id = c.id GROUP BY state) k) AS counts
              FROM sms_campaigns c CROSS JOIN LATERAL ({ledger.RESERVATION_SQL}) r
             WHERE c.id = %(reference)s AND c.user_id = %(user)s""",
        {"reference": campaign_id, "user": user_id},
    ).fetchone()
    if row is None:
        raise NotFoundError("No such campaign.")
    counts = {state: int(n) for state, n in row["counts"].items()}
    held = ledger.Reservation(int(row["reserved"]), int(row["spent"]), int(row["refunded"]))
    return Stats(
        total=sum(counts.values()),
        queued=counts.get("queued", 0) + counts.get("waiting", 0),
        sending=counts.get("sending", 0),
        sent=counts.get("sent", 0),
        delivered=counts.get("delivered", 0),
        failed=counts.get("failed", 0) + counts.get("expired", 0),
        undelivered=counts.get("undelivered", 0),
        cancelled=counts.get("cancelled", 0),
        waiting=counts.get("waiting", 0),
        expired=counts.get("expired", 0),
        skipped_blocked=row["skipped_blocked"],
        credits_reserved=held.reserved,
        credits_spent=held.spent,
        credits_refunded=held.refunded,
    )


def compact_message_counts(conn: Connection[DictRow], campaigns_at_once: int = 1000) -> int:
    """Folds the counter rows written since the last tick into one per (campaign, state); how many campaigns.

    Only campaigns with new rows are read (a partial index), so it is flat as history grows. Rows appended
    meanwhile are not in this statement's snapshot and stay for the next tick; two ticks at once delete
    each row once.
    """
    row = conn.execute(
        """WITH due AS (
               SELECT DISTINCT campaign_id FROM campaign_message_counts WHERE NOT compacted LIMIT %s),
           gone AS (
               DELETE FROM campaign_message_counts c USING due WHERE c.campaign_id = due.campaign_id
               RETURNING c.campaign_id, c.state, c.messages, c.credits),
           folded AS (
               INSERT INTO campaign_message_counts (campaign_id, state, messages, credits, compacted)
               SELECT campaign_id, state, sum(messages), sum(credits), true FROM gone GROUP BY 1, 2
               HAVING sum(messages) <> 0 OR sum(credits) <> 0)
           SELECT count(*)::int AS n FROM due""",
        (campaigns_at_once,),
    ).fetchone()
    return int(row["n"]) if row else 0
