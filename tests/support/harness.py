"""Calling the platform in-process as API Gateway and Lambda's pollers would, for the integration tests."""

import json
import time
from dataclasses import dataclass
from typing import Any

from local.gateway import Gateway
from local.pollers import SqsPoller
from smsplatform.core.clock import Clock
from smsplatform.core.config import get_settings
from smsplatform.core.queue_messages import SendBatch
from smsplatform.sending.sender import process_batch

SIGNING_KEY = "integration-tests-signing-key-0123456789abcdef"
SIMULATOR_KEY = "integration-tests-simulator-key-0123456789"
CALLBACK_KEY = "integration-tests-callback-key-0123456789"


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Api:
    """Calls the API as API Gateway would, without sockets."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        raw_body: bytes | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> ApiResponse:
        sent = {"user-agent": "pytest", **(headers or {})}
        body = raw_body if raw_body is not None else b""
        if json_body is not None:
            body = json.dumps(json_body).encode()
            sent.setdefault("content-type", "application/json")
        if token is not None:
            sent["authorization"] = f"Bearer {token}"
        status, response_headers, _cookies, response_body = self.gateway.handle(method, path, sent, body, "203.0.113.7")
        return ApiResponse(status, response_headers, response_body)

    def signup(self, username: str, password: str = "correct horse battery", **extra: Any) -> dict[str, Any]:
        body = {"username": username, "email": f"{username}@example.com", "password": password, **extra}
        response = self.request("POST", "/v1/auth/signup", json_body=body)
        assert response.status == 201, response.body
        return dict(response.json())

    def login(self, login: str, password: str = "correct horse battery") -> str:
        response = self.request("POST", "/v1/auth/login", json_body={"login": login, "password": password})
        assert response.status == 200, response.body
        return str(response.json()["access_token"])


def create_token(api: Api, session: str, *permissions: str, **extra: Any) -> dict[str, Any]:
    response = api.request(
        "POST",
        "/v1/tokens",
        token=session,
        json_body={"name": "integration", "permissions": list(permissions), **extra},
    )
    assert response.status == 201, response.body
    return dict(response.json())


class Pipeline:
    """The send pipeline's queues and functions, driven one poll at a time, as Lambda's pollers would."""

    def __init__(self, pollers: dict[str, SqsPoller], sqs: Any) -> None:
        self.pollers = pollers
        self.sqs = sqs

    def pending(self) -> int:
        """Messages waiting (visible or delayed); ones a handler holds are not counted."""
        total = 0
        for poller in self.pollers.values():
            attributes = self.sqs.get_queue_attributes(
                QueueUrl=poller.queue_url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"],
            )["Attributes"]
            total += sum(int(value) for value in attributes.values())
        return total

    def drain(self, rounds: int = 200, send_clock: Clock | None = None) -> None:
        """Polls every queue until none has a message waiting; batches are sent with `send_clock` when given."""
        for _ in range(rounds):
            handled = sum(
                self._send_with(send_clock) if send_clock and name == "SenderFunction" else poller.poll_once()
                for name, poller in self.pollers.items()
            )
            if not handled:
                if not self.pending():
                    return
                time.sleep(0.25)  # only delayed messages wait: a retry's backoff
        raise AssertionError("the pipeline did not drain")

    def _send_with(self, clock: Clock) -> int:
        """What SenderFunction does with each waiting batch, with `clock` handed to the sender."""
        url = self.pollers["SenderFunction"].queue_url
        messages = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        for message in messages:
            process_batch(SendBatch.model_validate_json(message["Body"]), get_settings(), clock=clock)
            self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages)

    def discard(self) -> None:
        """Drops what earlier tests left waiting (PurgeQueue is allowed once a minute)."""
        for poller in self.pollers.values():
            while messages := self.sqs.receive_message(QueueUrl=poller.queue_url, MaxNumberOfMessages=10).get(
                "Messages"
            ):
                self.sqs.delete_message_batch(
                    QueueUrl=poller.queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
                )


def scheduler_tick(runtimes: dict[str, Any]) -> dict[str, Any]:
    """One run of the scheduler, with the EventBridge event of events/scheduler/schedule.json."""
    from tests.support.paths import ROOT

    event = json.loads((ROOT / "events" / "scheduler" / "schedule.json").read_text())
    return dict(runtimes["SchedulerFunction"].invoke(event))
