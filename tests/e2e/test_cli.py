"""smsctl, the installed command line, against the local stack: log in, import, send and watch, --json, exit codes."""

import csv
import json
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.local_stack import StackProcess
from tests.support.paths import ROOT

pytestmark = pytest.mark.e2e


class Cli:
    def __init__(self, base_url: str, home: Path) -> None:
        installed = Path(sys.executable).parent / "smsctl"  # the console script `make` installs with the project
        self.command = [str(installed)] if installed.exists() else [sys.executable, "-m", "smsctl.main"]
        self.base_url = base_url
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SMSCTL_")},
            "XDG_CONFIG_HOME": str(home),
            "PYTHONPATH": str(ROOT / "cli"),
            "COLUMNS": "120",
        }

    def __call__(self, *args: str, base_url: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.command, "--base-url", base_url or self.base_url, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def json(self, *args: str) -> Any:
        done = self("--json", *args)
        assert done.returncode == 0, (done.stdout, done.stderr)
        return json.loads(done.stdout)


@pytest.fixture
def account(client: httpx.Client, stack: StackProcess, tmp_path: Path) -> dict[str, Any]:
    """A logged-in account with 500 credits, and the CLI logged in as it."""
    name = f"cli{uuid.uuid4().hex[:8]}"
    password = "correct horse battery"
    created = client.post(
        "/v1/auth/signup", json={"username": name, "email": f"{name}@example.com", "password": password}
    ).json()
    operator_password = stack.banner_value("Operator account created:").split("password", 1)[1].strip()
    operator = client.post("/v1/auth/login", json={"login": "admin", "password": operator_password}).json()
    client.post(
        f"/v1/users/{created['id']}/credits",
        json={"credits": 500},
        headers={"Authorization": f"Bearer {operator['access_token']}"},
    ).raise_for_status()
    cli = Cli(stack.base_url, tmp_path / "config")
    logged_in = cli("login", "--username", name, "--password", password)
    assert logged_in.returncode == 0, logged_in.stderr
    return {"name": name, "cli": cli, "config": tmp_path / "config" / "smsctl" / "config.json"}


def test_login_stores_the_token_readable_only_by_its_owner(account: dict[str, Any]) -> None:
    cli: Cli = account["cli"]

    me = cli.json("whoami")
    shown = cli.json("config")

    assert me["username"] == account["name"]
    assert me["sms_credits"] == 500
    assert stat.S_IMODE(account["config"].stat().st_mode) == 0o600
    assert json.loads(account["config"].read_text())["base_url"] == cli.base_url
    assert shown["token_stored"] is True
    assert "token" not in shown  # never printed


def _contacts_csv(path: Path, good: int, bad: list[str]) -> Path:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["phone", "first_name", "city"])
        for n in range(good):
            writer.writerow([f"07400 1{n:05d}", ["Zoë", "O'Brien", "محمد", "Ana-María"][n % 4], "Leeds"])
        for number in bad:
            writer.writerow([number, "Bad", "Nowhere"])
    return path


def test_import_shows_progress_and_summarises_the_bad_rows(account: dict[str, Any], tmp_path: Path) -> None:
    cli: Cli = account["cli"]
    file = _contacts_csv(tmp_path / "contacts.csv", 3000, ["12", "not a number"])

    human = cli("contacts", "import", str(file), "--default-region", "GB")
    again = cli.json("contacts", "import", str(file), "--default-region", "GB")

    assert human.returncode == 0, human.stderr
    assert "import" in human.stderr
    assert "/3002 rows" in human.stderr  # the bar counts the file's rows
    assert "Imported 3000 new, updated 0, unchanged 0, 0 duplicates, 2 invalid (of 3002 rows)." in human.stdout
    assert "row 3002:" in human.stdout
    assert "row 3003:" in human.stdout  # the file's line numbers, header first
    assert (again["status"], again["imported"], again["unchanged"], again["invalid"]) == ("completed", 0, 3000, 2)
    assert again["processed_rows"] == again["total_rows"] == 3002


def test_a_campaign_is_created_previewed_sent_and_watched_to_the_end(
    account: dict[str, Any], client: httpx.Client, tmp_path: Path
) -> None:
    cli: Cli = account["cli"]
    token = json.loads(account["config"].read_text())["token"]
    group = client.post("/v1/groups", json={"name": "cli"}, headers={"Authorization": f"Bearer {token}"}).json()
    file = _contacts_csv(tmp_path / "people.csv", 40, [])
    assert (
        cli.json("contacts", "import", str(file), "--default-region", "GB", "--group-id", group["id"])["imported"] == 40
    )

    template = "Hi {{first_name|there}} — 20% off in {{custom_fields.city}}! Reply STOP to opt out"
    created = cli.json("campaigns", "create", "--name", "CLI spring", "--template", template, "--group-id", group["id"])
    preview = cli("campaigns", "preview", created["id"])
    sent = cli("campaigns", "send", created["id"])
    watched = cli.json("campaigns", "watch", created["id"])

    assert created["status"] == "draft"
    assert preview.returncode == 0, preview.stderr
    assert "40 recipients" in preview.stdout
    assert sent.returncode == 0, sent.stderr
    assert "delivered" in sent.stderr  # the live table of counts
    assert sent.stdout.startswith("Campaign CLI spring completed:")
    assert watched["campaign"]["status"] == "completed"
    assert watched["stats"]["total"] == 40
    assert watched["stats"]["delivered"] + watched["stats"]["sent"] == 40


def test_messages_send_and_list_and_the_exit_codes_scripts_rely_on(account: dict[str, Any], tmp_path: Path) -> None:
    cli: Cli = account["cli"]
    text = 'Your code is 493 021 — "don\'t" share it 🔐 \\o/ 100%'

    accepted = cli.json("messages", "send", "--to", "+447400100901", "--to", "+447400100902", "--text", text)
    listed = cli.json("messages", "list", "--to", "+447400100901", "--limit", "5")
    invalid = cli("messages", "send", "--to", "+4412", "--text", text)
    stranger = Cli(cli.base_url, tmp_path / "nobody")
    unauthenticated = stranger("whoami")
    unreachable = cli("whoami", base_url="http://127.0.0.1:9")
    as_json = cli("--json", "messages", "send", "--to", "+4412", "--text", text)

    assert accepted["credits_reserved"] == 2  # two numbers, one UCS-2 segment each
    assert [m["body"] for m in listed] == [text]
    assert (invalid.returncode, unauthenticated.returncode, unreachable.returncode) == (4, 3, 5)
    assert "422" in invalid.stderr
    assert "Not logged in" in unauthenticated.stderr
    assert as_json.returncode == 4
    assert json.loads(as_json.stdout)["status"] == 422


def test_an_export_is_built_and_downloaded(account: dict[str, Any], tmp_path: Path) -> None:
    import gzip

    cli: Cli = account["cli"]
    cli.json("messages", "send", "--to", "+447400100911", "--text", "Line one\nline two — 50% off")
    saved = tmp_path / "messages.csv.gz"

    done = cli("exports", "create", "--output", str(saved))

    assert done.returncode == 0, done.stderr
    assert "export" in done.stderr
    assert done.stdout.startswith("Exported 1 messages to")
    lines = gzip.decompress(saved.read_bytes()).decode().splitlines()
    assert lines[0].startswith("id,campaign_id,to,from,status")
    assert "+447400100911" in lines[1]
