"""The send pipeline end to end: release and drain of a campaign to 100k and 1M recipients.

Against PostgreSQL (embedded unless DATABASE_URL is set), moto's SQS and the
simulator provider, with the real handlers wired as in the local stack:
POST /send -> ReleaseQueue -> DispatcherFunction -> SendQueue -> SenderFunction
-> simulator -> signed receipts POSTed to the webhook over loopback HTTP ->
ReceiptsQueue -> ReceiptsFunction.

- first message: from the send request to the simulator's first provider call;
- release: from the send request to the dispatcher having enqueued the last batch;
- end to end: from the send request to the campaign completed with every
  delivery receipt applied; msg/s is the recipients over the time from the
  first provider call to that point (the drain). The dispatcher and one sender
  poller (one sender process) or several side by side (as Lambda runs
  concurrent senders) run from the start as threads of this process, so a
  chunked release (ADR 0013) sends while it releases. The webhook the
  simulator POSTs receipts to and the receipts poller run in a process of
  their own, as their functions do in Lambda: in this one they took 37% of the
  process's Python time and contended for its one GIL with the sender;
- release alone: the same release with no sender running (the campaign is cancelled afterwards), as the
  dispatcher's function and the database would have it on machines of their own; beside the drain, the
  release shares this machine's cores with the senders and the receipts;
- stats: GET /stats every half second while the campaign sends (median ms), and once it is done; the
  scheduler ticks every minute meanwhile, as in production (it folds the campaign's counters). While
  sending it is read from a process of its own, as the API's function runs apart from the senders in
  Lambda; the same read through this process (whose one GIL the dispatcher and senders share) is
  printed beside it;
- then it checks: exactly one provider call per message in the simulator's
  call log, each recipient's handset holding exactly one copy (the simulator
  is not idempotent, so a second send would show), every message delivered,
  and reserved = spent + refunded in the ledger.
The time spent outside the sender's handler (receiving and deleting through
SQS, waiting) is printed beside the drain. moto's SQS limits the release (its
SendMessageBatch takes ~0.1 s a call here), so each case also runs over an
in-process queue with SQS semantics (local/memory_sqs.py: visibility timeout,
receive count, redrive, delays) carrying the same handlers.
"""

import argparse
import json
import logging
import multiprocessing
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row, tuple_row

from local import memory_sqs
from local.gateway import Gateway, GatewayServer
from local.inprocess import Platform, platform
from local.pollers import SqsPoller
from local.scheduler import scheduled_event


