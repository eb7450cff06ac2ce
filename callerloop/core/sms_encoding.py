"""How many SMS segments a text costs: GSM-7 when every character fits, else UCS-2."""

from __future__ import annotations

import math
from dataclasses import dataclass

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)

GSM7_SINGLE, GSM7_PART = 160, 153  # septets; a long message loses 7 to the concatenation header
UCS2_SINGLE, UCS2_PART = 70, 67  # UTF-16 code units


@dataclass(frozen=True)
class SmsSize:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets (escaped characters count two) or UTF-16 code units
    segments: int


def measure(body: str) -> SmsSize:
    try:
        # The codec writes extension characters (€ [ ] { } ^ ~ | \) as escape + char.
        units = len(body.encode("gsm03.38"))
    except UnicodeEncodeError:
        units = len(body.encode("utf-16-le")) // 2
        return SmsSize("UCS-2", units, _segments(units, UCS2_SINGLE, UCS2_PART))
    return SmsSize("GSM-7", units, _segments(units, GSM7_SINGLE, GSM7_PART))


def outside_gsm7(body: str) -> list[str]:
    """The characters that force a text into UCS-2, each once, in order of appearance
    ("ç", "\u2019"): what to word around in a language meant for GSM-7."""
    found: dict[str, None] = {}
    for character in body:
        try:
            character.encode("gsm03.38")
        except UnicodeEncodeError:
            found.setdefault(character)
    return list(found)


def _segments(units: int, single: int, part: int) -> int:
    if units <= single:
        return 1
    return math.ceil(units / part)
