"""Databases of the test server, created per use and dropped at the end of the session."""

import uuid

from tests.support.paths import ROOT


class DatabaseFactory:
    """Creates empty databases on the test server and drops them at the end of the session."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self._names: list[str] = []

    def create(self, migrated: bool = True) -> str:
        from local.database import ensure_database
        from smsplatform.core.migrations import apply_migrations

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
