"""Which providers an account's messages go through, in order; operators set it per account."""

from uuid import UUID

from psycopg import Connection
from psycopg.rows import DictRow

from smsplatform.core import audit
from smsplatform.core.audit import RequestMeta
from smsplatform.core.errors import NotFoundError


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
