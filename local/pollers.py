"""SQS event source mappings, as Lambda runs them.

Each poller receives up to the mapping's batch size, invokes the function with
an SQS event, deletes the records that succeeded and leaves the rest to become
visible again after the queue's visibility timeout. With ReportBatchItemFailures
only the reported records are retried; a handler that raises fails the whole
batch. SQS itself (moto) moves a record to the dead-letter queue once it has
been received maxReceiveCount times.
"""

import hashlib
import logging
import subprocess
import sys
import threading
from typing import Any

from local.runtime import REGION, FunctionRuntime
from local.template import SqsSource

log = logging.getLogger("local.pollers")

_MAX_RECEIVE = 10  # SQS returns at most ten messages per ReceiveMessage


class SqsPoller:
    def __init__(
        self,
        source: SqsSource,
        queue_url: str,
        queue_arn: str,
        runtime: FunctionRuntime,
        sqs: Any,
        wait_seconds: int = 1,
    ) -> None:
        self.source = source
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.runtime = runtime
        self.sqs = sqs
        self.wait_seconds = wait_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sqs-{source.function}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.wait_seconds + 5)

    def _receive_batch(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        wait = self.wait_seconds
        while len(messages) < self.source.batch_size and not self._stop.is_set():
            response = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(_MAX_RECEIVE, self.source.batch_size - len(messages)),
                WaitTimeSeconds=wait,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            received = response.get("Messages", [])
            if not received:
                break
            messages.extend(received)
            wait = 0  # fill the batch with what is already there, then invoke
        return messages

    def poll_once(self) -> int:
        """Receives one batch and processes it; returns how many records it handled."""
        messages = self._receive_batch()
        if not messages:
            return 0
        event = {"Records": [self._record(message) for message in messages]}
        failed: set[str]
        try:
            result = self.runtime.invoke(event)
        except Exception:
            log.exception("%s raised: the whole batch of %d returns to the queue", self.source.function, len(messages))
            failed = {message["MessageId"] for message in messages}
        else:
            failures = (result or {}).get("batchItemFailures") or [] if self.source.report_item_failures else []
            failed = {failure["itemIdentifier"] for failure in failures}
        done = [message for message in messages if message["MessageId"] not in failed]
        for start in range(0, len(done), _MAX_RECEIVE):
            chunk = done[start : start + _MAX_RECEIVE]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(index), "ReceiptHandle": m["ReceiptHandle"]} for index, m in enumerate(chunk)],
            )
        return len(messages)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("poller for %s failed; retrying", self.source.function)
                self._stop.wait(1)

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        body = message.get("Body", "")
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": body,
            "attributes": message.get("Attributes", {}),
            "messageAttributes": {
                name: {
                    "stringValue": value.get("StringValue"),
                    "binaryValue": value.get("BinaryValue"),
                    "stringListValues": [],
                    "binaryListValues": [],
                    "dataType": value["DataType"],
                }
                for name, value in (message.get("MessageAttributes") or {}).items()
            },
            "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),  # noqa: S324  # SQS's checksum
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": REGION,
        }


class ChildPoller:
    """A function's SQS poller in its own process, restarted whenever it dies, as Lambda would start a new
    execution environment. The chaos run kills these (SIGKILL) mid-batch; `pid_file` says which to kill."""

    def __init__(self, function: str, template: Any, root: Any, pid_file: Any, env: dict[str, str]) -> None:
        self.function = function
        self.command = [
            sys.executable, "-m", "local", "poller", function, "--template", str(template), "--root", str(root),
        ]  # fmt: skip
        self.pid_file = pid_file
        self.env = env
        self.restarts = -1  # the first start is not a restart
        self._process: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name=f"child-{function}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _supervise(self) -> None:
        while not self._stop.is_set():
            self._process = subprocess.Popen(self.command, env=self.env)  # noqa: S603 - our own module
            self.restarts += 1
            self.pid_file.write_text(str(self._process.pid))
            while self._process.poll() is None and not self._stop.wait(0.2):
                pass
            if not self._stop.is_set():
                log.warning("%s poller process %d exited (%s); starting another", self.function,
                            self._process.pid, self._process.returncode)  # fmt: skip

    def stop(self) -> None:
        self._stop.set()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._thread.join(timeout=5)


def run_child(function: str, template: Any, root: Any) -> int:
    """`python -m local poller FUNCTION`: polls the function's queues until SIGTERM; the environment (queue
    URLs, the AWS endpoint, secrets) is the parent stack's."""
    import os
    import signal

    from local import aws
    from local.template import load_stack

    spec = load_stack(template, root)
    sqs = aws.client("sqs", os.environ["AWS_ENDPOINT_URL"])
    runtime = FunctionRuntime(spec.functions[function])
    pollers = []
    for source in spec.sqs_sources:
        if source.function != function:
            continue
        url = sqs.get_queue_url(QueueName=source.queue)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        pollers.append(SqsPoller(source, url, arn, runtime, sqs))
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    for poller in pollers:
        poller.start()
    stopping.wait()
    for poller in pollers:
        poller.stop()
    return 0
