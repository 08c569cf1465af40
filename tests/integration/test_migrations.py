"""The migration runner: once per file, under a lock, refusing edited history."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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


def _migrated_before(fresh_database: DatabaseFactory, folder: Path, version: str) -> tuple[str, Any]:
    """A database with every migration before `version` (copied into `folder`) and an account; its URL and
    the account's id."""
    url = fresh_database.create(migrated=False)
    for migration in sorted((ROOT / "sql").glob("*.sql")):
        if migration.name < version:
            (folder / migration.name).write_text(migration.read_text())
    apply_migrations(url, folder)
    with psycopg.connect(url, autocommit=True) as conn:
        user = conn.execute(
            "INSERT INTO users (username, email, password_hash) VALUES ('old', 'old@example.com', 'x') RETURNING id"
        ).fetchone()
    assert user is not None
    return url, user[0]


def test_partitioning_the_audit_trail_keeps_every_row_and_the_append_only_rule(
    fresh_database: DatabaseFactory, tmp_path: Path
) -> None:
    url, user_id = _migrated_before(fresh_database, tmp_path, "0019")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO audit_logs (user_id, action, details, ip_address, created_at)
               SELECT %s, 'login', jsonb_build_object('n', n, 'note', 'ünïcødé "quoted"'), '203.0.113.7',
                      now() - make_interval(days => n * 20)
                 FROM generate_series(0, 40) n""",
            (user_id,),
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


def test_open_batches_and_provider_ids_are_filled_from_the_rows_a_live_database_has(
    fresh_database: DatabaseFactory, tmp_path: Path
) -> None:
    """sql/0027 on a database with messages in every state: the open batches are exactly those with unsent
    rows, and every recorded provider id (an old month's too) is found by the receipts' lookup."""
    url, user_id = _migrated_before(fresh_database, tmp_path, "0027")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO sms_campaigns (id, user_id, name, message_template, status)
               VALUES ('6c6f2e1a-0000-4000-8000-000000000001', %s, 'Soldes', 'Bonjour', 'sending')""",
            (user_id,),
        )
        conn.execute(
            """INSERT INTO sms_delivery_logs (user_id, campaign_id, request_id, phone_number, status, batch_number,
                                              held, expires_at, provider, external_message_id, body, cost,
                                              created_at)
               SELECT %s, CASE WHEN r.kind = 'campaign' THEN '6c6f2e1a-0000-4000-8000-000000000001'::uuid END,
                      CASE WHEN r.kind = 'request' THEN '6c6f2e1a-0000-4000-8000-000000000002'::uuid END,
                      '+4474001232' || lpad((row_number() OVER ())::text, 2, '0'), r.status, r.batch, r.held,
                      r.expires_at, r.provider, r.external_id, %s, 1, r.created_at
                 FROM (VALUES ('campaign', 'queued', 0, false, NULL::timestamptz, NULL, NULL, now()),
                              ('campaign', 'queued', 0, false, NULL, NULL, NULL, now()),
                              ('campaign', 'sending', 0, false, NULL, NULL, NULL, now()),
                              ('campaign', 'queued', 1, true, now() + interval '1 hour', NULL, NULL, now()),
                              ('campaign', 'sent', 2, false, NULL, 'simulator', 'SM-a', now()),
                              ('campaign', 'delivered', 2, false, NULL, 'simulator', 'SM-b', now()),
                              ('campaign', 'failed', 2, false, NULL, NULL, NULL, now()),
                              ('request', 'scheduled', 0, true, now() + interval '2 hours', NULL, NULL, now()),
                              ('request', 'sent', 1, false, NULL, 'twilio', 'SM-a', now() - interval '400 days'))
                      AS r(kind, status, batch, held, expires_at, provider, external_id, created_at)""",
            (user_id, "Réservation « 20 % » — رسالة \\ 🎉"),
        )

    (tmp_path / "0027_open_batches.sql").write_text((ROOT / "sql" / "0027_open_batches.sql").read_text())
    assert "0027_open_batches" in apply_migrations(url, tmp_path)

    with psycopg.connect(url, autocommit=True) as conn:
        batches = conn.execute(
            """SELECT kind, batch_number, unsent, held, expires_at IS NOT NULL AS expires
                 FROM send_batches ORDER BY kind, batch_number"""
        ).fetchall()
        found = conn.execute(
            """SELECT p.provider, p.external_id, l.status FROM provider_message_ids p
                 JOIN sms_delivery_logs l ON l.id = p.message_id AND l.created_at = p.created_at
                ORDER BY 1, 2"""
        ).fetchall()
        phases = conn.execute("SELECT DISTINCT status, phase FROM sms_delivery_logs ORDER BY 1").fetchall()
    assert batches == [
        ("campaign", 0, 3, 0, False),
        ("campaign", 1, 1, 1, True),
        ("request", 0, 1, 1, True),
    ]
    assert found == [("simulator", "SM-a", "sent"), ("simulator", "SM-b", "delivered"), ("twilio", "SM-a", "sent")]
    assert phases == [
        ("delivered", None),
        ("failed", "failed"),
        ("queued", None),
        ("scheduled", "scheduled"),
        ("sending", None),
        ("sent", None),
    ]
