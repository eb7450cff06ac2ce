"""Segment counting: GSM-7 where every character fits, UCS-2 otherwise."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callerloop.core.agency_config import load_agencies
from callerloop.core.settings import PROJECT_ROOT
from callerloop.core.sms_encoding import measure, outside_gsm7
from callerloop.messaging.messages import MessageContext, render_message


@pytest.mark.parametrize(
    ("body", "encoding", "segments"),
    [
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("€" * 80, "GSM-7", 1),  # extension characters take two septets
        ("€" * 81, "GSM-7", 2),
        ("ñé¿¡ü" * 32, "GSM-7", 1),  # Spanish letters that GSM-7 has
        ("á" * 70, "UCS-2", 1),
        ("á" * 71, "UCS-2", 2),
        ("\u2019", "UCS-2", 1),  # a curly apostrophe alone turns a text into UCS-2
        ("😀" * 35, "UCS-2", 1),  # astral characters take two UTF-16 units
        ("😀" * 36, "UCS-2", 2),
    ],
)
def test_segments(body: str, encoding: str, segments: int) -> None:
    size = measure(body)
    assert (size.encoding, size.segments) == (encoding, segments)


@given(st.text(max_size=600))
def test_segments_cover_the_text(body: str) -> None:
    size = measure(body)
    single, part = (160, 153) if size.encoding == "GSM-7" else (70, 67)
    assert size.segments == (1 if size.units <= single else math.ceil(size.units / part))
    assert size.units >= len(body)  # escaped and astral characters only ever add units


def test_shipped_texts_fit_in_two_gsm7_segments_in_every_language() -> None:
    context = MessageContext(
        case_number="25-071089",
        status_url="https://status.example.gov/s/AbCdEfGhIjKlMnOpQrStUv",
        survey_url="https://status.example.gov/survey/AbCdEfGhIjKlMnOpQrStUv",
    )
    for agency in load_agencies(PROJECT_ROOT / "agencies").values():
        for language in agency.agency.languages:
            for kind in ("confirmation", "assigned", "delayed", "cleared", "survey", "help"):
                size = measure(render_message(agency, kind, language, context))
                assert size.encoding == "GSM-7", (agency.id, language, kind, size)
                assert size.segments <= 2, (agency.id, language, kind, size)


def test_the_characters_that_force_ucs2_are_named_once_each() -> None:
    assert outside_gsm7("Arrêtez, ça suffit: ça") == ["ê", "ç"]
    assert outside_gsm7("FRANÇAIS, Español, {€}") == []  # Ç, ñ and the escapes are GSM-7
    assert outside_gsm7("停止") == ["停", "止"]
