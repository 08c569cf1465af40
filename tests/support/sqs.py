"""SQS events as Lambda's poller delivers them, for invoking a consumer directly."""

import json
from typing import Any


def sqs_record(body: dict[str, Any] | str, message_id: str = "m-1") -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": "handle",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {  # what SQS always sends
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1795780800000",
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": "1795780800010",
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:queue",
        "awsRegion": "us-east-1",
    }


def sqs_event(body: dict[str, Any] | str, message_id: str = "m-1") -> dict[str, Any]:
    return {"Records": [sqs_record(body, message_id)]}


class CompressedDelays:
    """Stands in for `queues.send` while a test runs: records each delay asked for and delivers at once,
    so a pipeline can run its production backoff (minutes) in a test and the test checks the schedule."""

    def __init__(self, monkeypatch: Any) -> None:
        from smsplatform.core import queues

        self.asked: list[tuple[str, int]] = []
        real_send = queues.send

        def send(queue: Any, message: Any, delay_seconds: int = 0) -> None:
            self.asked.append((str(queue), delay_seconds))
            real_send(queue, message)

        monkeypatch.setattr(queues, "send", send)

    def delays(self, queue: str) -> list[int]:
        """The non-zero delays asked for on `queue`, in order."""
        return [delay for name, delay in self.asked if name == queue and delay]
