"""The operator's view of the dead-letter queues: what each holds, and moving it back to its source queue.

Queues are found by their redrive policies (every queue whose RedrivePolicy names a
dead-letter queue), so one command serves a deployed stack (AWS credentials;
`--prefix` narrows to the stack's queues) and the local stack (`python -m local
dlq`). Moving a message back is safe: every consumer is idempotent (a batch
already sent finds nothing to claim, a receipt already applied changes nothing,
a release of a campaign already sending only re-announces its batches). Work
left in a dead-letter queue is not lost either: the scheduler's recovery sweep
announces stranded batches again and finally fails them as `expired`, refunded.

    python -m smsplatform.core.dead_letters list [--prefix sms-platform-prod] [--peek 3]
    python -m smsplatform.core.dead_letters redrive Send [--prefix ...] [--limit N]
"""

import argparse
import json
import sys
import time
from dataclasses import dataclass
from typing import Any

_ATTRIBUTES = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "RedrivePolicy"]


@dataclass(frozen=True)
class DeadLetterQueue:
    name: str
    url: str
    source_name: str
    source_url: str
    messages: int


def _name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def find(sqs: Any, prefix: str = "") -> list[DeadLetterQueue]:
    """Every dead-letter queue some queue (named with `prefix`) redrives into, with its message count."""
    urls = [
        url
        for page in sqs.get_paginator("list_queues").paginate(QueueNamePrefix=prefix)
        for url in page.get("QueueUrls", [])
    ]
    by_arn: dict[str, str] = {}
    policies: dict[str, str] = {}
    for url in urls:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn", "RedrivePolicy"])["Attributes"]
        by_arn[attributes["QueueArn"]] = url
        if "RedrivePolicy" in attributes:
            policies[url] = json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"]
    found = []
    for source_url, target_arn in sorted(policies.items()):
        url = by_arn.get(target_arn)
        if url is None:
            continue
        counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=_ATTRIBUTES[:2])["Attributes"]
        messages = sum(int(counts.get(name, 0)) for name in _ATTRIBUTES[:2])
        found.append(DeadLetterQueue(_name(url), url, _name(source_url), source_url, messages))
    return found


def choose(queues: list[DeadLetterQueue], wanted: str) -> DeadLetterQueue:
    """The one queue whose dead-letter or source name contains `wanted` (any case)."""
    matches = [q for q in queues if wanted.lower() in q.name.lower() or wanted.lower() == q.source_name.lower()]
    if len(matches) != 1:
        names = ", ".join(q.name for q in queues) or "none"
        raise SystemExit(f"{wanted!r} names {len(matches)} dead-letter queues; choose one of: {names}")
    return matches[0]


def peek(sqs: Any, queue: DeadLetterQueue, count: int) -> list[str]:
    """Up to `count` bodies, left in the queue (visible again at once)."""
    bodies: list[str] = []
    while len(bodies) < count:
        received = sqs.receive_message(
            QueueUrl=queue.url, MaxNumberOfMessages=min(10, count - len(bodies)), VisibilityTimeout=0
        ).get("Messages", [])
        if not received:
            break
        bodies.extend(message["Body"] for message in received)
    return bodies[:count]


def redrive(sqs: Any, queue: DeadLetterQueue, limit: int | None = None) -> int:
    """Moves messages back to the source queue (sent before deleted: a crash leaves a copy, never a loss)."""
    moved = 0
    while limit is None or moved < limit:
        batch = min(10, limit - moved) if limit is not None else 10
        received = sqs.receive_message(
            QueueUrl=queue.url, MaxNumberOfMessages=batch, VisibilityTimeout=60, WaitTimeSeconds=0
        ).get("Messages", [])
        if not received:
            break
        entries = [{"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(received)]
        answer = sqs.send_message_batch(QueueUrl=queue.source_url, Entries=entries)
        if answer.get("Failed"):
            raise RuntimeError(f"the source queue refused {len(answer['Failed'])} messages: {answer['Failed'][0]}")
        sqs.delete_message_batch(
            QueueUrl=queue.url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(received)],
        )
        moved += len(received)
    return moved


def main(argv: list[str] | None = None, sqs: Any = None) -> int:
    parser = argparse.ArgumentParser(prog="dead_letters", description="Inspect and redrive dead-letter queues.")
    parser.add_argument("--prefix", default="", help="only queues whose names start with this (the stack's name)")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="each dead-letter queue, its source and how many messages it holds")
    listing.add_argument("--peek", type=int, default=0, help="show up to this many bodies of each")
    again = commands.add_parser("redrive", help="move a dead-letter queue's messages back to its source queue")
    again.add_argument("queue", help="part of the dead-letter queue's name, or its source queue's name")
    again.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    if sqs is None:
        import boto3

        sqs = boto3.client("sqs")
    queues = find(sqs, args.prefix)
    if args.command == "list":
        for queue in queues:
            print(f"{queue.name:<40} {queue.messages:>8}  (from {queue.source_name})")
            for body in peek(sqs, queue, args.peek) if queue.messages else []:
                print(f"    {body[:300]}")
        if not queues:
            print("no dead-letter queues found", file=sys.stderr)
        return 0
    chosen = choose(queues, args.queue)
    began = time.monotonic()
    moved = redrive(sqs, chosen, args.limit)
    print(f"moved {moved} messages from {chosen.name} to {chosen.source_name} in {time.monotonic() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
