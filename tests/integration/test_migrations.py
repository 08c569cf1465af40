"""The migration runner: once per file, under a lock, refusing edited history."""

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from smsplatform.core.migrations import MigrationError, apply_migrations
from tests.support.databases import DatabaseFactory
from tests.support.paths import ROOT

ORIGINAL_TABLES = {
    "users",
    "user_roles",
    "contact_groups",
    "contacts",
    "sms_campaigns",
    "sms_delivery_logs",
    "billing_transactions",
    "api_tokens",
    "audit_logs",
}


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "UNION SELECT relname FROM pg_class WHERE relkind = 'p'"
        ).fetchall()
    return {row[0] for row in rows}


def test_a_fresh_database_gets_every_table_of_the_original_schema(fresh_database: DatabaseFactory) -> None:
    url = fresh_database.create(migrated=False)

    applied = apply_migrations(url, ROOT / "sql")

    assert applied[0] == "0001_schema"
    tables = _tables(url)
    assert tables >= ORIGINAL_TABLES
    assert tables >= {"contact_group_members", "opt_outs", "campaign_target_groups", "schema_migrations"}


def test_running_twice_applies_nothing_the_second_time(fresh_database: DatabaseFactory) -> None:
    url = fresh_database.create(migrated=False)

    first = apply_migrations(url, ROOT / "sql")
    second = apply_migrations(url, ROOT / "sql")

    assert first
    assert second == []


def test_two_processes_at_once_apply_each_file_exactly_once(fresh_database: DatabaseFactory) -> None:
    url = fresh_database.create(migrated=False)
    script = (
        "import sys; from pathlib import Path; from smsplatform.core.migrations import apply_migrations; "
        "print(len(apply_migrations(sys.argv[1], Path(sys.argv[2]))))"
    )
    runners = [
        subprocess.Popen(
            [sys.executable, "-c", script, url, str(ROOT / "sql")],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT / "layers" / "shared")},
        )
        for _ in range(2)
    ]
    counts = [int(runner.communicate(timeout=60)[0].strip()) for runner in runners]

    assert all(runner.returncode == 0 for runner in runners)
    assert sorted(counts) == [0, len(list((ROOT / "sql").glob("*.sql")))]
    with psycopg.connect(url) as conn:
        versions = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    assert len(versions) == len(list((ROOT / "sql").glob("*.sql")))


def test_an_applied_migration_that_was_edited_is_refused(fresh_database: DatabaseFactory, tmp_path: Path) -> None:
    url = fresh_database.create(migrated=False)
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE first_table (id int);")
    apply_migrations(url, tmp_path)
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE first_table (id bigint);")

    with pytest.raises(MigrationError, match="changed after it was applied"):
        apply_migrations(url, tmp_path)


def test_a_failing_migration_leaves_nothing_half_applied(fresh_database: DatabaseFactory, tmp_path: Path) -> None:
    url = fresh_database.create(migrated=False)
    (tmp_path / "0001_ok.sql").write_text("CREATE TABLE ok_table (id int);")
    (tmp_path / "0002_broken.sql").write_text("CREATE TABLE half_table (id int); SELECT no_such_function();")

    with pytest.raises(psycopg.errors.UndefinedFunction):
        apply_migrations(url, tmp_path)

    tables = _tables(url)
    assert "ok_table" in tables
    assert "half_table" not in tables
    (tmp_path / "0002_broken.sql").write_text("CREATE TABLE half_table (id int);")
    assert apply_migrations(url, tmp_path) == ["0002_broken"]


def test_badly_named_files_are_refused(fresh_database: DatabaseFactory, tmp_path: Path) -> None:
    url = fresh_database.create(migrated=False)
    (tmp_path / "create_things.sql").write_text("SELECT 1;")

    with pytest.raises(MigrationError, match="NNNN_description"):
        apply_migrations(url, tmp_path)


def test_partitioning_the_audit_trail_keeps_every_row_and_the_append_only_rule(
    fresh_database: DatabaseFactory, tmp_path: Path
) -> None:
    url = fresh_database.create(migrated=False)
    for migration in sorted((ROOT / "sql").glob("*.sql")):
        if migration.name < "0019":
            (tmp_path / migration.name).write_text(migration.read_text())
    apply_migrations(url, tmp_path)
    with psycopg.connect(url, autocommit=True) as conn:
        user = conn.execute(
            "INSERT INTO users (username, email, password_hash) VALUES ('old', 'old@example.com', 'x') RETURNING id"
        ).fetchone()
        assert user is not None
        conn.execute(
            """INSERT INTO audit_logs (user_id, action, details, ip_address, created_at)
               SELECT %s, 'login', jsonb_build_object('n', n, 'note', 'ünïcødé "quoted"'), '203.0.113.7',
                      now() - make_interval(days => n * 20)
                 FROM generate_series(0, 40) n""",
            (user[0],),
        )
        before = conn.execute("SELECT id, user_id, action, details, ip_address, created_at FROM audit_logs ORDER BY id")
        kept_before = before.fetchall()

    (tmp_path / "0019_retention_and_archive.sql").write_text(
        (ROOT / "sql" / "0019_retention_and_archive.sql").read_text()
    )
    assert "0019_retention_and_archive" in apply_migrations(url, tmp_path)

    with psycopg.connect(url, autocommit=True) as conn:
        after = conn.execute(
            "SELECT id, user_id, action, details, ip_address, created_at FROM audit_logs ORDER BY id"
        ).fetchall()
        partitioned = conn.execute("SELECT relkind FROM pg_class WHERE relname = 'audit_logs'").fetchone()
        in_default = conn.execute("SELECT count(*) FROM audit_logs_default").fetchone()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM audit_logs")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE audit_logs SET action = 'forged'")
    assert after == kept_before
    assert len(after) == 41
    assert partitioned == ("p",)
    assert in_default == (0,)  # every month, back to the oldest row, got its own partition
