"""Message history at 1M rows: GET /v1/messages, /v1/inbound-messages and a conversation, page 1 and page 1,000.

One account holds `size` outbound messages over the last weeks (single sends
and one campaign of a tenth of them, 2% failed, 10,000 numbers), a tenth as
many inbound messages, and a second account as much again, so every query
must find its own account's rows among others'. Each page is timed through
the in-process gateway (authorizer, handler, PostgreSQL): page 1, then the
cursor is walked to page 1,000 and that page is timed. Keyset pages should
cost the same at page 1 and page 1,000; the plan of each query is printed.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from local.inprocess import Platform, platform

NUMBERS = 10_000


def _fill(database_url: str, user_id: UUID, size: int) -> UUID:
    """`size` outbound messages (a tenth in one campaign) and size/10 inbound ones; returns the campaign."""
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        campaign = conn.execute(
            """INSERT INTO sms_campaigns (user_id, name, message_template, status)
               VALUES (%s, 'history', 'Hi', 'completed') RETURNING id""",
            (user_id,),
        ).fetchone()
        assert campaign is not None
        conn.execute(
            """INSERT INTO sms_delivery_logs (user_id, campaign_id, request_id, phone_number, status, batch_number,
                                              segments, encoding, cost, body, sender_id, provider, created_at,
                                              updated_at, sent_at, delivered_at)
               SELECT %(user)s,
                      CASE WHEN g %% 10 = 0 THEN %(campaign)s END,
                      CASE WHEN g %% 10 <> 0 THEN md5((g / 100)::text || %(user)s::text)::uuid END,
                      '+4474' || lpad((g %% %(numbers)s)::text, 8, '0'),
                      CASE WHEN g %% 50 = 0 THEN 'failed' WHEN g %% 97 = 0 THEN 'undelivered' ELSE 'delivered' END,
                      (g / 1000), 1, 'GSM-7', 1, 'Your code is ' || g, 'SHOP', 'simulator',
                      now() - make_interval(secs => g * 2), now() - make_interval(secs => g * 2),
                      now() - make_interval(secs => g * 2), now() - make_interval(secs => g * 2 - 3)
                 FROM generate_series(1, %(size)s) g""",
            {"user": user_id, "campaign": campaign["id"], "numbers": NUMBERS, "size": size},
        )
        conn.execute(
            """INSERT INTO inbound_messages (user_id, provider, external_id, from_number, to_number, body, keyword,
                                             received_at)
               SELECT %(user)s, 'simulator', 'MO' || %(user)s::text || g, '+4474' || lpad((g %% %(numbers)s)::text,
                      8, '0'), 'SHOP', 'Thanks! ' || g, CASE WHEN g %% 100 = 0 THEN 'help' END,
                      now() - make_interval(secs => g * 20)
                 FROM generate_series(1, %(size)s / 10) g""",
            {"user": user_id, "numbers": NUMBERS, "size": size},
        )
    return campaign["id"]


def _median_ms(p: Platform, token: str, path: str, runs: int = 7) -> float:
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        p.call("GET", path, token)
        samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples)


def _page(p: Platform, token: str, path: str, page: int) -> tuple[str, int, float]:
    """The URL of page `page` (its cursor walked from page 1; the last page if there are fewer), its number,
    and the median ms per page of the walk."""
    url, walked, reached = path, [], 1
    for _ in range(page - 1):
        began = time.perf_counter()
        cursor = p.call("GET", url, token)["next_cursor"]
        walked.append((time.perf_counter() - began) * 1000)
        if cursor is None:
            break
        url, reached = f"{path}{'&' if '?' in path else '?'}cursor={cursor}", reached + 1
    return url, reached, statistics.median(walked) if walked else 0.0


def _plan(database_url: str, sql: str, params: dict[str, Any]) -> str:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {sql}", params).fetchall()
    return " / ".join(str(row[0]).strip() for row in rows if "Index" in row[0] or "Seq Scan" in row[0])[:200]


def main(size: int = 1_000_000, far_page: int = 1000) -> None:
    print(f"message history at {size:,} outbound messages of one account (+{size // 10:,} inbound; another account")
    print("  as large again), through the in-process gateway: median ms of 7 calls, 50 a page")
    with tempfile.TemporaryDirectory() as scratch, platform(Path(scratch), "sms_bench_history") as p:
        token, user_id = p.account("history")
        _, other_id = p.account("neighbour")
        began = time.perf_counter()
        campaign_id = _fill(p.database_url, user_id, size)
        _fill(p.database_url, other_id, size)
        with psycopg.connect(p.database_url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE sms_delivery_logs, inbound_messages")
        print(f"  filled in {time.perf_counter() - began:.0f} s")
        with psycopg.connect(p.database_url, row_factory=dict_row) as conn:
            contact = p.call("POST", "/v1/contacts", token, {"phone_number": "+447400000042"})
            count = conn.execute(
                "SELECT count(*) AS n FROM sms_delivery_logs WHERE user_id = %s AND phone_number = '+447400000042'",
                (user_id,),
            ).fetchone()
        cases = [
            ("GET /v1/messages", "/v1/messages?limit=50"),
            ("  ?status=failed (2%)", "/v1/messages?limit=50&status=failed"),
            ("  ?status=undelivered (1%)", "/v1/messages?limit=50&status=undelivered"),
            ("  ?campaign_id= (10%)", f"/v1/messages?limit=50&campaign_id={campaign_id}"),
            ("  ?to= (one number)", "/v1/messages?limit=50&to=%2B447400000042"),
            ("GET /v1/inbound-messages", "/v1/inbound-messages?limit=50"),
            ("  ?keyword=help (1%)", "/v1/inbound-messages?limit=50&keyword=help"),
            ("conversation (one contact)", f"/v1/contacts/{contact['id']}/conversation?limit=50"),
        ]
        print(f"  {'list':<28} {'page 1':>8} {f'page {far_page:,}':>11} {'walk/page':>10}")
        for name, path in cases:
            first = _median_ms(p, token, path)
            far_url, reached, walk = _page(p, token, path, far_page)
            far = _median_ms(p, token, far_url)
            last = "" if reached == far_page else f" (page {reached:,} is the last)"
            print(f"  {name:<28} {first:8.1f} {far:11.1f} {walk:10.1f}{last}", flush=True)
        print(f"  (the conversation's number has {count['n'] if count else 0} outbound messages)")
        newest = "SELECT id FROM sms_delivery_logs WHERE user_id = %(u)s ORDER BY created_at DESC, id DESC LIMIT 51"
        print(f"  plan, messages page 1: {_plan(p.database_url, newest, {'u': user_id})}")
        to = """SELECT id FROM sms_delivery_logs WHERE user_id = %(u)s AND phone_number = '+447400000042'
                 ORDER BY created_at DESC, id DESC LIMIT 51"""
        print(f"  plan, ?to=:            {_plan(p.database_url, to, {'u': user_id})}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--far-page", type=int, default=1000)
    arguments = parser.parse_args()
    main(arguments.size, arguments.far_page)
