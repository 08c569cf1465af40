"""The whole pipeline with the production defaults, not the test settings: batches of 1,000 from four
dispatch workers, the real retry backoff and Retry-After (asked of SQS and checked, not waited for), and
receipts POSTed by the provider to the signed webhook over HTTP."""

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from local.gateway import GatewayServer
from local.pollers import SqsPoller
from smsplatform.core.config import Settings
from smsplatform.providers.base import WebhookRequest
from smsplatform.providers.simulator import Simulator
from tests.integration.test_contact_imports import _run, _start
from tests.support.harness import Api, Pipeline
from tests.support.scenarios import give_credits, make_campaign
from tests.support.sqs import CompressedDelays

RECIPIENTS = 4_500
REJECTED, THROTTLED, FLAKY, UNDELIVERED = "+447400199990", "+447400199991", "+447400199992", "+447400199993"


@pytest.fixture
def production(api: Api, configure: Callable[..., None]) -> Iterator[None]:
    """Every setting the integration tests change for speed, back to its default; the API on loopback."""
    server = GatewayServer(api.gateway, "127.0.0.1", 0)
    server.start()
    configure(
        send_batch_size=None,
        send_retry_base_seconds=None,
        simulator_retry_after_seconds=None,
        simulator_slow_ms=None,
        callback_retry_base_seconds=None,
        callback_allow_http=None,
        public_base_url=f"http://127.0.0.1:{server.port}",
    )
    yield
    server.stop()


def test_a_campaign_runs_end_to_end_with_the_production_defaults(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    import_worker: SqsPoller,
    conn: psycopg.Connection[Any],
    production: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receipts_by_webhook: list[int] = []
    real_webhook = Simulator.status_webhook.__func__  # type: ignore[attr-defined]

    def counted(cls: type[Simulator], request: WebhookRequest, settings: Settings) -> Any:
        parsed = real_webhook(cls, request, settings)
        receipts_by_webhook.append(len(parsed))
        return parsed

    monkeypatch.setattr(Simulator, "status_webhook", classmethod(counted))
    delays = CompressedDelays(monkeypatch)
    give_credits(api, admin, user, 10_000)
    group = api.request("POST", "/v1/groups", token=user["token"], json_body={"name": "everyone"}).json()["id"]
    numbers = [f"+4474009{n:05d}" for n in range(RECIPIENTS - 4)] + [REJECTED, THROTTLED, FLAKY, UNDELIVERED]
    lines = "\n".join(f"{number},Person {n}" for n, number in enumerate(numbers))
    started = _start(api, user["token"], f"phone,first_name\n{lines}\n", f"?group_id={group}")
    _run(import_worker, api, user["token"], started["import_id"])
    campaign_id = make_campaign(api, user["token"], [group], "Hi {{first_name}}, your order has shipped 📦")

    assert api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=user["token"]).status == 202
    pipeline.drain()

    batches = conn.execute("SELECT batch_number, count(*) AS n FROM sms_delivery_logs GROUP BY 1 ORDER BY 1").fetchall()
    counted_statuses = conn.execute("SELECT status, count(*) AS n FROM sms_delivery_logs GROUP BY 1").fetchall()
    statuses = {row["status"]: row["n"] for row in counted_statuses}
    retried = conn.execute(
        "SELECT phone_number, batch_number FROM sms_delivery_logs WHERE phone_number = ANY(%s)", ([THROTTLED, FLAKY],)
    ).fetchall()
    at = {row["phone_number"]: row["batch_number"] for row in retried}
    assert len(batches) == 8  # four workers, two batches of at most 1,000 each
    assert max(row["n"] for row in batches) <= 1000
    assert statuses == {"delivered": RECIPIENTS - 3, "failed": 2, "undelivered": 1}
    # The throttled number: 5 s, 10 s, 20 s, 40 s (the backoff beats its 1 s Retry-After), then failed.
    # The flaky one's batch waited 5 s once, unless it shared the throttled one's batch.
    expected = [5, 10, 20, 40] + ([] if at[THROTTLED] == at[FLAKY] else [5])
    assert sorted(delays.delays("send")) == sorted(expected)
    assert sum(receipts_by_webhook) == RECIPIENTS - 2  # every accepted message's receipt came by the webhook
    calls = conn.execute(
        """SELECT count(*) FILTER (WHERE reached_handset) AS accepted, count(DISTINCT message_id) AS messages,
                  (SELECT count(*) FROM simulator_messages) AS copies FROM simulator_calls"""
    ).fetchone()
    assert (calls["accepted"], calls["messages"], calls["copies"]) == (RECIPIENTS - 2, RECIPIENTS, RECIPIENTS - 2)
    stats = api.request("GET", f"/v1/campaigns/{campaign_id}/stats", token=user["token"]).json()
    assert stats["credits_reserved"] == stats["credits_spent"] + stats["credits_refunded"]
    assert stats["credits_refunded"] == 2  # the two failures, one UCS-2 segment each
