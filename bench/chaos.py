"""The chaos run (`make chaos`): two campaigns through the local stack while its parts fail.

The stack runs as `make run` runs it, except that the sender and receipts pollers are child processes
(restarted when they die, as Lambda starts new environments). While a 20,000-recipient campaign (released in
chunks, ADR 0013) and a 5,000-recipient one (released whole) send, this run:

- kills the sender and the receipts processes with SIGKILL, mid-batch, several times;
- restarts PostgreSQL once (pg_ctl restart -m fast) under everything;
- delivers send-queue messages twice (copies of batch descriptors put back on the queue);
- throttles a tenth of the numbers at the provider (429 with Retry-After on the first attempt);
- cancels the second campaign while it sends.

Then it checks: every row final; each recipient at most once on a handset, exactly once for the campaign
that was not cancelled; reserved = spent + refunded for both; nothing left in any queue but its dead-letter
queues (reported). The simulator is idempotent here, as a provider with idempotency keys is: a sender
killed between the provider's answer and its record leaves rows in doubt, and only an idempotent provider
lets them be sent again without a second copy (with any other they fail as `outcome_unknown`, which the
fault tests cover). Prints the figures; exits 1 if a check fails.

    PYTHONPATH=layers/shared:. python -m bench.chaos [--runs 3] [--recipients 20000]
"""

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row

CHAOS_SETTINGS = {
    "SMS_SIMULATOR_IDEMPOTENT": "true",
    "SMS_SIMULATOR_LATENCY_MS": "15",  # a batch of 500 takes ~0.1 s of calls: kills land mid-batch
    "SMS_SIMULATOR_RULES": json.dumps({"3": "flaky"}),  # numbers ending 3: 429 once, then accepted
    "SMS_SIMULATOR_RETRY_AFTER_SECONDS": "1",
    "SMS_SEND_RETRY_BASE_SECONDS": "1",
    "SMS_SEND_BATCH_SIZE": "500",
    "SMS_RELEASE_CHUNK_ROWS": "4000",  # the large campaign is released in chunks (ADR 0013), the small one whole
    "SMS_SEND_LEASE_SECONDS": "30",  # a killed sender's rows are reclaimed after 30 s
    "SMS_SEND_STALL_SECONDS": "60",
    "SMS_DB_POOL_MAX_SIZE": "8",
}
VISIBILITY_SECONDS = 40  # a killed sender's batch comes back after this (the template says 720)
log = logging.getLogger("chaos")


