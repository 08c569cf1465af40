"""AWS for the local stack: moto in server mode on loopback, with the template's resources."""

import json
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.runtime import ACCOUNT_ID, REGION
from local.template import StackSpec

# moto accepts any credentials; these only keep boto3 from looking for real ones.
LOCAL_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",  # not a secret: moto takes anything
    "AWS_SESSION_TOKEN": "local",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


@dataclass
class Resources:
    """Physical names of what was created: !Ref and !GetAtt .Arn values by logical id."""

    refs: dict[str, str] = field(default_factory=dict)
    arns: dict[str, str] = field(default_factory=dict)
    # Other !GetAtt values, by "LogicalId.Attribute" (e.g. DatabaseProxy.Endpoint).
    attributes: dict[str, str] = field(default_factory=dict)
    # The template's conditions, evaluated with the parameters used here (Stage dev: IsProd is false).
    conditions: dict[str, bool] = field(default_factory=dict)
    # Where moto answers, for clients of these resources.
    endpoint_url: str = ""


class MotoServer:
    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint_url = ""

    def start(self) -> str:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self.endpoint_url

    def stop(self) -> None:
        self._server.stop()


def client(service: str, endpoint_url: str) -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=LOCAL_AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    )


def _persisted_secret(secrets_file: Path | None, name: str, length: int) -> str:
    """A generated secret value that survives restarts, as the deployed one would."""
    stored: dict[str, str] = {}
    if secrets_file is not None and secrets_file.exists():
        stored = json.loads(secrets_file.read_text())
    if name not in stored:
        stored[name] = secrets.token_urlsafe(length)[:length]
        if secrets_file is not None:
            secrets_file.parent.mkdir(parents=True, exist_ok=True)
            secrets_file.write_text(json.dumps(stored))
            os.chmod(secrets_file, 0o600)
    return stored[name]


def create_resources(
    spec: StackSpec,
    endpoint_url: str,
    secrets_file: Path | None = None,
    parameters: dict[str, str] | None = None,
) -> Resources:
    """Creates the template's queues, buckets (with their notifications), SNS topics (with their queue
    subscriptions) and secrets.
    `parameters` override the template's defaults."""
    resources = Resources(endpoint_url=endpoint_url)
    for name, parameter in spec.parameters.items():
        if "Default" in parameter:
            resources.refs[name] = str(parameter["Default"])
    resources.refs.update(parameters or {})
    resources.refs.update({"AWS::AccountId": ACCOUNT_ID, "AWS::Region": REGION, "AWS::Partition": "aws"})
    for name, condition in spec.conditions.items():
        resources.conditions[name] = _condition(condition, resources)
    sqs = client("sqs", endpoint_url)
    # Dead-letter queues first: a source queue's redrive policy names its DLQ's ARN.
    ordered = sorted(spec.queues.values(), key=lambda queue: queue.dead_letter_queue is not None)
    for queue in ordered:
        name = queue.properties.get("QueueName") or (f"{queue.logical_id}.fifo" if queue.fifo else queue.logical_id)
        attributes = {"VisibilityTimeout": str(queue.visibility_timeout)}
        if queue.fifo:
            attributes["FifoQueue"] = "true"
        if queue.dead_letter_queue:
            attributes["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": resources.arns[queue.dead_letter_queue],
                    "maxReceiveCount": queue.max_receive_count,
                }
            )
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        resources.refs[queue.logical_id] = url
        resources.arns[queue.logical_id] = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}"

    s3 = client("s3", endpoint_url)
    for bucket in spec.buckets.values():
        name = resolve(bucket.name, resources)
        s3.create_bucket(Bucket=name)
        resources.refs[bucket.logical_id] = name
        resources.arns[bucket.logical_id] = f"arn:aws:s3:::{name}"
        if bucket.notifications:
            s3.put_bucket_notification_configuration(
                Bucket=name,
                NotificationConfiguration={
                    "QueueConfigurations": [
                        {
                            "QueueArn": resources.arns[notification.queue],
                            "Events": list(notification.events),
                            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": notification.prefix}]}},
                        }
                        for notification in bucket.notifications
                    ]
                },
            )

    sns = client("sns", endpoint_url)
    for topic in spec.topics.values():
        name = resolve(topic.name, resources) if topic.name else topic.logical_id
        arn = str(sns.create_topic(Name=name)["TopicArn"])
        resources.refs[topic.logical_id] = arn
        resources.arns[topic.logical_id] = arn
        for subscriber in topic.queues:
            sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=resources.arns[subscriber])
    for logical_id, name in spec.named.items():
        resources.refs[logical_id] = resolve(name, resources)

    for secret in spec.secrets.values():
        value = (
            secret.value
            if secret.value is not None
            else _persisted_secret(secrets_file, secret.logical_id, secret.generate_length or 32)
        )
        arn = create_secret(endpoint_url, f"local/{secret.logical_id}", value)
        resources.refs[secret.logical_id] = arn
        resources.arns[secret.logical_id] = arn
    return resources


def create_secret(endpoint_url: str, name: str, value: str) -> str:
    manager = client("secretsmanager", endpoint_url)
    try:
        return str(manager.create_secret(Name=name, SecretString=value)["ARN"])
    except manager.exceptions.ResourceExistsException:
        # moto's state is per process: a second stack in one process (tests) finds it there.
        manager.put_secret_value(SecretId=name, SecretString=value)
        return str(manager.describe_secret(SecretId=name)["ARN"])


def _condition(value: Any, resources: Resources) -> bool:
    """Fn::Equals / Fn::Not / Fn::And / Fn::Or over parameters, as CloudFormation evaluates them."""
    if "Fn::Equals" in value:
        left, right = (resolve(side, resources) for side in value["Fn::Equals"])
        return left == right
    if "Fn::Not" in value:
        return not _condition(value["Fn::Not"][0], resources)
    if "Fn::And" in value:
        return all(_condition(part, resources) for part in value["Fn::And"])
    if "Fn::Or" in value:
        return any(_condition(part, resources) for part in value["Fn::Or"])
    if "Condition" in value:
        return resources.conditions[value["Condition"]]
    raise ValueError(f"the local stack cannot evaluate the condition {value!r}")


def resolve(value: Any, resources: Resources) -> str:
    """An environment value from the template, with !Ref / !GetAtt .Arn / !If resolved locally."""
    if isinstance(value, dict) and "Fn::If" in value:
        name, when_true, when_false = value["Fn::If"]
        return resolve(when_true if resources.conditions[name] else when_false, resources)
    if isinstance(value, str | int | float | bool):
        return str(value).lower() if isinstance(value, bool) else str(value)
    if isinstance(value, dict) and "Ref" in value and value["Ref"] in resources.refs:
        return resources.refs[value["Ref"]]
    if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        return re.sub(r"\$\{([^}]+)\}", lambda match: _sub_value(match[1], resources), value["Fn::Sub"])
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"]
        if attribute == "Arn" and logical_id in resources.arns:
            return resources.arns[logical_id]
        if f"{logical_id}.{attribute}" in resources.attributes:
            return resources.attributes[f"{logical_id}.{attribute}"]
    raise ValueError(f"the local stack cannot resolve {value!r}")


def _sub_value(name: str, resources: Resources) -> str:
    if "." in name:
        logical_id, attribute = name.split(".", 1)
        if attribute == "Arn" and logical_id in resources.arns:
            return resources.arns[logical_id]
    if name in resources.refs:
        return resources.refs[name]
    raise ValueError(f"the local stack cannot resolve ${{{name}}}")
