"""Real provider adapters through the send pipeline: Twilio against a loopback server, SNS against moto,
End User Messaging against botocore's own service model; routing and failover per account."""

import base64
import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import boto3
import psycopg
import pytest
import urllib3
from botocore.stub import Stubber

from local import aws
from local.gateway import GatewayServer
from smsplatform.core.clock import SYSTEM_CLOCK
from smsplatform.core.config import get_settings
from smsplatform.core.queue_messages import SendBatch
from smsplatform.providers import twilio
from smsplatform.providers.aws_sms import AwsSms
from smsplatform.providers.base import OutboundMessage, ProviderError
from smsplatform.sending import sender
from tests.support.harness import Api, Pipeline
from tests.support.scenarios import PEOPLE, give_credits, insert_recorded, make_campaign, make_group

ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"
AUTH_TOKEN = "twilio-test-auth-token"
FROM_NUMBER = "+15005550006"
REJECTED = "+447400123199"  # the fake Twilio refuses this number: 21211
BUSY = "+447400123198"  # and answers 429 for this one
SERVER_ERROR = "+447400123197"  # takes this one, then answers 500: the message went out


class FakeTwilio:
    """Twilio's Messages API on loopback: checks each request as Twilio would, then can send signed callbacks."""

    def __init__(self) -> None:
        self.accepted: list[dict[str, str]] = []
        self.refused: list[str] = []
        self.connections: set[int] = set()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse shows

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = dict(parse_qsl(self.rfile.read(length).decode()))
                status, answer = fake.handle(self.path, self.headers, form, self.client_address[1])
                body = json.dumps(answer).encode()
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "3")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handle(self, path: str, headers: Any, form: dict[str, str], client_port: int) -> tuple[int, dict[str, Any]]:
        expected_auth = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        if path != f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json":
            return 404, {"code": 20404, "message": "The requested resource was not found"}
        if headers.get("Authorization") != expected_auth:
            return 401, {"code": 20003, "message": "Authenticate"}
        if not headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return 400, {"code": 12300, "message": "Invalid Content-Type"}
        if not {"To", "Body", "From"} <= form.keys():
            return 400, {"code": 21604, "message": "A 'To', 'From' and 'Body' are required"}
        with self._lock:
            self.connections.add(client_port)
            if form["To"] == REJECTED:
                self.refused.append(form["To"])
                return 400, {"code": 21211, "message": f"The 'To' number {form['To']} is not a valid phone number."}
            if form["To"] == BUSY:
                self.refused.append(form["To"])
                return 429, {"code": 20429, "message": "Too Many Requests"}
            sid = "SM" + uuid.uuid4().hex
            self.accepted.append({**form, "sid": sid})
            if form["To"] == SERVER_ERROR:
                return 500, {"code": 20500, "message": "Internal Server Error"}
        return 201, {"sid": sid, "status": "queued", "to": form["To"], "body": form["Body"]}

    def send_status_callbacks(self, status: str = "delivered", signing_token: str = AUTH_TOKEN) -> list[int]:
        """POSTs a signed callback for each accepted message to its StatusCallback, as Twilio does."""
        http = urllib3.PoolManager()
        answers = []
        for message in self.accepted:
            params = {"MessageSid": message["sid"], "MessageStatus": status, "AccountSid": ACCOUNT_SID}
            if status == "undelivered":
                params["ErrorCode"] = "30003"
            url = message["StatusCallback"]
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                twilio.SIGNATURE_HEADER: twilio.signature(signing_token, url, params.items()),
            }
            answers.append(http.request("POST", url, body=urlencode(params), headers=headers).status)
        return answers

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway_url(api: Api) -> Iterator[str]:
    """The API on a loopback port, for callers that speak HTTP (the fake Twilio's callbacks)."""
    server = GatewayServer(api.gateway, "127.0.0.1", 0)
    server.start()
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


@pytest.fixture
def fake_twilio(gateway_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTwilio]:
    fake = FakeTwilio()
    credentials = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "from_number": FROM_NUMBER}
    monkeypatch.setenv("SMS_TWILIO_SECRET", json.dumps(credentials))
    monkeypatch.setenv("SMS_TWILIO_BASE_URL", fake.url)
    monkeypatch.setenv("SMS_PUBLIC_BASE_URL", gateway_url)
    get_settings.cache_clear()
    yield fake
    fake.stop()
    monkeypatch.undo()
    get_settings.cache_clear()


