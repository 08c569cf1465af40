"""Starts and stops the whole local stack in one process."""

import json
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from local import aws, database
from local.aws import MotoServer
from local.gateway import Gateway, GatewayServer, RequestObserver
from local.pollers import ChildPoller, SqsPoller
from local.runtime import FunctionRuntime
from local.scheduler import Scheduler
from local.template import StackSpec, load_stack

log = logging.getLogger("local.stack")

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class AdminAccount:
    username: str
    email: str
    generated_password: str | None  # set only when this start generated it


@dataclass
class LocalStack:
    data_dir: Path
    port: int = 3000
    host: str = "127.0.0.1"
    template: Path = ROOT / "template.yaml"
    root: Path = ROOT
    database_url: str | None = None
    spec: StackSpec = field(init=False)
    admin: AdminAccount | None = field(init=False, default=None)
    _moto: MotoServer | None = field(init=False, default=None)
    _gateway: GatewayServer | None = field(init=False, default=None)
    # Functions whose pollers run as child processes (restarted when they die) instead of threads.
    process_functions: frozenset[str] = frozenset()
    _pollers: list[SqsPoller] = field(init=False, default_factory=list)
    children: dict[str, ChildPoller] = field(init=False, default_factory=dict)
    _scheduler: Scheduler | None = field(init=False, default=None)
    database_display: str = field(init=False, default="")
    # Told of each request the gateway serves (the console's request lines).
    on_request: RequestObserver | None = None

    @property
    def base_url(self) -> str:
        port = self._gateway.port if self._gateway else self.port
        return f"http://{self.host}:{port}"

    def start(self) -> None:
        from smsplatform.core.migrations import apply_migrations

        self.spec = load_stack(self.template, self.root)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        db_url = self.database_url or database.ensure_database(
            database.start_embedded(self.data_dir / "postgres"), database.DEFAULT_DATABASE
        )
        self.database_display = psycopg.conninfo.make_conninfo(
            db_url, password="***" if "password=" in db_url else None
        )
        applied = apply_migrations(db_url, self.root / "sql")
        log.info("migrations applied: %s", ", ".join(applied) or "none pending")

        self._moto = MotoServer()
        endpoint = self._moto.start()
        os.environ.update(aws.LOCAL_AWS_ENV)
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        (self.data_dir / "aws-endpoint").write_text(endpoint)  # for `python -m local dlq` and `redrive`
        resources = aws.create_resources(self.spec, endpoint, secrets_file=self.data_dir / "secrets.json")
        # The local database stands in for Aurora behind RDS Proxy: its connection goes
        # into a secret shaped like the one RDS manages, and the proxy endpoint is its host.
        connection = psycopg.conninfo.conninfo_to_dict(db_url)
        resources.attributes["DatabaseCluster.MasterUserSecret.SecretArn"] = aws.create_secret(
            endpoint, "local/DatabaseCluster", _rds_secret(db_url)
        )
        resources.attributes["DatabaseProxy.Endpoint"] = str(connection.get("host") or "localhost")
        self._configure_environment(resources)
        os.environ["SMS_DATABASE_NAME"] = str(connection.get("dbname") or "postgres")
        os.environ["SMS_DATABASE_PORT"] = str(connection.get("port") or 5432)

        runtimes = {logical_id: FunctionRuntime(fn) for logical_id, fn in self.spec.functions.items()}
        for runtime in runtimes.values():
            runtime.warm()
        self.admin = _ensure_admin(db_url)

        self._gateway = GatewayServer(Gateway(self.spec, runtimes, observer=self.on_request), self.host, self.port)
        self._gateway.start()
        (self.data_dir / "base-url").write_text(self.base_url)  # for `python -m local inbound`
        sqs = aws.client("sqs", endpoint)
        self._pollers = [
            SqsPoller(
                source, resources.refs[source.queue], resources.arns[source.queue], runtimes[source.function], sqs
            )
            for source in self.spec.sqs_sources
            if source.function not in self.process_functions
        ]
        for poller in self._pollers:
            poller.start()
        (self.data_dir / "pollers").mkdir(exist_ok=True)
        for function in sorted(self.process_functions):
            pid_file = self.data_dir / "pollers" / f"{function}.pid"
            self.children[function] = ChildPoller(function, self.template, self.root, pid_file, dict(os.environ))
            self.children[function].start()
        self._scheduler = Scheduler(self.spec.schedules, runtimes)
        self._scheduler.start()

    def _configure_environment(self, resources: aws.Resources) -> None:
        """All functions share this process, so their template environments must agree."""
        merged: dict[str, str] = {}
        # The API's public URL is this gateway's, not the deployed API's; the provider route and caps
        # (the template's parameters) may be chosen by whoever starts the stack.
        local_values = {
            "SMS_PUBLIC_BASE_URL": self.base_url,
            "SMS_PROVIDER": "simulator",  # the template has no default: a deploy must name its providers
            # One pool serves every function of this process (the sender's four batches among them).
            "SMS_DB_POOL_MAX_SIZE": os.environ.get("SMS_DB_POOL_MAX_SIZE", "8"),
            **{key: os.environ[key] for key in ("SMS_PROVIDER", "SMS_PROVIDER_CAPS") if os.environ.get(key)},
        }
        for fn in self.spec.functions.values():
            for key, raw in fn.environment.items():
                value = local_values.get(key) or aws.resolve(raw, resources)
                if merged.setdefault(key, value) != value:
                    raise RuntimeError(f"functions disagree on {key}; the local stack runs them in one process")
        os.environ.update(merged)
        # Handlers read the database from the secret, as deployed; no URL leaks to them.
        os.environ.pop("DATABASE_URL", None)
        os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
        # Metrics stay on (EMF lines on stdout, as in Lambda): Powertools never clears a
        # disabled metric set, so disabling them would grow it until it fails.
        os.environ.setdefault("SMS_PUBLIC_BASE_URL", self.base_url)
        # Status callbacks may go to plain http:// and loopback endpoints on a laptop.
        os.environ.setdefault("SMS_CALLBACK_ALLOW_HTTP", "true")

    def run_schedules_now(self) -> None:
        if self._scheduler:
            self._scheduler.run_now()

    def stop(self) -> None:
        if self._scheduler:
            self._scheduler.stop()
        for poller in self._pollers:
            poller.stop()
        for child in self.children.values():
            child.stop()
        if self._gateway:
            self._gateway.stop()
            (self.data_dir / "base-url").unlink(missing_ok=True)
        from smsplatform.core import db

        db.close_pool()
        if self._moto:
            self._moto.stop()
            (self.data_dir / "aws-endpoint").unlink(missing_ok=True)


def _rds_secret(db_url: str) -> str:
    """The database connection in the shape RDS-managed secrets have."""
    params = psycopg.conninfo.conninfo_to_dict(db_url)
    return json.dumps(
        {
            "engine": "postgres",
            "host": params.get("host") or "localhost",
            "port": int(params.get("port") or 5432),
            "username": params.get("user") or "postgres",
            "password": params.get("password") or "",
            "dbname": params.get("dbname") or "postgres",
            "sslmode": params.get("sslmode") or "prefer",
        }
    )


def _ensure_admin(db_url: str) -> AdminAccount:
    from smsplatform.accounts.accounts import ensure_admin

    email = os.environ.get("SMS_ADMIN_EMAIL") or "admin@localhost.localdomain"
    password = os.environ.get("SMS_ADMIN_PASSWORD")
    generated = None
    if not password:
        generated = password = secrets.token_urlsafe(18)
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        created = ensure_admin(conn, username="admin", email=email, password=password)
    return AdminAccount("admin", email, generated if created else None)
