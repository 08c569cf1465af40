"""Every periodic query stays flat as history grows: with a large history in the tables, the plan of each
statement the scheduler's tick and the daily maintenance run reads the big tables along an index."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg import sql

from local.pollers import SqsPoller
from local.runtime import FunctionRuntime
from tests.support.harness import Api, Pipeline
from tests.support.paths import ROOT
from tests.support.scenarios import PEOPLE, give_credits, make_campaign, make_group

# Tables that grow with traffic and history (a partition is named after its table).
BIG = ("sms_delivery_logs", "status_callbacks", "audit_logs", "inbound_messages", "billing_transactions", "exports")
SCHEDULE = json.loads((ROOT / "events" / "maintenance" / "schedule.json").read_text())


@pytest.fixture
def history(conn: psycopg.Connection[Any], user: dict[str, Any]) -> None:
    """A year's worth of finished work, as far as the planner can tell: settled rows in every big table."""
    conn.execute(
        """INSERT INTO sms_delivery_logs (user_id, request_id, phone_number, status, segments, cost, body,
                                          sent_at, delivered_at, created_at, updated_at)
           SELECT %(u)s, gen_random_uuid(), '+4474001' || lpad((n %% 100000)::text, 5, '0'), 'delivered', 1, 1,
                  'Your code is ' || n, now(), now(), now() - make_interval(secs => n %% 3600),
                  now() - make_interval(secs => n %% 3600)
             FROM generate_series(1, 150000) n""",
        {"u": user["id"]},
    )
    conn.execute(
        """INSERT INTO status_callbacks (user_id, url, payload, status, created_at, delivered_at)
           SELECT %(u)s, 'https://x.example/h', '{}', 'delivered', now() - make_interval(mins => n %% 1000), now()
             FROM generate_series(1, 60000) n""",
        {"u": user["id"]},
    )
    conn.execute(
        """INSERT INTO inbound_messages (user_id, provider, external_id, from_number, to_number, body, received_at)
           SELECT %(u)s, 'simulator', 'in-' || n, '+447400123101', '+447400100200', 'Thanks! See you then 👍',
                  now() - make_interval(mins => n %% 1000)
             FROM generate_series(1, 30000) n""",
        {"u": user["id"]},
    )
    conn.execute(
        """INSERT INTO exports (user_id, kind, status, created_at, finished_at)
           SELECT %(u)s, 'messages', 'completed', now() - make_interval(mins => n), now()
             FROM generate_series(1, 20000) n""",
        {"u": user["id"]},
    )
    conn.execute("ANALYZE")


class Recorder:
    def __init__(self) -> None:
        self.statements: list[tuple[str, Any]] = []


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    real = psycopg.Connection.execute

    def execute(self: psycopg.Connection[Any], query: Any, params: Any = None, **kwargs: Any) -> Any:
        text = query.as_string(self) if isinstance(query, sql.Composable) else str(query)
        recorder.statements.append((text, params))
        return real(self, query, params, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "execute", execute)
    return recorder


def _seq_scans(plan: dict[str, Any]) -> Iterator[str]:
    if plan.get("Node Type") == "Seq Scan" and str(plan.get("Relation Name", "")).startswith(BIG):
        yield str(plan["Relation Name"])
    for child in plan.get("Plans", []):
        yield from _seq_scans(child)


def _explain(conn: psycopg.Connection[Any], statements: list[tuple[str, Any]]) -> dict[str, list[str]]:
    """Seq scans, by statement, of the big tables that hold rows: an empty partition (a future month) is
    read whole because it is empty, which costs nothing and changes once it fills and is analysed."""
    filled = {
        row["relname"] for row in conn.execute("SELECT relname FROM pg_class WHERE relkind = 'r' AND reltuples >= 1000")
    }
    found: dict[str, list[str]] = {}
    for text, params in statements:
        words = text.split(None, 1)
        if not words or words[0].upper() not in ("SELECT", "UPDATE", "DELETE", "WITH"):
            continue
        explained = conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + sql.SQL(text), params).fetchone()
        assert explained is not None
        (plan,) = explained.values()
        scans = [name for name in _seq_scans(plan[0]["Plan"]) if name in filled]
        if scans:
            found[" ".join(text.split())[:200]] = scans
    return found


def test_the_scheduler_tick_and_the_maintenance_read_the_big_tables_along_indexes(
    history: None, recorded: Recorder, runtimes: dict[str, FunctionRuntime], conn: psycopg.Connection[Any]
) -> None:
    runtimes["SchedulerFunction"].invoke(SCHEDULE)
    runtimes["MaintenanceFunction"].invoke(SCHEDULE)
    statements = list(recorded.statements)
    recorded.statements.clear()

    assert len(statements) > 10  # the tick and the maintenance ran their queries
    assert _explain(conn, statements) == {}


def test_a_large_dispatch_and_a_large_import_leave_fresh_planner_statistics(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    import_worker: SqsPoller,
    conn: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from smsplatform.core import db

    monkeypatch.setattr(db, "ANALYZE_AFTER_ROWS", 3)  # "large", for a test
    give_credits(api, admin, user, 100)
    conn.execute("SELECT pg_stat_reset_single_table_counters('contacts'::regclass)")
    csv_text = "phone,first_name\n" + "".join(f"07400 1230{n:02d},Zoë\n" for n in range(10, 20))
    started = api.request(
        "POST", "/v1/contacts/imports?default_region=GB", token=user["token"], raw_body=csv_text.encode(),
        headers={"content-type": "text/csv"},
    ).json()  # fmt: skip
    while import_worker.poll_once():
        pass
    assert (
        api.request("GET", f"/v1/contacts/imports/{started['import_id']}", token=user["token"]).json()["status"]
        == "completed"
    )
    group = make_group(api, user["token"], "all", PEOPLE)
    campaign = make_campaign(api, user["token"], [group])
    conn.execute("SELECT pg_stat_reset_single_table_counters(%s::regclass)", (_this_month(),))
    api.request("POST", f"/v1/campaigns/{campaign}/send", token=user["token"])
    pipeline.drain()

    analysed = {
        row["relname"]: row["last_analyze"]
        for row in conn.execute(
            "SELECT relname, last_analyze FROM pg_stat_user_tables WHERE relname IN ('contacts', %s)",
            (_this_month(),),
        )
    }
    assert analysed["contacts"] is not None
    assert analysed[_this_month()] is not None


def _this_month() -> str:
    return datetime.now(UTC).strftime("sms_delivery_logs_%Y_%m")
