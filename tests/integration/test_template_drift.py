"""template.yaml and the handlers describe the same API: no route exists in only one of them."""

import importlib.util
import json
import re
from pathlib import Path

from local.template import StackSpec

_VARIABLE = re.compile(r"<(\w+)>")


def _resolver_routes(code_uri: Path) -> set[str]:
    spec = importlib.util.spec_from_file_location(f"_drift_{code_uri.name}", code_uri / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app = module.app
    # Powertools writes path variables as <name>, the template as {name}.
    routes = app._static_routes + app._dynamic_routes
    return {route.method + " " + _VARIABLE.sub(r"{\1}", route.path) for route in routes}


def test_every_template_route_has_a_handler_route_and_the_reverse(stack_spec: StackSpec) -> None:
    for logical_id, function in stack_spec.functions.items():
        declared = {route.route_key for route in stack_spec.routes if route.function == logical_id}
        if not declared:
            continue
        assert _resolver_routes(function.code_uri) == declared, logical_id


def test_the_openapi_document_describes_exactly_the_template_routes(stack_spec: StackSpec) -> None:
    from smsplatform.api.health_and_docs import openapi_document

    document = json.loads(openapi_document())
    documented = {f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item}

    assert documented == {route.route_key for route in stack_spec.routes if not _twilio(route.route_key)}


def test_protected_routes_in_the_template_are_those_the_handlers_protect(stack_spec: StackSpec) -> None:
    from smsplatform.api.health_and_docs import openapi_document

    document = json.loads(openapi_document())
    secured = {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if operation.get("security")
    }

    assert secured == {
        route.route_key for route in stack_spec.routes if route.authorized and not _twilio(route.route_key)
    }


def _twilio(route_key: str) -> bool:
    """The Twilio-compatible API is Twilio's contract, described by Twilio's reference and tested with its SDK
    (test_twilio_api.py); the OpenAPI document describes this platform's own /v1 API."""
    return route_key.split(" ", 1)[1].startswith("/2010-04-01/")
