"""Contact imports through the real import function, and keyset listing at a million contacts.

For each size: a CSV (1% malformed numbers, custom columns) is uploaded to S3
(moto), the notification reaches ImportQueue, and ContactImportFunction is
invoked with it, exactly as in the local stack, against PostgreSQL (embedded
unless DATABASE_URL is set). Then GET /v1/contacts is timed on page 1 and on
page 1,000 through the gateway and authorizer.
"""

import io
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from local.inprocess import Platform, platform


def _csv(rows: int) -> bytes:
    out = io.StringIO()
    out.write("phone,first_name,last_name,plan,city\n")
    for n in range(rows):
        if n % 100 == 99:
            out.write(f"12{n},Bad,Row{n},none,Nowhere\n")
        else:
            out.write(f"+4474{n:08d},First{n},Last{n},gold,London\n")
    return out.getvalue().encode()


def _import(p: Platform, token: str, rows: int) -> dict[str, Any]:
    import boto3

    payload = _csv(rows)
    started = p.call("POST", "/v1/contacts/imports", token, {"upload": True})
    key = started["upload_url"].split("?")[0].split(p.resources.refs["ImportsBucket"] + "/", 1)[1]
    boto3.client("s3", endpoint_url=p.resources.endpoint_url).put_object(
        Bucket=p.resources.refs["ImportsBucket"], Key=key, Body=payload, ContentType="text/csv"
    )
    worker = p.poller("ContactImportFunction")
    began = time.perf_counter()
    while True:
        worker.poll_once()
        status = p.call("GET", f"/v1/contacts/imports/{started['import_id']}", token)
        if status["status"] in ("completed", "failed"):
            break
    elapsed = time.perf_counter() - began
    assert status["status"] == "completed", status
    return {"rows": rows, "seconds": elapsed, "mb": len(payload) / 1e6, **status}


def _page_latency(p: Platform, token: str, limit: int, pages: int) -> tuple[float, float, int]:
    """Median milliseconds of page 1 and of page `pages`, walking the cursors between them."""
    cursor, cursors = None, [None]
    for _ in range(pages - 1):
        page = p.call("GET", f"/v1/contacts?limit={limit}" + (f"&cursor={cursor}" if cursor else ""), token)
        cursor = page["next_cursor"]
        if cursor is None:  # fewer pages than asked for: time the last one
            break
        cursors.append(cursor)

    def timed(c: str | None) -> float:
        samples = []
        for _ in range(15):
            t = time.perf_counter()
            p.call("GET", f"/v1/contacts?limit={limit}" + (f"&cursor={c}" if c else ""), token)
            samples.append((time.perf_counter() - t) * 1000)
        return statistics.median(samples)

    return timed(cursors[0]), timed(cursors[-1]), len(cursors)


def main(sizes: tuple[int, ...] = (100_000, 1_000_000)) -> None:
    print("contact import through ContactImportFunction (S3 -> SQS -> function -> PostgreSQL)")
    print(f"  {'rows':>10} {'MB':>6} {'seconds':>8} {'rows/s':>9} {'imported':>9} {'invalid':>8}")
    with tempfile.TemporaryDirectory() as scratch, platform(Path(scratch), "sms_bench_imports") as p:
        for size in sizes:
            name = f"bench{size}"
            p.call(
                "POST",
                "/v1/auth/signup",
                body={"username": name, "email": f"{name}@example.com", "password": "correct horse battery"},
            )
            token = p.call("POST", "/v1/auth/login", body={"login": name, "password": "correct horse battery"})[
                "access_token"
            ]
            result = _import(p, token, size)
            print(
                f"  {size:>10,} {result['mb']:6.1f} {result['seconds']:8.1f} {size / result['seconds']:9,.0f}"
                f" {result['imported']:>9,} {result['invalid']:>8,}"
            )
        first, last, pages = _page_latency(p, token, limit=50, pages=1000)
        print(f"listing {sizes[-1] * 99 // 100:,} contacts, GET /v1/contacts?limit=50 (median of 15, ms)")
        print(f"  page 1: {first:.2f}   page {pages:,}: {last:.2f}")


if __name__ == "__main__":
    main(tuple(int(arg) for arg in sys.argv[1:]) or (100_000, 1_000_000))
