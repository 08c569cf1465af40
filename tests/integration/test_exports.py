"""Exports: the account's messages, streamed with COPY into a gzip CSV in S3 and fetched by presigned URL."""

import csv
import gzip
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from local.pollers import SqsPoller
from smsplatform.core.config import get_settings
from smsplatform.sending import exports, recovery
from tests.support.corpus import MESSAGES
from tests.support.harness import Api, Pipeline
from tests.support.scenarios import PEOPLE, give_credits, make_campaign, make_group


@pytest.fixture
def export_worker(sqs_worker: Callable[[str], SqsPoller]) -> SqsPoller:
    return sqs_worker("ExportFunction")


def _export(api: Api, token: str, worker: SqsPoller, **filters: Any) -> dict[str, Any]:
    started = api.request("POST", "/v1/exports", token=token, json_body={"kind": "messages", **filters})
    assert started.status == 202, started.body
    assert started.json()["status"] == "queued"
    while worker.poll_once():
        pass
    shown = api.request("GET", f"/v1/exports/{started.json()['export_id']}", token=token)
    assert shown.status == 200, shown.body
    return dict(shown.json())


def _rows(url: str) -> list[dict[str, str]]:
    downloaded = httpx.get(url, timeout=30)
    downloaded.raise_for_status()
    text = gzip.decompress(downloaded.content).decode()
    assert text.splitlines()[0] == exports.HEADER
    return list(csv.DictReader(io.StringIO(text)))


def test_an_export_holds_exactly_the_accounts_messages_and_its_filters_narrow_it(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    other_user: dict[str, Any],
    pipeline: Pipeline,
    export_worker: SqsPoller,
) -> None:
    give_credits(api, admin, user, 200)
    give_credits(api, admin, other_user, 50)
    group = make_group(api, user["token"], "all", PEOPLE)
    campaign = make_campaign(api, user["token"], [group], template=MESSAGES[8][0])
    assert api.request("POST", f"/v1/campaigns/{campaign}/send", token=user["token"]).status == 202
    for text in (MESSAGES[0][1], MESSAGES[9][1]):
        sent = api.request("POST", "/v1/messages", token=user["token"], json_body={"to": "+447400199990", "text": text})
        assert sent.status == 202
    api.request("POST", "/v1/messages", token=other_user["token"], json_body={"to": "+447400123101", "text": "Bob's"})
    pipeline.drain()

    everything = _export(api, user["token"], export_worker)
    failed = _export(api, user["token"], export_worker, status="failed")
    of_campaign = _export(api, user["token"], export_worker, campaign_id=campaign)
    none_yet = _export(api, user["token"], export_worker, since=(datetime.now(UTC) + timedelta(hours=1)).isoformat())

    rows = _rows(everything["url"])
    assert everything["status"] == "completed"
    assert everything["rows"] == len(rows) == len(PEOPLE) + 2
    assert everything["bytes"] > 0
    assert datetime.fromisoformat(everything["expires_at"]) > datetime.now(UTC)
    assert {row["to"] for row in rows} == {p["phone_number"] for p in PEOPLE} | {"+447400199990"}
    assert [row["created_at"] for row in rows] == sorted(row["created_at"] for row in rows)
    assert all(row["created_at"].endswith("Z") for row in rows)
    assert {row["status"] for row in _rows(failed["url"])} == {"failed"}  # the simulator refuses ...9990
    assert failed["rows"] == 2
    assert {row["campaign_id"] for row in _rows(of_campaign["url"])} == {campaign}
    assert (none_yet["status"], none_yet["rows"], _rows(none_yet["url"])) == ("completed", 0, [])


def test_another_accounts_export_is_not_found_and_bad_filters_are_refused(
    api: Api, user: dict[str, Any], other_user: dict[str, Any], export_worker: SqsPoller
) -> None:
    mine = _export(api, user["token"], export_worker)
    theirs = api.request("GET", f"/v1/exports/{mine['export_id']}", token=other_user["token"])
    backwards = api.request(
        "POST",
        "/v1/exports",
        token=user["token"],
        json_body={"kind": "messages", "since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"},
    )
    foreign_campaign = api.request(
        "POST",
        "/v1/exports",
        token=other_user["token"],
        json_body={"kind": "messages", "campaign_id": "00000000-0000-4000-8000-000000000001"},
    )

    assert theirs.status == 404
    assert backwards.status == 422
    assert foreign_campaign.status == 404


def test_an_export_whose_worker_is_gone_ends_failed(user: dict[str, Any], conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        """INSERT INTO exports (user_id, kind, status, created_at, started_at)
           VALUES (%(u)s, 'messages', 'running', now() - interval '2 hours', now() - interval '1 hour'),
                  (%(u)s, 'messages', 'queued', now() - interval '2 hours', NULL),
                  (%(u)s, 'messages', 'running', now(), now())""",
        {"u": user["id"]},
    )

    recovery.sweep(get_settings())

    statuses = [row["status"] for row in conn.execute("SELECT status FROM exports ORDER BY created_at, status")]
    assert statuses == ["failed", "failed", "running"]
