"""Latency of API calls through the local gateway (authorizer + handler + PostgreSQL).

Starts the local stack in a child process on a scratch data folder, signs up
one account, and times sequential requests from a keep-alive HTTP client.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _time(call: Callable[[], httpx.Response], count: int) -> list[float]:
    timings = []
    for _ in range(count):
        start = time.perf_counter()
        response = call()
        timings.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
    return timings


def main(requests: int = 500) -> None:
    port = _free_port()
    with tempfile.TemporaryDirectory() as scratch:
        env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
        env["PYTHONPATH"] = f"{ROOT / 'layers' / 'shared'}{os.pathsep}{ROOT}"
        log = Path(scratch) / "stack.log"
        with log.open("wb") as output:
            stack = subprocess.Popen(
                [sys.executable, "-m", "local", "run", "--port", str(port), "--data-dir", f"{scratch}/data"],
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            started = time.perf_counter()
            while "running at" not in log.read_text(errors="replace"):
                if stack.poll() is not None or time.perf_counter() - started > 90:
                    raise RuntimeError(log.read_text())
                time.sleep(0.1)
            print(f"local stack started in {time.perf_counter() - started:.1f} s (fresh embedded database)")
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                account = {"username": "bench", "email": "bench@example.com", "password": "correct horse battery"}
                client.post("/v1/auth/signup", json=account).raise_for_status()
                login = {"login": "bench", "password": "correct horse battery"}
                token = client.post("/v1/auth/login", json=login).json()["access_token"]
                headers = {"Authorization": f"Bearer {token}"}
                cases: dict[str, tuple[Callable[[], httpx.Response], int]] = {
                    "GET /v1/health": (lambda: client.get("/v1/health"), requests),
                    "GET /v1/users/me": (lambda: client.get("/v1/users/me", headers=headers), requests),
                    "POST /v1/auth/login": (lambda: client.post("/v1/auth/login", json=login), 30),
                }
                print("sequential requests through the local gateway (milliseconds)")
                print(f"  {'route':<22} {'n':>5} {'p50':>7} {'p95':>7} {'p99':>7}")
                for name, (call, count) in cases.items():
                    _time(call, 5)  # warm
                    samples = _time(call, count)
                    p50, p95, p99 = (_percentile(samples, f) for f in (0.5, 0.95, 0.99))
                    print(f"  {name:<22} {count:>5} {p50:7.2f} {p95:7.2f} {p99:7.2f}")
        finally:
            stack.send_signal(signal.SIGTERM)
            stack.wait(timeout=30)


if __name__ == "__main__":
    main()
