"""Kannel's bulk send beside ours, in one run: messages per second, and our drain over Kannel's.

Kannel 1.4.5 as Debian packages it, on loopback only: HTTP requests to smsbox's
sendsms interface -> bearerbox -> fakesmsc as the SMSC, which prints every
message it takes (bearerbox counts them). Three cases, each of `--messages` messages from
`--clients` keep-alive HTTP clients:

- one recipient per request;
- 100 recipients per request (`to` lists them);
- 100 per request with a delivery report for each message (dlr-mask 8, the
  SMSC's acknowledgement), which smsbox GETs from a local HTTP server: the end
  to end case, timed until the last report arrives.

Then our pipeline's drain with receipts applied (bench/send_pipeline.py, one
sender, 0 ms provider latency, in-memory queue and moto), and the ratio of our
figure to Kannel's end-to-end one. Kannel is not installed by `make test` or by
this script; install it with:

    sudo apt-get install -y kannel kannel-extras

    python -m bench.kannel [--messages 20000] [--ours 100000]
"""

import argparse
import http.client
import http.server
import logging
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

BEARERBOX = "/usr/sbin/bearerbox"
SMSBOX = "/usr/sbin/smsbox"
FAKESMSC = "/usr/lib/kannel/test/fakesmsc"
INSTALL = "sudo apt-get install -y kannel kannel-extras"
TEXT = "Hi Ann, your table for 2 at 19:30 is confirmed. Reply STOP to opt out"


def installed() -> bool:
    return all(Path(binary).exists() for binary in (BEARERBOX, SMSBOX, FAKESMSC))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(ports: dict[str, int]) -> str:
    return f"""
group = core
admin-port = {ports["admin"]}
admin-password = bench
admin-interface = 127.0.0.1
smsbox-port = {ports["smsbox"]}
smsbox-interface = 127.0.0.1
box-allow-ip = 127.0.0.1
log-level = 4
dlr-storage = internal

group = smsc
smsc = fake
smsc-id = fake
host = 127.0.0.1
port = {ports["smsc"]}
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {ports["smsbox"]}
sendsms-port = {ports["sendsms"]}
sendsms-interface = 127.0.0.1
log-level = 4

group = sendsms-user
username = bench
password = bench
max-messages = 1
"""


