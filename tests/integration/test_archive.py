"""Archival: months past retention go to S3 (moto) with exactly their rows, verified, then their partitions go;
a crash at any step repeats safely, and the Glue tables Athena reads declare exactly the archived columns."""

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

import psycopg
import pytest

from local.runtime import FunctionRuntime
from local.template import load_yaml
from smsplatform.core import archive, storage
from smsplatform.core.config import get_settings
from tests.support.corpus import MESSAGES
from tests.support.paths import ROOT

EVENT = json.loads((ROOT / "events" / "archive" / "schedule.json").read_text())


def _month(offset: int) -> date:
    now = datetime.now(UTC)
    year, month = divmod(now.month - 1 + offset, 12)
    return date(now.year + year, month + 1, 1)


def _partition_names(conn: psycopg.Connection[Any], table: str) -> set[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
        (table,),
    ).fetchall()
    return {row["relname"] for row in rows}


def _fill(conn: psycopg.Connection[Any], user_id: str, month: date, texts: list[str]) -> set[str]:
    """Messages created in `month` (its partitions made first), with real text and the provider's ids the
    record writes beside them; returns their ids."""
    conn.execute("SELECT create_month_partition('sms_delivery_logs', %s)", (month,))
    conn.execute("SELECT create_month_partition('provider_message_ids', %s)", (month,))
    rows = conn.execute(
        """WITH sent AS (
               INSERT INTO sms_delivery_logs (user_id, request_id, phone_number, status, body, cost, created_at,
                                              sent_at, provider, external_message_id)
               SELECT %s, gen_random_uuid(), '+4474001231' || lpad(n::text, 2, '0'), 'delivered', t.body, 1.5,
                      %s::timestamptz + make_interval(hours => n::int),
                      %s::timestamptz + make_interval(hours => n::int, secs => 3), 'simulator', gen_random_uuid()
                 FROM unnest(%s::text[]) WITH ORDINALITY AS t(body, n)
            RETURNING id, created_at, provider, external_message_id),
           ids AS (
               INSERT INTO provider_message_ids (provider, external_id, message_id, created_at)
               SELECT provider, external_message_id, id, created_at FROM sent)
           SELECT id::text FROM sent""",
        (user_id, datetime(month.year, month.month, 2, tzinfo=UTC), datetime(month.year, month.month, 2, tzinfo=UTC),
         texts),
    ).fetchall()  # fmt: skip
    return {row["id"] for row in rows}


def _archived(key: str) -> list[dict[str, Any]]:
    stream, _ = storage.open_object(get_settings().archive_bucket or "", key)
    return list(archive.read_rows(stream))


