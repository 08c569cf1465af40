"""The platform in this process, without sockets: for benchmarks that drive the real handlers.

Same wiring as the local stack (template routes, authorizer, moto resources,
SQS pollers), minus the HTTP server and background threads.
"""

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg

from local import aws, database
from local.gateway import Gateway
from local.pollers import SqsPoller
from local.runtime import FunctionRuntime
from local.stack import ROOT
from local.template import StackSpec, load_stack


@dataclass
class Platform:
    spec: StackSpec
    database_url: str
    resources: aws.Resources
    runtimes: dict[str, FunctionRuntime]
    gateway: Gateway

    def account(self, name: str) -> tuple[str, UUID]:
        """A signed-up, logged-in account: its session token and id."""
        password = "correct horse battery"  # noqa: S105  # a benchmark's throwaway account
        self.call(
            "POST", "/v1/auth/signup", body={"username": name, "email": f"{name}@example.com", "password": password}
        )
        token = self.call("POST", "/v1/auth/login", body={"login": name, "password": password})["access_token"]
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute("SELECT id FROM users WHERE username = %s", (name,)).fetchone()
        assert row is not None
        return str(token), UUID(str(row[0]))

    def call(self, method: str, path: str, token: str | None = None, body: Any = None) -> Any:
        """One API request through the gateway and authorizer; the JSON answer, or AssertionError on >= 300."""
        headers = {"content-type": "application/json", "user-agent": "bench"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        payload = json.dumps(body).encode() if body else b""
        status, _, _, raw = self.gateway.handle(method, path, headers, payload, "127.0.0.1")
        assert status < 300, (status, raw[:300])
        return json.loads(raw) if raw else None

    def poller(self, function: str) -> SqsPoller:
        (source,) = [s for s in self.spec.sqs_sources if s.function == function]
        return SqsPoller(
            source,
            self.resources.refs[source.queue],
            self.resources.arns[source.queue],
            self.runtimes[function],
            aws.client("sqs", self.resources.endpoint_url),
            wait_seconds=1,
        )


@contextmanager
def platform(data_dir: Path, database_name: str) -> Iterator[Platform]:
    """A fresh database `database_name` (dropped afterwards) on DATABASE_URL's server or an embedded one."""
    from smsplatform.core import db
    from smsplatform.core.config import get_settings
    from smsplatform.core.migrations import apply_migrations

    server_url = os.environ.get("DATABASE_URL") or database.start_embedded(data_dir / "postgres")
    database.drop_database(server_url, database_name)
    url = database.ensure_database(server_url, database_name)
    apply_migrations(url, ROOT / "sql")
    spec = load_stack(ROOT / "template.yaml")
    moto = aws.MotoServer()
    endpoint = moto.start()
    saved = dict(os.environ)
    try:
        os.environ.update(aws.LOCAL_AWS_ENV)
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        resources = aws.create_resources(spec, endpoint)
        os.environ.update(
            {
                "DATABASE_URL": url,
                "SMS_JWT_SECRET": secrets.token_urlsafe(32),
                "SMS_IMPORTS_BUCKET": resources.refs["ImportsBucket"],
                "SMS_EXPORTS_BUCKET": resources.refs["ExportsBucket"],
                "SMS_ARCHIVE_BUCKET": resources.refs["ArchiveBucket"],
                "SMS_EXPORT_QUEUE_URL": resources.refs["ExportQueue"],
                "SMS_RELEASE_QUEUE_URL": resources.refs["ReleaseQueue"],
                "SMS_SEND_QUEUE_URL": resources.refs["SendQueue"],
                "SMS_RECEIPTS_QUEUE_URL": resources.refs["ReceiptsQueue"],
                "SMS_CALLBACKS_QUEUE_URL": resources.refs["CallbacksQueue"],
                "SMS_CALLBACK_SIGNING_SECRET": secrets.token_urlsafe(32),
                "SMS_SIMULATOR_SECRET": secrets.token_urlsafe(32),
                "SMS_DB_POOL_MAX_SIZE": "8",
                "POWERTOOLS_SERVICE_NAME": "sms-platform",
                "POWERTOOLS_METRICS_NAMESPACE": "SmsPlatform",
                "POWERTOOLS_LOG_LEVEL": "WARNING",
            }
        )
        get_settings.cache_clear()
        db.close_pool()
        runtimes = {logical_id: FunctionRuntime(fn) for logical_id, fn in spec.functions.items()}
        yield Platform(spec, url, resources, runtimes, Gateway(spec, runtimes))
    finally:
        db.close_pool()
        get_settings.cache_clear()
        os.environ.clear()
        os.environ.update(saved)
        moto.stop()
        database.drop_database(server_url, database_name)
