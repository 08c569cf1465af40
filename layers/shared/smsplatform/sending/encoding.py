"""SMS encoding and segment counting: GSM 03.38 (7-bit) or UCS-2, as handsets and SMSCs split them.

A message is GSM-7 when every character is in the GSM 03.38 basic table or its
extension table (an extension character is sent as ESC + code: two septets).
Otherwise it is UCS-2, counted in UTF-16 code units (a character outside the
BMP, such as most emoji, is a surrogate pair: two units). One part carries
160 septets or 70 units; a concatenated part loses room to its header and
carries 153 or 67. An escape pair or a surrogate pair is never split across
two parts, so a part may end one unit short.
"""

from dataclasses import dataclass
from typing import Literal

# GSM 03.38 basic character set, in code order 0x00-0x7F (0x1B is the escape to the extension table).
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
) - {"\x1b"}
# Characters reached through the escape: each costs two septets.
GSM_EXTENSION = frozenset("\f^{}\\[~]|€")

Encoding = Literal["GSM-7", "UCS-2"]
_LIMITS: dict[str, tuple[int, int]] = {"GSM-7": (160, 153), "UCS-2": (70, 67)}


@dataclass(frozen=True)
class SegmentInfo:
    encoding: Encoding
    segments: int
    characters: int  # septets (GSM-7) or UTF-16 code units (UCS-2) the message takes
    characters_per_segment: int
    remaining_in_segment: int  # room left in the last part before another part is needed


def encoding_of(text: str) -> Encoding:
    return "GSM-7" if all(ch in GSM_BASIC or ch in GSM_EXTENSION for ch in text) else "UCS-2"


def _costs(text: str, encoding: Encoding) -> list[int]:
    if encoding == "GSM-7":
        return [2 if ch in GSM_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def analyse(text: str) -> SegmentInfo:
    encoding = encoding_of(text)
    costs = _costs(text, encoding)
    total = sum(costs)
    single, multi = _LIMITS[encoding]
    if total <= single:
        return SegmentInfo(encoding, 1 if text else 0, total, single, single - total)
    # Concatenated: fill parts of `multi` units; a two-unit character that does not fit moves on whole.
    segments, used = 1, 0
    for cost in costs:
        if used + cost > multi:
            segments, used = segments + 1, 0
        used += cost
    return SegmentInfo(encoding, segments, total, multi, multi - used)
