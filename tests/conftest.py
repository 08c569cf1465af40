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
