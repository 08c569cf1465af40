"""No campaign is stuck: what retrying cannot fix fails it with a reason, and re-announcing is bounded."""

from typing import Any

import psycopg

from local.runtime import FunctionRuntime
from smsplatform.campaigns import campaigns
from smsplatform.core import db
from tests.support.harness import Api, Pipeline
from tests.support.scenarios import PEOPLE, give_credits, make_campaign, make_group
from tests.support.sqs import sqs_event


def _queued_campaign(api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline) -> str:
    give_credits(api, admin, user, 100)
    campaign_id = make_campaign(api, user["token"], [make_group(api, user["token"], "all", PEOPLE[:2])])
    assert api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=user["token"]).status == 202
    pipeline.discard()  # the release message is lost
    return campaign_id


def test_a_template_that_no_longer_parses_fails_the_campaign_once_with_its_reason(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    runtimes: dict[str, FunctionRuntime],
    conn: psycopg.Connection[Any],
) -> None:
    # Given a queued campaign whose stored template the rules refuse (written before a rule changed)
    campaign_id = _queued_campaign(api, admin, user, pipeline)
    conn.execute("UPDATE sms_campaigns SET message_template = 'Hi {{nickname}}' WHERE id = %s", (campaign_id,))

    # When its release message is delivered
    result = runtimes["DispatcherFunction"].invoke(sqs_event({"campaign_id": campaign_id}))

    # Then the record is done (not retried into the DLQ) and the campaign failed, with nothing held
    campaign = api.request("GET", f"/v1/campaigns/{campaign_id}", token=user["token"]).json()
    assert result == {"batchItemFailures": []}
    assert campaign["status"] == "failed"
    assert "could not be rendered" in campaign["failure_reason"]
    assert "nickname" in campaign["failure_reason"]
    assert conn.execute("SELECT count(*) AS n FROM sms_delivery_logs").fetchone()["n"] == 0
    assert (
        conn.execute(
            "SELECT count(*) AS n FROM billing_transactions WHERE reference_id = %s", (campaign_id,)
        ).fetchone()["n"]
        == 0
    )


def test_a_queued_campaign_is_announced_again_with_backoff_then_fails(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    campaign_id = _queued_campaign(api, admin, user, pipeline)
    release_queue = pipeline.pollers["DispatcherFunction"].queue_url

    def tick_after(minutes: int) -> int:
        conn.execute(
            "UPDATE sms_campaigns SET announced_at = now() - make_interval(mins => %s) WHERE id = %s",
            (minutes, campaign_id),
        )
        with db.transaction() as pooled:
            campaigns.release_due(pooled)
        announced = pipeline.sqs.receive_message(QueueUrl=release_queue, MaxNumberOfMessages=10).get("Messages", [])
        pipeline.discard()
        return len(announced)

    # 2 minutes after the first announcement, then 4, 8 and 16 after each next one
    assert tick_after(1) == 0
    assert tick_after(3) == 1
    assert tick_after(3) == 0  # the second waits 4 minutes
    assert tick_after(5) == 1
    assert tick_after(9) == 1
    assert tick_after(17) == 1
    attempts = conn.execute("SELECT release_attempts FROM sms_campaigns WHERE id = %s", (campaign_id,)).fetchone()
    assert attempts["release_attempts"] == campaigns.MAX_RELEASE_ATTEMPTS

    # After the last, the campaign fails instead of being announced again
    assert tick_after(60) == 0
    campaign = api.request("GET", f"/v1/campaigns/{campaign_id}", token=user["token"]).json()
    assert campaign["status"] == "failed"
    assert "could not be dispatched after 5 attempts" in campaign["failure_reason"]
    assert tick_after(600) == 0