class Run:
    def __init__(self, recipients: int, data_dir: Path) -> None:
        from local.stack import LocalStack

        self.recipients = recipients
        self.faults: Counter[str] = Counter()
        self.stack = LocalStack(
            data_dir=data_dir, port=_free_port(), process_functions=frozenset({"SenderFunction", "ReceiptsFunction"})
        )

    # --- setting up -----------------------------------------------------------------------------------
    def start(self) -> None:
        from local import aws, database

        os.environ.update(CHAOS_SETTINGS)
        self.stack.start()
        self.http = httpx.Client(base_url=self.stack.base_url, timeout=60)
        self.pgdata = self.stack.data_dir / "postgres"
        self.db_url = database.with_database(database.start_embedded(self.pgdata), database.DEFAULT_DATABASE)
        self.sqs = aws.client("sqs", os.environ["AWS_ENDPOINT_URL"])
        self.queues = {_name(url): url for url in self.sqs.list_queues()["QueueUrls"]}
        for name in ("SendQueue", "ReceiptsQueue"):
            self.sqs.set_queue_attributes(
                QueueUrl=self.queues[name], Attributes={"VisibilityTimeout": str(VISIBILITY_SECONDS)}
            )

    def _call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        headers = {**kwargs.pop("headers", {}), **({"Authorization": f"Bearer {token}"} if token else {})}
        response = self.http.request(method, path, headers=headers, **kwargs)
        if response.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response.json() if response.content else None

    def prepare(self) -> tuple[str, str, str]:
        """An account with credits, two imported audiences, two campaigns; returns the token and their ids."""
        admin = self.stack.admin
        assert admin is not None
        assert admin.generated_password is not None
        login = {"login": admin.username, "password": admin.generated_password}
        operator = self._call("POST", "/v1/auth/login", json=login)
        user = self._call("POST", "/v1/auth/signup", json={
            "username": "chaos", "email": "chaos@example.com", "password": "correct horse battery"})  # fmt: skip
        token = self._call("POST", "/v1/auth/login", json={"login": "chaos", "password": "correct horse battery"})[
            "access_token"
        ]
        total = self.recipients + self.recipients // 4
        self._call("POST", f"/v1/users/{user['id']}/credits", operator["access_token"], json={"credits": total * 2})
        campaigns = []
        audiences = (("main", 0, self.recipients), ("cancelled", self.recipients, total - self.recipients))
        for name, first, count in audiences:
            group = self._call("POST", "/v1/groups", token, json={"name": name})
            lines = "\n".join(f"+4474{first + n:08d},Person {first + n}" for n in range(count))
            started = self._call(
                "POST", f"/v1/contacts/imports?group_id={group['id']}", token,
                content=f"phone,first_name\n{lines}\n".encode(), headers={"content-type": "text/csv"},
            )  # fmt: skip
            status_path = f"/v1/contacts/imports/{started['import_id']}"
            self._wait(lambda path=status_path: self._call("GET", path, token)["status"] == "completed", 300, "import")
            campaign = self._call("POST", "/v1/campaigns", token, json={
                "name": name, "message_template": "Hi {{first_name}}, 50% off today only: reply STOP to opt out 🛍️",
                "group_ids": [group["id"]]})  # fmt: skip
            campaigns.append(campaign["id"])
        return token, campaigns[0], campaigns[1]

    # --- faults ---------------------------------------------------------------------------------------
    def _kill(self, function: str) -> None:
        pid = int((self.stack.data_dir / "pollers" / f"{function}.pid").read_text())
        try:
            os.kill(pid, signal.SIGKILL)
            self.faults[f"kill {function}"] += 1
        except ProcessLookupError:
            pass

    def _restart_postgres(self) -> None:
        """pg_ctl restart as the server's own system user (pgserver runs it as one when we are root)."""
        import pgserver
        from pgserver._commands import pg_ctl

        server = pgserver.get_server(self.pgdata, cleanup_mode=None)
        log = str(self.pgdata / "restart.log")
        pg_ctl(["-w", "-m", "fast", "-l", log, "restart"], pgdata=self.pgdata, user=server.system_user, timeout=60)
        self.faults["restart postgres"] += 1

    def _duplicate_batches(self) -> None:
        url = self.queues["SendQueue"]
        seen = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
        for message in seen:
            self.sqs.send_message(QueueUrl=url, MessageBody=message["Body"])
        self.faults["batch delivered twice"] += len(seen)

    def inject(self, token: str, cancelled: str, stop: threading.Event) -> None:
        plan = [
            (1.0, self._duplicate_batches), (1.5, lambda: self._kill("SenderFunction")),
            (2.5, lambda: self._kill("ReceiptsFunction")), (3.0, self._duplicate_batches),
            (3.5, lambda: self._kill("SenderFunction")), (4.0, lambda: self._cancel(token, cancelled)),
            (5.0, self._restart_postgres), (6.5, lambda: self._kill("SenderFunction")),
            (7.0, self._duplicate_batches), (8.0, lambda: self._kill("ReceiptsFunction")),
            (9.0, lambda: self._kill("SenderFunction")),
        ]  # fmt: skip
        began = time.monotonic()
        for at, fault in plan:
            if stop.wait(max(0.0, at - (time.monotonic() - began))):
                return
            try:
                fault()
            except Exception:
                log.exception("fault failed to inject")
                self.faults["fault not injected"] += 1

    def _cancel(self, token: str, campaign_id: str) -> None:
        for _ in range(20):  # the API may be between database connections (the restart)
            try:
                self._call("POST", f"/v1/campaigns/{campaign_id}/cancel", token)
                self.faults["cancel mid-send"] += 1
                return
            except (RuntimeError, httpx.HTTPError):
                time.sleep(0.5)

    # --- waiting and checking -------------------------------------------------------------------------
    @staticmethod
    def _wait(done: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if done():
                    return
            except (RuntimeError, httpx.HTTPError, psycopg.Error):
                pass
            time.sleep(1)
        raise TimeoutError(f"{what} did not finish in {timeout:.0f} s")

    def _queues_empty(self) -> dict[str, int]:
        counts = {}
        for name, url in self.queues.items():
            attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            counts[name] = sum(int(attributes[key]) for key in (
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed"))  # fmt: skip
        return counts

    def _settled(self, main: str, cancelled: str) -> bool:
        with psycopg.connect(self.db_url, row_factory=dict_row) as conn:
            campaigns = conn.execute("SELECT id::text, status FROM sms_campaigns").fetchall()
            statuses = {row["id"]: row["status"] for row in campaigns}
            busy = conn.execute("SELECT count(*) AS n FROM sms_delivery_logs WHERE status IN ('queued', 'sending')")
            in_flight = busy.fetchone()["n"]  # type: ignore[index]
        queues = self._queues_empty()
        waiting = sum(n for name, n in queues.items() if "DeadLetter" not in name)
        return statuses == {main: "completed", cancelled: "cancelled"} and in_flight == 0 and waiting == 0

    def check(self, main: str, cancelled: str) -> dict[str, Any]:
        with psycopg.connect(self.db_url, row_factory=dict_row) as conn:
            rows = conn.execute(
                """SELECT campaign_id::text AS campaign, status, count(*) AS n FROM sms_delivery_logs
                    GROUP BY 1, 2 ORDER BY 1, 2"""
            ).fetchall()
            copies = conn.execute(
                """SELECT l.campaign_id::text AS campaign, count(*) AS copies,
                          count(DISTINCT s.to_number) AS numbers, max(n) AS most
                     FROM (SELECT to_number, message_id, count(*) OVER (PARTITION BY to_number) AS n
                             FROM simulator_messages) s
                     JOIN sms_delivery_logs l ON l.id = s.message_id GROUP BY 1"""
            ).fetchall()
            calls = conn.execute("SELECT outcome, count(*) AS n FROM simulator_calls GROUP BY 1").fetchall()
            ledger = {
                campaign: conn.execute(
                    """SELECT coalesce(-sum(credits) FILTER (WHERE transaction_type = 'campaign_reserve'), 0)
                                  AS reserved,
                              coalesce(sum(settled_credits) FILTER (WHERE transaction_type = 'campaign_spend'), 0)
                                  AS spent,
                              coalesce(sum(credits) FILTER (WHERE transaction_type = 'campaign_refund'), 0)
                                  AS refunded
                         FROM billing_transactions WHERE reference_id = %s""",
                    (campaign,),
                ).fetchone()
                for campaign in (main, cancelled)
            }
        by_campaign = {c["campaign"]: c for c in copies}
        final = {"delivered", "undelivered", "failed", "sent"}
        problems = []
        if any(r["status"] not in final for r in rows):
            problems.append("rows not final")
        if any(c["most"] > 1 for c in copies):
            problems.append("a recipient got two copies")
        sent = by_campaign.get(main) or {}
        if (sent.get("copies"), sent.get("numbers")) != (self.recipients, self.recipients):
            problems.append(f"main campaign not exactly once: {sent}")
        for campaign, money in ledger.items():
            if money["reserved"] != money["spent"] + money["refunded"]:
                problems.append(f"{campaign}: reserved {money['reserved']} != spent + refunded")
        queues = self._queues_empty()
        return {"rows": rows, "copies": by_campaign, "calls": {c["outcome"]: c["n"] for c in calls},
                "ledger": ledger, "queues": queues, "problems": problems}  # fmt: skip

    def execute(self) -> dict[str, Any]:
        self.start()
        try:
            token, main, cancelled = self.prepare()
            began = time.monotonic()
            stop = threading.Event()
            for campaign in (cancelled, main):  # some of the one cancelled goes out before it is
                self._call("POST", f"/v1/campaigns/{campaign}/send", token)
            injector = threading.Thread(target=self.inject, args=(token, cancelled, stop), daemon=True)
            injector.start()
            self._wait(lambda: self._settled(main, cancelled), 900, "the campaigns")
            stop.set()
            injector.join()
            elapsed = time.monotonic() - began
            result = self.check(main, cancelled)
            result.update(elapsed=elapsed, faults=dict(self.faults), main=main, cancelled=cancelled,
                          restarts={f: c.restarts for f, c in self.stack.children.items()})  # fmt: skip
            return result
        finally:
            self.stack.stop()


def _free_port() -> int:
    """The stack's port is known before it starts: the simulator posts its receipts there."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--recipients", type=int, default=20_000)
    args = parser.parse_args()
    if args.runs > 1:  # each run in a fresh process: moto's state and the stack's environment are per process
        import subprocess

        command = [sys.executable, "-m", "bench.chaos", "--runs", "1", "--recipients", str(args.recipients)]
        codes = [subprocess.run(command, check=False).returncode for _ in range(args.runs)]
        print(f"chaos: {codes.count(0)} of {args.runs} runs passed")
        return 1 if any(codes) else 0
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    failed = 0
    for number in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="sms-chaos-") as scratch:
            result = Run(args.recipients, Path(scratch) / "stack").execute()
        statuses = Counter()
        for row in result["rows"]:
            label = "main" if row["campaign"] == result["main"] else "cancelled"
            statuses[f"{label} {row['status']}"] += row["n"]
        print(f"chaos run {number}: {'ok' if not result['problems'] else 'FAILED'} in {result['elapsed']:.0f} s")
        print(f"  messages: {args.recipients:,} + {args.recipients // 4:,}; faults: {result['faults']}")
        print(f"  poller processes restarted: {result['restarts']}")
        print(f"  rows: {dict(sorted(statuses.items()))}")
        print(f"  provider calls: {result['calls']}")
        print(f"  ledger: { ({k[:8]: dict(v) for k, v in result['ledger'].items()}) }")
        print(f"  queues left: { {k: v for k, v in result['queues'].items() if v} or 'none' }")
        for problem in result["problems"]:
            print(f"  PROBLEM: {problem}")
        failed += bool(result["problems"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