def _route(api: Api, admin: dict[str, Any], user: dict[str, Any], route: list[str] | None) -> None:
    response = api.request("PUT", f"/v1/users/{user['id']}/providers", token=admin["token"], json_body={"route": route})
    assert response.status == 200, response.body
    assert response.json()["route"] == route


def _send(api: Api, token: str, people: list[dict[str, Any]], template: str = "Hi {{first_name|there}}!") -> str:
    campaign_id = make_campaign(api, token, [make_group(api, token, "audience", people)], template)
    assert api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=token).status == 202
    return campaign_id


def _logs(conn: psycopg.Connection[Any], campaign_id: str) -> list[dict[str, Any]]:
    return conn.execute(
        """SELECT phone_number, status, provider, external_message_id, error_code, error_message
             FROM sms_delivery_logs WHERE campaign_id = %s ORDER BY phone_number""",
        (campaign_id,),
    ).fetchall()


def test_twilio_sends_each_recipient_once_and_its_signed_callbacks_deliver(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    conn: psycopg.Connection[Any],
    fake_twilio: FakeTwilio,
    gateway_url: str,
) -> None:
    give_credits(api, admin, user, 100)
    _route(api, admin, user, ["twilio"])
    campaign_id = _send(api, user["token"], PEOPLE)
    # The two batches one after the other, as separate invocations would send them: side by side (the
    # sender function's batches of one invocation), both could be calling at once and open all six.
    pipeline.drain(send_clock=SYSTEM_CLOCK)

    sent = _logs(conn, campaign_id)
    forged = fake_twilio.send_status_callbacks(signing_token="not-the-auth-token")
    pipeline.drain()
    after_forgery = _logs(conn, campaign_id)
    genuine = fake_twilio.send_status_callbacks()
    pipeline.drain()
    delivered = _logs(conn, campaign_id)
    stats = api.request("GET", f"/v1/campaigns/{campaign_id}/stats", token=user["token"]).json()

    assert sorted(m["To"] for m in fake_twilio.accepted) == [p["phone_number"] for p in PEOPLE]
    assert {m["From"] for m in fake_twilio.accepted} == {FROM_NUMBER}
    assert {m["StatusCallback"] for m in fake_twilio.accepted} == {f"{gateway_url}/v1/webhooks/twilio/status"}
    assert {m["Body"] for m in fake_twilio.accepted} == {
        f"Hi {name}!" for name in ("Ann", "Ben", "there", "Dee", "Eve", "Fay")
    }
    assert len(fake_twilio.connections) < 6  # two batches: the second reuses the first one's connections
    assert [(m["status"], m["provider"]) for m in sent] == [("sent", "twilio")] * 6
    assert {m["external_message_id"] for m in sent} == {m["sid"] for m in fake_twilio.accepted}
    assert forged == [403] * 6
    assert after_forgery == sent  # a forged receipt changes nothing
    assert genuine == [200] * 6
    assert [m["status"] for m in delivered] == ["delivered"] * 6
    assert (stats["delivered"], stats["credits_spent"]) == (6, 6)


def test_twilio_errors_keep_twilios_code_a_transient_one_fails_over_and_one_in_doubt_is_never_sent_again(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    conn: psycopg.Connection[Any],
    fake_twilio: FakeTwilio,
) -> None:
    give_credits(api, admin, user, 100)
    _route(api, admin, user, ["twilio", "simulator"])
    people = [PEOPLE[0], {"phone_number": REJECTED}, {"phone_number": BUSY}, {"phone_number": SERVER_ERROR}]
    campaign_id = _send(api, user["token"], people, "Hello")
    pipeline.drain()

    logs = {m["phone_number"]: m for m in _logs(conn, campaign_id)}
    simulated = conn.execute("SELECT to_number FROM simulator_messages").fetchall()
    stats = api.request("GET", f"/v1/campaigns/{campaign_id}/stats", token=user["token"]).json()

    assert (logs[PEOPLE[0]["phone_number"]]["status"], logs[PEOPLE[0]["phone_number"]]["provider"]) == (
        "sent",
        "twilio",
    )
    assert (logs[REJECTED]["status"], logs[REJECTED]["error_code"]) == ("failed", "21211")
    assert "not a valid phone number" in logs[REJECTED]["error_message"]
    assert (logs[BUSY]["status"], logs[BUSY]["provider"]) == ("delivered", "simulator")  # 429, then the next
    # A 500 after Twilio took the message: in doubt, so neither retried nor failed over (Twilio sent it once).
    assert (logs[SERVER_ERROR]["status"], logs[SERVER_ERROR]["provider"]) == ("failed", "twilio")
    assert logs[SERVER_ERROR]["error_code"] == "outcome_unknown"
    assert "20500" in logs[SERVER_ERROR]["error_message"]
    assert [m["To"] for m in fake_twilio.accepted].count(SERVER_ERROR) == 1
    assert [row["to_number"] for row in simulated] == [BUSY]
    assert (stats["credits_spent"], stats["credits_refunded"]) == (2, 2)