def _seed(p: Platform, size: int) -> tuple[str, str]:
    """An account with `size` contacts in one group and enough credits; returns (token, group id)."""
    name = f"bench{size}"
    p.call("POST", "/v1/auth/signup", body={"username": name, "email": f"{name}@example.com",
                                              "password": "correct horse battery"})  # fmt: skip
    token = p.call("POST", "/v1/auth/login", body={"login": name, "password": "correct horse battery"})["access_token"]
    group = p.call("POST", "/v1/groups", token, {"name": "everyone"})
    from smsplatform.billing import ledger

    with psycopg.connect(p.database_url, row_factory=dict_row) as conn:
        user_id = conn.execute("SELECT id FROM users WHERE username = %s", (name,)).fetchone()["id"]  # type: ignore[index]
        conn.execute(
            """INSERT INTO contacts (user_id, phone_number, first_name, custom_fields, country_code, number_time_zones)
               SELECT %s, '+4474' || lpad(g::text, 8, '0'), 'Name' || g, jsonb_build_object('city', 'Leeds'),
                      'GB', 'Europe/Guernsey|Europe/Isle_of_Man|Europe/London'  -- as the API writes them
                 FROM generate_series(1, %s) g""",
            (user_id, size),
        )
        conn.execute(
            "INSERT INTO contact_group_members (group_id, contact_id) SELECT %s, id FROM contacts WHERE user_id = %s",
            (group["id"], user_id),
        )
        ledger.top_up(conn, user_id, 4 * size, amount=0)
    with psycopg.connect(p.database_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE contacts, contact_group_members")
    return token, group["id"]


# "windowed": a platform price list (GB at 2 credits, some countries blocked), a sending window in the
# recipient's zone that is open all day (every message carries its window and is checked at claim) and a
# validity period, against "plain": the platform default price, no window.
WINDOWED_SETTINGS = {
    "send_window": {"start": "00:00", "end": "23:59", "timezone": "recipient"},
    "validity_period": 86_400,
}


def _price_list(conn: psycopg.Connection[Any]) -> None:
    import phonenumbers

    regions = sorted(phonenumbers.SUPPORTED_REGIONS)
    conn.execute(
        """INSERT INTO destination_prices (country, credits_per_segment, blocked)
           SELECT r, CASE WHEN r = 'GB' THEN 2 WHEN r IN ('CU', 'KP', 'SO') THEN NULL ELSE 1 + ascii(r) %% 3 END,
                  r IN ('CU', 'KP', 'SO')
             FROM unnest(%s::text[]) AS r""",
        (regions,),
    )


def _stack_apart(env: dict[str, str]) -> tuple[Any, dict[str, Any], Gateway]:
    """In a spawned process: the parent's environment, and the stack's functions and gateway afresh."""
    os.environ.clear()
    os.environ.update(env)
    from local.runtime import FunctionRuntime
    from local.stack import ROOT
    from local.template import load_stack

    spec = load_stack(ROOT / "template.yaml")
    runtimes = {logical_id: FunctionRuntime(fn) for logical_id, fn in spec.functions.items()}
    return spec, runtimes, Gateway(spec, runtimes)


def _read_stats_apart(env: dict[str, str], token: str, campaign_id: str, ready: Any, stop: Any, out: Any) -> None:
    """In a process of its own, as the API's function runs in Lambda: once warm (`ready`), GET stats every
    half second until `stop` is set; puts the milliseconds of the reads that found messages still queued."""
    _, _, gateway = _stack_apart(env)
    headers = {"authorization": f"Bearer {token}", "user-agent": "bench"}
    path = f"/v1/campaigns/{campaign_id}/stats"
    gateway.handle("GET", path, headers, b"", "127.0.0.1")  # warm: imports and the first connection
    ready.set()
    times = []
    while not stop.wait(0.5):
        asked = time.perf_counter()
        status, _, _, raw = gateway.handle("GET", path, headers, b"", "127.0.0.1")
        elapsed = (time.perf_counter() - asked) * 1000
        if status == 200 and json.loads(raw)["queued"]:
            times.append(elapsed)
    out.put(times)


def _receive_apart(
    env: dict[str, str], refs: dict[str, str], arns: dict[str, str], memory: bool, ready: Any, stop: Any, out: Any
) -> None:
    """In a process of its own, as the webhook and the receipts function run in Lambda, apart from the
    sender: the gateway serving the simulator's signed receipts over loopback HTTP, and the receipts
    poller. Puts the gateway's port once it listens (`ready`), then, once `stop` is set, the seconds spent
    in the receipts handler and the records it took. With `memory`, the receipts queue is this process's
    own in-memory one (the webhook puts on it, the poller takes from it)."""
    from local import aws
    from smsplatform.core import queues

    spec, runtimes, gateway = _stack_apart(env)
    sqs: Any = memory_sqs.from_stack(spec, refs) if memory else aws.client("sqs", env["AWS_ENDPOINT_URL"])
    queues._sqs = lambda: sqs  # type: ignore[assignment]
    (source,) = [s for s in spec.sqs_sources if s.function == "ReceiptsFunction"]
    receipts = TimedPoller(
        SqsPoller(source, refs[source.queue], arns[source.queue], runtimes["ReceiptsFunction"], sqs, wait_seconds=1)
    )
    server = GatewayServer(gateway, "127.0.0.1", 0)
    server.start()
    receipts.thread.start()
    out.put(server.port)
    ready.set()
    stop.wait()
    receipts.stop.set()
    receipts.thread.join()
    server.stop()
    out.put((receipts.handler_seconds, receipts.records))


class TimedPoller:
    """Polls in a loop on its own thread, adding up the time spent in the handler."""

    def __init__(self, poller: SqsPoller) -> None:
        self.poller = poller
        self.handler_seconds = 0.0
        self.records = 0
        self.finished_at = 0.0  # perf_counter when its last invocation returned
        invoke = poller.runtime.invoke

        def timed(event: dict[str, Any]) -> Any:
            began = time.perf_counter()
            try:
                return invoke(event)
            finally:
                self.finished_at = time.perf_counter()
                self.handler_seconds += self.finished_at - began

        poller.runtime = _Wrapped(timed)  # type: ignore[assignment]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.records += self.poller.poll_once()


class _Wrapped:
    def __init__(self, invoke: Any) -> None:
        self.invoke = invoke


def open_messages_sql() -> str:
    """Campaign c's messages not yet final or still awaiting a receipt, from its counters (sql/0020): exact,
    and a few hundred rows to read however far the send has gone. (Probed every 50 ms; through the messages,
    whose status no index holds, that probe walked the delivered ones first: 109 ms a probe at 290k rows.)"""
    from smsplatform.billing.settlement import IN_FLIGHT_STATES

    states = ", ".join(f"'{state}'" for state in (*IN_FLIGHT_STATES, "sent"))
    return f"""(SELECT coalesce(sum(k.messages), 0) FROM campaign_message_counts k
                 WHERE k.campaign_id = c.id AND k.state IN ({states}))"""


_BOTO_SQS: dict[str, Any] = {}
STALL_SECONDS = 300  # longer than the receipts queue's visibility timeout (180 s): a retry has had its turn


def run(
    p: Platform,
    size: int,
    latency_ms: int,
    token: str,
    group_id: str,
    database_url: str,
    senders: int = 1,
    queue: str = "moto",
    kind: str = "plain",
) -> dict[str, Any]:
    from smsplatform.core import db, queues
    from smsplatform.core.config import get_settings

    boto_sqs = _BOTO_SQS.setdefault("client", queues._sqs)
    sqs: Any = memory_sqs.from_stack(p.spec, p.resources.refs) if queue == "memory" else None
    queues._sqs = (lambda: sqs) if sqs is not None else boto_sqs  # type: ignore[assignment]

    def poller(function: str) -> SqsPoller:
        made = p.poller(function)
        if sqs is not None:
            made.sqs = sqs
        return made

    os.environ["SMS_SIMULATOR_LATENCY_MS"] = str(latency_ms)
    get_settings.cache_clear()
    db.close_pool()
    with psycopg.connect(database_url, autocommit=True) as conn:
        updates_before = _updates(conn)
        conn.execute("TRUNCATE simulator_messages, simulator_calls, destination_prices")
        if kind == "windowed":
            _price_list(conn)
    settings = WINDOWED_SETTINGS if kind == "windowed" else {}
    campaign = p.call("POST", "/v1/campaigns", token, {
        "name": f"bench {latency_ms} ms", "message_template": "Hi {{first_name}}, see you in {{custom_fields.city}}!",
        "group_ids": [group_id], "settings": settings})  # fmt: skip

    # Senders and receipts poll from the start, beside the dispatcher, as their Lambdas would: a large
    # campaign's first batches are sent while the rest of its audience is released (ADR 0013).
    pollers = [TimedPoller(poller("SenderFunction")) for _ in range(senders)]
    dispatcher = TimedPoller(poller("DispatcherFunction"))
    spawn = multiprocessing.get_context("spawn")
    receiver_ready, stop_receiving, receiver_out = spawn.Event(), spawn.Event(), spawn.Queue()
    receiver = spawn.Process(
        target=_receive_apart,
        args=(dict(os.environ), p.resources.refs, p.resources.arns, sqs is not None, receiver_ready, stop_receiving,
              receiver_out),
        daemon=True,
    )  # fmt: skip
    receiver.start()
    receiver_ready.wait(120)
    os.environ["SMS_SIMULATOR_RECEIPTS_URL"] = (
        f"http://127.0.0.1:{receiver_out.get(timeout=10)}/v1/webhooks/simulator/status"
    )
    get_settings.cache_clear()
    reader_ready, stop_reading, stats_out = spawn.Event(), spawn.Event(), spawn.Queue()
    reader = spawn.Process(
        target=_read_stats_apart,
        args=(dict(os.environ), token, campaign["id"], reader_ready, stop_reading, stats_out),
        daemon=True,
    )
    reader.start()
    reader_ready.wait(120)  # its start-up (imports) is over before the send request is timed
    for poller in [*pollers, dispatcher]:
        poller.thread.start()
    began, requested = time.perf_counter(), time.time()
    p.call("POST", f"/v1/campaigns/{campaign['id']}/send", token)
    drain_began = time.perf_counter()
    stats_while_sending: list[float] = []
    next_stats = 0.0
    (schedule,) = [s for s in p.spec.schedules if s.function == "SchedulerFunction"]
    next_tick = time.perf_counter() + 60
    progress, progressed_at = None, time.perf_counter()
    open_messages = open_messages_sql()
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        while True:
            if time.perf_counter() >= next_tick:  # every minute, as EventBridge runs it (it folds the counters)
                p.runtimes["SchedulerFunction"].invoke(scheduled_event(schedule))
                next_tick += 60
            if time.perf_counter() >= next_stats:  # stats read while the campaign sends, every half second
                asked = time.perf_counter()
                read = p.call("GET", f"/v1/campaigns/{campaign['id']}/stats", token)
                if read["queued"]:
                    stats_while_sending.append((time.perf_counter() - asked) * 1000)
                next_stats = time.perf_counter() + 0.5
                moved = tuple(read[key] for key in ("total", "sent", "delivered", "failed", "undelivered"))
                if moved != progress:
                    progress, progressed_at = moved, time.perf_counter()
                elif time.perf_counter() - progressed_at > STALL_SECONDS:  # a lost message would wait forever
                    raise RuntimeError(f"no progress for {STALL_SECONDS} s: {read}")
            row = conn.execute(
                f"SELECT c.status, {open_messages} AS open FROM sms_campaigns c WHERE c.id = %s", (campaign["id"],)
            ).fetchone()
            assert row is not None
            if row["status"] == "completed" and not row["open"]:
                break
            if row["status"] in ("failed", "cancelled"):
                raise RuntimeError(f"the campaign ended {row['status']}")
            time.sleep(0.05)
        done_at = time.time()
        drain = time.perf_counter() - drain_began
        stop_reading.set()
        stats_apart: list[float] = stats_out.get(timeout=60)
        reader.join()
        release = dispatcher.finished_at - began
        for poller in [*pollers, dispatcher]:
            poller.stop.set()
            poller.thread.join()
        stop_receiving.set()
        receipts_seconds, _ = receiver_out.get(timeout=60)
        receiver.join()
        del os.environ["SMS_SIMULATOR_RECEIPTS_URL"]
        db.close_pool()  # a backend reports its statistics as it ends
        (updated, in_place), (updated_before, in_place_before) = _updates(conn, settle=True), updates_before
        updated, in_place = updated - updated_before, in_place - in_place_before
        check = conn.execute(
            """SELECT (SELECT count(*) FROM simulator_messages) AS outbox,
                      (SELECT count(DISTINCT to_number) FROM simulator_messages) AS numbers,
                      (SELECT count(*) FROM simulator_calls) AS calls,
                      (SELECT count(DISTINCT message_id) FROM simulator_calls) AS called,
                      (SELECT count(*) FILTER (WHERE status = 'delivered') FROM sms_delivery_logs
                        WHERE campaign_id = %(c)s) AS delivered,
                      (SELECT extract(epoch FROM min(called_at)) FROM simulator_calls) AS first_call""",
            {"c": campaign["id"]},
        ).fetchone()
    stats = p.call("GET", f"/v1/campaigns/{campaign['id']}/stats", token)
    reads = _read_latency(p, token, campaign["id"])
    assert check is not None
    ok = (
        check["outbox"] == check["numbers"] == check["delivered"] == size
        and check["calls"] == check["called"] == size  # exactly one provider call per message
        and stats["credits_reserved"] == stats["credits_spent"] + stats["credits_refunded"]
    )
    return {
        "size": size,
        "latency": latency_ms,
        "release": release,
        "first_message": float(check["first_call"]) - requested,  # send request -> first provider call
        "stats_sending_ms": _median(stats_while_sending),
        "stats_apart_ms": _median(stats_apart),
        "drain": drain,  # send request -> every receipt applied
        "rate": size / (done_at - float(check["first_call"])),  # first provider call -> every receipt applied
        "sender": max(poller.handler_seconds for poller in pollers),
        "receipts": receipts_seconds,
        "batches": sum(poller.records for poller in pollers),
        "ok": ok,
        "in_place": in_place / updated if updated else 0.0,
        "outbox": check["outbox"],
        "delivered": check["delivered"],
        **reads,
    }


def release_alone(p: Platform, token: str, group_id: str) -> float:
    """Seconds from the send request to the last batch enqueued, with only the dispatcher running; the
    campaign is then cancelled (its rows stop, its credits come back) so later cases find nothing queued."""
    from smsplatform.core import db, queues

    sqs = memory_sqs.from_stack(p.spec, p.resources.refs)
    queues._sqs = lambda: sqs  # type: ignore[assignment]
    db.close_pool()
    campaign = p.call("POST", "/v1/campaigns", token, {
        "name": "release alone", "message_template": "Hi {{first_name}}, see you in {{custom_fields.city}}!",
        "group_ids": [group_id]})  # fmt: skip
    dispatcher = p.poller("DispatcherFunction")
    dispatcher.sqs = sqs
    began = time.perf_counter()
    p.call("POST", f"/v1/campaigns/{campaign['id']}/send", token)
    with psycopg.connect(p.database_url) as conn:
        while True:
            handled = dispatcher.poll_once()
            finished = time.perf_counter()
            row = conn.execute(
                "SELECT status <> 'queued' AND NOT releasing FROM sms_campaigns WHERE id = %s", (campaign["id"],)
            ).fetchone()
            if handled and row is not None and row[0]:
                break
    p.call("POST", f"/v1/campaigns/{campaign['id']}/cancel", token)
    return finished - began


def _updates(conn: psycopg.Connection[Any], settle: bool = False) -> tuple[int, int]:
    """Updates of delivery log rows so far, and how many of them were in place (HOT: ADR 0014), as the
    statistics have them; with `settle`, once the numbers stop moving (ended backends report shortly after)."""
    read = """SELECT coalesce(sum(n_tup_upd), 0)::bigint AS updated, coalesce(sum(n_tup_hot_upd), 0)::bigint AS hot
                FROM pg_stat_user_tables WHERE relname LIKE 'sms\\_delivery\\_logs\\_%'"""
    seen = None
    for _ in range(20 if settle else 1):
        row = conn.cursor(row_factory=tuple_row).execute(read).fetchone()
        assert row is not None
        if (row[0], row[1]) == seen:
            break
        seen = (row[0], row[1])
        time.sleep(0.25 if settle else 0)
    assert seen is not None
    return seen


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2] if values else 0.0


