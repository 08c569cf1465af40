"""Amazon SNS HTTP(S) notifications: their signature, and confirming a subscription.

SNS signs each message with the key of an X.509 certificate it publishes under
`https://sns.<region>.amazonaws.com/`. A message is trusted only when that
certificate (fetched once per URL) verifies the signature over SNS's canonical
string of the message's fields, and its topic is one we expect.
"""

import base64
import re
import threading
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

_AWS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
_SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
_certificates: dict[str, x509.Certificate] = {}
_lock = threading.Lock()


def is_aws_url(url: str | None) -> bool:
    parts = urlsplit(url or "")
    return parts.scheme == "https" and bool(_AWS_HOST.match(parts.hostname or ""))


def string_to_sign(message: dict[str, Any]) -> str | None:
    fields = _SIGNED_FIELDS.get(str(message.get("Type")))
    if fields is None:
        return None
    return "".join(f"{name}\n{message[name]}\n" for name in fields if message.get(name) is not None)


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - an https amazonaws.com URL
        body: bytes = response.read()
        return body


def certificate(url: str) -> x509.Certificate:
    with _lock:
        cached = _certificates.get(url)
    if cached is None:
        cached = x509.load_pem_x509_certificate(_download(url))
        with _lock:
            _certificates[url] = cached
    return cached


def verify(message: dict[str, Any], topics: list[str]) -> bool:
    """True when the message is signed by SNS, for one of `topics`."""
    canonical = string_to_sign(message)
    algorithm = _HASHES.get(str(message.get("SignatureVersion")))
    if canonical is None or algorithm is None or message.get("TopicArn") not in topics:
        return False
    if not is_aws_url(message.get("SigningCertURL")) or not message.get("Signature"):
        return False
    try:
        key = certificate(str(message["SigningCertURL"])).public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            return False
        key.verify(base64.b64decode(str(message["Signature"])), canonical.encode(), padding.PKCS1v15(), algorithm())
    except (InvalidSignature, ValueError, OSError):
        return False
    return True


def confirm_subscription(message: dict[str, Any]) -> None:
    """Visits the SubscribeURL of a verified confirmation message (only ever an SNS URL)."""
    url = str(message.get("SubscribeURL") or "")
    if not is_aws_url(url):
        raise ValueError("the SubscribeURL is not an SNS URL")
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - checked above
        response.read()
