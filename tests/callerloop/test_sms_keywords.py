"""Classifying inbound texts: opt-out, opt-in, help, a language or other, in every
language callerloop ships."""

# ruff: noqa: RUF001  (full-width Chinese punctuation and letters, on purpose)

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callerloop.languages import shipped_languages
from callerloop.messaging.sms_keywords import (
    FILLER_PHRASES,
    HELP_KEYWORDS,
    LANGUAGE_PREFIXES,
    LANGUAGE_WORDS,
    LEADING_OPT_OUT_WORDS,
    OPT_IN_KEYWORDS,
    OPT_OUT_KEYWORDS,
    OPT_OUT_PHRASES,
    InboundIntent,
    KeywordTables,
    classify_inbound,
    normalise,
    reply_word,
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


# --- other languages, and asking for one ----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "keyword", "language"),
    [
        ("停止", "停止", "zh"),
        ("请停止", "停止", "zh"),
        ("退订。", "退订", "zh"),
        ("TD", "TD", "zh"),
        ("不要再给我发短信了", "不要再给我发", "zh"),
        ("停止发送短信，谢谢", "停止发送", "zh"),
        ("توقف", "توقف", "ar"),
        ("إلغاء", "إلغاء", "ar"),
        ("الغاء", "إلغاء", "ar"),  # written without its hamza
        ("إِلْغَاء", "إلغاء", "ar"),  # with its vowel marks
        ("لا ترسلوا لي رسائل من فضلك", "لا ترسلوا لي", "ar"),
        ("رقم خطأ", "رقم خطأ", "ar"),
        ("أوقفوا هذا", "أوقفوا", "ar"),
    ],
)
def test_opt_outs_in_chinese_and_arabic(body: str, keyword: str, language: str) -> None:
    result = classify_inbound(body)
    assert (result.intent, result.keyword, result.language) == (
        InboundIntent.OPT_OUT,
        keyword,
        language,
    )


@pytest.mark.parametrize("body", ["STOP", "stop", "Stop!"])
def test_the_latin_stop_works_for_every_language(body: str) -> None:
    assert classify_inbound(body).intent == InboundIntent.OPT_OUT


@pytest.mark.parametrize(
    "body",
    [
        "停了",  # "it stopped"
        "噪音已经停止了吗",  # "has the noise stopped?": a question, not a request
        "توقف الإزعاج منذ ساعة وشكرا لكم",  # "the noise stopped an hour ago, thanks"
        "شكرا",
        "谢谢",
    ],
)
def test_not_opt_outs_in_chinese_and_arabic(body: str) -> None:
    assert classify_inbound(body).intent == InboundIntent.OTHER


@pytest.mark.parametrize(
    ("body", "language", "keyword"),
    [
        ("ESPAÑOL", "es", "ESPAÑOL"),
        ("espanol", "es", "ESPAÑOL"),
        ("Spanish please", "es", "SPANISH"),
        ("En español, por favor", "es", "EN ESPAÑOL"),
        ("castellano", "es", "CASTELLANO"),
        ("FRANÇAIS", "fr", "FRANÇAIS"),
        ("francais svp", "fr", "FRANÇAIS"),
        ("French", "fr", "FRENCH"),
        ("ENGLISH", "en", "ENGLISH"),
        ("inglés", "en", "INGLÉS"),
        ("Anglais", "en", "ANGLAIS"),
        ("in English?", "en", "IN ENGLISH"),
        ("中文", "zh", "中文"),
        ("请用中文", "zh", "用中文"),
        ("Chinese", "zh", "CHINESE"),
        ("العربية", "ar", "العربية"),
        ("بالعربية من فضلك", "ar", "بالعربية"),
        ("Arabic", "ar", "ARABIC"),
        ("LANG es", "es", "LANG ES"),
        ("lang fr", "fr", "LANG FR"),
        ("IDIOMA en", "en", "IDIOMA EN"),
        ("idioma inglés", "en", "IDIOMA INGLÉS"),
        ("LANGUE en", "en", "LANGUE EN"),
        ("LANGUAGE zh-Hans", "zh", "LANGUAGE zh-Hans"),
        ("语言 英语", "en", "语言 英语"),
        ("اللغة العربية", "ar", "اللغة العربية"),
    ],
)
def test_a_reply_naming_a_language_asks_for_it(body: str, language: str, keyword: str) -> None:
    result = classify_inbound(body)
    assert (result.intent, result.language, result.keyword) == (
        InboundIntent.LANGUAGE,
        language,
        keyword,
    )


@pytest.mark.parametrize(
    ("body", "language"),
    [("LANG de", "de"), ("idioma pt", "pt"), ("LANG", None), ("Idioma?", None), ("语言", None)],
)
def test_a_language_word_with_an_unknown_code_or_none_asks_which_there_are(
    body: str, language: str | None
) -> None:
    result = classify_inbound(body)
    assert (result.intent, result.language) == (InboundIntent.LANGUAGE, language)


@pytest.mark.parametrize(
    "body",
    [
        "I speak English but my neighbour called",
        "Spanish speaker here, my mother made the call",
        "hablo español",
        "mi hijo habla inglés",
        "je parle français",
        "langue de bois",
        "LANG is my last name",
        "我说中文",  # "I speak Chinese": telling, not asking
        "English or Spanish is fine, the officer already came",
        "es",
        "en",
    ],
)
def test_a_language_named_in_a_sentence_is_not_a_switch(body: str) -> None:
    assert classify_inbound(body).intent != InboundIntent.LANGUAGE


