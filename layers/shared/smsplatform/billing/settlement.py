"""Settling what a campaign or an API send request reserved, once nothing of it is in flight.

Credits are reserved up front (each message's cost: segments x its destination's price).
When no message of the reference is queued or sending, the credits of messages
the provider accepted (sent, delivered, undelivered) are spent and the rest are
refunded, through the ledger. Settling is idempotent: it moves only what is
still outstanding, under the account's row lock, so any number of senders may
try it as they finish their batches.
"""

from uuid import UUID

from psycopg import Connection
from psycopg.rows import DictRow

from smsplatform.billing import ledger
from smsplatform.core.observability import logger
from smsplatform.core.queue_messages import SendKind

CREDITS_PER_SEGMENT = 1
ACCEPTED = ("sent", "delivered", "undelivered")
IN_FLIGHT_STATES = ("scheduled", "queued", "waiting", "sending")  # sql/0020's states not final yet


def in_flight(conn: Connection[DictRow], kind: SendKind, reference_id: UUID) -> bool:
    """A campaign's from its counters (a few rows however large it is), an API send's from its rows.

    A sending campaign whose audience is still being released (ADR 0013) is in flight whatever its counters
    say: its first batches may all be sent before the next chunk is committed."""
    if kind == "campaign":
        return _releasing(conn, reference_id) or _counted(conn, "messages", reference_id, IN_FLIGHT_STATES) > 0
    row = conn.execute(
        """SELECT EXISTS (SELECT 1 FROM sms_delivery_logs
                           WHERE request_id = %s AND status IN ('scheduled', 'queued', 'sending')) AS busy""",
        (reference_id,),
    ).fetchone()
    return bool(row and row["busy"])


def _releasing(conn: Connection[DictRow], campaign_id: UUID) -> bool:
    row = conn.execute(
        "SELECT releasing AND status = 'sending' AS releasing FROM sms_campaigns WHERE id = %s", (campaign_id,)
    ).fetchone()
    return bool(row and row["releasing"])


def _counted(conn: Connection[DictRow], measure: str, campaign_id: UUID, states: tuple[str, ...]) -> int:
    """A campaign's `messages` or `credits` in these states, from its counters (sql/0020)."""
    row = conn.execute(
        f"""SELECT coalesce(sum({measure}), 0)::bigint AS n FROM campaign_message_counts
             WHERE campaign_id = %s AND state = ANY(%s)""",
        (campaign_id, list(states)),
    ).fetchone()
    return int(row["n"]) if row else 0


def settle(conn: Connection[DictRow], kind: SendKind, reference_id: UUID) -> bool:
    """Completes a sending campaign and settles its credits if nothing is left in flight; True if it did."""
    if in_flight(conn, kind, reference_id):
        return False
    with conn.transaction():
        owner = conn.execute(
            "SELECT user_id FROM sms_campaigns WHERE id = %s"
            if kind == "campaign"
            else "SELECT user_id FROM sms_delivery_logs WHERE request_id = %s LIMIT 1",
            (reference_id,),
        ).fetchone()
        if owner is None:
            return False
        user_id = owner["user_id"]
        # The account's row lock orders this against every other settlement and reservation of it.
        conn.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (user_id,))
        if in_flight(conn, kind, reference_id):
            return False
        completed = False
        if kind == "campaign":
            completed = (
                conn.execute(
                    """UPDATE sms_campaigns SET status = 'completed', completed_at = now(), updated_at = now()
                        WHERE id = %s AND status = 'sending'""",
                    (reference_id,),
                ).rowcount
                == 1
            )
        used = (
            _counted(conn, "credits", reference_id, ACCEPTED)
            if kind == "campaign"
            else _request_spent(conn, reference_id)
        )
        held = ledger.reservation(conn, user_id, reference_id)
        to_spend = used - held.spent
        if to_spend > 0:
            ledger.spend(conn, user_id, to_spend, reference_id, kind)
        to_refund = held.outstanding - max(to_spend, 0)
        if to_refund > 0:
            ledger.refund(conn, user_id, to_refund, reference_id, kind)
    if completed:
        logger.info("campaign completed", extra={"campaign_id": str(reference_id), "credits": used})
    return True


def _request_spent(conn: Connection[DictRow], request_id: UUID) -> int:
    row = conn.execute(
        """SELECT coalesce(sum(cost), 0)::int AS credits FROM sms_delivery_logs
            WHERE request_id = %s AND status = ANY(%s)""",
        (request_id, list(ACCEPTED)),
    ).fetchone()
    return int(row["credits"]) if row else 0
