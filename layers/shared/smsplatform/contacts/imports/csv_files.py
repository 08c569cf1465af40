"""Reading an import's CSV file: its header's layout once, then its data rows as they are consumed."""

import csv
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from smsplatform.contacts import contacts

PHONE_HEADERS = ("phone", "phone_number", "mobile", "msisdn", "number")
KNOWN_HEADERS = {"first_name": 50, "last_name": 50, "email": 120, "country_code": 5, "timezone": 64}


class ImportFileError(Exception):
    """The file as a whole cannot be imported (no phone column, not UTF-8 ...)."""


@dataclass(frozen=True)
class Layout:
    delimiter: str
    phone: int
    known: dict[str, int]
    custom: list[tuple[int, str]]
    ignored: list[str]


def layout_of(header_line: str) -> Layout:
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    originals = next(csv.reader([header_line], delimiter=delimiter))
    names = [re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_") for name in originals]
    phone = next((names.index(name) for name in PHONE_HEADERS if name in names), None)
    if phone is None:
        raise ImportFileError(f"The header has no phone column (one of: {', '.join(PHONE_HEADERS)}).")
    known = {name: names.index(name) for name in KNOWN_HEADERS if name in names}
    taken = {phone, *known.values()}
    usable = [
        (index, name)
        for index, name in enumerate(names)
        if index not in taken and name and contacts.CUSTOM_FIELD_KEY.match(name)
    ]
    custom = usable[: contacts.MAX_CUSTOM_FIELDS]
    kept = taken | {index for index, _ in custom}
    ignored = [originals[index].strip() for index in range(len(names)) if index not in kept]
    return Layout(delimiter, phone, known, custom, ignored)


Row = tuple[int, list[str]]  # (line number, fields); the header is line 1


def open_csv(stream: BinaryIO) -> tuple[Layout, Iterator[Row]]:
    """Reads the header now (a file without a usable one fails here) and the data rows as they are consumed."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    with _as_file_error():
        header = text.readline()
    if not header.strip():
        raise ImportFileError("The file is empty.")
    layout = layout_of(header)

    def rows() -> Iterator[Row]:
        with _as_file_error():
            reader = csv.reader(text, delimiter=layout.delimiter)
            consumed = 0
            for fields in reader:
                line_number = 2 + consumed
                consumed = reader.line_num
                if any(field.strip() for field in fields):
                    yield line_number, fields

    return layout, rows()


@contextmanager
def _as_file_error() -> Iterator[None]:
    try:
        yield
    except UnicodeDecodeError as exc:
        raise ImportFileError("The file is not UTF-8 text.") from exc
    except csv.Error as exc:
        raise ImportFileError(f"The file is not valid CSV: {exc}.") from exc
