"""Signatures and formats at the providers' edges: Twilio, Amazon SNS, End User Messaging events, our callbacks."""

import datetime
import hashlib
import hmac
import json
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from smsplatform.core.config import Settings
from smsplatform.core.errors import InvalidInputError
from smsplatform.core.queue_messages import ProviderEvents, Receipt
from smsplatform.providers import aws_sms, simulator, sns_messages, twilio
from smsplatform.providers.base import WebhookRequest
from smsplatform.sending import keywords, status_callbacks
from tests.support.sns import CERT_URL, TOPIC, make_signer, sns_notification


def test_twilio_signature_matches_twilios_published_example() -> None:
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"

    assert twilio.signature("12345", url, params.items()) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert twilio.verify("12345", url, params.items(), "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not twilio.verify("12345", url, {**params, "Digits": "9999"}.items(), "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not twilio.verify("12345", url + "&x=1", params.items(), "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not twilio.verify("12345", url, params.items(), None)
    assert not twilio.verify("", url, params.items(), twilio.signature("", url, params.items()))  # no token


@pytest.fixture(scope="module")
def sns_signer() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    return make_signer()


def test_an_sns_notification_verifies_only_as_signed_and_for_a_configured_topic(
    sns_signer: tuple[rsa.RSAPrivateKey, x509.Certificate], monkeypatch: pytest.MonkeyPatch
) -> None:
    key, certificate = sns_signer
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    fetched: list[str] = []
    monkeypatch.setattr(sns_messages, "_certificates", {})
    monkeypatch.setattr(sns_messages, "_download", lambda url: fetched.append(url) or pem)
    signed = sns_notification(key, {"messageId": "m-1"})

    assert sns_messages.verify(signed, [TOPIC])
    assert sns_messages.verify(sns_notification(key, {"messageId": "m-1"}, version="1"), [TOPIC])
    assert not sns_messages.verify({**signed, "Message": json.dumps({"messageId": "m-2"})}, [TOPIC])  # tampered
    assert not sns_messages.verify(signed, ["arn:aws:sns:eu-west-2:123456789012:another"])  # not our topic
    assert not sns_messages.verify({**signed, "SigningCertURL": "https://attacker.example.com/x.pem"}, [TOPIC])
    assert not sns_messages.verify({**signed, "SigningCertURL": CERT_URL.replace("https", "http")}, [TOPIC])
    assert not sns_messages.verify({key: value for key, value in signed.items() if key != "Signature"}, [TOPIC])
    assert fetched == [CERT_URL]  # fetched once, then cached


def test_only_sns_urls_are_trusted() -> None:
    assert sns_messages.is_aws_url("https://sns.us-east-1.amazonaws.com/cert.pem")
    assert sns_messages.is_aws_url("https://sns.cn-north-1.amazonaws.com.cn/cert.pem")
    assert not sns_messages.is_aws_url("https://sns.us-east-1.amazonaws.com.evil.example/cert.pem")
    assert not sns_messages.is_aws_url("https://evil.example/sns.us-east-1.amazonaws.com/cert.pem")
    assert not sns_messages.is_aws_url(None)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("STOP", "opt_out"),
        ("  stop \n", "opt_out"),
        ("Stop!", "opt_out"),
        ("StopAll", "opt_out"),
        ("unsubscribe", "opt_out"),
        ("Cancel", "opt_out"),
        ("end", "opt_out"),
        ("QUIT ", "opt_out"),
        ("arrêt", "opt_out"),
        ("ARRE\u0302T", "opt_out"),  # decomposed: NFC makes it ARRÊT
        ("¡Baja!", "opt_out"),
        ("stopp.", "opt_out"),
        ("start", "opt_in"),
        (" UNSTOP", "opt_in"),
        ("help?", "help"),
        ("Ayuda", "help"),
        ("STOP please", None),
        ("Stopping by later", None),
        ("yes", None),
        ("🛑", None),
        ("", None),
    ],
)
def test_keywords_are_the_whole_text_ignoring_case_and_surrounding_whitespace_and_punctuation(
    body: str, expected: str | None
) -> None:
    assert keywords.DEFAULTS.match(body) == expected


def test_end_user_messaging_events_become_receipts_only_when_final() -> None:
    base = {"messageId": "m-1", "eventTimestamp": 1764244800000, "isFinal": True}

    delivered = aws_sms.event_to_receipt({**base, "eventType": "TEXT_DELIVERED", "messageStatus": "DELIVERED"})
    blocked = aws_sms.event_to_receipt(
        {
            **base,
            "eventType": "TEXT_CARRIER_BLOCKED",
            "messageStatus": "CARRIER_BLOCKED",
            "messageStatusDescription": "Blocked by the carrier",
        }
    )

    assert delivered is not None
    assert (delivered.external_id, delivered.status) == ("m-1", "delivered")
    assert delivered.timestamp == datetime.datetime(2025, 11, 27, 12, 0, tzinfo=datetime.UTC)
    assert blocked is not None
    assert (blocked.status, blocked.error_code, blocked.error_message) == (
        "undelivered",
        "TEXT_CARRIER_BLOCKED",
        "Blocked by the carrier",
    )
    assert aws_sms.event_to_receipt({**base, "isFinal": False, "messageStatus": "PENDING"}) is None
    assert aws_sms.event_to_receipt({**base, "eventType": "TEXT_SUCCESSFUL", "messageStatus": "SUCCESSFUL"}) is None