def _read_latency(p: Platform, token: str, campaign_id: str) -> dict[str, float]:
    """Median ms of GET stats, of the first page of messages and of page 200 (cursor walked), over 7 calls."""

    def median_ms(path: str) -> float:
        samples = []
        for _ in range(7):
            began = time.perf_counter()
            p.call("GET", path, token)
            samples.append((time.perf_counter() - began) * 1000)
        return sorted(samples)[3]

    base = f"/v1/campaigns/{campaign_id}/messages?limit=100"
    cursor = None
    for _ in range(199):
        cursor = p.call("GET", base + (f"&cursor={cursor}" if cursor else ""), token)["next_cursor"]
    return {
        "stats_ms": median_ms(f"/v1/campaigns/{campaign_id}/stats"),
        "page1_ms": median_ms(base),
        "page200_ms": median_ms(f"{base}&cursor={cursor}"),
        "delivered_page_ms": median_ms(f"{base}&status=delivered"),
    }


def main(
    sizes: tuple[int, ...] = (100_000, 1_000_000),
    latencies: tuple[int, ...] = (0, 50),
    senders: tuple[int, ...] = (1,),
    queues: tuple[str, ...] = ("moto", "memory"),
    kinds: tuple[str, ...] = ("plain", "windowed"),
    release_alone_too: bool = True,
) -> list[dict[str, Any]]:
    """Runs every case and prints a line for each; returns their figures."""
    results = []
    print("send pipeline: POST /send -> dispatcher -> sender(s) -> simulator -> webhook -> receipts")
    print(
        f"  {'recipients':>10} {'campaign':>8} {'queue':>6} {'latency':>7} {'senders':>7} {'first msg s':>11}"
        f" {'release s':>9}"
        f" {'e2e s':>8} {'msg/s':>8}"
        f" {'in sender s':>11} {'in receipts s':>13} {'SQS+wait s':>10}  check"
    )
    with tempfile.TemporaryDirectory() as scratch, platform(Path(scratch), "sms_bench_send") as p:
        os.environ["SMS_SIMULATOR_RULES"] = "{}"  # every number delivers
        os.environ["SMS_SEND_CONCURRENCY"] = os.environ.get("SMS_SEND_CONCURRENCY", "128")
        for size in sizes:
            token, group_id = _seed(p, size)
            cases = [
                (q, latency, count, kind)
                for latency in latencies
                for count in senders
                for q in queues
                for kind in kinds
            ]
            for queue, latency, count, kind in cases:
                r = run(p, size, latency, token, group_id, p.database_url, count, queue, kind)
                results.append({**r, "queue": queue, "kind": kind, "senders": count})
                overhead = r["drain"] - r["sender"]
                print(
                    f"  {size:>10,} {kind:>8} {queue:>6} {latency:>5} ms {count:>7} {r['first_message']:11.1f}"
                    f" {r['release']:9.1f}"
                    f" {r['drain']:8.1f}"
                    f" {r['rate']:8,.0f}"
                    f" {r['sender']:11.1f} {r['receipts']:13.1f} {overhead:10.1f}"
                    f"  {'ok' if r['ok'] else 'MISMATCH'} ({r['outbox']:,} sent, {r['delivered']:,} delivered)",
                    flush=True,
                )
                print(
                    f"  {'':>17} reads (median ms): stats while sending {r['stats_apart_ms']:.1f} (API in a"
                    f" process of its own; {r['stats_sending_ms']:.1f} through this one), after"
                    f" {r['stats_ms']:.1f}, messages page 1 {r['page1_ms']:.1f},"
                    f" page 200 {r['page200_ms']:.1f}, ?status=delivered page 1 {r['delivered_page_ms']:.1f};"
                    f" message updates in place {r['in_place']:.0%}",
                    flush=True,
                )
            if release_alone_too:
                seconds = release_alone(p, token, group_id)
                print(f"  {size:>10,} release alone (dispatcher only, no sender): {seconds:.1f} s", flush=True)
    return results


if __name__ == "__main__":
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--latencies", type=int, nargs="+", default=[0, 50])
    parser.add_argument("--senders", type=int, nargs="+", default=[1], help="sender pollers side by side")
    parser.add_argument("--queues", nargs="+", default=["moto", "memory"], choices=["moto", "memory"])
    parser.add_argument(
        "--campaigns", nargs="+", default=["plain", "windowed"], choices=["plain", "windowed"],
        help="plain: default price, no window; windowed: a price list, an all-day window in the recipient's zone "
        "and a validity period",
    )  # fmt: skip
    parser.add_argument("--no-release-alone", action="store_true", help="skip the release with no sender running")
    args = parser.parse_args()
    main(
        tuple(args.sizes),
        tuple(args.latencies),
        tuple(args.senders),
        tuple(args.queues),
        tuple(args.campaigns),
        release_alone_too=not args.no_release_alone,
    )
