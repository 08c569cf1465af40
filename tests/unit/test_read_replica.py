"""Lists, statistics and exports read from the replica deployed; from the writer locally or when told."""

import pytest

from smsplatform.core import db
from smsplatform.core.config import Settings


@pytest.fixture(autouse=True)
def no_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what each case gives: the suite's own DATABASE_URL must not leak into these settings."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("SMS_DATABASE_URL", raising=False)


@pytest.mark.parametrize(
    ("values", "replica"),
    [
        ({"database_secret_arn": "arn:secret", "database_reader_host": "reader.proxy"}, True),
        ({"database_secret_arn": "arn", "database_reader_host": "reader.proxy", "read_from_writer": True}, False),
        ({"database_secret_arn": "arn:secret", "database_reader_host": ""}, False),  # dev stacks have no reader
        ({"database_secret_arn": "arn:secret"}, False),
        ({"database_url": "postgresql://localhost/x", "database_reader_host": "reader.proxy"}, False),  # local
    ],
)
def test_reads_go_to_the_replica_only_where_there_is_one(values: dict[str, object], replica: bool) -> None:
    assert db.reads_from_replica(Settings(**values)) is replica  # type: ignore[arg-type]


def test_the_reader_connects_to_the_reader_host_with_the_writers_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        db, "get_secret_json", lambda arn, settings: {"host": "writer", "username": "u", "password": "p"}
    )
    settings = Settings(database_secret_arn="arn:secret", database_host="writer.proxy")  # type: ignore[call-arg]

    assert "host=reader.proxy" in db.database_conninfo(settings, "reader.proxy")
    assert "host=writer.proxy" in db.database_conninfo(settings)
