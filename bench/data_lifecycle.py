"""Data lifecycle at 1M rows: archiving a month of delivery logs, and exporting an account's messages.

A month past retention holds `size` messages (real-looking text, 2% failed): ArchiveFunction's work is
timed end to end (COPY to gzip JSON Lines, upload to S3 in moto, read back and verify, detach, drop), with
the object's size. Then an account with `size` recent messages exports them all (POST /v1/exports through
the in-process gateway, the export function run, the gzip CSV uploaded): the time from request to
completed, and the object's size. S3 is moto on loopback, so the upload costs what a local HTTP PUT does.
"""

import argparse
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from uuid import UUID

import psycopg

from local.inprocess import platform


def _fill(database_url: str, user_id: UUID, size: int, month: date | None) -> None:
    """`size` messages in `month` (its partition made first), or over the last hours if None."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        if month is not None:
            conn.execute("SELECT create_month_partition('sms_delivery_logs', %s)", (month,))
        start = datetime(month.year, month.month, 1, tzinfo=UTC) if month else datetime.now(UTC)
        sign = 1 if month else -1
        conn.execute(
            """INSERT INTO sms_delivery_logs (user_id, request_id, phone_number, status, segments, encoding, cost,
                                              body, sender_id, provider, external_message_id, created_at,
                                              updated_at, sent_at, delivered_at, error_code)
               SELECT %(user)s, md5((g / 100)::text)::uuid, '+4474' || lpad((g %% 100000)::text, 8, '0'),
                      CASE WHEN g %% 50 = 0 THEN 'failed' ELSE 'delivered' END, 1, 'GSM-7', 1,
                      'Hi ' || g || E', your order #48213 ($129.99) has shipped.\\nTrack: https://x.example/t?id=' || g,
                      'SHOP', 'simulator', 'SIM-' || g,
                      %(start)s + %(sign)s * make_interval(secs => g), %(start)s + %(sign)s * make_interval(secs => g),
                      %(start)s + %(sign)s * make_interval(secs => g), %(start)s + %(sign)s * make_interval(secs => g),
                      CASE WHEN g %% 50 = 0 THEN 'SIM-30003' END
                 FROM generate_series(1, %(size)s) g""",
            {"user": user_id, "size": size, "start": start, "sign": sign},
        )
        conn.execute("VACUUM ANALYZE sms_delivery_logs")


def main(size: int = 1_000_000) -> None:
    print(f"data lifecycle at {size:,} rows (S3 is moto on loopback)")
    with tempfile.TemporaryDirectory() as scratch, platform(Path(scratch), "sms_bench_lifecycle") as p:
        # Imported once the platform's environment is set: Powertools reads its namespace at import.
        from smsplatform.core import archive
        from smsplatform.core.config import get_settings
        from smsplatform.sending import exports, recovery

        token, user_id = p.account("lifecycle")
        now = datetime.now(UTC)
        year, month = divmod(now.month - 1 - 20, 12)
        old = date(now.year + year, month + 1, 1)
        began = time.perf_counter()
        _fill(p.database_url, user_id, size, old)
        _fill(p.database_url, user_id, size, None)
        print(f"  filled {2 * size:,} rows in {time.perf_counter() - began:.0f} s")

        settings = get_settings()
        assert settings.archive_bucket is not None
        began = time.perf_counter()
        done = archive.archive_month("sms_delivery_logs", old, settings.archive_bucket, recovery.BEFORE_ARCHIVE)
        seconds = time.perf_counter() - began
        print(
            f"  archive {old:%Y-%m}: {done.rows:,} rows in {seconds:.1f} s ({done.rows / seconds:,.0f} rows/s), "
            f"{done.bytes / 1e6:.1f} MB gzip JSON Lines ({done.bytes / done.rows:.0f} B/row), verified and dropped"
        )

        began = time.perf_counter()
        started = p.call("POST", "/v1/exports", token, {"kind": "messages"})
        built = exports.run(UUID(started["export_id"]), settings)
        shown = p.call("GET", f"/v1/exports/{started['export_id']}", token)
        seconds = time.perf_counter() - began
        assert built is not None
        assert shown["status"] == "completed"
        print(
            f"  export: {shown['rows']:,} rows in {seconds:.1f} s ({shown['rows'] / seconds:,.0f} rows/s), "
            f"{shown['bytes'] / 1e6:.1f} MB gzip CSV, presigned URL until {shown['expires_at'][11:19]} UTC"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    main(parser.parse_args().size)
