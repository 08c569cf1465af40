"""Customer callbacks: each message status change POSTed, signed, to the account's URL; inbound messages too.

A trigger on the delivery logs writes one `status_callbacks` row per change in
the same statement that makes it (sql/0007), so no change is lost to a crash;
an inbound message's row (event `message.inbound`, to the account's inbound URL)
is written by the transaction that stores it (sending/inbound.py).
Producers then announce the account on the callbacks queue; the callbacks
function claims that account's due rows, POSTs them side by side, and marks
each delivered or schedules its next attempt (doubling, at most an hour) until
`callback_max_attempts`. A failing or slow endpoint therefore holds up only its
own account's callbacks, never sending.

Signature: `X-Signature` is the hex HMAC-SHA256 of the raw body, keyed by the
account's secret. The secret is derived from a platform key and the account's
secret version, so none is stored; rotating bumps the version. The body's `id`
(also `X-Callback-Id`) lets a receiver drop the rare repeat: a callback whose
answer was lost is sent again.
"""

import base64
import contextlib
import functools
import hashlib
import hmac
import http.client
import ipaddress
import json
import math
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit
from uuid import UUID

from psycopg import Connection
from psycopg.rows import DictRow

from smsplatform.core import audit, db, queues
from smsplatform.core.audit import RequestMeta
from smsplatform.core.config import Settings
from smsplatform.core.errors import FieldError, InvalidInputError, NotFoundError
from smsplatform.core.queue_messages import CallbacksDue
from smsplatform.providers import twilio
from smsplatform.sending import twilio_compatible

SIGNATURE_HEADER = "X-Signature"
ID_HEADER = "X-Callback-Id"
_ROUNDS_PER_INVOCATION = 10


@dataclass(frozen=True)
class CallbackSettings:
    url: str | None
    secret_version: int
    secret_rotated_at: datetime | None


@dataclass(frozen=True)
class Attempt:
    id: UUID
    delivered: bool
    error: str | None


@dataclass(frozen=True)
class Delivery:
    delivered: int
    failed: int
    # Seconds until this account's next pending callback is due; None if none is, or if this delivery
    # attempted nothing (whoever holds them announces again), so announcements do not multiply.
    retry_in: int | None


def secret(master_key: str, user_id: UUID, version: int) -> str:
    digest = hmac.new(master_key.encode(), f"status-callback:{user_id}:{version}".encode(), hashlib.sha256).digest()
    return "whsec_" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(key: str, body: bytes) -> str:
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def check_url(url: str, settings: Settings) -> str:
    """An https URL with a host (http too where the settings allow it); raises InvalidInputError."""
    parts = urlsplit(url)
    schemes = ("https", "http") if settings.callback_allow_http else ("https",)
    try:
        port = parts.port
    except ValueError:
        port = -1
    # Deployed, the functions' egress is port 443 only.
    port_ok = settings.callback_allow_http or port in (None, 443)
    if parts.scheme not in schemes or not parts.hostname or parts.username or parts.password or not port_ok:
        raise InvalidInputError(
            "The status callback URL must be an https:// URL with a host, no credentials and no port but 443.",
            errors=[FieldError("url", "an https:// URL with a host")],
        )
    return url


def get_settings_for(conn: Connection[DictRow], user_id: UUID) -> CallbackSettings:
    row = conn.execute(
        "SELECT status_callback_url, callback_secret_version, callback_secret_rotated_at FROM users WHERE id = %s",
        (user_id,),
    ).fetchone()
    if row is None:
        raise NotFoundError("No such account.")
    return CallbackSettings(
        row["status_callback_url"], row["callback_secret_version"], row["callback_secret_rotated_at"]
    )


def set_url(conn: Connection[DictRow], user_id: UUID, url: str | None, meta: RequestMeta) -> CallbackSettings:
    conn.execute("UPDATE users SET status_callback_url = %s, updated_at = now() WHERE id = %s", (url, user_id))
    # The host only: integrators put tokens in their webhook URLs' paths and queries.
    audit.record(conn, user_id, "status_callback.set", {"host": urlsplit(url).hostname if url else None}, meta)
    return get_settings_for(conn, user_id)


def get_inbound_url(conn: Connection[DictRow], user_id: UUID) -> str | None:
    row = conn.execute("SELECT inbound_callback_url FROM users WHERE id = %s", (user_id,)).fetchone()
    if row is None:
        raise NotFoundError("No such account.")
    return row["inbound_callback_url"]


