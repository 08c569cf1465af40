"""Every function has sample events under events/, and each one runs against the real handlers
(events/migrations/create.json is driven by test_migrations_resource.py: it answers an HTTP URL)."""

import copy
import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import psycopg

from local import aws
from local.runtime import FunctionRuntime
from local.template import StackSpec
from smsplatform.billing import ledger
from smsplatform.core import db
from smsplatform.providers import simulator, twilio
from tests.support.harness import SIMULATOR_KEY
from tests.support.paths import ROOT
from tests.support.scenarios import insert_recorded

TWILIO_SID = "AC0123456789abcdef0123456789abcdef"  # the sample events' account
TWILIO_TOKEN = "sample-events-auth-token"

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
        "default_partition_rows": 0,
        "default_partition_rows_moved": 0,
        "provider_ids_default_partition_rows_moved": 0,
        "partitions_created": [],
        "audit_default_partition_rows_moved": 0,
        "audit_partitions_created": [],
        "login_failures_purged": 0,
        "idempotency_keys_purged": 0,
        "status_callbacks_purged": 0,
        "inbound_messages_purged": 0,
        "failed_steps": [],
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


def _as(name: str, context: dict[str, Any], path: dict[str, str] | None = None, body: Any = None) -> dict[str, Any]:
    """A sample API event, authorised as `context`, with its path parameters (and raw path) and body replaced."""
    event = _event(name)
    event["requestContext"]["authorizer"] = {"lambda": copy.deepcopy(context)}
    for key, value in (path or {}).items():
        event["rawPath"] = event["rawPath"].replace(event["pathParameters"][key], value)
        event["pathParameters"][key] = value
    if body is not None:
        event["body"] = json.dumps(body)
    return event


def _sqs(name: str, body: dict[str, Any]) -> dict[str, Any]:
    event = _event(name)
    event["Records"][0]["body"] = json.dumps(body)
    return event


def _signed(
    name: str, header: str, signature: Callable[[dict[str, Any]], str], body: str | None = None
) -> dict[str, Any]:
    event = _event(name)
    if body is not None:
        event["body"] = body
    event["headers"][header] = signature(event)
    return event


