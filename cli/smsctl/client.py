"""Where the CLI's credentials live, and the API calls it makes.

The base URL and token come from flags, then the environment (SMSCTL_BASE_URL,
SMSCTL_TOKEN), then the config file (`$XDG_CONFIG_HOME/smsctl/config.json`,
written with mode 600 because it holds a token).
"""

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

DEFAULT_BASE_URL = "http://127.0.0.1:3000"


# Exit codes scripts can rely on (also in `smsctl --help`).
class Exit:
    OK = 0
    FAILED = 1  # the work ran and failed: a campaign failed or was cancelled, an import failed
    USAGE = 2  # bad flags or arguments (typer's own)
    AUTH = 3  # no credential, or the API refused it (401, 403)
    REFUSED = 4  # the API refused the request (another 4xx): the message says why
    UNAVAILABLE = 5  # the API could not be reached, or answered 5xx


class ApiError(Exception):
    def __init__(self, code: int, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.body = body


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "smsctl" / "config.json"


def load_config() -> dict[str, Any]:
    path = config_path()
    if not path.exists():
        return {}
    try:
        loaded = json.loads(path.read_text())
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def save_config(values: dict[str, Any]) -> Path:
    """Written to a new file created with mode 600, then moved into place: the token is never world-readable."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(values, file, indent=2)
    os.chmod(temporary, 0o600)
    temporary.replace(path)
    return path


@dataclass
class Api:
    base_url: str
    token: str | None
    timeout: float = 30.0

    @classmethod
    def from_settings(cls, base_url: str | None, token: str | None) -> "Api":
        saved = load_config()
        return cls(
            (base_url or os.environ.get("SMSCTL_BASE_URL") or saved.get("base_url") or DEFAULT_BASE_URL).rstrip("/"),
            token or os.environ.get("SMSCTL_TOKEN") or saved.get("token"),
        )

    def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        content: bytes | None = None,
        content_type: str | None = None,
        params: dict[str, Any] | None = None,
        auth: bool = True,
    ) -> Any:
        headers = {"user-agent": "smsctl/1"}
        if auth:
            if not self.token:
                raise ApiError(Exit.AUTH, "Not logged in: run `smsctl login`, or pass --token / set SMSCTL_TOKEN.")
            headers["authorization"] = f"Bearer {self.token}"
        if content_type:
            headers["content-type"] = content_type
        try:
            response = httpx.request(
                method,
                self.base_url + path,
                json=json_body,
                content=content,
                params={k: v for k, v in (params or {}).items() if v is not None},
                headers=headers,
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise ApiError(Exit.UNAVAILABLE, f"Could not reach {self.base_url}: {exc}") from exc
        if response.status_code < 300:
            return response.json() if response.content else None
        try:
            problem = response.json()
        except ValueError:
            problem = {"detail": response.text[:300]}
        detail = problem.get("detail") or problem.get("message") or response.reason_phrase
        errors = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in problem.get("errors") or [])
        message = f"{response.status_code} {detail}" + (f" ({errors})" if errors else "")
        code = (
            Exit.AUTH
            if response.status_code in (401, 403)
            else Exit.UNAVAILABLE
            if response.status_code >= 500
            else Exit.REFUSED
        )
        raise ApiError(code, message, response.status_code, problem)

    def pages(self, path: str, params: dict[str, Any], limit: int) -> Iterator[dict[str, Any]]:
        """Items of a keyset-paged list, following next_cursor until `limit` items."""
        cursor = None
        given = 0
        while given < limit:
            page = self.call("GET", path, params={**params, "limit": min(100, limit - given), "cursor": cursor})
            for item in page["data"]:
                yield item
                given += 1
            cursor = page.get("next_cursor")
            if not cursor or not page["data"]:
                return

    def wait(self, read: Any, done: Any, interval: float, timeout: float | None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = read()
            if done(state):
                return state
            if deadline is not None and time.monotonic() > deadline:
                raise ApiError(Exit.FAILED, f"Still not finished after {timeout:.0f} s.", body=state)
            time.sleep(interval)
