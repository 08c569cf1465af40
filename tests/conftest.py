"""Session-wide PostgreSQL: DATABASE_URL's server if set, else the embedded one.

Each test session works in a database of its own, migrated from sql/ and
dropped at the end, so runs never see each other's rows.
"""

import os
from collections.abc import Iterator

import pytest

from tests.support.databases import DatabaseFactory
from tests.support.paths import ROOT

# As the template's Globals set them, before any handler module (and its Logger
# and Metrics) is imported.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "sms-platform")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SmsPlatform")
# argon2id at its minimum cost: the fixtures sign up and log in hundreds of accounts, each hash or check
# about 0.25 s at the deployed profile (tests/unit/test_passwords.py checks that profile is the default).
# The local stacks the e2e tests start inherit it.
os.environ.setdefault("SMS_PASSWORD_HASH_TIME_COST", "1")
os.environ.setdefault("SMS_PASSWORD_HASH_MEMORY_KIB", "1024")
os.environ.setdefault("SMS_PASSWORD_HASH_PARALLELISM", "1")


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    from local.database import start_embedded

    return start_embedded(ROOT / ".data" / "test-postgres")


@pytest.fixture(scope="session")
def fresh_database(postgres_server_url: str) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(postgres_server_url)
    yield factory
    factory.drop_all()


@pytest.fixture(scope="session")
def database_url(fresh_database: DatabaseFactory) -> str:
    return fresh_database.create()
