"""Work is announced on a queue only once what it names is committed: a fast consumer never finds nothing."""

from typing import Any

import psycopg
import pytest

from local.runtime import FunctionRuntime
from smsplatform.core import queues
from tests.support.harness import Api, Pipeline, scheduler_tick
from tests.support.scenarios import PEOPLE, give_credits, make_campaign, make_group


@pytest.fixture
def seen_at_enqueue(monkeypatch: pytest.MonkeyPatch, database_url: str) -> list[tuple[str, Any]]:
    """Each message enqueued, with what another connection (a consumer) could see of it at that moment."""
    seen: list[tuple[str, Any]] = []
    real_send, real_send_many = queues.send, queues.send_many

    def visible(queue: str, message: Any) -> Any:
        with psycopg.connect(database_url, autocommit=True) as consumer:
            if queue == "release":
                row = consumer.execute("SELECT status FROM sms_campaigns WHERE id = %s", (message.campaign_id,))
                return (row.fetchone() or [None])[0]
            if queue == "send" and message.kind == "request":
                row = consumer.execute(
                    "SELECT count(*) FROM sms_delivery_logs WHERE request_id = %s AND status = 'queued'", (message.id,)
                )
                return row.fetchone()[0]  # type: ignore[index]
        return None

    def send(queue: Any, message: Any, delay_seconds: int = 0) -> None:
        seen.append((queue, visible(queue, message)))
        real_send(queue, message, delay_seconds)

    def send_many(queue: Any, messages: Any, parallel: int = 8) -> int:
        listed = list(messages)
        seen.extend((queue, visible(queue, message)) for message in listed)
        return real_send_many(queue, listed, parallel)

    monkeypatch.setattr(queues, "send", send)
    monkeypatch.setattr(queues, "send_many", send_many)
    return seen


def test_an_api_send_is_committed_before_its_batch_is_announced(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    conn: psycopg.Connection[Any],
    seen_at_enqueue: list[Any],
) -> None:
    give_credits(api, admin, user, 10)
    conn.execute("UPDATE users SET phone_number = '+447400123999' WHERE id = %s", (user["id"],))  # region GB

    sent = api.request("POST", "/v1/messages", token=user["token"], json_body={"to": "07400 123300", "text": "Hi"})

    assert sent.status == 202
    assert seen_at_enqueue == [("send", 1)]  # the sender, however fast, finds the row


def test_a_campaign_is_queued_before_its_release_is_announced_by_send_or_by_the_schedule(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    runtimes: dict[str, FunctionRuntime],
    conn: psycopg.Connection[Any],
    seen_at_enqueue: list[Any],
) -> None:

    give_credits(api, admin, user, 100)
    group = make_group(api, user["token"], "all", PEOPLE[:2])
    now = make_campaign(api, user["token"], [group])
    later = make_campaign(api, user["token"], [group])
    api.request("POST", f"/v1/campaigns/{now}/send", token=user["token"])
    api.request(
        "POST",
        f"/v1/campaigns/{later}/schedule",
        token=user["token"],
        json_body={"scheduled_time": "2099-01-01T00:00:00Z"},
    )
    conn.execute("UPDATE sms_campaigns SET scheduled_time = now() - interval '1 second' WHERE id = %s", (later,))
    scheduler_tick(runtimes)

    assert seen_at_enqueue == [("release", "queued"), ("release", "queued")]
