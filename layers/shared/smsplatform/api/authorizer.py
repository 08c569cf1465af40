"""The HTTP API's Lambda authorizer (payload 2.0, simple responses)."""

from typing import Any

from smsplatform.accounts import principals
from smsplatform.core import db
from smsplatform.core.config import get_settings
from smsplatform.core.errors import DomainError
from smsplatform.core.secret_store import jwt_signing_key

# The Twilio-compatible API, where HTTP Basic (AccountSid : API token) is accepted too.
TWILIO_PREFIX = "/2010-04-01/"


def authorize(event: dict[str, Any]) -> dict[str, Any]:
    """Always authorizes the request through; the context says who called, or why they are not let in.

    Caching is off in the template (a revoked credential or a suspended account
    is refused on its very next request), so this runs once per request.
    """
    headers = event.get("headers") or {}
    try:
        # One round trip for a session (two for an API token, whose last use is stamped), not three or four:
        # no statement here needs another's transaction, and each sees the latest commits (the writer).
        with db.statements() as conn:
            principal = principals.resolve(
                conn,
                headers.get("authorization"),
                jwt_signing_key(get_settings()),
                basic=str(event.get("rawPath") or "").startswith(TWILIO_PREFIX),
            )
        context = principal.to_context()
    except DomainError as error:
        context = principals.failure_context(error)
    return {"isAuthorized": True, "context": context}
