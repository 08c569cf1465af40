"""The OpenAPI document as the API really answers: every error as problem+json, security and media types.

Powertools generates paths, parameters, request and success schemas from the
routes. What it cannot know is added here, from the same rules the code follows
(`problems` maps every error; `request_checks` and validation run before any
route): which problems an operation can answer, that public operations need no
credential, and the media types of the bodies that are not JSON.
"""

import copy
from typing import Any

from pydantic import BaseModel

from smsplatform.api.campaigns import CampaignResponse
from smsplatform.api.contacts import ImportResponse, ImportUploadRequest
from smsplatform.api.exports import ExportAccepted
from smsplatform.api.messages import SendResponse
from smsplatform.api.opt_outs import OptOutResponse
from smsplatform.api.problems import PROBLEM_CONTENT_TYPE
from smsplatform.api.webhooks import Accepted

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
_DESCRIPTIONS = {
    400: "Malformed request: the body is not JSON, or has NaN or Infinity",
    401: "No credential, or one that is not valid",
    402: "Not enough credits",
    403: "The credential lacks the permission, or the account is suspended",
    404: "No such resource (another account's resources are not found either)",
    409: "The resource's state does not allow this",
    413: "The body is too large",
    415: "The body is not of a media type this operation takes",
    422: "Invalid input",
    429: "Too many attempts, or too many messages waiting: retry after the Retry-After header's seconds",
    500: "Something went wrong on our side; it was logged",
}
# Operations whose bodies are not JSON, or not only JSON: media type -> schema.
_REQUEST_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/v1/contacts/imports"): {
        # Any text is a CSV file to this operation (a file without a phone column fails the import, not the call).
        "text/csv": {"description": "A header line with a phone column, then one contact a line"},
        "application/json": {"$ref": "#/components/schemas/ImportUploadRequest"},  # added by complete()
    },
}
_WEBHOOK_BODIES = {
    "application/json": {"type": "object"},
    "application/x-www-form-urlencoded": {"type": "object"},
    "text/plain": {"type": "string", "description": "An Amazon SNS message"},
}
# Routes that build their Response themselves (a status other than the default, or content negotiation):
# what their success bodies are. (method, path) -> {status: model}
_SUCCESS_MODELS: dict[tuple[str, str], dict[str, type[BaseModel]]] = {
    ("post", "/v1/campaigns/{campaign_id}/send"): {"202": CampaignResponse},
    ("post", "/v1/contacts/imports"): {"202": ImportResponse},
    ("post", "/v1/opt-outs"): {"200": OptOutResponse, "201": OptOutResponse},
    ("post", "/v1/messages"): {"202": SendResponse},
    ("post", "/v1/exports"): {"202": ExportAccepted},
    ("post", "/v1/webhooks/{provider}/inbound"): {"200": Accepted},
}


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of the generated document with every operation's problems, security and request media types."""
    completed = copy.deepcopy(document)
    schemas = completed.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    _register(schemas, ImportUploadRequest)
    schemas.pop("HTTPValidationError", None)  # Powertools' 422 body; ours is a Problem
    for path, operations in completed.get("paths", {}).items():
        for method, operation in operations.items():
            _complete_operation(method, path, operation)
            for status, model in _SUCCESS_MODELS.get((method, path), {}).items():
                operation["responses"][status] = {
                    "description": "Success",
                    "content": {"application/json": {"schema": _register(schemas, model)}},
                }
    return completed


def _register(schemas: dict[str, Any], model: type[BaseModel]) -> dict[str, str]:
    """The model (and the models it uses) in components; a $ref to it."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    schemas.setdefault(model.__name__, schema)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _complete_operation(method: str, path: str, operation: dict[str, Any]) -> None:
    secured = bool(operation.get("security"))
    if not secured:
        operation["security"] = []  # stated, not left to a global default
    webhook = path.startswith("/v1/webhooks/")
    if (method, path) in _REQUEST_BODIES:
        operation["requestBody"] = {
            "required": True,
            "content": {media: {"schema": schema} for media, schema in _REQUEST_BODIES[(method, path)].items()},
        }
    elif webhook:
        operation["requestBody"] = {
            "required": True,
            "content": {media: {"schema": schema} for media, schema in _WEBHOOK_BODIES.items()},
        }
    has_body = "requestBody" in operation
    mutating = method in ("post", "put", "patch", "delete")

    statuses = {422, 500}
    if has_body or (method == "patch"):
        statuses |= {400, 415}
    if secured:
        statuses |= {401, 403}
    if secured:
        statuses.add(404)  # a path's or a filter's resource that is not (the caller's) there
    if secured and mutating:
        statuses.add(409)
    if webhook:
        statuses |= {403, 404}
    if path == "/v1/contacts/imports":
        statuses.add(413)
    if (method, path) in (("post", "/v1/messages"), ("post", "/v1/users/{user_id}/credits")):
        statuses.add(402)
    if (method, path) in (("post", "/v1/auth/login"), ("post", "/v1/messages")):
        statuses |= {401, 429}
    if (method, path) == ("post", "/v1/auth/signup"):
        statuses.add(409)

    responses = operation.setdefault("responses", {})
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": _DESCRIPTIONS[status],
            "content": {PROBLEM_CONTENT_TYPE: {"schema": _PROBLEM_REF}},
        }
    if method == "delete":
        responses.pop("200", None)
        responses["204"] = {"description": "Deleted"}
    if webhook and path.endswith("/inbound"):
        success = responses.get("200", {}).setdefault("content", {})
        success["text/xml"] = {"schema": {"type": "string", "description": "TwiML, for Twilio"}}
    if (method, path) == ("get", "/v1/health"):
        responses["503"] = {"description": "The database is unreachable", "content": responses["200"]["content"]}
    if (method, path) == ("get", "/v1/openapi.json"):
        responses["200"]["content"] = {"application/json": {"schema": {"type": "object"}}}
    if (method, path) == ("get", "/v1/docs"):
        responses["200"]["content"] = {"text/html": {"schema": {"type": "string"}}}
    if (method, path) == ("get", "/v1/docs/{asset}"):
        responses["200"]["content"] = {
            media: {"schema": {"type": "string"}} for media in ("text/css", "text/javascript")
        }
