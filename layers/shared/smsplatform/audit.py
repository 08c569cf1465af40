"""The audit trail: one row per mutation, written in the mutation's own transaction."""

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg import Connection
from psycopg.types.json import Jsonb

# Keys whose values never reach an audit row, whatever a caller passes.
_SECRET_KEYS = frozenset({"password", "current_password", "new_password", "password_hash", "token", "secret"})


@dataclass(frozen=True)
class RequestMeta:
    """Who is calling from where, as the gateway saw it."""

    ip_address: str | None = None
    user_agent: str | None = None


def record(
    conn: Connection[Any], user_id: UUID | None, action: str, details: dict[str, Any], meta: RequestMeta
) -> None:
    safe = {key: value for key, value in details.items() if key not in _SECRET_KEYS}
    conn.execute(
        "INSERT INTO audit_logs (user_id, action, details, ip_address, user_agent) VALUES (%s, %s, %s, %s, %s)",
        (user_id, action, Jsonb(safe), meta.ip_address, (meta.user_agent or "")[:1000] or None),
    )