def test_opting_out_wins_over_a_language() -> None:
    assert classify_inbound("STOP español").intent == InboundIntent.OPT_OUT
    assert classify_inbound("Spanish, no more texts").intent == InboundIntent.OPT_OUT


def test_every_language_is_asked_for_by_its_own_name_and_by_code() -> None:
    for code, language in shipped_languages().items():
        by_name = classify_inbound(reply_word(language))
        assert (by_name.intent, by_name.language) == (InboundIntent.LANGUAGE, code)
        for prefix in LANGUAGE_PREFIXES:
            by_code = classify_inbound(f"{prefix} {code}")
            assert (by_code.intent, by_code.language) == (InboundIntent.LANGUAGE, code)


def test_no_language_word_is_taken_by_another_meaning() -> None:
    """A language's name in any language asks for that language, not for help or a stop,
    and no two languages share a word."""
    seen: dict[str, str] = {}
    for code, words in LANGUAGE_WORDS.items():
        for word in words:
            result = classify_inbound(word)
            assert (result.intent, result.language) == (InboundIntent.LANGUAGE, code), word
            assert seen.setdefault(normalise(word), code) == code, word


def test_normalising_handles_every_script() -> None:
    assert normalise("  Arrêtez!!! ") == "arretez"
    assert normalise("请停止。") == "请 停 止"  # a word per Chinese character
    assert normalise("ＳＴＯＰ") == "stop"  # full-width letters
    assert normalise("إِلْغَاءُ") == normalise("الغاء")  # vowel marks and hamza folded
    assert normalise("تـــوقف") == "توقف"  # tatweel
    assert normalise("\u200fتوقف\u200e") == "توقف"  # direction marks
    assert normalise("🚓 stop_now") == "stop now"


@given(st.sampled_from(sorted(w for ws in LANGUAGE_WORDS.values() for w in ws)), SURROUNDINGS)
def test_a_language_word_survives_punctuation(word: str, around: str) -> None:
    result = classify_inbound(f"{around}{word}{around}")
    assert result.intent == InboundIntent.LANGUAGE, word


def test_tables_of_other_languages_classify_with_their_words_only() -> None:
    """The classifier is built from language data: without Arabic, an Arabic STOP word is
    only talk, and the Latin STOP still works."""
    without_arabic = KeywordTables.of(
        {code: lang for code, lang in shipped_languages().items() if code != "ar"}
    )
    assert without_arabic.classify("توقف").intent == InboundIntent.OTHER
    assert without_arabic.classify("العربية").intent == InboundIntent.OTHER
    assert without_arabic.classify("STOP").intent == InboundIntent.OPT_OUT


# --- "never text me" ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "keyword", "language"),
    [
        ("NEVER TEXT ME", "NEVER TEXT ME", "en"),
        ("never text me please", "NEVER TEXT ME", "en"),
        ("Never text me. Wrong person", "NEVER TEXT ME", "en"),
        ("Never text me again!", "NEVER TEXT ME AGAIN", "en"),
        ("I want you to never text me again", "NEVER TEXT ME AGAIN", "en"),
        ("Don't ever text me", "DON'T EVER TEXT ME", "en"),
        ("never message me", "NEVER MESSAGE ME", "en"),
        ("no me envíen mensajes nunca", "NO ME ENVÍEN", "es"),
        ("Nunca me envíen mensajes, por favor", "NUNCA ME ENVÍEN", "es"),
        ("no me vuelvan a escribir", "NO ME VUELVAN A ESCRIBIR", "es"),
        ("ne m'envoyez jamais de messages", "NE M'ENVOYEZ JAMAIS DE MESSAGES", "fr"),
        ("Ne m\u2019envoyez jamais de messages svp", "NE M'ENVOYEZ JAMAIS DE MESSAGES", "fr"),
        ("ne me textez jamais", "NE ME TEXTEZ JAMAIS", "fr"),
        ("永远不要给我发短信", "不要给我发短信", "zh"),
        ("永远不要发短信给我", "不要发短信给我", "zh"),
        ("永远不要联系我", "永远不要联系我", "zh"),
        ("لا ترسلوا لي رسائل أبدًا", "لا ترسلوا لي", "ar"),
        ("لا تراسلوني أبدا", "لا تراسلوني", "ar"),
    ],
)
def test_never_text_me_is_an_opt_out(body: str, keyword: str, language: str) -> None:
    """The page's promise by text: the number is registered like STOP, call or no call."""
    result = classify_inbound(body)
    assert (result.intent, result.keyword, result.language) == (
        InboundIntent.OPT_OUT,
        keyword,
        language,
    )


@pytest.mark.parametrize(
    "body",
    [
        "you never text me back",  # a complaint that no text came
        "why do you never text me",
        "I never got a text",
        "never mind",
        "nunca me mandan mensajes",  # "they never send me texts": not the command
        "nunca me escriben",
        "vous ne m'envoyez jamais de messages",
        "il ne m'envoie jamais de messages",
        "لماذا لا تراسلني أبدا",  # "why do you never message me?"
    ],
)
def test_complaining_that_no_text_came_is_not_an_opt_out(body: str) -> None:
    assert classify_inbound(body).intent == InboundIntent.OTHER
