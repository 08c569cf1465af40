"""Input refused before any route runs: what no handler, model or driver should ever see.

- Text PostgreSQL cannot store (a NUL character, an unpaired UTF-16 surrogate) in
  the query, the path or the body: the driver would fail mid-request.
- JSON nested deeper than any of our bodies, or with NaN/Infinity (not JSON numbers).
- A PATCH without a body: every PATCH route's body is required.
- A body of a media type the operation does not take (JSON, but CSV for imports;
  webhooks take what their provider sends): 415, before any parser runs.

Each is a 4xx problem, and nothing has been read or written when it is returned.
"""

import json
from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from smsplatform.core.errors import (
    DomainError,
    FieldError,
    InvalidInputError,
    MalformedRequestError,
    UnsupportedMediaTypeError,
)

MAX_JSON_DEPTH = 32
_JSON = "application/json"
# Operations whose bodies are not only JSON, by route key; webhooks take whatever their provider sends.
_MEDIA_TYPES = {"POST /v1/contacts/imports": frozenset({"text/csv", "application/csv", "text/plain", _JSON})}
_ANY_MEDIA_TYPE_PREFIX = "POST /v1/webhooks/"
# The Twilio-compatible API takes Twilio's form-encoded parameters (its routes check the fields themselves).
_FORM_PREFIX, _FORM = "POST /2010-04-01/", frozenset({"application/x-www-form-urlencoded"})


class _NotAJsonNumberError(ValueError):
    pass


def unusable_input(event: APIGatewayProxyEventV2) -> DomainError | None:
    """The problem with this request's input, if it is one of those above; None otherwise."""
    for where, values in (("query", event.query_string_parameters), ("path", event.path_parameters)):
        for name, value in (values or {}).items():
            if not storable(name) or not storable(value):
                return _unstorable(f"{where}.{name}")
    raw = event.decoded_body or ""
    body = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
    if event.request_context.http.method == "PATCH" and not body.strip():
        return InvalidInputError(
            "A PATCH request needs a JSON body with the fields to change.", errors=[FieldError("body", "is missing")]
        )
    if "\x00" in body:
        return _unstorable("body")
    if not body.strip():
        return None
    content_type = (event.headers.get("content-type") or "").split(";")[0].strip().lower()
    route = str(event.raw_event.get("routeKey") or "")
    accepted = _FORM if route.startswith(_FORM_PREFIX) else _MEDIA_TYPES.get(route, frozenset({_JSON}))
    if content_type and content_type not in accepted and not route.startswith(_ANY_MEDIA_TYPE_PREFIX):
        return UnsupportedMediaTypeError(f"This operation takes {' or '.join(sorted(accepted))} bodies.")
    if content_type not in ("", _JSON):
        return None
    try:
        document = json.loads(body, parse_constant=_refuse_constant)
    except _NotAJsonNumberError:
        return MalformedRequestError("NaN and Infinity are not JSON numbers.")
    except RecursionError:
        return _too_deep()
    except ValueError:
        return None  # not JSON: the route's validation says so
    return _check(document, "", 0)


def _refuse_constant(name: str) -> Any:
    raise _NotAJsonNumberError(name)


def _check(value: Any, path: str, depth: int) -> DomainError | None:
    if depth > MAX_JSON_DEPTH:
        return _too_deep()
    if isinstance(value, str):
        return None if storable(value) else _unstorable(path or "body")
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if not storable(key):
                return _unstorable(path or "body")
            found = _check(item, where, depth + 1)
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _check(item, f"{path}[{index}]" if path else f"[{index}]", depth + 1)
            if found:
                return found
    return None


def storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # an unpaired surrogate
        return False
    return True


def _unstorable(field: str) -> InvalidInputError:
    return InvalidInputError(
        f"{field} contains a NUL character or an unpaired surrogate, which no text here can hold.",
        errors=[FieldError(field, "contains a NUL character or an unpaired surrogate")],
    )


def _too_deep() -> InvalidInputError:
    return InvalidInputError(
        f"The body is nested more than {MAX_JSON_DEPTH} levels deep.",
        errors=[FieldError("body", "is nested too deeply")],
    )
