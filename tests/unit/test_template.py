"""The local stack's reading of template.yaml: routes, authorizer, queues, schedules."""

from pathlib import Path

import pytest

from local.scheduler import rate_seconds
from local.template import load_stack
from tests.conftest import ROOT

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def test_the_real_template_declares_the_accounts_routes_behind_the_authorizer() -> None:
    spec = load_stack(ROOT / "template.yaml")

    routes = {route.route_key: (route.function, route.authorized) for route in spec.routes}
    assert routes["POST /v1/auth/signup"] == ("UsersFunction", False)
    assert routes["POST /v1/auth/login"] == ("UsersFunction", False)
    assert routes["GET /v1/users/me"] == ("UsersFunction", True)
    assert routes["GET /v1/health"] == ("DocsFunction", False)
    assert spec.authorizer is not None
    assert spec.authorizer.function == "AuthorizerFunction"
    # No identity source: the authorizer runs on every request, even without a header.
    assert spec.authorizer.identity_sources == ()
    assert [(s.function, s.expression) for s in spec.schedules] == [("MaintenanceFunction", "rate(1 day)")]


def test_every_function_gets_the_global_environment_and_handler() -> None:
    spec = load_stack(ROOT / "template.yaml")

    for function in spec.functions.values():
        assert function.handler == "app.lambda_handler"
        assert function.environment["POWERTOOLS_SERVICE_NAME"] == "sms-platform"
        assert (function.code_uri / "app.py").is_file()


def test_queues_event_sources_and_redrive_are_read() -> None:
    spec = load_stack(FIXTURES / "sqs-template.yaml", root=FIXTURES)

    work = spec.queues["WorkQueue"]
    assert (work.dead_letter_queue, work.max_receive_count, work.visibility_timeout) == ("WorkDeadLetterQueue", 2, 1)
    (source,) = spec.sqs_sources
    assert (source.function, source.queue, source.batch_size, source.report_item_failures) == (
        "FlakyConsumerFunction",
        "WorkQueue",
        5,
        True,
    )


def test_the_most_specific_route_wins() -> None:
    spec = load_stack(FIXTURES / "routes-template.yaml", root=FIXTURES)

    assert spec.find_route("GET", "/v1/things/special") is not None
    route, params = spec.find_route("GET", "/v1/things/special")  # type: ignore[misc]
    assert (route.path, params) == ("/v1/things/special", {})
    route, params = spec.find_route("GET", "/v1/things/42")  # type: ignore[misc]
    assert (route.path, params) == ("/v1/things/{thing_id}", {"thing_id": "42"})
    route, params = spec.find_route("GET", "/v1/files/a/b/c.txt")  # type: ignore[misc]
    assert params == {"path": "a/b/c.txt"}
    assert spec.find_route("POST", "/v1/things/42") is None
    assert spec.find_route("GET", "/v1/things/42/extra") is None


@pytest.mark.parametrize(
    ("expression", "seconds"), [("rate(1 minute)", 60), ("rate(5 minutes)", 300), ("rate(1 day)", 86400)]
)
def test_rate_expressions(expression: str, seconds: int) -> None:
    assert rate_seconds(expression) == seconds


def test_cron_schedules_are_refused_rather_than_ignored() -> None:
    with pytest.raises(ValueError, match="rate"):
        rate_seconds("cron(0 3 * * ? *)")
