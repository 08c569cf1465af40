"""The operator's dead-letter command against the template's queues (moto): list, peek, redrive."""

from typing import Any

import pytest

from local import aws
from smsplatform.core import dead_letters


@pytest.fixture
def sqs(aws_resources: aws.Resources) -> Any:
    """SQS, with the dead-letter queues emptied of what earlier tests left (PurgeQueue is once a minute)."""
    client = aws.client("sqs", aws_resources.endpoint_url)
    for url in client.list_queues().get("QueueUrls", []):
        while "DeadLetter" in url and (
            messages := client.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages")
        ):
            for message in messages:
                client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return client


def test_each_queue_s_dead_letter_queue_is_listed_and_its_messages_go_back_to_the_source(
    sqs: Any, aws_resources: aws.Resources, capsys: pytest.CaptureFixture[str]
) -> None:
    queues = {q.source_name: q for q in dead_letters.find(sqs)}
    send = dead_letters.choose(list(queues.values()), "send")
    bodies = [
        f'{{"kind": "campaign", "id": "3f2c8a1e-5b7d-4c9e-8a6f-1d2e3f4a5b6{n}", "batch": {n}}}' for n in range(12)
    ]
    for body in bodies:
        sqs.send_message(QueueUrl=send.url, MessageBody=body)

    dead_letters.main(["list", "--peek", "2"], sqs=sqs)
    listed = capsys.readouterr().out
    moved = dead_letters.redrive(sqs, dead_letters.choose(dead_letters.find(sqs), "Send"))
    back: list[str] = []
    while messages := sqs.receive_message(QueueUrl=send.source_url, MaxNumberOfMessages=10).get("Messages"):
        back += [m["Body"] for m in messages]
        sqs.delete_message_batch(
            QueueUrl=send.source_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )

    assert {"SendQueue", "ReleaseQueue", "ReceiptsQueue", "CallbacksQueue", "ImportQueue"} <= set(queues)
    assert f"{send.name}" in listed
    assert "12  (from SendQueue)" in listed
    assert listed.count('"kind": "campaign"') == 2  # peeked, and left in place
    assert moved == 12
    assert sorted(back) == sorted(bodies)
    assert dead_letters.choose(dead_letters.find(sqs), "Send").messages == 0


def test_a_queue_name_that_matches_none_or_several_is_refused_with_the_choices(sqs: Any) -> None:
    queues = dead_letters.find(sqs)

    with pytest.raises(SystemExit, match="choose one of"):
        dead_letters.choose(queues, "Queue")
    with pytest.raises(SystemExit, match="names 0"):
        dead_letters.choose(queues, "nothing")
