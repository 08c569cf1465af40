"""Status callbacks under load: a campaign whose account has a callback URL on a loopback endpoint.

The endpoint answers each POST after a set delay. For each case it prints:
- the send drain (first sender poll to the campaign completed, receipts applied),
  which a slow endpoint must not change;
- when the last callback was taken, and callbacks per second;
- a check that every status change (sent, delivered) arrived exactly once,
  signed with the account's secret.
Handlers run as in the local stack (moto SQS, embedded PostgreSQL, simulator),
with one sender, one receipts and `--callback-pollers` callbacks pollers as threads.
"""

import argparse
import hashlib
import hmac
import json
import logging
import multiprocessing
import os
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from bench.send_pipeline import TimedPoller, _seed, open_messages_sql
from local.gateway import GatewayServer
from local.inprocess import Platform, platform


class Endpoint:
    """A customer endpoint in its own process (as a real one is: it must not share this one's GIL).

    It answers 200 after `delay` seconds and appends each body's message id,
    status and whether its signature held to a file read back afterwards.
    """

    def __init__(self, secret: str, delay: float, log: Path) -> None:
        self.log = log
        self.process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(secret, delay, str(log), (ready := multiprocessing.get_context("spawn").Queue()))
        )
        self.process.start()
        self.url = f"http://127.0.0.1:{ready.get(timeout=30)}/status"

    def stop(self) -> tuple[Counter[tuple[str, str]], int]:
        self.process.terminate()
        self.process.join()
        changes: Counter[tuple[str, str]] = Counter()
        bad = 0
        for line in self.log.read_text().splitlines():
            message_id, status, ok = line.split()
            changes[(message_id, status)] += 1
            bad += ok != "1"
        return changes, bad


def _serve(secret: str, delay: float, log: str, ready: Any) -> None:
    out = open(log, "a", buffering=1)  # noqa: SIM115 - open for the life of the process
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(delay)
            expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            payload = json.loads(body)
            ok = hmac.compare_digest(expected, self.headers["X-Signature"])
            with lock:
                out.write(f"{payload['message_id']} {payload['status']} {int(ok)}\n")
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    ready.put(server.server_address[1])
    server.serve_forever()


def run(
    p: Platform, scratch: Path, secret: str, delay_ms: int, size: int, token: str, group_id: str, callback_pollers: int
) -> dict[str, Any]:
    endpoint = Endpoint(secret, delay_ms / 1000, scratch / f"endpoint-{delay_ms}.log")
    p.call("PUT", "/v1/status-callback", token, {"url": endpoint.url})
    with psycopg.connect(p.database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE simulator_messages, simulator_calls, status_callbacks")
    campaign = p.call("POST", "/v1/campaigns", token, {
        "name": "callbacks", "message_template": "Hi {{first_name}}", "group_ids": [group_id]})  # fmt: skip
    p.call("POST", f"/v1/campaigns/{campaign['id']}/send", token)
    dispatcher = p.poller("DispatcherFunction")
    while not dispatcher.poll_once():
        pass

    pollers = [TimedPoller(p.poller("SenderFunction")), TimedPoller(p.poller("ReceiptsFunction"))]
    pollers += [TimedPoller(p.poller("CallbacksFunction")) for _ in range(callback_pollers)]
    began = time.perf_counter()
    for poller in pollers:
        poller.thread.start()
    drain = callbacks = 0.0
    with psycopg.connect(p.database_url, autocommit=True, row_factory=dict_row) as conn:
        open_messages = open_messages_sql()
        while not callbacks:
            row = conn.execute(
                f"""SELECT c.status = 'completed' AND {open_messages} = 0 AS sent,
                           (SELECT count(*) FROM status_callbacks WHERE status = 'delivered') AS called
                      FROM sms_campaigns c WHERE c.id = %s""",
                (campaign["id"],),
            ).fetchone()
            assert row is not None
            if row["sent"] and not drain:
                drain = time.perf_counter() - began
            if drain and row["called"] == 2 * size:
                callbacks = time.perf_counter() - began
            time.sleep(0.05)
    for poller in pollers:
        poller.stop.set()
        poller.thread.join()
    changes, bad_signatures = endpoint.stop()
    once = len(changes) == 2 * size and set(changes.values()) == {1}
    return {"drain": drain, "callbacks": callbacks, "ok": once and not bad_signatures}


def main(size: int, delays: tuple[int, ...], callback_pollers: int) -> None:
    print("status callbacks: sender -> outbox trigger -> CallbacksQueue -> CallbacksFunction -> loopback endpoint")
    print(f"  {'recipients':>10} {'endpoint':>8} {'pollers':>7} {'send drain s':>12} {'msg/s':>7}"
          f" {'callbacks done s':>16} {'callbacks/s':>11}  check")  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch, platform(Path(scratch), "sms_bench_callbacks") as p:
        from smsplatform.core.config import get_settings
        from smsplatform.sending import status_callbacks

        os.environ.update({"SMS_SIMULATOR_RULES": "{}", "SMS_CALLBACK_ALLOW_HTTP": "true"})
        server = GatewayServer(p.gateway, "127.0.0.1", 0)
        server.start()
        os.environ["SMS_PUBLIC_BASE_URL"] = f"http://127.0.0.1:{server.port}"
        get_settings.cache_clear()
        try:
            token, group_id = _seed(p, size)
            secret = p.call("POST", "/v1/status-callback/secret", token)["secret"]
            assert secret == status_callbacks.secret(
                os.environ["SMS_CALLBACK_SIGNING_SECRET"], p.call("GET", "/v1/users/me", token)["id"], 1
            )
            for delay in delays:
                r = run(p, Path(scratch), secret, delay, size, token, group_id, callback_pollers)
                print(
                    f"  {size:>10,} {delay:>5} ms {callback_pollers:>7} {r['drain']:12.1f} {size / r['drain']:7,.0f}"
                    f" {r['callbacks']:16.1f} {2 * size / r['callbacks']:11,.0f}"
                    f"  {'ok' if r['ok'] else 'MISMATCH'} (each of {2 * size:,} changes once, signed)",
                    flush=True,
                )
        finally:
            server.stop()


if __name__ == "__main__":
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--delays", type=int, nargs="+", default=[0, 50])
    parser.add_argument("--callback-pollers", type=int, default=2)
    args = parser.parse_args()
    main(args.size, tuple(args.delays), args.callback_pollers)
