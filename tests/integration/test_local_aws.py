"""The local stack's AWS side: moto resources from a template, SQS pollers, secrets."""

import json
import time
import uuid
from typing import Any

import psycopg
import pytest

from local import aws
from local.pollers import SqsPoller
from local.runtime import FunctionRuntime
from local.template import load_stack
from tests.support.paths import ROOT

FIXTURES = ROOT / "tests" / "fixtures"


@pytest.fixture
def moto_endpoint(aws_resources: aws.Resources) -> str:
    # moto's backends are process-wide: every server in this process shares them, so the session's one serves.
    return aws_resources.endpoint_url


def _queue_depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_the_poller_retries_only_failed_records_and_redrives_them_to_the_dlq(moto_endpoint: str) -> None:
    spec = load_stack(FIXTURES / "sqs-template.yaml", root=FIXTURES)
    resources = aws.create_resources(spec, moto_endpoint)
    sqs = aws.client("sqs", moto_endpoint)
    runtime = FunctionRuntime(spec.functions["FlakyConsumerFunction"], max_environments=1)
    (source,) = spec.sqs_sources
    poller = SqsPoller(source, resources.refs["WorkQueue"], resources.arns["WorkQueue"], runtime, sqs, wait_seconds=0)
    bodies = [f"ok-{n}" for n in range(8)] + ["fail-a", "fail-b"]
    for body in bodies:
        sqs.send_message(QueueUrl=resources.refs["WorkQueue"], MessageBody=body)

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        poller.poll_once()
        if _queue_depth(sqs, resources.refs["WorkQueue"]) == 0:
            break
        time.sleep(0.2)

    handler = runtime._idle.get()
    seen: list[tuple[str, int]] = handler.__globals__["seen"]
    batch_sizes: list[int] = handler.__globals__["batch_sizes"]
    ok_deliveries = [body for body, _ in seen if body.startswith("ok")]
    assert sorted(ok_deliveries) == sorted(b for b in bodies if b.startswith("ok"))  # each exactly once
    assert sorted((body, count) for body, count in seen if body.startswith("fail")) == [
        ("fail-a", 1),
        ("fail-a", 2),
        ("fail-b", 1),
        ("fail-b", 2),
    ]
    assert max(batch_sizes) <= source.batch_size
    dead = sqs.receive_message(QueueUrl=resources.refs["WorkDeadLetterQueue"], MaxNumberOfMessages=10)["Messages"]
    assert sorted(message["Body"] for message in dead) == ["fail-a", "fail-b"]


def test_a_handler_that_raises_returns_the_whole_batch(moto_endpoint: str) -> None:
    spec = load_stack(FIXTURES / "sqs-template.yaml", root=FIXTURES)
    resources = aws.create_resources(spec, moto_endpoint)
    sqs = aws.client("sqs", moto_endpoint)
    runtime = FunctionRuntime(spec.functions["FlakyConsumerFunction"], max_environments=1)
    (source,) = spec.sqs_sources
    queue_url = resources.refs["WorkQueue"]
    poller = SqsPoller(source, queue_url, resources.arns["WorkQueue"], runtime, sqs, wait_seconds=0)
    sqs.send_message(QueueUrl=queue_url, MessageBody="ok-1")
    sqs.send_message(QueueUrl=queue_url, MessageBody="crash")

    assert poller.poll_once() == 2

    # Neither record was deleted: both come back after the visibility timeout.
    assert _queue_depth(sqs, queue_url) == 2


def test_handlers_read_the_database_from_an_rds_style_secret(
    moto_endpoint: str, database_url: str, aws_resources: aws.Resources
) -> None:
    from smsplatform.core.config import Settings
    from smsplatform.core.db import database_conninfo
    from smsplatform.core.secret_store import jwt_signing_key

    params = psycopg.conninfo.conninfo_to_dict(database_url)
    rds_secret = json.dumps(
        {
            "host": params.get("host"),
            "port": int(params.get("port") or 5432),
            "username": params.get("user"),
            "password": params.get("password") or "",
            "dbname": params["dbname"],
            "sslmode": "disable",
        }
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
        for key, value in aws.LOCAL_AWS_ENV.items():
            patch.setenv(key, value)
        patch.delenv("DATABASE_URL")
        patch.delenv("SMS_JWT_SECRET")
        secret_arn = aws.client("secretsmanager", moto_endpoint).create_secret(
            Name=f"test/database-{uuid.uuid4()}", SecretString=rds_secret
        )["ARN"]
        settings = Settings(database_secret_arn=secret_arn, jwt_secret_arn=aws_resources.refs["SessionSigningSecret"])

        with psycopg.connect(database_conninfo(settings)) as connection:
            assert connection.execute("SELECT current_database()").fetchone() == (params["dbname"],)
        assert len(jwt_signing_key(settings)) == 64
