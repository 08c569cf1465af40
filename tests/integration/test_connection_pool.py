"""How core/db.py hands out connections.

The pool tests a connection before handing it out only when it has sat idle: a dead connection that sat
idle (a frozen Lambda container, a dropped proxy connection) is replaced without the caller seeing it;
one returned a moment ago is handed out as it is, saving a round trip per transaction. Reads (and the
writer's independent statements, the authorizer's) run in autocommit, and the connection goes back to the
pool transactional for the next writer.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from smsplatform.core import db
from smsplatform.core.config import get_settings


@pytest.fixture
def pool() -> Iterator[ConnectionPool[psycopg.Connection[db.DictRow]]]:
    # One connection, so the one handed out is the one returned.
    made = db._new_pool(get_settings().model_copy(update={"db_pool_max_size": 1}), None, "pool-check-test")
    yield made
    made.close()


def _kill(database_url: str, pid: int) -> None:
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        for _ in range(100):
            if admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() is None:
                return
            time.sleep(0.02)
    raise AssertionError(f"backend {pid} did not end")


def test_a_dead_connection_that_sat_idle_is_replaced_unseen(
    pool: ConnectionPool[psycopg.Connection[db.DictRow]], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pool.connection() as conn:
        first = conn.info.backend_pid
    _kill(database_url, first)
    monkeypatch.setattr(db, "CHECK_IDLE_SECONDS", 0.0)  # as if it had sat idle since

    with pool.connection() as conn:
        assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
        assert conn.info.backend_pid != first


def test_a_connection_returned_a_moment_ago_is_handed_out_without_a_round_trip(
    pool: ConnectionPool[psycopg.Connection[db.DictRow]], database_url: str
) -> None:
    with pool.connection() as conn:
        first = conn.info.backend_pid
    _kill(database_url, first)

    # Not tested on the way out: the caller's first statement is what finds it dead (and the pool drops it).
    with pool.connection() as conn:
        assert conn.info.backend_pid == first
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    with pool.connection() as conn:
        assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}


@pytest.mark.parametrize("scope", [db.reads, db.statements], ids=["reads", "statements"])
def test_reads_run_in_autocommit_and_the_next_writer_gets_a_transaction(
    pool: ConnectionPool[psycopg.Connection[db.DictRow]],
    monkeypatch: pytest.MonkeyPatch,
    scope: Callable[[], AbstractContextManager[psycopg.Connection[db.DictRow]]],
) -> None:
    monkeypatch.setattr(db, "_pool", pool)  # the reader pool is the writer's here: no replica
    with scope() as conn:
        assert conn.autocommit
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT * FROM no_such_table")
        assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}  # no transaction left aborted

    with db.transaction() as conn:
        assert not conn.autocommit
        conn.execute("CREATE TEMP TABLE written (n int)")
        conn.execute("INSERT INTO written VALUES (1)")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS


def test_a_read_given_up_mid_stream_raises_its_own_error_and_the_next_writer_gets_a_transaction(
    pool: ConnectionPool[psycopg.Connection[db.DictRow]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "_pool", pool)

    class GaveUpError(Exception):
        pass

    with pytest.raises(GaveUpError), db.reads() as conn:  # noqa: PT012
        for _ in conn.cursor().stream("SELECT generate_series(1, 1000000)"):
            raise GaveUpError  # a reader that gave up mid-stream: the statement is still running

    with db.transaction() as conn:
        assert not conn.autocommit
        assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
