"""Classifying inbound texts: opt-out, opt-in, help or other, in English, Spanish, French."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callerloop.messaging.sms_keywords import (
    FILLER_PHRASES,
    HELP_KEYWORDS,
    LEADING_OPT_OUT_WORDS,
    OPT_IN_KEYWORDS,
    OPT_OUT_KEYWORDS,
    OPT_OUT_PHRASES,
    InboundIntent,
    classify_inbound,
    normalise,
)

STOP_WORDS = sorted(word for words in OPT_OUT_KEYWORDS.values() for word in words)
SURROUNDINGS = st.text(
    alphabet=string.punctuation + string.whitespace + "¡¿…\u201c\u201d\u2019«»", max_size=6
)


@pytest.mark.parametrize(
    ("body", "keyword", "language"),
    [
        ("STOP", "STOP", None),
        ("stop", "STOP", None),
        ("  Stop!!! ", "STOP", None),
        ("Stop please", "STOP", None),
        ("please stop", "STOP", None),
        ("STOP STOP STOP", "STOP", None),
        ("stop all", "STOP ALL", None),
        ("Unsubscribe", "UNSUBSCRIBE", "en"),
        ("cancel", "CANCEL", "en"),
        ("END.", "END", "en"),
        ("quit", "QUIT", "en"),
        ("revoke", "REVOKE", "en"),
        ("opt-out", "OPT OUT", "en"),
        ("OptOut", "OPTOUT", "en"),
        ("¡ALTO!", "ALTO", "es"),
        ("parar", "PARAR", "es"),
        ("Baja", "BAJA", "es"),
        ("no más", "NO MÁS", "es"),
        ("alto por favor", "ALTO", "es"),
        ("ARRÊT", "ARRÊT", "fr"),
        ("arret", "ARRÊT", "fr"),
        ("Arrêtez svp", "ARRÊTEZ", "fr"),
        ("stop texting me", "STOP TEXTING", "en"),
        ("Can you please stop sending me these?", "STOP SENDING", "en"),
        ("no more texts", "NO MORE TEXTS", "en"),
        ("Please don't text me again", "DON'T TEXT ME", "en"),
        ("Sorry, wrong number", "WRONG NUMBER", "en"),
        ("Stop. Wrong person", "STOP", None),
        ("dejen de enviarme mensajes", "DEJEN DE ENVIARME", "es"),
        ("No mas mensajes por favor", "NO MÁS MENSAJES", "es"),
        ("arrêtez de m\u2019écrire", "ARRÊTEZ DE M'ÉCRIRE", "fr"),
        ("Plus de messages, merci", "PLUS DE MESSAGES", "fr"),
        ("désabonnez-moi", "DÉSABONNEZ-MOI", "fr"),
    ],
)
def test_opt_outs(body: str, keyword: str, language: str | None) -> None:
    result = classify_inbound(body)
    assert (result.intent, result.keyword, result.language) == (
        InboundIntent.OPT_OUT,
        keyword,
        language,
    )


@pytest.mark.parametrize(
    "body",
    [
        "I stopped by the store",
        "I can't stop shaking",
        "the alarm won't stop",
        "Stop by when you can",
        "stopped",
        "cancel the call please, he left already",
        "The end",
        "They are at the end of the street",
        "where is the officer?",
        "thanks",
        "ok",
        "sí",
        "oui",
        "",
        "   ",
        "🚓🚓",
    ],
)
def test_not_opt_outs(body: str) -> None:
    assert classify_inbound(body).intent == InboundIntent.OTHER


@pytest.mark.parametrize(
    ("body", "intent", "keyword"),
    [
        ("START", InboundIntent.OPT_IN, "START"),
        ("unstop", InboundIntent.OPT_IN, "UNSTOP"),
        ("Yes please", InboundIntent.OPT_IN, "YES"),
        ("HELP", InboundIntent.HELP, "HELP"),
        ("help?", InboundIntent.HELP, "HELP"),
        ("info", InboundIntent.HELP, "INFO"),
        ("Ayuda", InboundIntent.HELP, "AYUDA"),
        ("aide", InboundIntent.HELP, "AIDE"),
    ],
)
def test_opt_in_and_help(body: str, intent: InboundIntent, keyword: str) -> None:
    result = classify_inbound(body)
    assert (result.intent, result.keyword) == (intent, keyword)


def test_a_stop_word_leads_only_a_short_message() -> None:
    assert classify_inbound("stop this right now").intent == InboundIntent.OPT_OUT
    long_story = "stop sign at the corner is down and cars keep running it"
    assert classify_inbound(long_story).intent == InboundIntent.OTHER


def test_the_tables_agree_with_each_other() -> None:
    intents = {
        **{normalise(w): "help" for ws in HELP_KEYWORDS.values() for w in ws},
        **{normalise(w): "opt_in" for ws in OPT_IN_KEYWORDS.values() for w in ws},
    }
    stop_words = {normalise(w) for w in STOP_WORDS}
    assert not stop_words & intents.keys(), "a word cannot both stop and start or help"
    assert {normalise(w) for w in LEADING_OPT_OUT_WORDS} <= stop_words
    fillers = {normalise(f) for f in FILLER_PHRASES}
    assert not fillers & (stop_words | intents.keys()), "a keyword cannot be filler"
    for phrases in OPT_OUT_PHRASES.values():
        for phrase in phrases:
            assert classify_inbound(phrase).intent == InboundIntent.OPT_OUT, phrase


def random_case(word: str, flips: list[bool]) -> str:
    padded = (flips + [False] * len(word))[: len(word)]
    return "".join(c.upper() if flip else c.lower() for c, flip in zip(word, padded, strict=True))


@given(
    st.sampled_from(STOP_WORDS),
    st.lists(st.booleans(), max_size=20),
    SURROUNDINGS,
    SURROUNDINGS,
)
def test_any_stop_word_alone_is_an_opt_out(
    word: str, flips: list[bool], before: str, after: str
) -> None:
    body = before + random_case(word, flips) + after
    assert classify_inbound(body).intent == InboundIntent.OPT_OUT, body


@given(st.sampled_from(STOP_WORDS), st.sampled_from(FILLER_PHRASES), st.booleans())
def test_politeness_does_not_hide_a_stop_word(word: str, filler: str, filler_first: bool) -> None:
    body = f"{filler} {word}" if filler_first else f"{word}, {filler}!"
    assert classify_inbound(body).intent == InboundIntent.OPT_OUT, body


@given(st.text(max_size=400))
def test_classification_never_raises(body: str) -> None:
    result = classify_inbound(body)
    assert result.intent in InboundIntent
    assert (result.intent == InboundIntent.OTHER) == (result.keyword == "")
