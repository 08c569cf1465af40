"""Every SQS consumer parses its records at the edge: a malformed body is that record's failure (and, after
the queue's retries, a dead letter), never an exception that fails the whole batch or a KeyError deep inside."""

import importlib.util
import json
import uuid
from types import ModuleType

import pytest

from local.runtime import LambdaContext
from local.template import StackSpec
from smsplatform.core.queue_messages import ProviderEvents, Receipt, SendBatch
from tests.support.sqs import sqs_record

CONSUMERS = ["DispatcherFunction", "SenderFunction", "ReceiptsFunction", "CallbacksFunction", "ContactImportFunction"]


def _handler_module(function: str, spec: StackSpec) -> ModuleType:
    """The function's app.py, loaded afresh, so its batch processor can be inspected after a call."""
    path = spec.functions[function].code_uri / "app.py"
    module_spec = importlib.util.spec_from_file_location(f"_inspected_{function}", path)
    assert module_spec is not None
    assert module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("function", CONSUMERS)
def test_a_malformed_body_fails_only_its_own_record_at_the_edge(function: str, stack_spec: StackSpec) -> None:
    handler = _handler_module(function, stack_spec)
    bodies = {
        "not-json": "this is not JSON",
        "wrong-shape": json.dumps({"unexpected": True, "Records": "no"}),
        "wrong-types": json.dumps(
            {"campaign_id": 7, "kind": "newsletter", "id": "x", "batch": "first", "user_id": [], "Records": [{"s3": 1}]}
        ),
    }

    result = handler.lambda_handler(
        {"Records": [sqs_record(body, key) for key, body in bodies.items()]}, LambdaContext(function, 512, 30)
    )

    assert sorted(failure["itemIdentifier"] for failure in result["batchItemFailures"]) == sorted(bodies)
    # Refused by parsing the record, before the handler's code ran: no KeyError or TypeError from deep inside.
    assert [type(info[1]).__name__ for info in handler.processor.exceptions] == ["ValidationError"] * len(bodies)


def test_an_sns_notification_whose_message_is_not_an_event_is_refused_at_the_edge(stack_spec: StackSpec) -> None:
    handler = _handler_module("ReceiptsFunction", stack_spec)
    topic = "arn:aws:sns:us-east-1:123456789012:sms-events"
    bodies = {
        "not-json": json.dumps({"Type": "Notification", "TopicArn": topic, "Message": "DELIVERED 100%"}),
        "not-an-object": json.dumps({"Type": "Notification", "TopicArn": topic, "Message": "[1, 2]"}),
    }

    result = handler.lambda_handler(
        {"Records": [sqs_record(body, key) for key, body in bodies.items()]}, LambdaContext("ReceiptsFunction", 512, 30)
    )

    assert sorted(failure["itemIdentifier"] for failure in result["batchItemFailures"]) == sorted(bodies)
    assert [type(info[1]).__name__ for info in handler.processor.exceptions] == ["ValidationError"] * len(bodies)


def test_messages_keep_one_date_encoding_through_the_queue() -> None:
    events = ProviderEvents(
        provider="simulator",
        receipts=[Receipt(external_id="SM1", status="delivered", timestamp="2026-11-27T12:00:00.123456+01:00")],
    )

    again = ProviderEvents.model_validate_json(events.model_dump_json())

    assert again == events
    assert again.receipts[0].timestamp.utcoffset() is not None
    assert '"timestamp":"2026-11-27T12:00:00.123456+01:00"' in events.model_dump_json()
    batch = SendBatch(kind="request", id=uuid.UUID("3f2c8a1e-5b7d-4c9e-8a6f-1d2e3f4a5b6c"), batch=0)
    assert SendBatch.model_validate_json(batch.model_dump_json()) == batch
