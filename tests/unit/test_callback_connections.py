"""The callbacks' HTTP client keeps connections alive per endpoint, and replaces one the endpoint closed."""

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from smsplatform.core.config import Settings
from smsplatform.sending import status_callbacks


class _Receiver:
    """HTTP/1.1 on loopback that counts connections and requests; `drop_idle` closes each connection after
    its answer without saying so, as an endpoint whose keep-alive timeout passed does."""

    def __init__(self) -> None:
        self.connections: set[tuple[str, int]] = set()
        self.bodies: list[bytes] = []
        self.drop_idle = False
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                drop = receiver.drop_idle  # read before answering: the test may change it once it has the answer
                receiver.bodies.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                receiver.connections.add(self.client_address)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                self.wfile.flush()
                if drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=abc"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    served = _Receiver()
    yield served
    served.server.shutdown()
    served.server.server_close()


SETTINGS = Settings(callback_allow_http=True, callback_timeout_seconds=5)


def test_callbacks_to_one_endpoint_share_a_kept_alive_connection(receiver: _Receiver) -> None:
    post = status_callbacks.http_post(SETTINGS)
    for n in range(20):
        post(receiver.url, f'{{"n":{n}}}'.encode(), {"Content-Type": "application/json"})
    post.close()

    assert len(receiver.bodies) == 20
    assert len(receiver.connections) == 1


def test_a_connection_the_endpoint_closed_while_idle_is_replaced_and_the_callback_still_arrives(
    receiver: _Receiver,
) -> None:
    post = status_callbacks.http_post(SETTINGS)
    post(receiver.url, b"first", {})
    receiver.drop_idle = True
    post(receiver.url, b"second", {})  # on the kept connection; the endpoint closes it afterwards
    post(receiver.url, b"third", {})  # that connection is dead: a new one carries it
    post.close()

    assert receiver.bodies == [b"first", b"second", b"third"]
    assert len(receiver.connections) == 2


def test_a_refusal_fails_the_attempt_and_its_connection_carries_the_next_one(receiver: _Receiver) -> None:
    post = status_callbacks.http_post(SETTINGS)
    receiver.status = 503
    with pytest.raises(RuntimeError, match="HTTP 503"):
        post(receiver.url, b"refused", {})
    receiver.status = 200
    post(receiver.url, b"taken", {})
    post.close()

    assert receiver.bodies == [b"refused", b"taken"]
    assert len(receiver.connections) == 1
