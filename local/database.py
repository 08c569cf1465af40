"""PostgreSQL for the local stack and the tests: DATABASE_URL if given, else an embedded server."""

import json
import os
from pathlib import Path

import psycopg
from psycopg import sql

DEFAULT_DATABASE = "sms_platform"


def _drop_stale_holders(pgdata: Path) -> None:
    """Forgets holder processes that died without cleaning up (SIGKILL), so the last live
    holder stops the server on exit instead of leaving it running forever."""
    import psutil

    handle_file = pgdata / ".handle_pids.json"
    if not handle_file.exists():
        return
    try:
        pids = json.loads(handle_file.read_text() or "[]")
    except json.JSONDecodeError:
        pids = []
    alive = [pid for pid in pids if psutil.pid_exists(pid) and pid != os.getpid()]
    if alive != pids:
        handle_file.write_text(json.dumps(alive))


# initdb's defaults are sized for a small shared machine (128 MB of buffers, 1 GB of WAL between
# checkpoints); a campaign of a million rows then spends its time evicting index pages and
# checkpointing. These are a developer laptop's settings, closer to what Aurora runs with.
SERVER_SETTINGS = {
    "shared_buffers": "512MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
    "maintenance_work_mem": "256MB",
}


def _apply_settings(url: str) -> bool:
    """ALTER SYSTEM for the settings that differ; True if one of them needs a restart to apply."""
    restart = False
    with psycopg.connect(url, autocommit=True) as conn:
        for name, value in SERVER_SETTINGS.items():
            row = conn.execute(
                "SELECT setting, unit, context, pending_restart FROM pg_settings WHERE name = %s", (name,)
            ).fetchone()
            assert row is not None
            current = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
            if current is not None and current[0] == value:
                continue
            conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
            restart = restart or row[2] == "postmaster"
        conn.execute("SELECT pg_reload_conf()")
    return restart


def start_embedded(pgdata: Path) -> str:
    """Starts (or joins) the embedded server for `pgdata`; returns a URL to its `postgres` database.

    The server stops when the last process holding it exits. On its first start it is
    restarted once with SERVER_SETTINGS (when no other process holds it).
    """
    import pgserver

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    _drop_stale_holders(pgdata)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    if _apply_settings(server.get_uri("postgres")):
        server._cleanup()  # stops the server if this process is its only holder
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    return server.get_uri("postgres")


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at database `name`."""
    params = psycopg.conninfo.conninfo_to_dict(url)
    params["dbname"] = name
    return psycopg.conninfo.make_conninfo(**{key: str(value) for key, value in params.items() if value is not None})


def ensure_database(server_url: str, name: str) -> str:
    """Creates database `name` on the server unless it exists; returns its URL."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
