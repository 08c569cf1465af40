"""An in-process queue with SQS semantics, for benchmarks where moto's SQS is the bottleneck.

It answers the calls the platform and the pollers make (send_message,
send_message_batch, receive_message, delete_message(_batch),
get_queue_attributes, purge_queue) the way SQS does: DelaySeconds, a visibility
timeout per queue, ApproximateReceiveCount, and redrive to the dead-letter queue
once a message has been received maxReceiveCount times. Long polling waits on a
condition variable. Queues are created from the same template definitions as in moto.
"""

import heapq
import itertools
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from local.template import StackSpec

_SENDER_ID = "AIDAMEMORYSQSSENDER00"


@dataclass
class _Message:
    id: str
    body: str
    visible_at: float
    receive_count: int = 0
    handle: str | None = None
    deleted: bool = False
    sent_at: float = field(default_factory=time.time)
    first_received_at: float | None = None


@dataclass
class _Queue:
    url: str
    visibility_timeout: float
    dead_letter_url: str | None = None
    max_receive: int = 0
    messages: dict[str, _Message] = field(default_factory=dict)
    heap: list[tuple[float, int, str]] = field(default_factory=list)
    by_handle: dict[str, str] = field(default_factory=dict)


class MemorySqs:
    def __init__(self) -> None:
        self._queues: dict[str, _Queue] = {}
        self._lock = threading.Condition()
        self._seq = itertools.count()

    def create_queue(
        self, url: str, visibility_timeout: float, dead_letter_url: str | None = None, max_receive: int = 0
    ) -> None:
        self._queues[url] = _Queue(url, visibility_timeout, dead_letter_url, max_receive)

    def _push(self, queue: _Queue, body: str, delay: float = 0, message_id: str | None = None) -> str:
        message = _Message(message_id or str(uuid.uuid4()), body, time.monotonic() + delay)
        queue.messages[message.id] = message
        heapq.heappush(queue.heap, (message.visible_at, next(self._seq), message.id))
        self._lock.notify_all()
        return message.id

    def send_message(self, QueueUrl: str, MessageBody: str, DelaySeconds: int = 0, **_: Any) -> dict[str, Any]:  # noqa: N803
        with self._lock:
            return {"MessageId": self._push(self._queues[QueueUrl], MessageBody, DelaySeconds)}

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]], **_: Any) -> dict[str, Any]:  # noqa: N803
        with self._lock:
            queue = self._queues[QueueUrl]
            successful = [
                {"Id": entry["Id"], "MessageId": self._push(queue, entry["MessageBody"], entry.get("DelaySeconds", 0))}
                for entry in Entries
            ]
        return {"Successful": successful, "Failed": []}

    def _due(self, queue: _Queue, now: float) -> _Message | None:
        while queue.heap and queue.heap[0][0] <= now:
            visible_at, _, message_id = heapq.heappop(queue.heap)
            message = queue.messages.get(message_id)
            if message is None or message.deleted or message.visible_at != visible_at:
                continue  # deleted, or an older visibility entry of a message received since
            if queue.dead_letter_url and queue.max_receive and message.receive_count >= queue.max_receive:
                del queue.messages[message.id]
                self._push(self._queues[queue.dead_letter_url], message.body, message_id=message.id)
                continue
            return message
        return None

    def receive_message(
        self,
        QueueUrl: str,  # noqa: N803
        MaxNumberOfMessages: int = 1,  # noqa: N803
        WaitTimeSeconds: int = 0,  # noqa: N803
        VisibilityTimeout: int | None = None,  # noqa: N803
        **_: Any,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + WaitTimeSeconds
        with self._lock:
            queue = self._queues[QueueUrl]
            received: list[dict[str, Any]] = []
            while True:
                now = time.monotonic()
                while len(received) < MaxNumberOfMessages and (message := self._due(queue, now)):
                    message.receive_count += 1
                    message.first_received_at = message.first_received_at or time.time()
                    message.handle = str(uuid.uuid4())
                    queue.by_handle[message.handle] = message.id
                    message.visible_at = now + (VisibilityTimeout or queue.visibility_timeout)
                    heapq.heappush(queue.heap, (message.visible_at, next(self._seq), message.id))
                    received.append(
                        {
                            "MessageId": message.id,
                            "ReceiptHandle": message.handle,
                            "Body": message.body,
                            "Attributes": {  # the system attributes SQS always returns for "All"
                                "ApproximateReceiveCount": str(message.receive_count),
                                "SentTimestamp": str(int(message.sent_at * 1000)),
                                "SenderId": _SENDER_ID,
                                "ApproximateFirstReceiveTimestamp": str(int(message.first_received_at * 1000)),
                            },
                        }
                    )
                if received or now >= deadline:
                    return {"Messages": received} if received else {}
                next_due = queue.heap[0][0] - now if queue.heap else deadline - now
                self._lock.wait(timeout=max(0.001, min(deadline - now, next_due)))

    def _delete(self, queue: _Queue, handle: str) -> None:
        message_id = queue.by_handle.pop(handle, None)
        message = queue.messages.get(message_id) if message_id else None
        if message is not None and message.handle == handle:  # a stale handle deletes nothing, as in SQS
            message.deleted = True
            del queue.messages[message.id]

    def delete_message(self, QueueUrl: str, ReceiptHandle: str, **_: Any) -> dict[str, Any]:  # noqa: N803
        with self._lock:
            self._delete(self._queues[QueueUrl], ReceiptHandle)
        return {}

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]], **_: Any) -> dict[str, Any]:  # noqa: N803
        with self._lock:
            queue = self._queues[QueueUrl]
            for entry in Entries:
                self._delete(queue, entry["ReceiptHandle"])
        return {"Successful": [{"Id": entry["Id"]} for entry in Entries], "Failed": []}

    def get_queue_attributes(self, QueueUrl: str, **_: Any) -> dict[str, Any]:  # noqa: N803
        with self._lock:
            queue = self._queues[QueueUrl]
            now = time.monotonic()
            waiting = [m for m in queue.messages.values() if not m.deleted]
            visible = sum(1 for m in waiting if m.visible_at <= now)
            delayed = sum(1 for m in waiting if m.visible_at > now and m.receive_count == 0)
            in_flight = sum(1 for m in waiting if m.visible_at > now and m.receive_count > 0)
        return {
            "Attributes": {
                "ApproximateNumberOfMessages": str(visible),
                "ApproximateNumberOfMessagesDelayed": str(delayed),
                "ApproximateNumberOfMessagesNotVisible": str(in_flight),
            }
        }

    def purge_queue(self, QueueUrl: str, **_: Any) -> dict[str, Any]:  # noqa: N803
        with self._lock:
            queue = self._queues[QueueUrl]
            queue.messages.clear()
            queue.heap.clear()
            queue.by_handle.clear()
        return {}


def from_stack(spec: StackSpec, refs: dict[str, str]) -> MemorySqs:
    """The template's queues, under the URLs moto gave them (so the functions' settings stay valid)."""
    sqs = MemorySqs()
    for queue in spec.queues.values():
        sqs.create_queue(
            refs[queue.logical_id],
            queue.visibility_timeout,
            refs[queue.dead_letter_queue] if queue.dead_letter_queue else None,
            queue.max_receive_count or 0,
        )
    return sqs
