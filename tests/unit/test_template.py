"""The local stack's reading of template.yaml: routes, authorizer, queues, schedules."""

from pathlib import Path

import pytest

from local.scheduler import Scheduler, rate_seconds
from local.template import load_stack
from tests.support.paths import ROOT

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
    assert sorted((s.function, s.expression) for s in spec.schedules) == [
        ("ArchiveFunction", "rate(1 day)"),
        ("MaintenanceFunction", "rate(1 day)"),
        ("SchedulerFunction", "rate(1 minute)"),
    ]


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


def test_run_now_fires_every_schedule_at_the_next_tick_then_each_keeps_its_rate() -> None:
    """The local stack's SIGUSR1: the scheduler's tick and the maintenance now, not at their next turn."""
    spec = load_stack(ROOT / "template.yaml")
    fired: list[str] = []
    scheduler = Scheduler(spec.schedules, {})
    scheduler.fire = lambda schedule: fired.append(schedule.name)  # type: ignore[method-assign]
    scheduler.tick(1000.0)  # the start: each fires once
    fired.clear()
    scheduler.tick(1001.0)
    assert fired == []

    scheduler.run_now()
    scheduler.tick(1002.0)
    assert sorted(fired) == sorted(s.name for s in spec.schedules)
    fired.clear()
    scheduler.tick(1003.0)
    assert fired == []


_GRANTS = {
    "AWS::SQS::Queue": {"SQSSendMessagePolicy": "QueueName", "SQSPollerPolicy": "QueueName"},
    "AWS::S3::Bucket": {"S3ReadPolicy": "BucketName", "S3WritePolicy": "BucketName", "S3CrudPolicy": "BucketName"},
    "AWS::SecretsManager::Secret": {"AWSSecretsManagerGetSecretValuePolicy": "SecretArn"},
}


def _named(value: object) -> str | None:
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
    return None


def test_every_resource_a_function_is_told_about_is_granted_to_it() -> None:
    """A queue, bucket or secret in a function's environment is one it may use: its policies say so."""
    from local.template import load_yaml

    document = load_yaml(ROOT / "template.yaml")
    resources = document["Resources"]
    global_env = document["Globals"]["Function"]["Environment"]["Variables"]
    checked = 0
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        env = {**global_env, **((props.get("Environment") or {}).get("Variables") or {})}
        granted = {
            (policy_name, _named(next(iter(arguments.values()))))
            for policy in props.get("Policies", [])
            if isinstance(policy, dict)
            for policy_name, arguments in policy.items()
            if isinstance(arguments, dict)  # SAM policy templates; inline statements name no template resource
        }
        for variable, value in env.items():
            target = _named(value)
            kind = resources.get(target, {}).get("Type") if target else None
            if kind not in _GRANTS:
                continue
            checked += 1
            assert any((policy, target) in granted for policy in _GRANTS[kind]), (
                f"{logical_id} is given {variable} ({target}) but no policy grants it"
            )
    assert checked >= 3  # the imports bucket (twice) and the session secret, at least


def test_every_function_reading_the_database_secret_is_granted_it() -> None:
    from local.template import load_yaml

    document = load_yaml(ROOT / "template.yaml")
    for logical_id, resource in document["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        secrets = [
            policy["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"]
            for policy in resource["Properties"].get("Policies", [])
            if isinstance(policy, dict) and "AWSSecretsManagerGetSecretValuePolicy" in policy
        ]
        assert {"Fn::GetAtt": ["DatabaseCluster", "MasterUserSecret.SecretArn"]} in secrets, logical_id


def test_every_function_and_dead_letter_queue_has_its_alarms() -> None:
    """A function or dead-letter queue added without its alarm fails here."""
    from local.template import load_yaml

    resources = load_yaml(ROOT / "template.yaml")["Resources"]
    functions = [name for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"]
    queues = [name for name in resources if name.endswith("DeadLetterQueue")]
    assert len(functions) >= 16
    assert len(queues) >= 5
    for function in functions:
        alarm = resources[f"{function.removesuffix('Function')}ErrorsAlarm"]["Properties"]
        assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function}}]
        assert alarm["AlarmDescription"] == f"{function} invocations failed."
    for queue in queues:
        alarm = resources[f"{queue.removesuffix('DeadLetterQueue')}DeadLetterAlarm"]["Properties"]
        assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]


def test_a_deploy_names_its_providers_and_a_prod_stack_never_the_simulator() -> None:
    from local.template import load_yaml

    document = load_yaml(ROOT / "template.yaml")
    route = document["Parameters"]["ProviderRoute"]
    (rule,) = document["Rules"].values()

    assert "Default" not in route  # sam deploy fails unless ProviderRoute is given
    assert set(route["AllowedValues"]) == {"simulator", "aws_sms", "sns", "twilio"}
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "Stage"}, "prod"]}
    assert rule["Assertions"][0]["Assert"] == {"Fn::Not": [{"Fn::Contains": [{"Ref": "ProviderRoute"}, "simulator"]}]}


def test_a_send_lease_too_short_to_send_a_batch_in_is_refused_by_configuration() -> None:
    import pydantic

    from smsplatform.core.config import Settings

    for lease in ("0", "29"):
        with pytest.raises(pydantic.ValidationError, match="send_lease_seconds"):
            Settings(_env_file=None, send_lease_seconds=lease)  # type: ignore[call-arg]
    assert Settings(send_lease_seconds=180).send_lease_seconds == 180  # type: ignore[call-arg]