def test_the_send_pipeline_and_webhook_sample_events_drive_each_function(
    runtimes: dict[str, FunctionRuntime],
    conn: psycopg.Connection[Any],
    configure: Callable[..., None],
) -> None:
    configure(
        twilio_secret={"account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN, "from_number": "+15005550006"},
        provider="simulator",
    )
    promoted = runtimes["OperatorFunction"].invoke(_event("operator/promote_admin.json"))
    assert conn.execute("SELECT role FROM users WHERE username = 'ops'").fetchone()["role"] == "admin", promoted
    users = runtimes["UsersFunction"]
    assert users.invoke(_event("users/signup.json"))["statusCode"] == 201
    token = json.loads(users.invoke(_event("users/login.json"))["body"])["access_token"]
    authorizer_event = _event("authorizer/request.json")
    authorizer_event["headers"]["authorization"] = f"Bearer {token}"
    context = runtimes["AuthorizerFunction"].invoke(authorizer_event)["context"]
    user_id = context["user_id"]
    with db.transaction() as pooled:
        ledger.top_up(pooled, user_id, 100, amount=Decimal("10.00"))
    contacts = runtimes["ContactsFunction"]
    contact = json.loads(contacts.invoke(_as("contacts/create_contact.json", context))["body"])
    group = conn.execute(
        "INSERT INTO contact_groups (user_id, name) VALUES (%s, 'Winter') RETURNING id::text", (user_id,)
    ).fetchone()["id"]
    conn.execute("INSERT INTO contact_group_members (group_id, contact_id) VALUES (%s, %s)", (group, contact["id"]))

    campaigns = runtimes["CampaignsFunction"]
    created_event = _as("campaigns/create_campaign.json", context)
    created_body = json.loads(created_event["body"])
    created_event["body"] = json.dumps({**created_body, "group_ids": [group]})
    created = campaigns.invoke(created_event)
    assert created["statusCode"] == 201, created["body"]
    campaign_id = json.loads(created["body"])["id"]
    sent = campaigns.invoke(_as("campaigns/send_campaign.json", context, {"campaign_id": campaign_id}))
    assert sent["statusCode"] == 202, sent["body"]
    assert runtimes["DispatcherFunction"].invoke(_sqs("dispatcher/release.json", {"campaign_id": campaign_id})) == {
        "batchItemFailures": []
    }
    batch = conn.execute("SELECT batch_number FROM sms_delivery_logs").fetchone()["batch_number"]
    descriptor = {**json.loads(_event("sender/batch.json")["Records"][0]["body"]), "id": campaign_id, "batch": batch}
    assert runtimes["SenderFunction"].invoke(_sqs("sender/batch.json", descriptor)) == {"batchItemFailures": []}
    external_id = conn.execute("SELECT external_message_id FROM sms_delivery_logs").fetchone()["external_message_id"]
    receipt = json.loads(_event("receipts/receipts.json")["Records"][0]["body"])
    receipt["receipts"][0]["external_id"] = external_id
    assert runtimes["ReceiptsFunction"].invoke(_sqs("receipts/receipts.json", receipt)) == {"batchItemFailures": []}
    stats = campaigns.invoke(_as("campaigns/campaign_stats.json", context, {"campaign_id": campaign_id}))
    assert json.loads(stats["body"])["delivered"] == 1

    messages = runtimes["MessagesFunction"]
    accepted = messages.invoke(_as("messages/send_message.json", context))
    assert accepted["statusCode"] == 202, accepted["body"]
    message_id = json.loads(accepted["body"])["data"][0]["id"]
    shown = messages.invoke(_as("messages/get_message.json", context, {"message_id": message_id}))
    assert json.loads(shown["body"])["status"] in ("queued", "sent")

    assert runtimes["ArchiveFunction"].invoke(_event("archive/schedule.json")) == {"archived": []}

    # An export request for an export that is not there (or already built) does nothing, and is acknowledged.
    assert runtimes["ExportFunction"].invoke(_event("export/requested.json")) == {"batchItemFailures": []}

    twilio_api = runtimes["TwilioMessagesFunction"]
    account_hex = context["user_id"].replace("-", "")
    create = _as("twilio_messages/create_message.json", context, {"account_sid": f"AC{account_hex}"})
    create["body"] = create["body"].replace("MG00000000000040008000000000000001", f"MG{account_hex}")
    created = twilio_api.invoke(create)
    assert created["statusCode"] == 201, created["body"]
    sid = json.loads(created["body"])["sid"]
    fetched = twilio_api.invoke(
        _as(
            "twilio_messages/fetch_message.json",
            context,
            {"account_sid": f"AC{account_hex}", "message_file": f"{sid}.json"},
        )
    )
    assert json.loads(fetched["body"])["body"] == "Your code is 482913 — valid 10% of an hour"
    assert runtimes["SchedulerFunction"].invoke(_event("scheduler/schedule.json"))["campaigns_released"] == 0

    # Webhooks, signed as each provider signs: receipts and replies go onto the receipts queue (200 each).
    webhooks = runtimes["WebhooksFunction"]
    status_body = json.dumps({"receipts": [{**receipt["receipts"][0], "status": "delivered"}]})
    for name, body in (("webhooks/simulator_status.json", status_body), ("webhooks/simulator_inbound.json", None)):
        event = _signed(
            name, "x-simulator-signature", lambda e: simulator.sign(SIMULATOR_KEY, e["body"].encode()), body
        )
        assert webhooks.invoke(event)["statusCode"] == 200, name

    def twilio_signature(event: dict[str, Any]) -> str:
        url = f"https://{event['headers']['host']}{event['rawPath']}"
        return twilio.signature(TWILIO_TOKEN, url, parse_qsl(event["body"]))

    for name in ("webhooks/twilio_status.json", "webhooks/twilio_inbound.json"):
        answered = webhooks.invoke(_signed(name, "x-twilio-signature", twilio_signature))
        assert answered["statusCode"] == 200, (name, answered["body"])

    # An End User Messaging delivery event, as its topic's subscription delivers it, for a message it sent.
    insert_recorded(
        conn,
        {
            "user_id": user_id,
            "phone_number": "+447400123101",
            "provider": "aws_sms",
            "external_message_id": "862a8790-60c0-4430-9b2b-658bd0000000",  # the sample event's messageId
        },
    )
    assert runtimes["ReceiptsFunction"].invoke(_event("receipts/end_user_messaging_event.json")) == {
        "batchItemFailures": []
    }
    assert conn.execute("SELECT status FROM sms_delivery_logs WHERE provider = 'aws_sms'").fetchone()["status"] == (
        "delivered"
    )


def test_every_sample_event_is_driven_by_a_test() -> None:
    drivers = "".join(
        (ROOT / "tests" / "integration" / name).read_text()
        for name in ("test_events.py", "test_migrations_resource.py")
    )
    named = {str(path.relative_to(EVENTS)) for path in EVENTS.rglob("*.json")}

    def driven(name: str) -> bool:  # named as "folder/file.json" or as ROOT / "events" / "folder" / "file.json"
        return f'"{name}"' in drivers or '"{}"'.format('" / "'.join(name.split("/"))) in drivers

    assert {name for name in named if not driven(name)} == set()
