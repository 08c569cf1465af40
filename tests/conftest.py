"""Session-wide PostgreSQL: DATABASE_URL's server if set, else the embedded one.

Each test session works in a database of its own, migrated from sql/ and
dropped at the end, so runs never see each other's rows.
"""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

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
def fresh_database(postgres_server_url: str) -> Iterator["DatabaseFactory"]:
    factory = DatabaseFactory(postgres_server_url)
    yield factory
    factory.drop_all()


class DatabaseFactory:
    """Creates empty databases on the test server and drops them at the end of the session."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self._names: list[str] = []

    def create(self, migrated: bool = True) -> str:
        from local.database import ensure_database
        from smsplatform.migrations import apply_migrations

        name = f"sms_test_{uuid.uuid4().hex[:10]}"
        self._names.append(name)
        url = ensure_database(self.server_url, name)
        if migrated:
            apply_migrations(url, ROOT / "sql")
        return url

    def drop_all(self) -> None:
        from local.database import drop_database

        for name in self._names:
            drop_database(self.server_url, name)


@pytest.fixture(scope="session")
def database_url(fresh_database: DatabaseFactory) -> str:
    return fresh_database.create()