def test_a_message_in_doubt_with_an_idempotent_provider_is_retried_there_and_never_failed_over(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    conn: psycopg.Connection[Any],
    fake_twilio: FakeTwilio,
    configure: Callable[..., None],
) -> None:
    configure(simulator_idempotent=True)
    give_credits(api, admin, user, 100)
    _route(api, admin, user, ["simulator", "twilio"])
    ambiguous = "+447400199994"  # the simulator takes it, then answers 500

    campaign_id = _send(api, user["token"], [{"phone_number": ambiguous}], "Hello")
    pipeline.drain()

    (log,) = _logs(conn, campaign_id)
    calls = conn.execute("SELECT outcome FROM simulator_calls ORDER BY id").fetchall()
    assert fake_twilio.accepted == []  # Twilio would have been a second copy
    assert (log["status"], log["provider"]) == ("delivered", "simulator")
    assert [row["outcome"] for row in calls] == ["ambiguous", "repeat"]


def test_a_twilio_webhook_without_a_signature_is_refused(api: Api, fake_twilio: FakeTwilio) -> None:
    body = urlencode({"MessageSid": "SM1", "MessageStatus": "delivered"}).encode()
    headers = {"content-type": "application/x-www-form-urlencoded"}

    assert api.request("POST", "/v1/webhooks/twilio/status", raw_body=body, headers=headers).status == 403
    assert api.request("POST", "/v1/webhooks/twilio/inbound", raw_body=body, headers=headers).status == 403


def test_sns_publishes_each_recipient_once_against_moto(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    conn: psycopg.Connection[Any],
) -> None:
    from moto.sns.models import sns_backends

    backend = sns_backends[aws.ACCOUNT_ID][aws.REGION]
    before = set(backend.sms_messages)
    give_credits(api, admin, user, 100)
    _route(api, admin, user, ["sns"])
    campaign_id = _send(api, user["token"], PEOPLE[:3])
    pipeline.drain()

    published = {mid: backend.sms_messages[mid] for mid in set(backend.sms_messages) - before}
    logs = _logs(conn, campaign_id)
    campaign = api.request("GET", f"/v1/campaigns/{campaign_id}", token=user["token"]).json()

    assert sorted(published.values()) == [
        ("+447400123101", "Hi Ann!"),
        ("+447400123102", "Hi Ben!"),
        ("+447400123103", "Hi there!"),
    ]
    assert {m["external_message_id"] for m in logs} == set(published)
    assert {(m["status"], m["provider"]) for m in logs} == {("sent", "sns")}  # SNS gives no handset receipts
    assert campaign["status"] == "completed"


def _stubbed_end_user_messaging() -> tuple[Any, Stubber]:
    client = boto3.client(
        "pinpoint-sms-voice-v2", region_name="eu-west-2", aws_access_key_id="x", aws_secret_access_key="x"
    )
    return client, Stubber(client)


