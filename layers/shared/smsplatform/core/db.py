"""Connections to PostgreSQL: one small pool per process, opened on first use.

In Lambda the pool holds one connection per warm container (RDS Proxy does the
real pooling); the local stack raises the size because it serves requests on
several threads. Every unit of work runs in `transaction()`: committed when the
block ends, rolled back when it raises.
"""

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from psycopg import Connection, conninfo, pq, sql
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

from smsplatform.core.config import Settings, get_settings
from smsplatform.core.secret_store import get_secret_json

_pool: ConnectionPool[Connection[DictRow]] | None = None
_reader_pool: ConnectionPool[Connection[DictRow]] | None = None
_pool_lock = threading.Lock()

# A connection back in the pool for less than this is handed out again without a round trip to test it.
CHECK_IDLE_SECONDS = 2.0


def _returned(conn: Connection[DictRow]) -> None:
    """The pool's reset hook: notes when the connection came back."""
    conn._sms_returned_at = time.time()  # type: ignore[attr-defined]


def check_if_idle(conn: Connection[DictRow]) -> None:
    """The pool's check: an empty query, but only for a connection idle for CHECK_IDLE_SECONDS or more.

    What the check guards against (Lambda froze the container, a proxy or failover dropped the connection
    meanwhile) needs the connection to have sat idle; one returned a moment ago by the same busy process is
    alive. Checking every checkout cost a round trip per transaction, ~4 per batch sent. Wall-clock time,
    not monotonic: it keeps counting while a container is frozen or restored from a snapshot.
    """
    returned = getattr(conn, "_sms_returned_at", None)
    if returned is None or not 0 <= time.time() - returned < CHECK_IDLE_SECONDS:
        ConnectionPool.check_connection(conn)


def database_conninfo(settings: Settings, host: str | None = None) -> str:
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    if settings.database_secret_arn:
        secret = get_secret_json(settings.database_secret_arn, settings)
        return conninfo.make_conninfo(
            host=host or settings.database_host or secret["host"],
            port=str(settings.database_port or secret.get("port", 5432)),
            user=secret["username"],
            password=secret["password"],
            dbname=settings.database_name or secret.get("dbname", "postgres"),
            sslmode=secret.get("sslmode", "require"),
        )
    raise RuntimeError("no database configured: set DATABASE_URL or SMS_DATABASE_SECRET_ARN")


def _new_pool(settings: Settings, host: str | None, name: str) -> ConnectionPool[Connection[DictRow]]:
    kwargs: dict[str, Any] = {"row_factory": dict_row, "connect_timeout": int(settings.db_connect_timeout_seconds)}
    return ConnectionPool(
        database_conninfo(settings, host),
        connection_class=Connection[DictRow],
        kwargs=kwargs,
        min_size=1,
        max_size=settings.db_pool_max_size,
        timeout=settings.db_connect_timeout_seconds,
        # A connection left idle while Lambda froze the container may be dead.
        check=check_if_idle,
        reset=_returned,
        name=name,
        open=True,
    )


def get_pool() -> ConnectionPool[Connection[DictRow]]:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = _new_pool(get_settings(), None, "sms-platform")
        return _pool


def reads_from_replica(settings: Settings) -> bool:
    return bool(settings.database_reader_host) and not settings.read_from_writer and settings.database_url is None


def get_reader_pool() -> ConnectionPool[Connection[DictRow]]:
    """The read replica's pool, or the writer's where there is no replica (locally) or reads must see the
    latest writes (read_from_writer)."""
    global _reader_pool
    settings = get_settings()
    if not reads_from_replica(settings):
        return get_pool()
    with _pool_lock:
        if _reader_pool is None:
            _reader_pool = _new_pool(settings, settings.database_reader_host, "sms-platform-reader")
        return _reader_pool


@contextmanager
def transaction() -> Iterator[Connection[DictRow]]:
    with get_pool().connection() as conn:
        yield conn


@contextmanager
def reads() -> Iterator[Connection[DictRow]]:
    """For lists, statistics and exports: on the read replica where there is one (Aurora's lag is typically
    under 100 ms); read_from_writer sends them to the writer where read-after-write matters.

    In autocommit: each statement reads its own snapshot, as it would inside a READ COMMITTED transaction,
    without the BEGIN and COMMIT round trips (two of a stats request's three). Whatever must agree is read
    in one statement.
    """
    with _autocommit(get_reader_pool()) as conn:
        yield conn


@contextmanager
def statements() -> Iterator[Connection[DictRow]]:
    """On the writer, each statement its own transaction: for work of independent statements that must see
    the latest commits (the authorizer's credential lookup and its last-used stamp), without the BEGIN and
    COMMIT round trips around them."""
    with _autocommit(get_pool()) as conn:
        yield conn


@contextmanager
def _autocommit(pool: ConnectionPool[Connection[DictRow]]) -> Iterator[Connection[DictRow]]:
    with pool.connection() as conn:
        conn.autocommit = True
        try:
            yield conn
        finally:
            # Left as it is when a statement was cut short (ACTIVE) or the connection died: the pool closes those.
            if conn.info.transaction_status == pq.TransactionStatus.IDLE:
                conn.autocommit = False


# Rows a bulk write must add before its tables are analysed at once rather than by autovacuum later.
ANALYZE_AFTER_ROWS = 50_000


def analyze(conn: Connection[DictRow], *tables: str) -> None:
    """Fresh planner statistics after a bulk write (an import, a large dispatch), so the very next queries
    (claims, statistics, lists) are planned for the rows now there, not those autovacuum last sampled. A
    sample of each table: a fraction of a second, whatever its size. Never fails the caller's work."""
    try:
        with conn.transaction():
            for table in tables:
                conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
    except Exception:
        from smsplatform.core.observability import logger

        logger.exception("ANALYZE after a bulk write failed; autovacuum will", extra={"tables": tables})


def require_committed(conn: Connection[DictRow]) -> None:
    """Before announcing work on a queue: raises if `conn` still has a transaction open, because a consumer
    could then look for rows that are not committed yet (a nested `conn.transaction()` is only a savepoint)."""
    if conn.info.transaction_status != pq.TransactionStatus.IDLE:
        raise RuntimeError("work announced before its transaction committed")


def set_clause(columns: Iterable[str]) -> sql.Composed:
    """`"a" = %(a)s, "b" = %(b)s` for a partial UPDATE of the given columns, identifiers quoted."""
    return sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder(c)) for c in columns)


def connect_direct(*, autocommit: bool = True) -> Connection[DictRow]:
    """A connection outside the pool, for the rare second connection a long job needs (progress reports)."""
    settings = get_settings()
    return Connection[DictRow].connect(
        database_conninfo(settings),
        autocommit=autocommit,
        row_factory=dict_row,
        connect_timeout=int(settings.db_connect_timeout_seconds),
    )


def close_pool() -> None:
    global _pool, _reader_pool
    with _pool_lock:
        for pool in (_pool, _reader_pool):
            if pool is not None:
                pool.close()
        _pool = _reader_pool = None
