"""Reads what the local stack needs from the SAM template: routes, functions, queues, schedules.

The template is the single list of routes and resources; nothing here repeats it.
"""

import functools
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml


class TemplateError(Exception):
    pass


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsics (!Ref, !GetAtt, !Sub ...)."""


def _construct_intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_uri: Path
    handler: str
    environment: dict[str, Any]
    timeout: int
    memory_size: int


@dataclass(frozen=True)
class HttpRoute:
    method: str
    path: str
    function: str
    authorized: bool

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.method not in ("ANY", method):
            return None
        found = _path_regex(self.path).fullmatch(path)
        return None if found is None else found.groupdict()


@functools.cache  # a template's few dozen paths; the gateway matches every request against each
def _path_regex(path: str) -> re.Pattern[str]:
    pattern = ""
    for part in re.split(r"(\{[^}]+\})", path):
        if part.startswith("{") and part.endswith("+}"):
            pattern += f"(?P<{part[1:-2]}>.+)"
        elif part.startswith("{"):
            pattern += f"(?P<{part[1:-1]}>[^/]+)"
        else:
            pattern += re.escape(part)
    return re.compile(pattern)


@dataclass(frozen=True)
class AuthorizerSpec:
    name: str
    function: str
    identity_sources: tuple[str, ...]
    simple_responses: bool


@dataclass(frozen=True)
class QueueSpec:
    logical_id: str
    visibility_timeout: int
    dead_letter_queue: str | None
    max_receive_count: int | None
    fifo: bool
    properties: dict[str, Any]


@dataclass(frozen=True)
class SqsSource:
    function: str
    queue: str
    batch_size: int
    report_item_failures: bool


@dataclass(frozen=True)
class ScheduleSpec:
    function: str
    name: str
    expression: str


@dataclass(frozen=True)
class QueueNotification:
    events: tuple[str, ...]
    queue: str
    prefix: str


@dataclass(frozen=True)
class BucketSpec:
    logical_id: str
    name: Any  # a string or an intrinsic (!Sub) resolved against the local account
    notifications: tuple[QueueNotification, ...]


@dataclass(frozen=True)
class SecretSpec:
    logical_id: str
    generate_length: int | None
    value: str | None = None  # a literal SecretString (a placeholder operators replace)


@dataclass(frozen=True)
class TopicSpec:
    """An SNS topic and the queues subscribed to it."""

    logical_id: str
    name: str | None
    queues: tuple[str, ...] = ()


@dataclass
class StackSpec:
    root: Path
    parameters: dict[str, dict[str, Any]]
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    routes: list[HttpRoute] = field(default_factory=list)
    authorizer: AuthorizerSpec | None = None
    queues: dict[str, QueueSpec] = field(default_factory=dict)
    sqs_sources: list[SqsSource] = field(default_factory=list)
    schedules: list[ScheduleSpec] = field(default_factory=list)
    secrets: dict[str, SecretSpec] = field(default_factory=dict)
    buckets: dict[str, BucketSpec] = field(default_factory=dict)
    topics: dict[str, TopicSpec] = field(default_factory=dict)
    # The template's Conditions, as written (evaluated against the parameters where a value needs one).
    conditions: dict[str, Any] = field(default_factory=dict)
    # Resources the local stack only names (e.g. an End User Messaging configuration set): logical id -> name.
    named: dict[str, str] = field(default_factory=dict)

    def find_route(self, method: str, path: str) -> tuple[HttpRoute, dict[str, str]] | None:
        # Like API Gateway: the most specific route wins (fewest path variables, then longest).
        candidates = []
        for route in self.routes:
            params = route.match(method, path)
            if params is not None:
                candidates.append((len(params), -len(route.path), route, params))
        if not candidates:
            return None
        candidates.sort(key=lambda item: (item[0], item[1]))
        return candidates[0][2], candidates[0][3]


def load_yaml(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506  # SafeLoader plus CloudFormation tags
    if not isinstance(document, dict) or "Resources" not in document:
        raise TemplateError(f"{path} is not a CloudFormation/SAM template")
    return document


def _logical_id(reference: Any) -> str:
    """The resource a !Ref or !GetAtt points at."""
    if isinstance(reference, dict):
        if "Ref" in reference:
            return str(reference["Ref"])
        if "Fn::GetAtt" in reference:
            return str(reference["Fn::GetAtt"][0])
    raise TemplateError(f"expected !Ref or !GetAtt, got {reference!r}")


def load_stack(template_path: Path, root: Path | None = None) -> StackSpec:
    document = load_yaml(template_path)
    root = root or template_path.parent
    resources: dict[str, Any] = document["Resources"]
    function_globals = (document.get("Globals") or {}).get("Function") or {}
    spec = StackSpec(
        root=root, parameters=document.get("Parameters") or {}, conditions=document.get("Conditions") or {}
    )

    for logical_id, resource in resources.items():
        kind = resource.get("Type")
        props = resource.get("Properties") or {}
        if kind == "AWS::Serverless::Function":
            _add_function(spec, logical_id, props, function_globals)
        elif kind == "AWS::SQS::Queue":
            redrive = props.get("RedrivePolicy") or {}
            spec.queues[logical_id] = QueueSpec(
                logical_id=logical_id,
                visibility_timeout=int(props.get("VisibilityTimeout", 30)),
                dead_letter_queue=_logical_id(redrive["deadLetterTargetArn"]) if redrive else None,
                max_receive_count=int(redrive["maxReceiveCount"]) if redrive else None,
                fifo=bool(props.get("FifoQueue", False)),
                properties=props,
            )
        elif kind == "AWS::SecretsManager::Secret":
            generate = props.get("GenerateSecretString")
            spec.secrets[logical_id] = SecretSpec(
                logical_id,
                int(generate.get("PasswordLength", 32)) if generate is not None else None,
                props.get("SecretString") if isinstance(props.get("SecretString"), str) else None,
            )
        elif kind == "AWS::SNS::Topic":
            spec.topics[logical_id] = TopicSpec(logical_id, props.get("TopicName"))
        elif kind == "AWS::SMSVOICE::ConfigurationSet":
            spec.named[logical_id] = props.get("ConfigurationSetName") or logical_id
        elif kind == "AWS::S3::Bucket":
            spec.buckets[logical_id] = _bucket(logical_id, props)
        elif kind == "AWS::Serverless::HttpApi":
            spec.authorizer = _authorizer(props) or spec.authorizer
    for resource in resources.values():
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::SNS::Subscription" and props.get("Protocol") == "sqs":
            topic = spec.topics[_logical_id(props["TopicArn"])]
            spec.topics[topic.logical_id] = replace(topic, queues=(*topic.queues, _logical_id(props["Endpoint"])))
    # SAM: a route without Auth uses the API's default authorizer, if it has one.
    spec.routes = [
        HttpRoute(route.method, route.path, route.function, route.authorized and spec.authorizer is not None)
        for route in spec.routes
    ]
    return spec


def _bucket(logical_id: str, props: dict[str, Any]) -> BucketSpec:
    notifications = []
    for entry in (props.get("NotificationConfiguration") or {}).get("QueueConfigurations", []):
        rules = ((entry.get("Filter") or {}).get("S3Key") or {}).get("Rules", [])
        prefix = next((rule["Value"] for rule in rules if rule["Name"].lower() == "prefix"), "")
        notifications.append(QueueNotification((entry["Event"],), _logical_id(entry["Queue"]), prefix))
    return BucketSpec(logical_id, props.get("BucketName") or logical_id.lower(), tuple(notifications))


def _authorizer(api_props: dict[str, Any]) -> AuthorizerSpec | None:
    auth = api_props.get("Auth") or {}
    default = auth.get("DefaultAuthorizer")
    if not default:
        return None
    config = auth["Authorizers"][default]
    identity = config.get("Identity") or {}
    sources = [f"$request.header.{name}" for name in identity.get("Headers", [])]
    sources += [f"$request.querystring.{name}" for name in identity.get("QueryStrings", [])]
    if not identity:
        sources = ["$request.header.Authorization"]  # SAM's default identity source
    return AuthorizerSpec(
        name=default,
        function=_logical_id(config["FunctionArn"]),
        identity_sources=tuple(sources),
        simple_responses=bool(config.get("EnableSimpleResponses", False)),
    )


def _add_function(spec: StackSpec, logical_id: str, props: dict[str, Any], globals_: dict[str, Any]) -> None:
    environment = {
        **((globals_.get("Environment") or {}).get("Variables") or {}),
        **((props.get("Environment") or {}).get("Variables") or {}),
    }
    spec.functions[logical_id] = FunctionSpec(
        logical_id=logical_id,
        code_uri=(spec.root / props["CodeUri"]).resolve(),
        handler=props.get("Handler") or globals_["Handler"],
        environment=environment,
        timeout=int(props.get("Timeout", globals_.get("Timeout", 3))),
        memory_size=int(props.get("MemorySize", globals_.get("MemorySize", 128))),
    )
    for event_name, event in (props.get("Events") or {}).items():
        event_props = event.get("Properties") or {}
        if event["Type"] == "HttpApi":
            authorizer = (event_props.get("Auth") or {}).get("Authorizer")
            if authorizer not in (None, "NONE"):
                raise TemplateError(f"{logical_id}.{event_name}: only the API's default authorizer is supported")
            spec.routes.append(
                HttpRoute(
                    method=str(event_props["Method"]).upper(),
                    path=event_props["Path"],
                    function=logical_id,
                    authorized=authorizer != "NONE",
                )
            )
        elif event["Type"] == "SQS":
            spec.sqs_sources.append(
                SqsSource(
                    function=logical_id,
                    queue=_logical_id(event_props["Queue"]),
                    batch_size=int(event_props.get("BatchSize", 10)),
                    report_item_failures="ReportBatchItemFailures" in (event_props.get("FunctionResponseTypes") or []),
                )
            )
        elif event["Type"] in ("Schedule", "ScheduleV2"):
            if event_props.get("Enabled", True) is not False and event_props.get("State", "ENABLED") == "ENABLED":
                expression = event_props.get("Schedule") or event_props["ScheduleExpression"]
                spec.schedules.append(ScheduleSpec(logical_id, event_name, expression))
        else:
            raise TemplateError(f"{logical_id}.{event_name}: the local stack does not drive {event['Type']} events")
