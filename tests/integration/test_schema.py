"""Invariants the schema itself enforces, whatever the application does."""

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from smsplatform.core import maintenance


def _user(conn: psycopg.Connection[Any], name: str = "alice", credits: int = 0) -> Any:
    return conn.execute(
        "INSERT INTO users (username, email, password_hash, sms_credits) VALUES (%s, %s, 'x', %s) RETURNING id",
        (name, f"{name}@example.com", credits),
    ).fetchone()["id"]


def test_credits_can_never_go_negative(conn: psycopg.Connection[Any]) -> None:
    user_id = _user(conn, credits=5)

    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("UPDATE users SET sms_credits = sms_credits - 6 WHERE id = %s", (user_id,))


def test_a_ledger_row_must_add_up(conn: psycopg.Connection[Any]) -> None:
    user_id = _user(conn)

    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            """INSERT INTO billing_transactions
                   (user_id, transaction_type, amount, credits, credits_before, credits_after)
               VALUES (%s, 'credit_purchase', 10, 100, 0, 99)""",
            (user_id,),
        )


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [("users", "role", "superuser"), ("users", "account_status", "deleted")],
)
def test_roles_and_statuses_are_constrained(conn: psycopg.Connection[Any], table: str, column: str, value: str) -> None:
    user_id = _user(conn)

    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(f"UPDATE {table} SET {column} = %s WHERE id = %s", (value, user_id))


def test_contact_numbers_are_e164_and_unique_per_owner(conn: psycopg.Connection[Any]) -> None:
    alice, bob = _user(conn, "alice"), _user(conn, "bob")
    conn.execute("INSERT INTO contacts (user_id, phone_number) VALUES (%s, '+447911123456')", (alice,))
    conn.execute("INSERT INTO contacts (user_id, phone_number) VALUES (%s, '+447911123456')", (bob,))

    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("INSERT INTO contacts (user_id, phone_number) VALUES (%s, '+447911123456')", (alice,))
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO contacts (user_id, phone_number) VALUES (%s, '07911 123456')", (alice,))


def test_group_totals_follow_membership_set_wise(conn: psycopg.Connection[Any]) -> None:
    owner = _user(conn)
    group = conn.execute(
        "INSERT INTO contact_groups (user_id, name) VALUES (%s, 'vip') RETURNING id", (owner,)
    ).fetchone()["id"]
    conn.execute(
        """INSERT INTO contacts (user_id, phone_number)
           SELECT %s, '+4479111' || lpad(n::text, 5, '0') FROM generate_series(1, 500) n""",
        (owner,),
    )

    conn.execute(
        "INSERT INTO contact_group_members (group_id, contact_id) SELECT %s, id FROM contacts WHERE user_id = %s",
        (group, owner),
    )
    assert conn.execute("SELECT total_contacts FROM contact_groups").fetchone()["total_contacts"] == 500

    conn.execute("DELETE FROM contacts WHERE phone_number LIKE '+44791110%%'")
    remaining = conn.execute("SELECT count(*) AS n FROM contact_group_members").fetchone()["n"]
    assert conn.execute("SELECT total_contacts FROM contact_groups").fetchone()["total_contacts"] == remaining < 500


def test_delivery_logs_are_partitioned_by_month_ahead_of_time(conn: psycopg.Connection[Any]) -> None:
    partitions = {
        row["name"]
        for row in conn.execute(
            """SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = 'sms_delivery_logs'::regclass"""
        )
    }
    this_month = datetime.now(UTC).strftime("sms_delivery_logs_%Y_%m")

    assert "sms_delivery_logs_default" in partitions
    assert this_month in partitions
    assert len(partitions) == 1 + 1 + maintenance.PARTITION_MONTHS_AHEAD
    owner = _user(conn)
    conn.execute(
        """INSERT INTO sms_delivery_logs (user_id, request_id, phone_number)
           VALUES (%s, gen_random_uuid(), '+447911123456')""",
        (owner,),
    )
    placed = conn.execute("SELECT tableoid::regclass::text AS part FROM sms_delivery_logs").fetchone()["part"]
    assert placed == this_month


def test_partition_upkeep_is_idempotent_and_extends_the_horizon(conn: psycopg.Connection[Any]) -> None:
    assert maintenance.create_delivery_log_partitions(conn) == []  # type: ignore[arg-type]

    created = maintenance.create_delivery_log_partitions(conn, months_ahead=5)  # type: ignore[arg-type]

    assert len(created) == 4  # two months of delivery logs, and of the provider's ids of their messages
    assert maintenance.create_delivery_log_partitions(conn, months_ahead=5) == []  # type: ignore[arg-type]
    for name in created:
        conn.execute(f"DROP TABLE {name}")
