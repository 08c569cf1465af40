"""Segment counting at the boundaries where carriers bill one more part."""

import pytest

from smsplatform.sending.encoding import GSM_BASIC, GSM_EXTENSION, analyse, encoding_of


def test_the_gsm_tables_have_their_standard_sizes() -> None:
    assert len(GSM_BASIC) == 127  # 128 codes less the escape
    assert len(GSM_EXTENSION) == 10


@pytest.mark.parametrize(
    ("text", "encoding", "segments", "characters", "per_segment", "remaining"),
    [
        ("", "GSM-7", 0, 0, 160, 160),
        ("Hello", "GSM-7", 1, 5, 160, 155),
        ("a" * 160, "GSM-7", 1, 160, 160, 0),
        ("a" * 161, "GSM-7", 2, 161, 153, 145),
        ("a" * 306, "GSM-7", 2, 306, 153, 0),
        ("a" * 307, "GSM-7", 3, 307, 153, 152),
        ("€" * 80, "GSM-7", 1, 160, 160, 0),  # extension characters take two septets
        ("€" * 81, "GSM-7", 2, 162, 153, 143),  # 76 pairs fill 152 septets; the 77th opens part two
        ("a" * 152 + "€" + "a" * 7, "GSM-7", 2, 161, 153, 144),  # the escape pair moves whole to part two
        ("ü" * 70, "GSM-7", 1, 70, 160, 90),  # ü is in GSM 03.38
        ("Привет", "UCS-2", 1, 6, 70, 64),
        ("ж" * 71, "UCS-2", 2, 71, 67, 63),
        ("😀" * 35, "UCS-2", 1, 70, 70, 0),  # a surrogate pair is two units
        ("ж" * 66 + "😀" + "жжж", "UCS-2", 2, 71, 67, 62),  # and is never split across parts
    ],
)
def test_segments(text: str, encoding: str, segments: int, characters: int, per_segment: int, remaining: int) -> None:
    info = analyse(text)

    assert (info.encoding, info.segments, info.characters) == (encoding, segments, characters)
    assert (info.characters_per_segment, info.remaining_in_segment) == (per_segment, remaining)


def test_one_non_gsm_character_makes_the_whole_message_ucs2() -> None:
    assert encoding_of("Your code is 1234") == "GSM-7"
    assert encoding_of("Your code is 1234 ✓") == "UCS-2"
    assert encoding_of("Café à 5€ {ok} [x] ~ ^ | \\") == "GSM-7"
    assert encoding_of("ç") == "UCS-2"  # only upper-case Ç is in GSM 03.38