def test_end_user_messaging_calls_fit_the_service_model_and_errors_keep_aws_codes() -> None:
    settings = get_settings().model_copy(
        update={"aws_sms_configuration_set": "sms-platform-dev", "aws_sms_origination_identity": "+447700900000"}
    )
    client, stubber = _stubbed_end_user_messaging()
    message = OutboundMessage(uuid.uuid4(), "+447400123101", "Hi Ann!", None, 1)
    stubber.add_response(
        "send_text_message",
        {"MessageId": "eum-1"},
        {
            "DestinationPhoneNumber": "+447400123101",
            "MessageBody": "Hi Ann!",
            "MessageType": "TRANSACTIONAL",
            "OriginationIdentity": "+447700900000",
            "ConfigurationSetName": "sms-platform-dev",
            "Context": {"message_id": str(message.id)},
        },
    )
    stubber.add_client_error("send_text_message", "ThrottlingException", "Rate exceeded", 400)
    stubber.add_client_error(
        "send_text_message",
        "ConflictException",
        "The destination phone number is opted out.",
        400,
        response_meta={"Reason": "DESTINATION_PHONE_NUMBER_OPTED_OUT"},
    )
    stubber.add_client_error("send_text_message", "InternalServerException", "Internal error", 500)
    provider = AwsSms(settings, client)

    with stubber:
        accepted = provider.call(message)
        throttled = provider.call(message)
        opted_out = provider.call(message)
        broken = provider.call(message)

    assert (accepted.outcome, accepted.external_id, accepted.provider) == ("accepted", "eum-1", "aws_sms")
    assert (throttled.outcome, throttled.error_code) == ("transient", "ThrottlingException")
    assert (opted_out.outcome, opted_out.error_code) == ("permanent", "ConflictException")
    # A 500 reached the service, which may have sent it: in doubt, and failed rather than resent.
    assert (broken.outcome, broken.error_code, broken.in_doubt) == ("permanent", "outcome_unknown", True)
    assert "InternalServerException" in (broken.error_message or "")
    stubber.assert_no_pending_responses()


def test_end_user_messaging_delivery_events_arrive_through_the_topic_subscription(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    conn: psycopg.Connection[Any],
    aws_resources: aws.Resources,
) -> None:
    give_credits(api, admin, user, 100)
    _route(api, admin, user, ["aws_sms"])
    campaign_id = _send(api, user["token"], PEOPLE[:2])
    pipeline.pollers["DispatcherFunction"].poll_once()
    client, stubber = _stubbed_end_user_messaging()
    for index in range(2):
        stubber.add_response("send_text_message", {"MessageId": f"eum-{index}"})
    queue = aws_resources.refs["SendQueue"]
    records = pipeline.sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    with stubber:  # what SenderFunction does with each record, through the stubbed client
        for record in records:
            sender.process_batch(
                SendBatch.model_validate_json(record["Body"]),
                get_settings(),
                make_route=lambda _names, s: AwsSms(s, client),
            )
            pipeline.sqs.delete_message(QueueUrl=queue, ReceiptHandle=record["ReceiptHandle"])
    sns = aws.client("sns", aws_resources.endpoint_url)
    for index, status in enumerate(("DELIVERED", "CARRIER_UNREACHABLE")):
        event = {
            "eventType": f"TEXT_{status}",
            "isFinal": True,
            "messageId": f"eum-{index}",
            "messageStatus": status,
            "messageStatusDescription": "Delivered" if index == 0 else "The carrier could not reach the handset",
            "eventTimestamp": 1764244800000,
        }
        sns.publish(TopicArn=aws_resources.refs["SmsEventsTopic"], Message=json.dumps(event))
    pipeline.drain()

    logs = _logs(conn, campaign_id)
    assert sorted((m["external_message_id"], m["status"], m["provider"]) for m in logs) == [
        ("eum-0", "delivered", "aws_sms"),
        ("eum-1", "undelivered", "aws_sms"),
    ]
    assert urlsplit(aws_resources.refs["SmsEventsTopic"]).scheme == "arn"  # a topic moto made from the template


def test_a_route_names_only_known_providers_and_is_for_operators(
    api: Api, admin: dict[str, Any], user: dict[str, Any]
) -> None:
    path = f"/v1/users/{user['id']}/providers"

    assert api.request("PUT", path, token=admin["token"], json_body={"route": ["carrier-pigeon"]}).status == 422
    assert api.request("PUT", path, token=admin["token"], json_body={"route": ["sns", "sns"]}).status == 422
    assert api.request("PUT", path, token=admin["token"], json_body={"route": []}).status == 422
    assert api.request("PUT", path, token=user["token"], json_body={"route": ["sns"]}).status == 403
    assert (
        api.request(
            "PUT", f"/v1/users/{uuid.uuid4()}/providers", token=admin["token"], json_body={"route": None}
        ).status
        == 404
    )
    _route(api, admin, user, None)


def test_a_provider_that_is_not_configured_takes_no_webhooks(api: Api) -> None:
    body = b"MessageSid=SM1&MessageStatus=delivered"

    assert api.request("POST", "/v1/webhooks/twilio/status", raw_body=body).status == 404
    assert api.request("POST", "/v1/webhooks/sns/status", raw_body=b"{}").status == 404


def _twilio_at(url: str) -> twilio.Twilio:
    settings = get_settings().model_copy(update={"twilio_base_url": url, "provider_timeout_seconds": 2})
    return twilio.Twilio(settings, {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "from_number": FROM_NUMBER})


