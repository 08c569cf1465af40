"""The send pipeline's SQS messages: release, batch descriptors and receipts. boto3 is imported on first use."""

import json
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

from smsplatform.config import get_settings

_ENTRIES_PER_CALL = 10  # SendMessageBatch takes at most ten entries


@cache
def _sqs() -> Any:
    import boto3

    return boto3.client("sqs")


def _url(name: str) -> str:
    url = getattr(get_settings(), f"{name}_queue_url")
    if not url:
        raise RuntimeError(f"no {name} queue configured: set SMS_{name.upper()}_QUEUE_URL")
    return str(url)


def send(queue: str, body: dict[str, Any], delay_seconds: int = 0) -> None:
    _sqs().send_message(QueueUrl=_url(queue), MessageBody=json.dumps(body), DelaySeconds=min(900, delay_seconds))


def send_many(queue: str, bodies: Iterable[dict[str, Any]], parallel: int = 8) -> int:
    """SendMessageBatch in chunks of ten, several calls in flight; raises if any entry was refused.

    Nothing to send makes no call and needs no queue configured.
    """
    chunks: list[Sequence[dict[str, Any]]] = []
    chunk: list[dict[str, Any]] = []
    for body in bodies:
        chunk.append(body)
        if len(chunk) == _ENTRIES_PER_CALL:
            chunks.append(chunk)
            chunk = []
    if chunk:
        chunks.append(chunk)
    if not chunks:
        return 0
    url = _url(queue)

    def put(entries: Sequence[dict[str, Any]]) -> None:
        response = _sqs().send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(index), "MessageBody": json.dumps(body)} for index, body in enumerate(entries)],
        )
        if response.get("Failed"):
            raise RuntimeError(f"SQS refused {len(response['Failed'])} entries: {response['Failed'][0]}")

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(put, chunks))
    return sum(len(c) for c in chunks)
