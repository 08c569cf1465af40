"""The local stack in a child process, started the way `make run` starts it."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.databases import DatabaseFactory
from tests.support.paths import ROOT


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class StackProcess:
    """`python -m local run` in a child process, with its output captured to a file."""

    def __init__(self, data_dir: Path, database_url: str | None, template: Path | None = None) -> None:
        self.data_dir = data_dir
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.output_file = data_dir.parent / f"{data_dir.name}-{self.port}.log"
        self.template = template
        self.database_url = database_url
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> None:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("DATABASE_URL", "SMS_ADMIN_EMAIL", "SMS_ADMIN_PASSWORD") and not key.startswith("AWS_")
        }
        env["PYTHONPATH"] = f"{ROOT / 'layers' / 'shared'}{os.pathsep}{ROOT}"
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        command = [sys.executable, "-m", "local", "run", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        if self.template:
            command += ["--template", str(self.template), "--root", str(ROOT)]
        with self.output_file.open("ab") as output:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the local stack exited early:\n{self.output}")
            if "Bulk SMS platform running at" in self.output:
                return
            time.sleep(0.2)
        raise TimeoutError(f"the local stack did not start in {timeout} s:\n{self.output}")

    @property
    def output(self) -> str:
        return self.output_file.read_text(errors="replace") if self.output_file.exists() else ""

    def banner_value(self, label: str) -> str:
        match = re.findall(rf"{re.escape(label)}\s+(.+)", self.output)
        assert match, f"{label!r} not in the banner:\n{self.output}"
        return str(match[-1]).strip()

    def stop(self, timeout: float = 30) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


class StackFactory:
    def __init__(self, tmp: pytest.TempPathFactory, databases: DatabaseFactory) -> None:
        self.tmp = tmp
        self.databases = databases
        self.started: list[StackProcess] = []

    def start(self, data_dir: Path | None = None, template: Path | None = None) -> StackProcess:
        """A stack on the embedded database, or on a fresh database of DATABASE_URL's server when set."""
        data_dir = data_dir or self.tmp.mktemp("stack") / "data"
        database_url = self.databases.create(migrated=False) if os.environ.get("DATABASE_URL") else None
        stack = StackProcess(data_dir, database_url, template)
        stack.start()
        self.started.append(stack)
        return stack

    def restart(self, stack: StackProcess) -> StackProcess:
        stack.stop()
        again = StackProcess(stack.data_dir, stack.database_url, stack.template)
        again.start()
        self.started.append(again)
        return again

    def stop_all(self) -> None:
        for stack in self.started:
            if stack.process is not None and stack.process.poll() is None:
                stack.stop()