class _Reports(http.server.BaseHTTPRequestHandler):
    """Counts the delivery reports smsbox GETs, over kept-alive connections."""

    protocol_version = "HTTP/1.1"
    count = 0
    lock = threading.Lock()

    def do_GET(self) -> None:
        with _Reports.lock:
            _Reports.count += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def kannel(scratch: Path) -> Iterator[tuple[int, int]]:
    """bearerbox, fakesmsc and smsbox running; yields the sendsms and admin ports."""
    ports = {name: _free_port() for name in ("admin", "smsbox", "smsc", "sendsms")}
    config = scratch / "kannel.conf"
    config.write_text(_config(ports))
    processes = []
    try:
        processes.append(subprocess.Popen([BEARERBOX, "-v", "4", str(config)], cwd=scratch))
        _wait_for(ports["smsc"])
        processes.append(
            subprocess.Popen(
                [FAKESMSC, "-H", "127.0.0.1", "-r", str(ports["smsc"]), "-m", "0", "1 2 text x"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        _wait_for(ports["smsbox"])
        processes.append(subprocess.Popen([SMSBOX, "-v", "4", str(config)], cwd=scratch))
        _wait_for(ports["sendsms"])
        time.sleep(1)  # fakesmsc's connection comes up
        yield ports["sendsms"], ports["admin"]
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


def _wait_for(port: int, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"Kannel did not open port {port}")


def sent(admin_port: int) -> int:
    """Messages bearerbox has handed to the SMSC, from its status page ("SMS: received ..., sent N ...")."""
    connection = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=10)
    connection.request("GET", "/status.txt?password=bench")
    status = connection.getresponse().read().decode()
    connection.close()
    line = next(line for line in status.splitlines() if line.startswith("SMS: received"))
    return int(line.split("sent ")[1].split()[0])


def send_all(
    port: int, admin_port: int, messages: int, per_request: int, clients: int, dlr_url: str | None, reports: int
) -> float:
    """Seconds from the first request until bearerbox has handed every message to fakesmsc (and, with
    `dlr_url`, every delivery report has arrived)."""
    numbers = [f"+4474{n:08d}" for n in range(messages)]
    requests = [numbers[i : i + per_request] for i in range(0, messages, per_request)]
    already = sent(admin_port)
    began = time.perf_counter()

    errors: list[str] = []

    def client(share: list[list[str]]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for recipients in share:
            query = {
                "username": "bench",
                "password": "bench",
                "from": "Bench",
                "to": " ".join(recipients),
                "text": TEXT,
            }
            if dlr_url:
                query.update({"dlr-mask": "8", "dlr-url": dlr_url})
            connection.request("GET", "/cgi-bin/sendsms?" + urlencode(query))
            response = connection.getresponse()
            answer = response.read()
            if response.status >= 300:
                errors.append(f"sendsms answered {response.status}: {answer[:200]!r}")
                break
        connection.close()

    threads = [threading.Thread(target=client, args=(requests[i::clients],)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(errors[0])
    while sent(admin_port) - already < messages or (dlr_url and _Reports.count - reports < messages):
        if time.perf_counter() - began > 600:
            raise RuntimeError("Kannel did not finish within 10 minutes")
        time.sleep(0.01)
    return time.perf_counter() - began


def run_kannel(messages: int, clients: int) -> dict[str, float]:
    http.server.ThreadingHTTPServer.request_queue_size = 1024  # smsbox opens many connections at once
    reports = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Reports)
    threading.Thread(target=reports.serve_forever, daemon=True).start()
    dlr_url = f"http://127.0.0.1:{reports.server_address[1]}/dlr?type=%d"
    rates = {}
    try:
        with tempfile.TemporaryDirectory() as scratch, kannel(Path(scratch)) as (port, admin_port):
            for name, per_request, dlr in (("one per request", 1, None), ("100 per request", 100, None),
                                           ("100 per request, delivery reports", 100, dlr_url)):  # fmt: skip
                seconds = send_all(port, admin_port, messages, per_request, clients, dlr, _Reports.count)
                rates[name] = messages / seconds
                print(
                    f"  kannel  {name:<36} {messages:>8,} msgs {seconds:7.1f} s {rates[name]:9,.0f} msg/s", flush=True
                )
    finally:
        reports.shutdown()
    return rates


def main(
    messages: int = 20_000, ours: int = 100_000, clients: int = 8, results: list[dict[str, Any]] | None = None
) -> None:
    """Kannel's cases, then ours (or `results` of bench.send_pipeline from the same sitting) and the ratio."""
    print("Kannel 1.4.5 (bearerbox + smsbox -> fakesmsc, loopback) beside our drain with receipts applied")
    if not installed():
        print(f"  Kannel is not installed; to compare with it: {INSTALL}")
        return
    version = subprocess.run([BEARERBOX, "--version"], capture_output=True, text=True, check=False)
    print("  " + next((line for line in (version.stdout + version.stderr).splitlines() if "Kannel" in line), "")[:100])
    kannel_rates = run_kannel(messages, clients)
    from bench import send_pipeline

    if results is None:
        results = send_pipeline.main(
            sizes=(ours,), latencies=(0,), queues=("memory", "moto"), kinds=("plain",), release_alone_too=False
        )
    results = [r for r in results if r["latency"] == 0 and r["kind"] == "plain" and r["senders"] == 1]
    end_to_end = kannel_rates["100 per request, delivery reports"]
    for result in results:
        print(
            f"  ours ({result['queue']} queue, {result['size']:,} recipients) {result['rate']:,.0f} msg/s ="
            f" {result['rate'] / end_to_end:.2f} x Kannel's end to end {end_to_end:,.0f} msg/s"
        )


if __name__ == "__main__":
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20_000, help="messages per Kannel case")
    parser.add_argument("--ours", type=int, default=100_000, help="recipients of our campaign")
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients sending to Kannel")
    args = parser.parse_args()
    main(args.messages, args.ours, args.clients)
