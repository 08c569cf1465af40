"""Amazon SNS notifications signed as SNS signs them, by a self-signed certificate standing in for SNS's."""

import base64
import datetime
import json
import uuid
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from smsplatform.providers import sns_messages

CERT_URL = "https://sns.eu-west-2.amazonaws.com/SimpleNotificationService-0000.pem"
TOPIC = "arn:aws:sns:eu-west-2:123456789012:sms-platform-dev-sms-events"


def make_signer() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """An RSA key and a self-signed certificate standing in for SNS's signing certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def sns_notification(
    key: rsa.RSAPrivateKey, message: dict[str, Any], version: str = "2", **fields: str
) -> dict[str, Any]:
    envelope = {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": TOPIC,
        "Message": json.dumps(message),
        "Timestamp": "2026-11-27T12:00:00.000Z",
        "SignatureVersion": version,
        "SigningCertURL": CERT_URL,
        **fields,
    }
    canonical = sns_messages.string_to_sign(envelope)
    assert canonical is not None
    algorithm = hashes.SHA256() if version == "2" else hashes.SHA1()  # noqa: S303 - SNS's version 1 is SHA1
    envelope["Signature"] = base64.b64encode(key.sign(canonical.encode(), padding.PKCS1v15(), algorithm)).decode()
    return envelope
