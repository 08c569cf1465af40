"""The dispatcher prices in SQL what smsplatform.sending.encoding prices in Python: they must agree exactly."""

import random
from typing import Any

import psycopg

from smsplatform.sending.encoding import GSM_BASIC, GSM_EXTENSION, analyse


def _texts() -> list[str]:
    rnd = random.Random(20261127)  # noqa: S311 - reproducible test data
    alphabets = [
        sorted(GSM_BASIC),
        sorted(GSM_BASIC | GSM_EXTENSION),
        [*sorted(GSM_BASIC), *sorted(GSM_EXTENSION), "é", "Ж", "😀", "€"],
        ["a", "😀"],
        ["Ж", "a", "€"],
    ]
    lengths = [0, 1, 66, 67, 68, 70, 71, 134, 152, 153, 154, 159, 160, 161, 200, 305, 306, 307, 459, 460]
    return [
        "".join(rnd.choice(alphabet) for _ in range(n)) for n in lengths for alphabet in alphabets for _ in range(8)
    ]


def test_sql_segments_and_encoding_match_the_python_encoder(conn: psycopg.Connection[Any]) -> None:
    texts = _texts()
    rows = conn.execute(
        """SELECT t, sms_encoding(t) AS encoding, sms_segments(t, sms_encoding(t)) AS segments,
                  sms_units(t, sms_encoding(t)) AS units
             FROM unnest(%s::text[]) WITH ORDINALITY AS x(t, i) ORDER BY i""",
        (texts,),
    ).fetchall()

    mismatches = [
        (row["t"][:30], analyse(row["t"]), row["encoding"], row["segments"])
        for row in rows
        if (analyse(row["t"]).encoding, analyse(row["t"]).segments, analyse(row["t"]).characters)
        != (row["encoding"], row["segments"], row["units"])
    ]
    assert len(rows) == len(texts) == 800
    assert mismatches == []
