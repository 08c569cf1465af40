"""What an account's status does to its sending.

- suspended: nothing of the account is released, dispatched or claimed (the scheduler, the dispatcher
  and the sender each check the account is active), so its work stops within one lease: a batch a
  sender already holds finishes. Its rows and campaigns wait as they are; the recovery sweep leaves them.
- active again: the account's queued campaigns and its waiting batches are announced at once.
- closed: every campaign not yet finished is cancelled and every unsent message (campaign or API send)
  fails as `cancelled`, its credits refunded, in the operator's transaction.
"""

from dataclasses import dataclass
from uuid import UUID

from psycopg import Connection
from psycopg.rows import DictRow

from smsplatform.billing import settlement
from smsplatform.campaigns import campaigns
from smsplatform.core import queues
from smsplatform.core.queue_messages import Release, SendBatch, SendKind
from smsplatform.sending import open_batches

_CLOSED = "The account was closed before this message was sent."


@dataclass(frozen=True)
class Waiting:
    """What a resumed account had waiting: campaigns to release again and batches to announce again."""

    campaigns: list[UUID]
    batches: list[tuple[SendKind, UUID, int]]


def close(conn: Connection[DictRow], user_id: UUID) -> list[tuple[SendKind, UUID]]:
    """Cancels the account's unfinished campaigns and fails its unsent rows; returns what to settle (settling
    is idempotent and waits for anything a sender still holds).

    Rows a sender holds finish (or the recovery sweep finalises them); settling waits for them.
    """
    cancelled = conn.execute(
        """UPDATE sms_campaigns SET status = 'cancelled', cancelled_at = now(), updated_at = now()
            WHERE user_id = %s AND status IN ('draft', 'scheduled', 'queued', 'sending')
        RETURNING id""",
        (user_id,),
    ).fetchall()
    campaigns.end_releases(conn, [row["id"] for row in cancelled])  # nothing more is materialised for them
    unsent = open_batches.rows_of("SELECT * FROM send_batches WHERE user_id = %(user)s", "l.id, l.created_at")
    stopped = conn.execute(
        f"""UPDATE sms_delivery_logs l SET status = 'failed', error_code = 'cancelled', error_message = %(text)s,
                   held = false, updated_at = now()
              FROM ({unsent}) u
             WHERE l.id = u.id AND l.created_at = u.created_at AND l.status IN ('scheduled', 'queued')
         RETURNING CASE WHEN l.campaign_id IS NOT NULL THEN 'campaign' ELSE 'request' END AS kind,
                   coalesce(l.campaign_id, l.request_id) AS id""",
        {"text": _CLOSED, "user": user_id},
    ).fetchall()
    # Every campaign it cancelled, too: one whose sender died before settling has no queued rows left.
    return sorted({(row["kind"], row["id"]) for row in stopped} | {("campaign", row["id"]) for row in cancelled})


def settle(conn: Connection[DictRow], references: list[tuple[SendKind, UUID]]) -> None:
    for kind, reference_id in references:
        settlement.settle(conn, kind, reference_id)


def waiting(conn: Connection[DictRow], user_id: UUID) -> Waiting:
    campaigns = conn.execute(
        "SELECT id FROM sms_campaigns WHERE user_id = %s AND status = 'queued'", (user_id,)
    ).fetchall()
    # Every open batch with rows not held: a batch whose rows a sender holds finds nothing to claim.
    batches = conn.execute(
        """SELECT kind, reference_id AS id, batch_number FROM send_batches
            WHERE user_id = %s AND unsent > held ORDER BY reference_id, batch_number""",
        (user_id,),
    ).fetchall()
    return Waiting([row["id"] for row in campaigns], [(row["kind"], row["id"], row["batch_number"]) for row in batches])


def announce(resumed: Waiting | None) -> None:
    """After the commit that made the account active."""
    if resumed is None:
        return
    queues.send_many("release", (Release(campaign_id=campaign_id) for campaign_id in resumed.campaigns))
    queues.send_many("send", (SendBatch(kind=kind, id=ref, batch=batch) for kind, ref, batch in resumed.batches))


def apply(conn: Connection[DictRow], user_id: UUID, before: str, after: str) -> Waiting | None:
    """In the transaction that changed the status: a closure's cancellations, or what a resume must announce."""
    if after == before:
        return None
    if after == "closed":
        settle(conn, close(conn, user_id))
        return None
    if after == "active":
        return waiting(conn, user_id)
    return None
