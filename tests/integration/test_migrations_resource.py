"""The deploy-time migrations custom resource answers CloudFormation whatever happens."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from local.runtime import FunctionRuntime
from tests.support.paths import ROOT

EVENT = json.loads((ROOT / "events" / "migrations" / "create.json").read_text())


@pytest.fixture
def cloudformation() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A stand-in for CloudFormation's presigned response URL: records what is PUT to it."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/response?signature=x", received
    server.shutdown()


def _invoke(runtimes: dict[str, FunctionRuntime], url: str, request_type: str, sql_dir: Path) -> Any:
    from smsplatform.core.config import get_settings

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SMS_SQL_DIR", str(sql_dir))
        get_settings.cache_clear()
        try:
            return runtimes["MigrationsFunction"].invoke({**EVENT, "RequestType": request_type, "ResponseURL": url})
        finally:
            get_settings.cache_clear()


def test_create_and_update_apply_pending_migrations_and_report_success(
    runtimes: dict[str, FunctionRuntime], cloudformation: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = cloudformation

    _invoke(runtimes, url, "Create", ROOT / "sql")
    _invoke(runtimes, url, "Update", ROOT / "sql")

    assert [answer["Status"] for answer in received] == ["SUCCESS", "SUCCESS"]
    assert received[0]["Data"] == {"Applied": "none"}  # the session database is migrated already
    assert received[0]["PhysicalResourceId"] == received[1]["PhysicalResourceId"]
    assert received[0]["RequestId"] == EVENT["RequestId"]


def test_a_failing_migration_is_reported_as_failed_not_left_hanging(
    runtimes: dict[str, FunctionRuntime], cloudformation: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    url, received = cloudformation
    (tmp_path / "0001_schema.sql").write_text("SELECT 'this is not the applied file';")

    _invoke(runtimes, url, "Update", tmp_path)

    assert received[0]["Status"] == "FAILED"
    assert "changed after it was applied" in received[0]["Reason"]


def test_delete_leaves_the_schema_alone(
    runtimes: dict[str, FunctionRuntime], cloudformation: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    url, received = cloudformation
    # A folder the runner would refuse: had Delete run the migrations, it would report FAILED.
    (tmp_path / "0001_schema.sql").write_text("SELECT 'not the applied file';")

    _invoke(runtimes, url, "Delete", tmp_path)

    assert received[0]["Status"] == "SUCCESS"
