"""Handlers run in-process against the real PostgreSQL, through the same gateway code
as the local stack: routes from template.yaml, the real authorizer, API Gateway v2 events."""

import json
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from local import aws
from local.gateway import Gateway
from local.pollers import SqsPoller
from local.runtime import FunctionRuntime
from local.template import StackSpec, load_stack
from tests.support.harness import CALLBACK_KEY, SIGNING_KEY, SIMULATOR_KEY, Api, Pipeline
from tests.support.paths import ROOT

# Tables the tests write to, emptied after each test. user_roles keeps its role
# definitions (user_id NULL) and loses per-user grants; schema_migrations stays.
_CLEANUP = """
    TRUNCATE api_tokens, billing_transactions, audit_logs, contact_groups, contacts, contact_group_members,
             opt_outs, sms_campaigns, campaign_target_groups, sms_delivery_logs, login_failures,
             contact_imports, contact_import_errors, idempotency_keys, simulator_messages, simulator_calls,
             inbound_messages, status_callbacks, provider_slots, destination_prices, exports, archived_months,
             campaign_message_counts, campaign_release_shares, send_batches, provider_message_ids,
             settlements_due;
    DELETE FROM user_roles WHERE user_id IS NOT NULL;
    DELETE FROM users;
"""


@pytest.fixture(scope="session")
def aws_resources(stack_spec: StackSpec) -> Iterator[aws.Resources]:
    """moto in server mode with the template's queues, buckets and secrets, as the local stack makes them."""
    server = aws.MotoServer()
    endpoint = server.start()
    patch = pytest.MonkeyPatch()
    for key, value in aws.LOCAL_AWS_ENV.items():
        patch.setenv(key, value)
    patch.setenv("AWS_ENDPOINT_URL", endpoint)
    resources = aws.create_resources(stack_spec, endpoint)
    yield resources
    patch.undo()
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def platform_env(database_url: str, aws_resources: aws.Resources) -> Iterator[None]:
    from smsplatform.core import db
    from smsplatform.core.config import get_settings

    patch = pytest.MonkeyPatch()
    patch.setenv("SMS_IMPORTS_BUCKET", aws_resources.refs["ImportsBucket"])
    patch.setenv("SMS_EXPORTS_BUCKET", aws_resources.refs["ExportsBucket"])
    patch.setenv("SMS_ARCHIVE_BUCKET", aws_resources.refs["ArchiveBucket"])
    for queue in ("Release", "Send", "Receipts", "Callbacks", "Export"):
        patch.setenv(f"SMS_{queue.upper()}_QUEUE_URL", aws_resources.refs[f"{queue}Queue"])
    # Receipts go straight onto the receipts queue here (no HTTP server); the e2e tests
    # cover the simulator posting them to the webhook.
    patch.setenv("SMS_SIMULATOR_SECRET", SIMULATOR_KEY)
    patch.delenv("SMS_SIMULATOR_SECRET_ARN", raising=False)
    patch.delenv("SMS_PUBLIC_BASE_URL", raising=False)
    patch.setenv("SMS_SEND_RETRY_BASE_SECONDS", "0")
    patch.setenv("SMS_SIMULATOR_RETRY_AFTER_SECONDS", "0")
    patch.setenv("SMS_SIMULATOR_SLOW_MS", "50")
    # Status callbacks go to loopback endpoints here, and are retried at once.
    patch.setenv("SMS_CALLBACK_SIGNING_SECRET", CALLBACK_KEY)
    patch.delenv("SMS_CALLBACK_SIGNING_SECRET_ARN", raising=False)
    patch.setenv("SMS_CALLBACK_ALLOW_HTTP", "true")
    patch.setenv("SMS_CALLBACK_RETRY_BASE_SECONDS", "0")
    patch.delenv("SMS_TWILIO_SECRET_ARN", raising=False)
    patch.setenv("SMS_SEND_BATCH_SIZE", "4")
    patch.setenv("DATABASE_URL", database_url)
    patch.setenv("SMS_JWT_SECRET", SIGNING_KEY)
    patch.delenv("SMS_DATABASE_SECRET_ARN", raising=False)
    patch.delenv("SMS_JWT_SECRET_ARN", raising=False)
    patch.setenv("SMS_DB_POOL_MAX_SIZE", "4")
    patch.setenv("POWERTOOLS_SERVICE_NAME", "sms-platform")
    patch.setenv("POWERTOOLS_METRICS_NAMESPACE", "SmsPlatform")
    patch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    get_settings.cache_clear()
    db.close_pool()
    yield
    db.close_pool()
    get_settings.cache_clear()
    patch.undo()


