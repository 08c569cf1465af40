"""The benchmarks' in-process queue behaves as SQS does where the pipeline depends on it."""

import time

from local.memory_sqs import MemorySqs

URL, DLQ = "q://work", "q://dead"


def _queue(visibility: float = 0.05, max_receive: int = 2) -> MemorySqs:
    sqs = MemorySqs()
    sqs.create_queue(DLQ, 30)
    sqs.create_queue(URL, visibility, DLQ, max_receive)
    return sqs


def test_a_received_message_is_invisible_until_its_timeout_and_counts_receives() -> None:
    sqs = _queue()
    sqs.send_message(QueueUrl=URL, MessageBody="a")

    first = sqs.receive_message(QueueUrl=URL, MaxNumberOfMessages=10)["Messages"]
    hidden = sqs.receive_message(QueueUrl=URL, MaxNumberOfMessages=10)
    time.sleep(0.08)
    again = sqs.receive_message(QueueUrl=URL, MaxNumberOfMessages=10)["Messages"]

    assert hidden == {}
    assert [m["Attributes"]["ApproximateReceiveCount"] for m in first + again] == ["1", "2"]
    assert first[0]["ReceiptHandle"] != again[0]["ReceiptHandle"]


def test_a_deleted_message_is_gone_and_a_stale_handle_deletes_nothing() -> None:
    sqs = _queue(max_receive=5)
    sqs.send_message(QueueUrl=URL, MessageBody="a")
    stale = sqs.receive_message(QueueUrl=URL)["Messages"][0]["ReceiptHandle"]
    time.sleep(0.08)
    current = sqs.receive_message(QueueUrl=URL)["Messages"][0]["ReceiptHandle"]

    sqs.delete_message(QueueUrl=URL, ReceiptHandle=stale)
    time.sleep(0.08)
    still_there = sqs.receive_message(QueueUrl=URL)
    sqs.delete_message_batch(
        QueueUrl=URL, Entries=[{"Id": "0", "ReceiptHandle": still_there["Messages"][0]["ReceiptHandle"]}]
    )
    time.sleep(0.08)

    assert current
    assert sqs.receive_message(QueueUrl=URL) == {}


def test_after_max_receives_a_message_moves_to_the_dead_letter_queue() -> None:
    sqs = _queue(max_receive=2)
    sqs.send_message(QueueUrl=URL, MessageBody="poison")
    for _ in range(2):
        assert sqs.receive_message(QueueUrl=URL)["Messages"]
        time.sleep(0.08)

    assert sqs.receive_message(QueueUrl=URL) == {}
    assert sqs.receive_message(QueueUrl=DLQ)["Messages"][0]["Body"] == "poison"


def test_delayed_messages_wait_and_long_polling_returns_when_they_are_due() -> None:
    sqs = _queue()
    sqs.send_message_batch(QueueUrl=URL, Entries=[{"Id": "0", "MessageBody": "later", "DelaySeconds": 0.1}])

    assert sqs.receive_message(QueueUrl=URL) == {}
    assert sqs.get_queue_attributes(QueueUrl=URL)["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"
    assert sqs.receive_message(QueueUrl=URL, WaitTimeSeconds=2)["Messages"][0]["Body"] == "later"


def test_a_received_message_carries_the_attributes_sqs_always_returns() -> None:
    """The consumers parse records with Powertools' SqsRecordModel, which requires these."""
    from aws_lambda_powertools.utilities.parser.models import SqsAttributesModel

    sqs = _queue()
    sqs.send_message(QueueUrl=URL, MessageBody="a")

    (message,) = sqs.receive_message(QueueUrl=URL, MaxNumberOfMessages=10)["Messages"]

    attributes = SqsAttributesModel.model_validate(message["Attributes"])
    assert attributes.ApproximateReceiveCount == "1"
    assert attributes.ApproximateFirstReceiveTimestamp >= attributes.SentTimestamp