@pytest.fixture(autouse=True)
def partitions_as_they_were(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Old months these tests create (and archiving did not drop) go, so no later test finds them due."""
    tables = ("sms_delivery_logs", "audit_logs", "provider_message_ids")
    before = set().union(*(_partition_names(conn, table) for table in tables))
    yield
    after = set().union(*(_partition_names(conn, table) for table in tables))
    for name in sorted(after - before):
        conn.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.fixture
def archiver(runtimes: dict[str, FunctionRuntime]) -> FunctionRuntime:
    return runtimes["ArchiveFunction"]


def test_months_past_retention_are_archived_exactly_and_dropped_and_a_second_run_changes_nothing(
    archiver: FunctionRuntime, user: dict[str, Any], conn: psycopg.Connection[Any]
) -> None:
    texts = [sent for _, sent in MESSAGES]  # newlines, quotes, backslashes, emoji, right-to-left scripts
    old, older, recent = _month(-14), _month(-15), _month(-2)
    old_ids = _fill(conn, user["id"], old, texts)
    older_ids = _fill(conn, user["id"], older, texts[:3])
    recent_ids = _fill(conn, user["id"], recent, texts[:4])
    audit_month = _month(-26)
    conn.execute("SELECT create_month_partition('audit_logs', %s)", (audit_month,))
    conn.execute(
        """INSERT INTO audit_logs (user_id, action, details, created_at)
           VALUES (%s, 'messages.send', '{"note": "ünïcødé \\"quoted\\"\\nline"}', %s)""",
        (user["id"], datetime(audit_month.year, audit_month.month, 3, tzinfo=UTC)),
    )

    first = archiver.invoke(EVENT)
    second = archiver.invoke(EVENT)

    done = {(a["table"], a["month"]): a["rows"] for a in first["archived"]}
    assert done == {
        ("sms_delivery_logs", f"{older:%Y-%m}"): 3,
        ("sms_delivery_logs", f"{old:%Y-%m}"): len(texts),
        ("audit_logs", f"{audit_month:%Y-%m}"): 1,
    }
    assert second["archived"] == []
    archived = _archived(archive.object_key("sms_delivery_logs", old))
    assert {row["id"] for row in archived} == old_ids
    assert sorted(row["body"] for row in archived) == sorted(texts)  # byte for byte, line breaks and all
    assert {row["cost"] for row in archived} == {1.5}
    assert {row["id"] for row in _archived(archive.object_key("sms_delivery_logs", older))} == older_ids
    (audit_row,) = _archived(archive.object_key("audit_logs", audit_month))
    assert json.loads(audit_row["details"]) == {"note": 'ünïcødé "quoted"\nline'}
    partitions = _partition_names(conn, "sms_delivery_logs")
    assert f"sms_delivery_logs_{old:%Y_%m}" not in partitions
    assert f"sms_delivery_logs_{older:%Y_%m}" not in partitions
    assert conn.execute("SELECT to_regclass(%s) AS t", (f"sms_delivery_logs_{old:%Y_%m}",)).fetchone()["t"] is None
    left = {row["id"] for row in conn.execute("SELECT id::text FROM sms_delivery_logs")}
    assert left == recent_ids  # recent data untouched
    # The provider's ids of the dropped months went with them; the recent month's are still found.
    assert {f"provider_message_ids_{month:%Y_%m}" for month in (old, older)}.isdisjoint(
        _partition_names(conn, "provider_message_ids")
    )
    pointed = {row["id"] for row in conn.execute("SELECT message_id::text AS id FROM provider_message_ids")}
    assert pointed == recent_ids
    states = conn.execute("SELECT verified_at IS NOT NULL AND dropped_at IS NOT NULL AS done FROM archived_months")
    assert [row["done"] for row in states] == [True, True, True]


def test_messages_still_unsent_when_their_month_is_archived_end_final_and_their_credits_come_back(
    archiver: FunctionRuntime, user: dict[str, Any], conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A suspended account's messages wait unsent for as long as it stays suspended. Once their month is past
    retention they fail (expired, or outcome_unknown where a sender held one) and their send settles before the
    month is exported: no credit stays reserved for rows that are gone, and no open batch points at them. A
    crash before the settlement commits leaves them as they were, for the next run."""
    from smsplatform.billing import ledger, settlement

    month = _month(-14)
    conn.execute("SELECT create_month_partition('sms_delivery_logs', %s)", (month,))
    conn.execute("SELECT create_month_partition('provider_message_ids', %s)", (month,))
    request = uuid4()
    with conn.transaction():
        ledger.top_up(conn, user["id"], 20, amount=Decimal(0))
        ledger.reserve(conn, user["id"], 10, request, "request")
    conn.execute("UPDATE users SET account_status = 'suspended' WHERE id = %s", (user["id"],))
    texts = [sent for _, sent in MESSAGES[:4]]
    written = datetime(month.year, month.month, 3, tzinfo=UTC)
    conn.execute(
        """INSERT INTO sms_delivery_logs (user_id, request_id, phone_number, status, batch_number, segments, encoding,
                                          cost, body, held, not_before, claimed_at, sent_at, created_at)
           SELECT %(user)s, %(request)s, '+4474001232' || n, s.status, 0, 1, 'UCS-2', s.cost, s.body,
                  s.status = 'scheduled',
                  CASE WHEN s.status = 'scheduled' THEN %(at)s::timestamptz + interval '1 day' END,
                  CASE WHEN s.status = 'sending' THEN %(at)s END, CASE WHEN s.status = 'sent' THEN %(at)s END, %(at)s
             FROM unnest(%(statuses)s::text[], %(costs)s::int[], %(bodies)s::text[]) WITH ORDINALITY
                  AS s(status, cost, body, n)""",
        {"user": user["id"], "request": request, "at": written, "statuses": ["queued", "scheduled", "sending", "sent"],
         "costs": [3, 2, 4, 1], "bodies": texts},
    )  # fmt: skip
    assert conn.execute("SELECT unsent FROM send_batches WHERE reference_id = %s", (request,)).fetchone()["unsent"] == 3

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the function was killed while settling")

    monkeypatch.setattr(settlement, "settle", crash)
    with pytest.raises(RuntimeError, match="killed"):
        archiver.invoke(EVENT)
    statuses = conn.execute("SELECT status FROM sms_delivery_logs ORDER BY body").fetchall()
    assert sorted(row["status"] for row in statuses) == ["queued", "scheduled", "sending", "sent"]
    assert conn.execute("SELECT exported_at FROM archived_months").fetchone()["exported_at"] is None
    monkeypatch.undo()

    done = archiver.invoke(EVENT)

    assert done["archived"] == [
        {"table": "sms_delivery_logs", "month": f"{month:%Y-%m}", "rows": 4, "bytes": done["archived"][0]["bytes"]}
    ]
    archived = {row["body"]: row for row in _archived(archive.object_key("sms_delivery_logs", month))}
    assert [(archived[text]["status"], archived[text]["error_code"]) for text in texts] == [
        ("failed", "expired"),
        ("failed", "expired"),
        ("failed", "outcome_unknown"),
        ("sent", None),
    ]
    assert not archived[texts[1]]["held"]
    held = ledger.reservation(conn, user["id"], request)  # type: ignore[arg-type]
    assert (held.reserved, held.spent, held.refunded) == (10, 1, 9)
    assert conn.execute("SELECT sms_credits FROM users WHERE id = %s", (user["id"],)).fetchone()["sms_credits"] == 19
    assert conn.execute("SELECT count(*) AS n FROM send_batches").fetchone()["n"] == 0


def test_a_crash_between_export_and_drop_loses_nothing_and_the_next_run_finishes(
    archiver: FunctionRuntime, user: dict[str, Any], conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    month = _month(-16)
    ids = _fill(conn, user["id"], month, [sent for _, sent in MESSAGES[:6]])
    real = archive._detach_and_drop

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the function was killed after the export was verified")

    monkeypatch.setattr(archive, "_detach_and_drop", crash)
    with pytest.raises(RuntimeError, match="killed"):
        archiver.invoke(EVENT)
    kept = {row["id"] for row in conn.execute("SELECT id::text FROM sms_delivery_logs")}
    state = conn.execute("SELECT verified_at, dropped_at FROM archived_months").fetchone()
    # A row written to the month after its export (a late receipt, say) must reach the archive too.
    late = _fill(conn, user["id"], month, ["Late receipt ✅"])

    monkeypatch.setattr(archive, "_detach_and_drop", real)
    finished = archiver.invoke(EVENT)

    assert kept == ids
    assert state["verified_at"] is not None
    assert state["dropped_at"] is None
    assert finished["archived"] == [
        {"table": "sms_delivery_logs", "month": f"{month:%Y-%m}", "rows": 7, "bytes": finished["archived"][0]["bytes"]}
    ]
    assert {row["id"] for row in _archived(archive.object_key("sms_delivery_logs", month))} == ids | late
    assert conn.execute("SELECT count(*) AS n FROM sms_delivery_logs").fetchone()["n"] == 0


def test_a_failed_upload_drops_nothing(
    archiver: FunctionRuntime, user: dict[str, Any], conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    month = _month(-17)
    ids = _fill(conn, user["id"], month, ["Hello 👋", "Second\nline"])

    def refused(*args: Any, **kwargs: Any) -> None:
        raise OSError("S3 said no")

    monkeypatch.setattr(storage, "upload_file", refused)
    with pytest.raises(OSError, match="S3 said no"):
        archiver.invoke(EVENT)

    assert {row["id"] for row in conn.execute("SELECT id::text FROM sms_delivery_logs")} == ids
    assert conn.execute("SELECT verified_at FROM archived_months").fetchone()["verified_at"] is None
    monkeypatch.undo()
    assert archiver.invoke(EVENT)["archived"][0]["rows"] == 2


def test_the_glue_tables_declare_exactly_the_archived_columns(conn: psycopg.Connection[Any]) -> None:
    resources = load_yaml(ROOT / "template.yaml")["Resources"]
    for logical_id, table in (
        ("ArchiveDeliveryLogsTable", "sms_delivery_logs"),
        ("ArchiveAuditLogsTable", "audit_logs"),
    ):
        declared = resources[logical_id]["Properties"]["TableInput"]["StorageDescriptor"]["Columns"]
        actual = [name for name, _ in archive.columns(conn, table)]  # type: ignore[arg-type]
        assert [column["Name"] for column in declared] == actual, table


def test_nothing_is_due_within_retention(conn: psycopg.Connection[Any]) -> None:
    retention = get_settings().delivery_log_retention_months
    conn.execute("SELECT create_month_partition('sms_delivery_logs', %s)", (_month(-retention),))
    due = archive.due_months(conn, "sms_delivery_logs", retention)  # type: ignore[arg-type]
    assert _month(-retention) not in due
    assert all(month < _month(-retention) for month in due)
    assert datetime.now(UTC).date() - timedelta(days=31 * retention) > max(due, default=date.min)


def test_an_archive_that_does_not_hold_every_row_is_never_dropped(
    archiver: FunctionRuntime, user: dict[str, Any], conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import gzip

    month = _month(-18)
    ids = _fill(conn, user["id"], month, ["One", "Two ✅", "Three\nlines"])
    real = storage.upload_file

    def lossy(bucket: str, key: str, path: str, content_type: str) -> None:  # S3 kept all but the last row
        with gzip.open(path, "rt", encoding="utf-8") as whole:
            lines = whole.readlines()
        with gzip.open(path, "wt", encoding="utf-8") as cut:
            cut.writelines(lines[:-1])
        real(bucket, key, path, content_type)

    monkeypatch.setattr(storage, "upload_file", lossy)
    with pytest.raises(archive.ArchiveMismatchError):
        archiver.invoke(EVENT)

    assert {row["id"] for row in conn.execute("SELECT id::text FROM sms_delivery_logs")} == ids
    assert f"sms_delivery_logs_{month:%Y_%m}" in _partition_names(conn, "sms_delivery_logs")
    assert conn.execute("SELECT verified_at FROM archived_months").fetchone()["verified_at"] is None