def test_a_twilio_send_that_never_connected_may_be_retried_but_one_whose_answer_was_lost_may_not() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def take_the_request_and_hang_up() -> None:
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.close()

    threading.Thread(target=take_the_request_and_hang_up, daemon=True).start()
    message = OutboundMessage(uuid.uuid4(), "+447400123101", "Hi", None, 1)
    with pytest.raises(ProviderError) as lost:
        _twilio_at(f"http://127.0.0.1:{port}").send(message)
    listener.close()
    with pytest.raises(ProviderError) as unreachable:
        _twilio_at(f"http://127.0.0.1:{port}").send(message)

    assert (lost.value.in_doubt, lost.value.transient) == (True, False)  # it may have gone out
    assert (unreachable.value.in_doubt, unreachable.value.transient) == (False, True)  # nothing went out


def test_twilios_retry_after_comes_back_with_a_429(fake_twilio: FakeTwilio) -> None:
    busy = _twilio_at(fake_twilio.url).call(OutboundMessage(uuid.uuid4(), BUSY, "Hi", None, 1))

    assert (busy.outcome, busy.error_code, busy.retry_after, busy.in_doubt) == ("transient", "20429", 3.0, False)


def test_without_a_public_base_url_twilio_signs_the_host_it_called(
    api: Api, conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "from_number": FROM_NUMBER}
    monkeypatch.setenv("SMS_TWILIO_SECRET", json.dumps(credentials))
    get_settings.cache_clear()
    params = {"MessageSid": "SM" + "0" * 32, "From": "+447400123101", "To": FROM_NUMBER, "Body": "STOP"}
    signed_for = "https://abc123.execute-api.eu-west-2.amazonaws.com/v1/webhooks/twilio/inbound"

    def call(signature_url: str) -> int:
        headers = {
            "host": "abc123.execute-api.eu-west-2.amazonaws.com",
            "content-type": "application/x-www-form-urlencoded",
            twilio.SIGNATURE_HEADER: twilio.signature(AUTH_TOKEN, signature_url, params.items()),
        }
        body = urlencode(params).encode()
        return api.request("POST", "/v1/webhooks/twilio/inbound", raw_body=body, headers=headers).status

    try:
        elsewhere = call("https://attacker.example.com/v1/webhooks/twilio/inbound")
        here = call(signed_for)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()

    assert (elsewhere, here) == (403, 200)


def test_end_user_messaging_events_posted_by_sns_over_https_apply_only_when_signed(
    api: Api, pipeline: Pipeline, conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.hazmat.primitives import serialization

    from smsplatform.providers import sns_messages
    from tests.support.sns import TOPIC, make_signer, sns_notification

    key, certificate = make_signer()
    monkeypatch.setattr(sns_messages, "_certificates", {})
    monkeypatch.setattr(sns_messages, "_download", lambda url: certificate.public_bytes(serialization.Encoding.PEM))
    monkeypatch.setenv("SMS_AWS_SNS_TOPIC_ARNS", json.dumps([TOPIC]))
    get_settings.cache_clear()
    user_id = conn.execute(
        "INSERT INTO users (username, email, password_hash) VALUES ('eum', 'eum@example.com', 'x') RETURNING id"
    ).fetchone()["id"]
    insert_recorded(
        conn,
        {
            "user_id": user_id,
            "phone_number": "+447400123101",
            "body": "Hi",
            "provider": "aws_sms",
            "external_message_id": "eum-42",
            "sent_at": datetime.now(UTC),
        },
    )
    event = {"eventType": "TEXT_DELIVERED", "isFinal": True, "messageId": "eum-42", "messageStatus": "DELIVERED"}
    signed = sns_notification(key, event)
    forged = {**signed, "Message": json.dumps({**event, "messageId": "eum-43"})}

    def post(envelope: dict[str, Any]) -> int:
        raw = json.dumps(envelope).encode()
        headers = {"content-type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": envelope["Type"]}
        return api.request("POST", "/v1/webhooks/aws_sms/status", raw_body=raw, headers=headers).status

    try:
        statuses = (post(forged), post({k: v for k, v in signed.items() if k != "Signature"}), post(signed))
        pipeline.drain()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()

    assert statuses == (403, 403, 200)
    assert conn.execute("SELECT status FROM sms_delivery_logs").fetchone()["status"] == "delivered"
