"""Idempotency-Key: a retried POST gets the first attempt's response instead of a second effect.

Keys belong to the credential that used them (an API token, or one login
session) and live for a day: a retry is answered only to the credential that
made the first request, which passed the route's permission check then (a
token's permissions never grow). The key is claimed in its own committed
transaction before the request runs, so a concurrent duplicate is refused (409)
rather than run twice; a claim left by a crashed attempt is taken over after a
few minutes. A response that carried a secret (a new API token, a signing
secret) is never stored: its retry is told so (409), with the created id.
"""

import hashlib
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg import Connection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from smsplatform.core.errors import ConflictError, FieldError, InvalidInputError

KEY_MAX_LENGTH = 255
RETENTION_HOURS = 24
STALE_CLAIM_SECONDS = 300


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: dict[str, str]
    body: str


def fingerprint(route_key: str, query: str, body: str) -> str:
    return hashlib.sha256("\n".join((route_key, query, body)).encode()).hexdigest()


def claim(
    conn: Connection[DictRow], user_id: UUID, credential: str, key: str, request_fingerprint: str
) -> StoredResponse | None:
    """None: the request is ours to run. A StoredResponse: replay it. Raises on misuse or a duplicate in flight."""
    if not key or len(key) > KEY_MAX_LENGTH:
        raise InvalidInputError(
            f"Idempotency-Key must be 1 to {KEY_MAX_LENGTH} characters.",
            errors=[FieldError("Idempotency-Key", "has the wrong length")],
        )
    inserted = conn.execute(
        """INSERT INTO idempotency_keys (user_id, credential, idempotency_key, request_fingerprint, status)
           VALUES (%s, %s, %s, %s, 'in_progress') ON CONFLICT DO NOTHING RETURNING 1""",
        (user_id, credential, key, request_fingerprint),
    ).fetchone()
    if inserted:
        return None
    row = conn.execute(
        """SELECT request_fingerprint, status, response_status, response_headers, response_body,
                  created_at < now() - make_interval(secs => %s) AS stale,
                  created_at < now() - make_interval(hours => %s) AS expired
             FROM idempotency_keys WHERE user_id = %s AND credential = %s AND idempotency_key = %s FOR UPDATE""",
        (STALE_CLAIM_SECONDS, RETENTION_HOURS, user_id, credential, key),
    ).fetchone()
    assert row is not None
    if row["expired"] or (row["status"] == "in_progress" and row["stale"]):
        conn.execute(
            """UPDATE idempotency_keys SET request_fingerprint = %s, status = 'in_progress', created_at = now(),
                      response_status = NULL, response_headers = NULL, response_body = NULL
                WHERE user_id = %s AND credential = %s AND idempotency_key = %s""",
            (request_fingerprint, user_id, credential, key),
        )
        return None
    if row["request_fingerprint"] != request_fingerprint:
        raise InvalidInputError(
            "This Idempotency-Key was used for a different request; use a new key.",
            errors=[FieldError("Idempotency-Key", "was used for a different request")],
        )
    if row["status"] == "in_progress":
        raise ConflictError("A request with this Idempotency-Key is still being processed; retry shortly.")
    return StoredResponse(row["response_status"], dict(row["response_headers"] or {}), row["response_body"] or "")


def complete(conn: Connection[DictRow], user_id: UUID, credential: str, key: str, response: StoredResponse) -> None:
    conn.execute(
        """UPDATE idempotency_keys SET status = 'completed', response_status = %s, response_headers = %s,
                  response_body = %s
            WHERE user_id = %s AND credential = %s AND idempotency_key = %s""",
        (response.status, Jsonb(response.headers), response.body, user_id, credential, key),
    )


def release(conn: Connection[DictRow], user_id: UUID, credential: str, key: str) -> None:
    """Forgets a claim whose request failed without effect, so a retry with the key runs it."""
    conn.execute(
        "DELETE FROM idempotency_keys WHERE user_id = %s AND credential = %s AND idempotency_key = %s",
        (user_id, credential, key),
    )


def purge_expired(conn: Connection[DictRow]) -> int:
    return conn.execute(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => %s)", (RETENTION_HOURS,)
    ).rowcount


def headers_to_keep(headers: dict[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in headers.items() if key.lower() in ("content-type", "location")}