def set_inbound_url(conn: Connection[DictRow], user_id: UUID, url: str | None, meta: RequestMeta) -> str | None:
    """Where inbound messages are POSTed (event `message.inbound`), signed with the same secret."""
    conn.execute("UPDATE users SET inbound_callback_url = %s, updated_at = now() WHERE id = %s", (url, user_id))
    audit.record(conn, user_id, "inbound_callback.set", {"host": urlsplit(url).hostname if url else None}, meta)
    return url


def rotate_secret(conn: Connection[DictRow], user_id: UUID, meta: RequestMeta) -> CallbackSettings:
    conn.execute(
        """UPDATE users SET callback_secret_version = callback_secret_version + 1,
                            callback_secret_rotated_at = now(), updated_at = now()
            WHERE id = %s""",
        (user_id,),
    )
    audit.record(conn, user_id, "status_callback.rotate_secret", {}, meta)
    return get_settings_for(conn, user_id)


def accounts_due(conn: Connection[DictRow], user_ids: Iterable[UUID]) -> list[UUID]:
    """Which of these accounts have callbacks waiting."""
    ids = list(user_ids)
    if not ids:
        return []
    rows = conn.execute(
        "SELECT DISTINCT user_id FROM status_callbacks WHERE status = 'pending' AND user_id = ANY(%s)", (ids,)
    )
    return [row["user_id"] for row in rows]


def overdue_accounts(conn: Connection[DictRow], limit: int = 1000) -> list[UUID]:
    """Accounts with callbacks due a minute ago or more: their announcement was lost (the scheduler's sweep)."""
    rows = conn.execute(
        """SELECT DISTINCT user_id FROM status_callbacks
            WHERE status = 'pending' AND next_attempt_at < now() - interval '1 minute' LIMIT %s""",
        (limit,),
    )
    return [row["user_id"] for row in rows]


def purge_settled(conn: Connection[DictRow], keep_days: int = 7) -> int:
    """Deletes delivered and abandoned callbacks older than `keep_days` (the daily maintenance)."""
    cursor = conn.execute(
        """DELETE FROM status_callbacks
            WHERE status <> 'pending' AND created_at < now() - make_interval(days => %s)""",
        (keep_days,),
    )
    return cursor.rowcount


def announce(user_ids: Iterable[UUID]) -> None:
    """One message per account on the callbacks queue."""
    queues.send_many("callbacks", (CallbacksDue(user_id=user_id) for user_id in user_ids))


Post = Callable[[str, bytes, dict[str, str]], None]
_MAX_ANSWER_BYTES = 64 * 1024  # what is read of an endpoint's answer (its status is what counts)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """Built on the first callback, not at import: loading the CA bundle is file I/O every sender cold start
    would otherwise pay (the sender imports this module to announce callbacks)."""
    return ssl.create_default_context()


class _PinnedConnection(http.client.HTTPSConnection):
    """Connects to the address that was checked, not to whatever the name resolves to a moment later (DNS
    rebinding); TLS still verifies the certificate against the URL's host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float, tls: bool) -> None:
        super().__init__(host, port, timeout=timeout, context=_tls_context())
        self.address = address
        self.tls = tls
        self.aborted = False

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        # As http.client's own connect does: a body written after its headers must not wait for an ACK.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls:
            self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)  # type: ignore[attr-defined]

    def abort(self) -> None:
        """From the deadline's timer: ends a read that is still trickling in (and the connection with it)."""
        self.aborted = True
        with contextlib.suppress(OSError, AttributeError):
            self.sock.shutdown(socket.SHUT_RDWR)


def _addresses(host: str, port: int) -> list[str]:
    try:
        return list(dict.fromkeys(str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)))
    except OSError:
        return []


def _public(address: str) -> bool:
    return ipaddress.ip_address(address.split("%")[0]).is_global


@dataclass(frozen=True)
class Destination:
    host: str
    port: int
    address: str  # the one connected to: checked, not resolved again
    tls: bool
    path: str  # with the query


