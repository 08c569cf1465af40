"""Every function has sample events under events/, and each one runs against the real handlers."""

import copy
import json
import re
from typing import Any

import psycopg

from local import aws
from local.runtime import FunctionRuntime
from local.template import StackSpec
from tests.support.paths import ROOT

EVENTS = ROOT / "events"


def _event(name: str) -> dict[str, Any]:
    return dict(json.loads((EVENTS / name).read_text()))


def _folder(logical_id: str) -> str:
    """ContactImportFunction -> contact_import."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", logical_id.removesuffix("Function")).lower()


def test_every_function_has_sample_events(stack_spec: StackSpec) -> None:
    for logical_id in stack_spec.functions:
        folder = EVENTS / _folder(logical_id)
        assert sorted(folder.glob("*.json")), f"no events for {logical_id} in {folder}"


def test_the_sample_events_drive_each_function(
    runtimes: dict[str, FunctionRuntime], conn: psycopg.Connection[Any], aws_resources: aws.Resources
) -> None:
    users, docs = runtimes["UsersFunction"], runtimes["DocsFunction"]

    assert users.invoke(_event("users/signup.json"))["statusCode"] == 201
    login = users.invoke(_event("users/login.json"))
    assert login["statusCode"] == 200
    token = json.loads(login["body"])["access_token"]

    authorizer_event = _event("authorizer/request.json")
    authorizer_event["headers"]["authorization"] = f"Bearer {token}"
    decision = runtimes["AuthorizerFunction"].invoke(authorizer_event)
    assert decision["isAuthorized"] is True
    user_id = conn.execute("SELECT id::text FROM users WHERE username = 'alice'").fetchone()["id"]
    assert decision["context"]["user_id"] == user_id

    for name in ("users/get_me.json", "users/update_me.json"):
        event = _event(name)
        event["requestContext"]["authorizer"] = {"lambda": copy.deepcopy(decision["context"])}
        assert users.invoke(event)["statusCode"] == 200, name
    assert conn.execute("SELECT company_name FROM users").fetchone()["company_name"] == "Acme Group"

    for name in ("docs/health.json", "docs/openapi.json", "docs/swagger_ui.json"):
        assert docs.invoke(_event(name))["statusCode"] == 200, name

    result = runtimes["MaintenanceFunction"].invoke(_event("maintenance/schedule.json"))
    assert result == {
        "partitions_created": [],
        "login_failures_purged": 0,
        "idempotency_keys_purged": 0,
        "status_callbacks_purged": 0,
    }

    contacts = runtimes["ContactsFunction"]
    for name in ("contacts/create_contact.json", "contacts/list_contacts.json"):
        event = _event(name)
        event["requestContext"]["authorizer"] = {"lambda": copy.deepcopy(decision["context"])}
        assert contacts.invoke(event)["statusCode"] in (200, 201), name
    preview = _event("messages/preview.json")
    preview["requestContext"]["authorizer"] = {"lambda": copy.deepcopy(decision["context"])}
    assert json.loads(runtimes["MessagesFunction"].invoke(preview)["body"])["encoding"] == "GSM-7"

    posted = _event("contacts/start_import.json")
    posted["requestContext"]["authorizer"] = {"lambda": copy.deepcopy(decision["context"])}
    started = contacts.invoke(posted)
    assert started["statusCode"] == 202

    # The sample S3 notification, pointed at the file the import above stored.
    delivery = _event("contact_import/s3_object_created.json")
    notification = json.loads(delivery["Records"][0]["body"])
    notification["Records"][0]["s3"]["bucket"]["name"] = aws_resources.refs["ImportsBucket"]
    notification["Records"][0]["s3"]["object"]["key"] = (
        f"imports/{user_id}/{json.loads(started['body'])['import_id']}.csv"
    )
    delivery["Records"][0]["body"] = json.dumps(notification)
    assert runtimes["ContactImportFunction"].invoke(delivery) == {"batchItemFailures": []}
    imported = conn.execute("SELECT imported, status FROM contact_imports").fetchone()
    assert (imported["status"], imported["imported"]) == ("completed", 2)
    # A recipient's STOP through Twilio, as the webhook enqueues it: stored, though it names no account here.
    assert runtimes["ReceiptsFunction"].invoke(_event("receipts/inbound.json")) == {"batchItemFailures": []}
    stored = conn.execute("SELECT provider, from_number, keyword, user_id FROM inbound_messages").fetchone()
    assert (stored["provider"], stored["from_number"], stored["keyword"], stored["user_id"]) == (
        "twilio",
        "+447400123101",
        "opt_out",
        None,
    )
    # An account announcement with nothing due: nothing to POST, nothing to retry.
    assert runtimes["CallbacksFunction"].invoke(_event("callbacks/announcement.json")) == {"batchItemFailures": []}
    # events/migrations/create.json is driven by test_migrations_resource.py (it answers an HTTP URL).