def test_two_way_messages_become_inbound_messages() -> None:
    message = aws_sms.event_to_inbound(
        {
            "originationNumber": "+447400123456",
            "destinationNumber": "+447700900000",
            "messageKeyword": "KEYWORD_123456789012",
            "messageBody": "Stop",
            "inboundMessageId": "in-1",
            "previousPublishedMessageId": "out-1",
        }
    )

    assert message is not None
    assert (message.external_id, message.from_number, message.to_number, message.body) == (
        "in-1",
        "+447400123456",
        "+447700900000",
        "Stop",
    )
    assert message.reply_to_external_id == "out-1"
    assert aws_sms.event_to_inbound({"messageId": "m-1", "isFinal": True}) is None


def test_each_account_has_its_own_callback_secret_and_rotation_changes_it() -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    body = b'{"status":"delivered"}'

    first = status_callbacks.secret("platform-key", alice, 1)
    rotated = status_callbacks.secret("platform-key", alice, 2)

    assert first.startswith("whsec_")
    assert first == status_callbacks.secret("platform-key", alice, 1)
    assert len({first, rotated, status_callbacks.secret("platform-key", bob, 1)}) == 3
    assert status_callbacks.sign(first, body) == hmac.new(first.encode(), body, hashlib.sha256).hexdigest()


def test_callback_urls_are_https_with_a_host_unless_the_platform_allows_http() -> None:
    deployed = Settings(callback_allow_http=False)
    local = Settings(callback_allow_http=True)

    assert status_callbacks.check_url("https://hooks.example.com/sms", deployed)
    for refused in (
        "http://hooks.example.com/sms",
        "https://user:pass@hooks.example.com/sms",
        "https:///sms",
        "https://hooks.example.com:8443/sms",
        "ftp://hooks.example.com/sms",
    ):
        with pytest.raises(InvalidInputError):
            status_callbacks.check_url(refused, deployed)
    assert status_callbacks.check_url("http://127.0.0.1:8080/hook", local)


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("https://127.0.0.1/hook", False),
        ("https://localhost/hook", False),
        ("https://10.20.0.15/hook", False),  # inside the platform's VPC
        ("https://169.254.169.254/latest/meta-data", False),  # instance metadata
        ("https://[::1]/hook", False),
        ("https://8.8.8.8/hook", True),
    ],
)
def test_callbacks_never_go_to_private_addresses(url: str, public: bool) -> None:
    deployed = Settings(callback_allow_http=False)
    if public:
        assert status_callbacks.destination(url, deployed).address == "8.8.8.8"
    else:
        with pytest.raises(RuntimeError, match="private address"):
            status_callbacks.destination(url, deployed)


def test_the_simulators_receipts_are_taken_as_sent_within_its_webhooks_limits() -> None:
    settings = Settings(simulator_secret="a shared secret")
    texts = ['Handset "off" — 100% unreachable', "الهاتف مغلق \\ 📵", None]
    sent = [
        {
            "external_id": f"SM{index:032x}",
            "status": "undelivered" if text else "delivered",
            "timestamp": "2026-12-02T01:56:40.123456+00:00",
            "error_code": "SIM-30003" if text else None,
            "error_message": text,
        }
        for index, text in enumerate(texts)
    ]

    def request(receipts: list[dict[str, object]]) -> WebhookRequest:
        body = json.dumps({"receipts": receipts}).encode()
        signature = simulator.sign("a shared secret", body)
        return WebhookRequest(body, {simulator.SIGNATURE_HEADER.lower(): signature}, "https://api.example.com/x")

    taken = simulator.Simulator.status_webhook(request(sent), settings)

    # What the receipts queue carries is what the provider said, field for field.
    expected = [Receipt.model_validate(receipt) for receipt in sent]
    assert [receipt.model_dump() for receipt in taken] == [receipt.model_dump() for receipt in expected]
    assert all(isinstance(receipt, Receipt) for receipt in taken)
    assert (
        ProviderEvents(provider="simulator", receipts=taken).model_dump_json()
        == ProviderEvents(provider="simulator", receipts=expected).model_dump_json()
    )
    for too_much in ({"external_id": "x" * 101}, {"external_id": ""}, {"error_code": "E" * 51}, {"status": "read"}):
        with pytest.raises(ValidationError):
            simulator.Simulator.status_webhook(request([{**sent[0], **too_much}]), settings)
