"""Connections to PostgreSQL: one small pool per process, opened on first use.

In Lambda the pool holds one connection per warm container (RDS Proxy does the
real pooling); the local stack raises the size because it serves requests on
several threads. Every unit of work runs in `transaction()`: committed when the
block ends, rolled back when it raises.
"""

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from psycopg import Connection, conninfo, pq, sql
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

from smsplatform.core.config import Settings, get_settings
from smsplatform.core.secret_store import get_secret_json

_pool: ConnectionPool[Connection[DictRow]] | None = None
_pool_lock = threading.Lock()


def database_conninfo(settings: Settings) -> str:
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    if settings.database_secret_arn:
        secret = get_secret_json(settings.database_secret_arn, settings)
        return conninfo.make_conninfo(
            host=settings.database_host or secret["host"],
            port=str(settings.database_port or secret.get("port", 5432)),
            user=secret["username"],
            password=secret["password"],
            dbname=settings.database_name or secret.get("dbname", "postgres"),
            sslmode=secret.get("sslmode", "require"),
        )
    raise RuntimeError("no database configured: set DATABASE_URL or SMS_DATABASE_SECRET_ARN")


def get_pool() -> ConnectionPool[Connection[DictRow]]:
    global _pool
    with _pool_lock:
        if _pool is None:
            settings = get_settings()
            kwargs: dict[str, Any] = {
                "row_factory": dict_row,
                "connect_timeout": int(settings.db_connect_timeout_seconds),
            }
            _pool = ConnectionPool(
                database_conninfo(settings),
                connection_class=Connection[DictRow],
                kwargs=kwargs,
                min_size=1,
                max_size=settings.db_pool_max_size,
                timeout=settings.db_connect_timeout_seconds,
                # A connection left idle while Lambda froze the container may be dead.
                check=ConnectionPool.check_connection,
                name="sms-platform",
                open=True,
            )
        return _pool


@contextmanager
def transaction() -> Iterator[Connection[DictRow]]:
    with get_pool().connection() as conn:
        yield conn


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
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.close()
            _pool = None