def destination(url: str, settings: Settings) -> Destination:
    """Where a callback goes. Raises when the host resolves to nothing, or (unless `callback_allow_http`) to
    any private, loopback or link-local address: callbacks never reach into our VPC or instance metadata."""
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    host, port = parts.hostname or "", parts.port or (443 if tls else 80)
    addresses = _addresses(host, port)
    if not addresses or not (settings.callback_allow_http or all(_public(a) for a in addresses)):
        raise RuntimeError("the URL resolves to a private address")
    return Destination(host, port, addresses[0], tls, (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))


class HttpPost:
    """POSTs with one deadline for the whole exchange (`callback_timeout_seconds`): connect, send and the
    answer together, so an endpoint that answers a byte at a time cannot hold a worker. A host is resolved
    when a connection to it is opened, every address it has must be public (unless `callback_allow_http`),
    and the connection goes to the address checked.

    Connections are kept alive and reused for the next callback to the same host, by whichever of a
    delivery's threads comes next: one TLS handshake per endpoint and delivery, not one per callback. A
    reused connection the endpoint has meanwhile closed is replaced once (the callback may then arrive
    twice; its `id` tells the receiver). `close()` ends them all.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._idle: dict[tuple[str, int, bool], list[_PinnedConnection]] = {}
        self._lock = threading.Lock()

    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        tls = parts.scheme == "https"
        key = (parts.hostname or "", parts.port or (443 if tls else 80), tls)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        with self._lock:
            idle = self._idle.get(key)
            connection = idle.pop() if idle else None
        if connection is not None:
            try:
                status = self._exchange(connection, key, path, body, headers)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                connection = None  # it closed while idle: open another, once
        if connection is None:
            target = destination(url, self.settings)
            fresh = _PinnedConnection(
                target.host, target.port, target.address, self.settings.callback_timeout_seconds, target.tls
            )
            status = self._exchange(fresh, key, path, body, headers)
        if not 200 <= status < 300:
            raise RuntimeError(f"HTTP {status}")

    def _exchange(
        self,
        connection: "_PinnedConnection",
        key: tuple[str, int, bool],
        path: str,
        body: bytes,
        headers: dict[str, str],
    ) -> int:
        """One request and its answer; the connection goes back to the idle ones only if it can carry another."""
        deadline = self.settings.callback_timeout_seconds
        timer = threading.Timer(deadline, connection.abort)
        timer.daemon = True
        timer.start()
        reusable = False
        try:
            connection.request("POST", path, body=body, headers=headers)
            answer = connection.getresponse()
            answer.read(_MAX_ANSWER_BYTES)
            reusable = answer.isclosed() and not answer.will_close
            return answer.status
        except (OSError, http.client.HTTPException) as exc:
            if connection.aborted:
                raise TimeoutError(f"no complete answer within {deadline} s") from exc
            raise
        finally:
            timer.cancel()
            if reusable and not connection.aborted:
                with self._lock:
                    self._idle.setdefault(key, []).append(connection)
            else:
                connection.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()


def http_post(settings: Settings) -> HttpPost:
    """The POST the callbacks function delivers with (see HttpPost); close it when the delivery is done."""
    return HttpPost(settings)


def _unbounded() -> float:
    return float("inf")


# Seconds kept back from the invocation's time for recording the last round and announcing what is left.
_TIME_RESERVED_SECONDS = 5.0


def deliver(
    settings: Settings, master_key: str, user_id: UUID, post: Post, time_left: Callable[[], float] = _unbounded
) -> Delivery:
    """Sends the account's due callbacks, a claimed batch at a time, and records each outcome.

    A round claims no more than can finish before the invocation ends (`time_left`: its remaining
    seconds): each POST has `callback_timeout_seconds` in all, `callback_concurrency` at a time. What is
    not claimed stays due, and the caller announces the account again.
    """
    with db.transaction() as conn:
        version = conn.execute("SELECT callback_secret_version FROM users WHERE id = %s", (user_id,)).fetchone()
    if version is None:  # the account is gone, and its callbacks with it
        return Delivery(0, 0, None)
    keys = _Keys(
        user_id,
        secret(master_key, user_id, version["callback_secret_version"]),
        twilio_compatible.auth_token(master_key, user_id, version["callback_secret_version"]),
    )
    delivered = failed = 0
    out_of_time = False
    for _ in range(_ROUNDS_PER_INVOCATION):
        seconds = time_left() - _TIME_RESERVED_SECONDS
        waves = (
            settings.callback_batch_size if math.isinf(seconds) else int(seconds // settings.callback_timeout_seconds)
        )
        room = min(settings.callback_batch_size, settings.callback_concurrency * max(0, waves))
        if room == 0:
            out_of_time = True
            break
        with db.transaction() as conn:
            claimed = _claim(conn, user_id, settings, room)
        if not claimed:
            break
        with ThreadPoolExecutor(max_workers=min(settings.callback_concurrency, len(claimed))) as pool:
            attempts = list(pool.map(_attempt, claimed, [keys] * len(claimed), [post] * len(claimed)))
        with db.transaction() as conn:
            _record(conn, attempts, settings)
        delivered += sum(attempt.delivered for attempt in attempts)
        failed += sum(not attempt.delivered for attempt in attempts)
        if len(claimed) < room:
            break
    if not (delivered + failed or out_of_time):
        return Delivery(0, 0, None)
    with db.transaction() as conn:
        row = conn.execute(
            """SELECT ceil(extract(epoch FROM min(next_attempt_at) - now())) AS wait
                 FROM status_callbacks WHERE user_id = %s AND status = 'pending'""",
            (user_id,),
        ).fetchone()
    wait = row["wait"] if row else None
    return Delivery(delivered, failed, None if wait is None else max(0, int(wait)))


def _claim(conn: Connection[DictRow], user_id: UUID, settings: Settings, limit: int) -> list[DictRow]:
    """Due rows of the account, held for a lease (attempt counted) so a concurrent delivery skips them."""
    lease = settings.callback_timeout_seconds * 2 + 30
    return conn.execute(
        """UPDATE status_callbacks s
              SET attempts = s.attempts + 1, next_attempt_at = now() + make_interval(secs => %(lease)s)
             FROM (SELECT id FROM status_callbacks
                    WHERE user_id = %(user)s AND status = 'pending' AND next_attempt_at <= now()
                    ORDER BY next_attempt_at, created_at LIMIT %(n)s FOR UPDATE SKIP LOCKED) due
            WHERE s.id = due.id
        RETURNING s.id, s.url, s.payload, s.format, s.created_at""",
        {"user": user_id, "lease": lease, "n": limit},
    ).fetchall()


@dataclass(frozen=True)
class _Keys:
    user_id: UUID
    secret: str  # X-Signature's
    twilio: str  # X-Twilio-Signature's


def _attempt(row: DictRow, keys: _Keys, post: Post) -> Attempt:
    if row["format"] == "twilio":
        fields = twilio_compatible.callback_fields(keys.user_id, row["payload"])
        body = urlencode(fields).encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "smsplatform-status-callbacks/1",
            twilio.SIGNATURE_HEADER: twilio.signature(keys.twilio, row["url"], fields.items()),
            "I-Twilio-Idempotency-Token": str(row["id"]),
        }
    else:
        payload: dict[str, Any] = {"id": str(row["id"]), **row["payload"]}
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "smsplatform-status-callbacks/1",
            SIGNATURE_HEADER: sign(keys.secret, body),
            ID_HEADER: str(row["id"]),
        }
    try:
        post(row["url"], body, headers)
    except Exception as exc:  # the endpoint's failure, whatever it is, is this attempt's outcome
        return Attempt(row["id"], False, f"{type(exc).__name__}: {exc}"[:500])
    return Attempt(row["id"], True, None)


def _record(conn: Connection[DictRow], attempts: list[Attempt], settings: Settings) -> None:
    conn.execute(
        """UPDATE status_callbacks s
              SET status = CASE WHEN a.ok THEN 'delivered'
                                WHEN s.attempts >= %(max)s THEN 'failed' ELSE 'pending' END,
                  delivered_at = CASE WHEN a.ok THEN now() END,
                  next_attempt_at = CASE WHEN a.ok THEN s.next_attempt_at
                      ELSE now() + make_interval(secs => least(3600, %(base)s * 2 ^ (s.attempts - 1))) END,
                  last_error = a.error
             FROM unnest(%(ids)s::uuid[], %(oks)s::bool[], %(errors)s::text[]) AS a(id, ok, error)
            WHERE s.id = a.id""",
        {
            "max": settings.callback_max_attempts,
            "base": settings.callback_retry_base_seconds,
            "ids": [a.id for a in attempts],
            "oks": [a.delivered for a in attempts],
            "errors": [a.error for a in attempts],
        },
    )
