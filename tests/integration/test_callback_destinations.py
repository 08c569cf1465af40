"""The callback SSRF guard where callbacks are sent: with the production setting, http_post itself refuses
a URL whose host resolves to this machine, and no connection is made.

The URL is written straight into the account (as a hostname that resolved publicly when it was set and
to loopback by delivery time would be), so only the guard in http_post stands between it and the socket.
Only loopback is used as a target: a broken guard must not send traffic anywhere else.
"""

import socket
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from smsplatform.core.config import get_settings
from smsplatform.sending import status_callbacks
from tests.support.harness import CALLBACK_KEY


@pytest.fixture
def loopback_https_port() -> Iterator[list[str]]:
    """A listener on 127.0.0.1:443 that records every connection made to it."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", 443))
    except OSError as exc:  # not root, or the port is taken
        listener.close()
        pytest.skip(f"cannot listen on 127.0.0.1:443: {exc}")
    listener.listen(16)
    listener.settimeout(0.2)
    connections: list[str] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                client, address = listener.accept()
            except TimeoutError:
                continue
            connections.append(address[0])
            client.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield connections
    stop.set()
    thread.join(timeout=2)
    listener.close()


@pytest.mark.parametrize("url", ["https://localhost/hook", "https://127.0.0.1/hook", "https://127.8.9.10:443/x"])
def test_a_callback_to_this_machine_is_refused_by_the_sender_itself(
    url: str, loopback_https_port: list[str], user: dict[str, Any], conn: psycopg.Connection[Any]
) -> None:
    conn.execute("UPDATE users SET status_callback_url = %s WHERE id = %s", (url, user["id"]))
    conn.execute(
        'INSERT INTO status_callbacks (user_id, url, payload) VALUES (%s, %s, \'{"status": "delivered"}\')',
        (user["id"], url),
    )
    production = get_settings().model_copy(update={"callback_allow_http": False})
    assert not production.callback_allow_http

    outcome = status_callbacks.deliver(production, CALLBACK_KEY, user["id"], status_callbacks.http_post(production))

    row = conn.execute("SELECT status, attempts, last_error FROM status_callbacks").fetchone()
    assert (outcome.delivered, outcome.failed) == (0, 1)
    assert row["attempts"] == 1
    assert "private address" in row["last_error"]
    assert loopback_https_port == []  # not even a TCP connection was made
