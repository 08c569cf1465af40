"""A customer's HTTP endpoint on loopback, for the callbacks the platform POSTs."""

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from smsplatform.sending import status_callbacks


class Endpoint:
    """A customer's endpoint on loopback that answers 500 to each callback's first `failures` attempts."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.attempts: Counter[str] = Counter()
        self.received: list[tuple[dict[str, str], bytes]] = []
        lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                callback_id = self.headers.get(status_callbacks.ID_HEADER, "")
                with lock:
                    endpoint.attempts[callback_id] += 1
                    ok = endpoint.attempts[callback_id] > endpoint.failures
                    if ok:
                        endpoint.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200 if ok else 500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms-status"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
