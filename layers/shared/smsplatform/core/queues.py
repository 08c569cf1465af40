"""Sending to the pipeline's SQS queues; what each carries is declared in `queue_messages`.

boto3 is imported on first use."""

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any, Literal

from smsplatform.core.config import get_settings
from smsplatform.core.queue_messages import QueueMessage

_ENTRIES_PER_CALL = 10  # SendMessageBatch takes at most ten entries
QueueName = Literal["release", "send", "receipts", "callbacks", "export"]


@cache
def _sqs() -> Any:
    import boto3

    return boto3.client("sqs")


def _url(name: QueueName) -> str:
    url = getattr(get_settings(), f"{name}_queue_url")
    if not url:
        raise RuntimeError(f"no {name} queue configured: set SMS_{name.upper()}_QUEUE_URL")
    return str(url)


def send(queue: QueueName, message: QueueMessage, delay_seconds: int = 0) -> None:
    _sqs().send_message(
        QueueUrl=_url(queue), MessageBody=message.model_dump_json(), DelaySeconds=min(900, delay_seconds)
    )


def send_many(queue: QueueName, messages: Iterable[QueueMessage], parallel: int = 8) -> int:
    """SendMessageBatch in chunks of ten, several calls in flight; raises if any entry was refused.

    Nothing to send makes no call and needs no queue configured.
    """
    chunks: list[Sequence[QueueMessage]] = []
    chunk: list[QueueMessage] = []
    for message in messages:
        chunk.append(message)
        if len(chunk) == _ENTRIES_PER_CALL:
            chunks.append(chunk)
            chunk = []
    if chunk:
        chunks.append(chunk)
    if not chunks:
        return 0
    url = _url(queue)

    def put(entries: Sequence[QueueMessage]) -> None:
        response = _sqs().send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(index), "MessageBody": body.model_dump_json()} for index, body in enumerate(entries)],
        )
        if response.get("Failed"):
            raise RuntimeError(f"SQS refused {len(response['Failed'])} entries: {response['Failed'][0]}")

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(put, chunks))
    return sum(len(c) for c in chunks)
