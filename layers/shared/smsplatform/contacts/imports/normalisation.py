"""Normalising an import's rows: each number parsed by libphonenumber (which has no SQL equivalent), each
field checked, in this process or, for a large file, in worker processes."""

import json
import multiprocessing
import multiprocessing.connection
import re
from collections import deque
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

from smsplatform.contacts import phones
from smsplatform.contacts.contacts import MAX_CUSTOM_VALUE_CHARACTERS
from smsplatform.contacts.imports.csv_files import KNOWN_HEADERS, Layout, Row
from smsplatform.sending import windows

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def staged(
    line_number: int, fields: list[str], layout: Layout, default_region: str | None
) -> tuple[int, str | None, str | None, str | None, str | None, str | None, str | None, str | None, str, str | None]:
    """One staging row: the normalised values (with the zones of the number), or the reason it is skipped."""

    def field(index: int | None) -> str | None:
        if index is None or index >= len(fields):
            return None
        value = fields[index].strip()
        return value or None

    known = {name: field(index) for name, index in layout.known.items()}
    custom = {name: value for index, name in layout.custom if (value := field(index)) is not None}
    custom_json = json.dumps(custom) if custom else "{}"
    raw_phone = field(layout.phone)
    error = None
    phone = region = None
    if raw_phone is None:
        error = "has no phone number"
    else:
        try:
            phone, region = phones.parse(raw_phone, known.get("country_code") or default_region)
        except phones.UnusableNumberError as exc:
            error = f"phone number {raw_phone!r} {exc}"
    if error is None:
        for name, limit in KNOWN_HEADERS.items():
            if known.get(name) is not None and len(known[name] or "") > limit:
                error = f"{name} is longer than {limit} characters"
        if known.get("email") and not _EMAIL.match(known["email"] or ""):
            error = f"email {known['email']!r} is not an e-mail address"
        if known.get("timezone") and not windows.is_zone(known["timezone"] or ""):
            error = f"timezone {known['timezone']!r} is not an IANA time zone (e.g. Europe/London)"
        for name, value in custom.items():
            if len(value) > MAX_CUSTOM_VALUE_CHARACTERS:
                error = f"{name} is longer than {MAX_CUSTOM_VALUE_CHARACTERS} characters"
    return (
        line_number,
        phone,
        region,
        phones.time_zones(phone) if phone else None,
        known.get("first_name"),
        known.get("last_name"),
        known.get("email"),
        known.get("timezone"),
        custom_json,
        error,
    )


BATCH_ROWS = 5_000


def _normalise_batches(
    connection: "multiprocessing.connection.Connection", layout: Layout, default_region: str | None
) -> None:
    """Worker process: staging rows for each batch it is sent, until it is sent None."""
    while (batch := connection.recv()) is not None:
        connection.send([staged(line_number, fields, layout, default_region) for line_number, fields in batch])


def staged_rows(
    layout: Layout, rows: Iterator[Row], default_region: str | None, workers: int
) -> Iterator[tuple[Any, ...]]:
    """Staging rows in file order. Normalising numbers is CPU-bound pure Python, so a large file is
    cut into batches that `workers` processes normalise while this one feeds COPY.

    Worker processes are spawned (not forked: this process has threads) and talk over pipes,
    which work in Lambda, where multiprocessing's queues and pools do not.
    """
    if workers <= 1:
        for line_number, fields in rows:
            yield staged(line_number, fields, layout, default_region)
        return
    context = multiprocessing.get_context("spawn")
    pipes, processes = [], []
    for _ in range(workers):
        ours, theirs = context.Pipe()
        process = context.Process(target=_normalise_batches, args=(theirs, layout, default_region), daemon=True)
        process.start()
        theirs.close()
        pipes.append(ours)
        processes.append(process)
    # One batch in flight per worker, collected in the order sent: file order is kept, and
    # no worker can block sending results while this process blocks sending it more.
    in_flight: deque[int] = deque()
    sent = 0
    try:
        for batch in _batches(rows):
            worker = sent % workers
            if len(in_flight) == workers:
                yield from pipes[in_flight.popleft()].recv()
            pipes[worker].send(batch)
            in_flight.append(worker)
            sent += 1
        while in_flight:
            yield from pipes[in_flight.popleft()].recv()
    finally:
        for pipe in pipes:
            with suppress(OSError):
                pipe.send(None)
            pipe.close()
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()


def _batches(rows: Iterator[Row]) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch
