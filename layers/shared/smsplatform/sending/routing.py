"""Which providers an account's messages go through, in order (operators set it per account), and how
many messages a batch holds so that sending it at the slowest rate that applies fits in one sender run."""

from uuid import UUID

from psycopg import Connection
from psycopg.rows import DictRow

from smsplatform.core import audit
from smsplatform.core.audit import RequestMeta
from smsplatform.core.config import Settings
from smsplatform.core.errors import NotFoundError
from smsplatform.providers.registry import default_route

# A paced batch takes about this long to send: well inside the sender's timeout, whatever the rate.
PACED_BATCH_SECONDS = 10


def get_route(conn: Connection[DictRow], user_id: UUID) -> list[str] | None:
    """The account's own route; None means the configured default."""
    row = conn.execute("SELECT provider_route FROM users WHERE id = %s", (user_id,)).fetchone()
    if row is None:
        raise NotFoundError("No such account.")
    return list(row["provider_route"]) if row["provider_route"] else None


def set_route(
    conn: Connection[DictRow], operator_id: UUID, user_id: UUID, route: list[str] | None, meta: RequestMeta
) -> list[str] | None:
    updated = conn.execute(
        "UPDATE users SET provider_route = %s, updated_at = now() WHERE id = %s RETURNING id", (route, user_id)
    ).fetchone()
    if updated is None:
        raise NotFoundError("No such account.")
    audit.record(conn, operator_id, "account.provider_route", {"user_id": str(user_id), "route": route}, meta)
    return route


def slowest_rate(
    conn: Connection[DictRow], user_id: UUID, settings: Settings, campaign_cap: float | None = None
) -> float | None:
    """Messages per second the sender will pace this account's batch at: the campaign's cap or its first
    provider's (`provider_caps`), whichever is slower; None when neither is set."""
    first = (get_route(conn, user_id) or default_route(settings) or [""])[0]
    caps = [float(cap) for cap in (campaign_cap, settings.provider_caps.get(first)) if cap]
    return min(caps) if caps else None


def batch_size(rate: float | None, settings: Settings) -> int:
    """`send_batch_size`, or fewer where a paced batch would otherwise outlive the sender's timeout."""
    if not rate:
        return settings.send_batch_size
    return max(1, min(settings.send_batch_size, int(rate * PACED_BATCH_SECONDS)))
