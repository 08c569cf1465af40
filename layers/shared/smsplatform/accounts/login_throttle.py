"""Slows password guessing: too many recent failures for one login or one address gets 429.

Failures are counted per submitted login (lower-cased, whether or not such an
account exists, so the answer reveals nothing) and per client address, over a
sliding window. A successful login clears its login's failures.
"""

import math

from psycopg import Connection
from psycopg.rows import DictRow

from smsplatform.core.errors import TooManyAttemptsError

WINDOW_SECONDS = 15 * 60
MAX_FAILURES_PER_LOGIN = 5
# Higher: many people can share one address (an office, a carrier's NAT).
MAX_FAILURES_PER_ADDRESS = 50


def _key(login: str) -> str:
    return login.strip().lower()[:120]


def lock(conn: Connection[DictRow], login: str) -> None:
    """Serialises attempts on one login for the rest of the transaction, so parallel guesses queue up."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 7270))", (_key(login),))


def check(conn: Connection[DictRow], login: str, ip_address: str | None) -> None:
    """Raises TooManyAttemptsError, with when to retry, if either limit is reached."""
    waits = [_wait(conn, "login_key", _key(login), MAX_FAILURES_PER_LOGIN)]
    if ip_address:
        waits.append(_wait(conn, "ip_address", ip_address, MAX_FAILURES_PER_ADDRESS))
    longest = max(waits)
    if longest > 0:
        raise TooManyAttemptsError(
            "Too many failed logins; wait before trying again.", retry_after_seconds=math.ceil(longest)
        )


def _wait(conn: Connection[DictRow], column: str, value: str, limit: int) -> float:
    # The limit-th most recent failure in the window: once it ages out, attempts are allowed again.
    row = conn.execute(
        f"""SELECT extract(epoch FROM created_at + make_interval(secs => %(window)s) - now()) AS wait
              FROM login_failures
             WHERE {column} = %(value)s AND created_at > now() - make_interval(secs => %(window)s)
             ORDER BY created_at DESC OFFSET %(offset)s LIMIT 1""",
        {"window": WINDOW_SECONDS, "value": value, "offset": limit - 1},
    ).fetchone()
    return float(row["wait"]) if row else 0.0


def record_failure(conn: Connection[DictRow], login: str, ip_address: str | None) -> None:
    conn.execute("INSERT INTO login_failures (login_key, ip_address) VALUES (%s, %s)", (_key(login), ip_address))


def clear(conn: Connection[DictRow], login: str) -> None:
    conn.execute("DELETE FROM login_failures WHERE login_key = %s", (_key(login),))


def purge_expired(conn: Connection[DictRow]) -> int:
    """Deletes failures older than the window; run by daily maintenance."""
    result = conn.execute(
        "DELETE FROM login_failures WHERE created_at < now() - make_interval(secs => %s)", (WINDOW_SECONDS,)
    )
    return result.rowcount