@pytest.fixture
def configure() -> Iterator[Callable[..., None]]:
    """Changes settings for one test: `configure(simulator_idempotent=True)` sets SMS_SIMULATOR_IDEMPOTENT,
    and `configure(send_batch_size=None)` unsets SMS_SEND_BATCH_SIZE (back to its default)."""
    from smsplatform.core.config import get_settings

    patch = pytest.MonkeyPatch()

    def apply(**values: Any) -> None:
        for name, value in values.items():
            if value is None:
                patch.delenv(f"SMS_{name.upper()}", raising=False)
            else:
                patch.setenv(f"SMS_{name.upper()}", value if isinstance(value, str) else json.dumps(value))
        get_settings.cache_clear()

    yield apply
    patch.undo()
    get_settings.cache_clear()


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A direct connection for arranging and checking state; autocommit, like a psql session."""
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as connection:
        yield connection


# Every campaign's counters (sql/0020) against a count of its rows, state by state: whatever a test did
# to its messages (sent, retried, cancelled, expired, held, recovered, deleted), stats must still be exact.
_COUNTERS_DISAGREE = """
    SELECT coalesce(r.campaign_id, c.campaign_id) AS campaign_id, coalesce(r.state, c.state) AS state,
           r.n AS rows, c.n AS counted, r.credits AS rows_credits, c.credits AS counted_credits
      FROM (SELECT campaign_id, sms_message_state(status, held, error_code) AS state, count(*) AS n,
                   sum(cost) AS credits
              FROM sms_delivery_logs WHERE campaign_id IS NOT NULL GROUP BY 1, 2) r
      FULL JOIN (SELECT campaign_id, state, sum(messages) AS n, sum(credits) AS credits FROM campaign_message_counts
                  GROUP BY 1, 2 HAVING sum(messages) <> 0 OR sum(credits) <> 0) c
             ON c.campaign_id = r.campaign_id AND c.state = r.state
     WHERE (r.n, r.credits) IS DISTINCT FROM (c.n, c.credits)
"""


@pytest.fixture(autouse=True)
def clean_tables(database_url: str) -> Iterator[None]:
    yield
    with psycopg.connect(database_url, autocommit=True) as connection:
        archived = connection.execute("SELECT EXISTS (SELECT 1 FROM archived_months)").fetchone()
        disagree = [] if archived and archived[0] else connection.execute(_COUNTERS_DISAGREE).fetchall()
        connection.execute(_CLEANUP)
    assert disagree == [], (
        f"campaign counters disagree with the rows (campaign, state, rows, counted, their credits): {disagree}"
    )


@pytest.fixture(scope="session")
def stack_spec() -> StackSpec:
    return load_stack(ROOT / "template.yaml")


@pytest.fixture(scope="session")
def runtimes(stack_spec: StackSpec, platform_env: None) -> dict[str, FunctionRuntime]:
    return {logical_id: FunctionRuntime(spec) for logical_id, spec in stack_spec.functions.items()}


@pytest.fixture(scope="session")
def api(stack_spec: StackSpec, runtimes: dict[str, FunctionRuntime]) -> Api:
    return Api(Gateway(stack_spec, runtimes))


@pytest.fixture
def user(api: Api) -> dict[str, Any]:
    """A signed-up client account with a session token under "token"."""
    created = api.signup("alice")
    return {**created, "token": api.login("alice")}


@pytest.fixture
def other_user(api: Api) -> dict[str, Any]:
    created = api.signup("bob")
    return {**created, "token": api.login("bob")}


@pytest.fixture
def admin(api: Api, database_url: str) -> dict[str, Any]:
    """An operator, made the way the operator command makes one."""
    from smsplatform.accounts.accounts import promote_or_create_admin

    with psycopg.connect(database_url, row_factory=dict_row) as connection:
        promote_or_create_admin(
            connection, username="operator", email="ops@example.com", password="night shift passphrase"
        )
        row = connection.execute("SELECT id::text FROM users WHERE username = 'operator'").fetchone()
    assert row is not None
    return {"id": row["id"], "token": api.login("operator", "night shift passphrase")}


@pytest.fixture
def sqs_worker(
    stack_spec: StackSpec, runtimes: dict[str, FunctionRuntime], aws_resources: aws.Resources
) -> Callable[[str], SqsPoller]:
    """A poller for `function`'s SQS source, one poll at a time, as Lambda's event source mapping would."""

    def make(function: str) -> SqsPoller:
        (source,) = [s for s in stack_spec.sqs_sources if s.function == function]
        sqs = aws.client("sqs", aws_resources.endpoint_url)
        return SqsPoller(
            source,
            aws_resources.refs[source.queue],
            aws_resources.arns[source.queue],
            runtimes[source.function],
            sqs,
            wait_seconds=1,
        )

    return make


@pytest.fixture
def import_worker(sqs_worker: Callable[[str], SqsPoller]) -> SqsPoller:
    """Delivers S3 notifications from ImportQueue to ContactImportFunction, one poll at a time.

    A notification left over from an earlier test names an import that is gone or finished: the function
    ignores it, as it would a redelivery."""
    return sqs_worker("ContactImportFunction")


@pytest.fixture
def pipeline(
    stack_spec: StackSpec, runtimes: dict[str, FunctionRuntime], aws_resources: aws.Resources
) -> Iterator[Pipeline]:
    sqs = aws.client("sqs", aws_resources.endpoint_url)
    pollers = {}
    for function in ("DispatcherFunction", "SenderFunction", "ReceiptsFunction", "CallbacksFunction"):
        (source,) = [s for s in stack_spec.sqs_sources if s.function == function]
        pollers[function] = SqsPoller(
            source,
            aws_resources.refs[source.queue],
            aws_resources.arns[source.queue],
            runtimes[function],
            sqs,
            wait_seconds=0,
        )
    driven = Pipeline(pollers, sqs)
    driven.discard()
    yield driven
    driven.discard()
