"""One validated settings model, read from the environment once per process."""

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMS_", extra="ignore", frozen=True)

    # Database: a libpq URL (local stack, tests) or a Secrets Manager secret in the
    # RDS format {host, port, username, password, dbname} (deployed).
    database_url: Annotated[
        SecretStr | None, Field(validation_alias=AliasChoices("DATABASE_URL", "SMS_DATABASE_URL"))
    ] = None
    database_secret_arn: str | None = None
    # Deployed: RDS keeps only {username, password} in its managed secret; where to
    # connect (the RDS Proxy endpoint) and which database come from here.
    database_host: str | None = None
    # The read replica's endpoint (the proxy's read-only endpoint deployed): lists, statistics and exports
    # read there. Unset or empty, or with read_from_writer, they read from the writer (read-after-write).
    database_reader_host: str | None = None
    read_from_writer: bool = False
    database_port: int | None = None
    database_name: str | None = None
    db_pool_max_size: Annotated[int, Field(ge=1, le=50)] = 1
    db_connect_timeout_seconds: Annotated[float, Field(gt=0)] = 10.0

    # Sessions: HS256 JWTs signed with a key from the environment (tests) or from
    # Secrets Manager (deployed, local stack).
    jwt_secret: SecretStr | None = None
    jwt_secret_arn: str | None = None
    session_ttl_seconds: Annotated[int, Field(ge=60, le=86_400)] = 3600
    # Passwords: argon2id at RFC 9106's low-memory profile (t=3, 64 MiB, p=4), about 0.25 s of CPU a hash or
    # check. The test suite lowers it (its fixtures sign up and log in hundreds of accounts); deployments keep it.
    password_hash_time_cost: Annotated[int, Field(ge=1)] = 3
    password_hash_memory_kib: Annotated[int, Field(ge=8)] = 65_536
    password_hash_parallelism: Annotated[int, Field(ge=1)] = 4
    secrets_max_age_seconds: Annotated[int, Field(ge=0)] = 300

    # Public base URL of the API, used in the OpenAPI document's servers list.
    public_base_url: str | None = None

    # Contact files: uploaded (or posted) CSVs land here; their upload starts the import.
    imports_bucket: str | None = None
    # The migration files, as the shared layer ships them (/opt is the layer's root in Lambda).
    sql_dir: Path = Path("/opt/sql")
    upload_url_ttl_seconds: Annotated[int, Field(ge=60, le=86_400)] = 3600
    # Exports (gzip CSVs of an account's messages): their bucket, queue, how long a download URL works and
    # how long the object is kept (the bucket's lifecycle deletes it then).
    exports_bucket: str | None = None
    export_queue_url: str | None = None
    export_url_ttl_seconds: Annotated[int, Field(ge=60, le=604_800)] = 3600
    export_retention_days: Annotated[int, Field(ge=1, le=365)] = 7
    # Retention: months of delivery logs and audit logs kept live (older months are archived to the archive
    # bucket, then dropped), and days of inbound messages kept (older ones are deleted).
    archive_bucket: str | None = None
    delivery_log_retention_months: Annotated[int, Field(ge=1, le=120)] = 13
    audit_log_retention_months: Annotated[int, Field(ge=1, le=240)] = 25
    inbound_retention_days: Annotated[int, Field(ge=1, le=3650)] = 400
    # Days delivered or abandoned status callbacks are kept (for support questions) before they are purged.
    callback_retention_days: Annotated[int, Field(ge=1, le=365)] = 7

    # The send pipeline's queues (URLs): release messages, batch descriptors, receipts.
    release_queue_url: str | None = None
    send_queue_url: str | None = None
    receipts_queue_url: str | None = None
    # Connections that materialise a campaign's recipients side by side (each a share of the contacts).
    dispatch_workers: Annotated[int, Field(ge=1, le=16)] = 4
    # A campaign whose target groups hold more members than this is released in chunks (ADR 0013): each
    # worker commits and reserves its share a chunk at a time, at most this many recipients, so sending
    # starts within a second or two whatever the audience. A smaller one is released whole, all or nothing.
    release_chunk_rows: Annotated[int, Field(ge=1, le=1_000_000)] = 50_000
    # A chunked release starts no chunk after this many seconds in one invocation; it hands the rest to a
    # fresh release message instead, well before the dispatcher's 300 s timeout.
    release_seconds: Annotated[int, Field(ge=0, le=840)] = 240
    # Recipients per batch descriptor (one SQS record, one sender invocation).
    send_batch_size: Annotated[int, Field(ge=1, le=5000)] = 1000
    # Provider calls in flight at once within a batch (they wait on the network).
    send_concurrency: Annotated[int, Field(ge=1, le=256)] = 64
    # Attempts per message before a transient failure becomes final.
    send_max_attempts: Annotated[int, Field(ge=1, le=20)] = 5
    # First retry delay after a transient failure; it doubles with each attempt.
    send_retry_base_seconds: Annotated[int, Field(ge=0, le=900)] = 5
    # A row claimed longer ago than this belongs to a sender that died; it may be reclaimed.
    send_lease_seconds: Annotated[int, Field(ge=30, le=3600)] = 180
    # A throttled batch waits in the sender at most this long; further out, it is re-queued with a delay.
    send_max_wait_seconds: Annotated[int, Field(ge=0, le=600)] = 20
    # A queued row idle this long has no queue message coming back for it (lost, or in a dead-letter
    # queue): the scheduler's sweep announces its batch again, at most `send_max_recoveries` times, then
    # fails it as `expired`. API sends are announced once at once, so theirs is shorter.
    send_stall_seconds: Annotated[int, Field(ge=60, le=86_400)] = 1200  # > SQS's longest delay (900 s)
    send_request_stall_seconds: Annotated[int, Field(ge=60, le=86_400)] = 120
    send_max_recoveries: Annotated[int, Field(ge=0, le=20)] = 3

    # Credits a segment costs to a country neither the platform's price list nor the account's names;
    # 0 means such countries are unpriced (refused on single sends, skipped in campaigns).
    default_credits_per_segment: Annotated[int, Field(ge=0, le=10_000)] = 1
    # Single messages an account may have waiting (scheduled, queued or sending); a send beyond it is refused
    # (429 queue-full; Twilio's 21611 on the Twilio-compatible API). Campaigns do not count.
    max_queued_messages: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000

    # The default provider route: names tried in order, comma-separated ("twilio,aws_sms"); an
    # account's own route (users.provider_route) replaces it. A transient failure fails over to the next.
    provider: str = "simulator"
    # Messages per second each provider may take, shared by every sender ({"twilio": 100}); absent: no cap.
    provider_caps: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)

    # Twilio: {"account_sid", "auth_token", "from_number" or "messaging_service_sid"} from Secrets Manager
    # (or SMS_TWILIO_SECRET as that JSON, for tests); the API host is configurable for tests.
    twilio_secret: SecretStr | None = None
    twilio_secret_arn: str | None = None
    twilio_base_url: str = "https://api.twilio.com"
    # AWS End User Messaging SMS: the configuration set whose event destination (SNS) feeds delivery
    # events to the receipts queue, and the origination identity used when a message names no sender.
    aws_sms_configuration_set: str | None = None
    aws_sms_origination_identity: str | None = None
    # Amazon SNS Publish: Transactional or Promotional.
    sns_sms_type: Literal["Transactional", "Promotional"] = "Transactional"
    # SNS topics allowed to post signed notifications to /v1/webhooks/aws_sms/... (delivery events, inbound).
    aws_sns_topic_arns: list[str] = Field(default_factory=list)
    # Seconds a provider call may take before it counts as failed.
    provider_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 10.0

    # Customer status callbacks: the platform key each account's secret is derived from, the queue
    # that announces accounts with callbacks due, and how hard to try a failing endpoint.
    callback_signing_secret: SecretStr | None = None
    callback_signing_secret_arn: str | None = None
    callbacks_queue_url: str | None = None
    callback_timeout_seconds: Annotated[float, Field(gt=0, le=30)] = 5.0
    callback_max_attempts: Annotated[int, Field(ge=1, le=50)] = 12
    callback_retry_base_seconds: Annotated[int, Field(ge=0, le=3600)] = 10
    callback_batch_size: Annotated[int, Field(ge=1, le=1000)] = 100
    # POSTs in flight at once per invocation, to one account's endpoint.
    callback_concurrency: Annotated[int, Field(ge=1, le=64)] = 8
    # Plain http:// callback URLs (and loopback hosts) are accepted only where this is set: local stack, tests.
    callback_allow_http: bool = False
    # Simulator: latency per call, outcomes by number suffix (see providers/simulator.py), and how
    # receipts come back. It is not idempotent unless told: like Twilio and SNS, a repeat is a second copy.
    simulator_latency_ms: Annotated[int, Field(ge=0, le=10_000)] = 0
    simulator_rules: dict[str, str] = Field(
        default_factory=lambda: {
            "99990": "reject",
            "99991": "throttle",
            "99992": "flaky",
            "99993": "undelivered",
            "99994": "ambiguous",
            "99995": "timeout",
            "99996": "slow",
        }
    )
    simulator_idempotent: bool = False
    # How long a "slow" or "timeout" number's call takes, and the Retry-After a throttled call answers.
    simulator_slow_ms: Annotated[int, Field(ge=0, le=60_000)] = 2000
    simulator_retry_after_seconds: Annotated[int, Field(ge=0, le=900)] = 1
    simulator_secret: SecretStr | None = None
    simulator_secret_arn: str | None = None
    # Where the simulator POSTs its signed receipts; unset, they go straight onto the receipts queue.
    simulator_receipts_url: str | None = None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
