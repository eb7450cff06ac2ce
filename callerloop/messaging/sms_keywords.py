"""What an inbound text asks for: opt out, opt back in, help, another language, or
something else.

STOP and START are first-class events (as in RapidPro), decided here once from data
tables rather than by string checks spread over the code. The words are each language's
(callerloop/languages/<code>.toml), besides the industry's own (STOP, START, INFO), which
work in every language. Matching ignores case, punctuation and accents (Arabic's vowel
marks too), and works on whole words; Chinese, written without spaces, counts each
character as a word.

The rule (the US FCC rule since 2025-04-11: any reasonable request to stop revokes
consent; a false opt-out costs a caller some updates, a missed one breaks the law):

1. The message, once polite filler ("please", "por favor", "svp", "thanks"…) and repeats
   are set aside, is exactly a keyword ("STOP", "stop please", "Arrêt!", "START", "HELP",
   "Español", "in English", "IDIOMA en", "LANG zh").
2. A plain request to stop appears anywhere in it ("can you stop texting me",
   "dejen de enviarme mensajes", "no more texts", "wrong number").
3. A short message (at most `LEADING_WORD_LIMIT` words) starts with an unambiguous stop
   word ("Stop. Wrong person", "STOP this now", "Alto ya no").

Anything else is OTHER, so "I stopped by the store", "I can't stop shaking" or "the alarm
won't stop" are not opt-outs: a stop word that neither is the message, leads a short one,
nor sits in a request to stop is talking about something else. Weak words that are
everyday words too (CANCEL, END, QUIT, YES, INFO…) count only under rule 1.

A language switch counts only under rule 1: the whole message names a language (its name
in any language callerloop speaks, from Babel, alone or as "in <name>"), or is a language
word (LANG, IDIOMA, LANGUE…) followed by a code or a name. "I speak English but my
neighbour called" is the resident telling something, not asking: OTHER. A language word
alone, or followed by a code callerloop does not know ("LANG de"), asks which languages
there are (LANGUAGE with the code, or None).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from callerloop.languages import Language, shipped_languages


class InboundIntent(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    LANGUAGE = "language"  # texts in another language, please
    OTHER = "other"


@dataclass(frozen=True)
class InboundKeyword:
    intent: InboundIntent
    keyword: str = ""  # what matched, as the table spells it: "STOP", "ARRÊT", "NO MORE TEXTS"
    # The language the words are in (None when they do not tell); for LANGUAGE, the
    # language asked for (a code callerloop may not know, None for "which ones?").
    language: str | None = None


# --- the data ----------------------------------------------------------------------------
# Words used alike in every language (French and Spanish speakers reply STOP too); each
# language's own are in its file. Tables by language use `None` for these.
UNIVERSAL_OPT_OUT = ("STOP", "STOPALL", "STOP ALL")
UNIVERSAL_LEADING_OPT_OUT = ("STOP", "STOPALL")
# Twilio's and the industry's defaults. Few languages have any: no carrier or provider
# defines Spanish or French ones, and a stray "sí" or "oui" must not undo a revocation.
UNIVERSAL_OPT_IN = ("START", "UNSTOP")
UNIVERSAL_HELP = ("INFO",)
LEADING_WORD_LIMIT = 5


def _by_language(
    languages: Mapping[str, Language], field: str, universal: tuple[str, ...] = ()
) -> dict[str | None, tuple[str, ...]]:
    table: dict[str | None, tuple[str, ...]] = {None: universal} if universal else {}
    for code, language in languages.items():
        words: tuple[str, ...] = getattr(language.keywords, field)
        if words:
            table[code] = words
    return table


def _all(languages: Mapping[str, Language], field: str) -> tuple[str, ...]:
    return tuple(w for language in languages.values() for w in getattr(language.keywords, field))


def switch_words(languages: Mapping[str, Language]) -> dict[str, tuple[str, ...]]:
    """The words that switch to each language: its name in every language (Babel's, and
    the files' own), in each language's ways of saying "in <language>"."""
    words: dict[str, tuple[str, ...]] = {}
    for target in languages.values():
        speakers = [languages[target.code], *(v for k, v in languages.items() if k != target.code)]
        spelled: dict[str, str] = {}
        for speaker in speakers:
            names = [target.name_in(speaker.code), *speaker.keywords.names.get(target.code, ())]
            for name in names:
                for form in speaker.keywords.switch_forms:
                    word = form.format(name=name)
                    spelled.setdefault(normalise(word), word.upper())
        words[target.code] = tuple(spelled.values())
    return words


_SHIPPED = shipped_languages()
OPT_OUT_KEYWORDS: Mapping[str | None, tuple[str, ...]] = _by_language(
    _SHIPPED, "opt_out", UNIVERSAL_OPT_OUT
)
OPT_IN_KEYWORDS: Mapping[str | None, tuple[str, ...]] = _by_language(
    _SHIPPED, "opt_in", UNIVERSAL_OPT_IN
)
HELP_KEYWORDS: Mapping[str | None, tuple[str, ...]] = _by_language(_SHIPPED, "help", UNIVERSAL_HELP)
# Stop words unambiguous enough to count when they lead a short message (rule 3).
LEADING_OPT_OUT_WORDS: tuple[str, ...] = (
    *UNIVERSAL_LEADING_OPT_OUT,
    *_all(_SHIPPED, "leading_opt_out"),
)
# A leading stop word that means something else ("stop by": visit).
LEADING_EXCEPTIONS: tuple[str, ...] = _all(_SHIPPED, "leading_exceptions")
# Plain requests to stop, matched as whole words anywhere in the message (rule 2).
OPT_OUT_PHRASES: Mapping[str, tuple[str, ...]] = {
    code: words for code, words in _by_language(_SHIPPED, "opt_out_phrases").items() if code
}
# Politeness and emphasis that does not change what a keyword asks for (rule 1).
FILLER_PHRASES: tuple[str, ...] = _all(_SHIPPED, "filler")
# Words that ask for another language when followed by its code or name ("IDIOMA en").
LANGUAGE_PREFIXES: tuple[str, ...] = _all(_SHIPPED, "language")


# --- normalising -------------------------------------------------------------------------

_APOSTROPHES = re.compile(r"['\u2019\u02bc`]")  # "don't" → "dont", "m'écrire" → "mécrire"
_NOT_A_WORD = re.compile(r"[\W_]+")
# Scripts written without spaces between words (Chinese, Japanese kana): a character each.
_UNSPACED = re.compile(
    "([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f])"
)
_TATWEEL = "\u0640"  # Arabic's stretching of a word, not a letter
# Arabic letters often written one for the other, folded as search engines fold them:
# alef maqsura as yeh, teh marbuta as heh.
_FOLDS = str.maketrans({"\u0649": "\u064a", "\u0629": "\u0647"})


def normalise(text: str) -> str:
    """Lower-case words separated by single spaces: accents and vowel marks folded,
    punctuation, symbols, emoji and invisible marks gone, each Chinese character a word.
    "  Arrêtez!!! " → "arretez", "请停止。" → "请 停 止"."""
    decomposed = unicodedata.normalize("NFKD", _APOSTROPHES.sub("", text))
    letters = "".join(
        c
        for c in decomposed
        if not unicodedata.combining(c)
        and unicodedata.category(c) not in ("Mn", "Cf")
        and c != _TATWEEL
    )
    spaced = _UNSPACED.sub(r" \1 ", letters.casefold().translate(_FOLDS))
    return _NOT_A_WORD.sub(" ", spaced).strip()


# --- the tables --------------------------------------------------------------------------

OTHER = InboundKeyword(InboundIntent.OTHER)
_UNKNOWN_CODE = re.compile(r"[a-z]{2,3}")


def _keyword_table(
    intent: InboundIntent, table: Iterable[tuple[str | None, tuple[str, ...]]]
) -> dict[str, InboundKeyword]:
    """Normalised word -> keyword, from (language, words) pairs."""
    return {
        normalise(word): InboundKeyword(intent, word.upper(), language)
        for language, words in table
        for word in words
    }


@dataclass(frozen=True)
class KeywordTables:
    """The words of a set of languages, normalised once, and the rule that reads them."""

    keywords: Mapping[str, InboundKeyword]  # rule 1: the whole message
    phrases: tuple[tuple[str, InboundKeyword], ...]  # rule 2: anywhere
    leading: tuple[tuple[str, InboundKeyword], ...]  # rule 3: longest first
    not_leading: tuple[str, ...]
    fillers: tuple[str, ...]  # longest first
    prefixes: tuple[tuple[str, str], ...]  # LANG, IDIOMA…: normalised, as spelt
    # After a prefix: a code, a tag or a name -> the code, and how to spell what was asked.
    languages: Mapping[str, tuple[str, str]]

    @classmethod
    def of(cls, languages: Mapping[str, Language]) -> KeywordTables:
        def table(field: str, universal: tuple[str, ...] = ()) -> dict[str | None, tuple[str, ...]]:
            return _by_language(languages, field, universal)

        switches = switch_words(languages)
        keywords = {
            **_keyword_table(InboundIntent.HELP, table("help", UNIVERSAL_HELP).items()),
            **_keyword_table(InboundIntent.OPT_IN, table("opt_in", UNIVERSAL_OPT_IN).items()),
            **_keyword_table(InboundIntent.LANGUAGE, switches.items()),
            # last: opting out wins
            **_keyword_table(InboundIntent.OPT_OUT, table("opt_out", UNIVERSAL_OPT_OUT).items()),
        }
        phrases = tuple(
            (f" {normalise(phrase)} ", InboundKeyword(InboundIntent.OPT_OUT, phrase.upper(), code))
            for code, words in table("opt_out_phrases").items()
            for phrase in words
        )
        leading = {
            normalise(word): InboundKeyword(InboundIntent.OPT_OUT, word.upper(), code)
            for code, words in table("leading_opt_out", UNIVERSAL_LEADING_OPT_OUT).items()
            for word in words
        }
        named = {
            **{
                normalise(word): (code, word.upper())
                for code, words in switches.items()
                for word in words
            },
            **{
                normalise(language.tag): (code, language.tag)
                for code, language in languages.items()
            },
            **{code: (code, code.upper()) for code in languages},
        }
        return cls(
            keywords=keywords,
            phrases=phrases,
            # As the opt-out table spells them (a leading word is a stop word too).
            leading=tuple(
                (word, keywords.get(word, keyword))
                for word, keyword in sorted(leading.items(), key=lambda w: len(w[0]), reverse=True)
            ),
            not_leading=tuple(f"{normalise(p)} " for p in _all(languages, "leading_exceptions")),
            # Longest first, so "thank you" is removed whole before a shorter one splits it.
            fillers=tuple(
                sorted(
                    {f" {normalise(f)} " for f in _all(languages, "filler")}, key=len, reverse=True
                )
            ),
            prefixes=tuple(
                sorted(
                    {(normalise(p), p.upper()) for p in _all(languages, "language")},
                    key=lambda prefix: len(prefix[0]),
                    reverse=True,
                )
            ),
            languages=named,
        )

    # --- classifying -----------------------------------------------------------------

    def classify(self, body: str) -> InboundKeyword:
        """What the text asks for (see the module docstring for the rule). Never raises."""
        words = normalise(body)
        if not words:
            return OTHER
        return (
            self._whole_message_keyword(words)
            or self._phrase_anywhere(words)
            or self._led_by_stop_word(words)
            or OTHER
        )

    def _whole_message_keyword(self, words: str) -> InboundKeyword | None:
        core = " ".join(_without_repeats(self._without_fillers(words).split()))
        if not core:
            return None
        return self.keywords.get(core) or self._language_asked(core)

    def _language_asked(self, core: str) -> InboundKeyword | None:
        """LANG es, IDIOMA inglés, 语言 中文; a language word alone asks which there are."""
        for prefix, spelled in self.prefixes:
            if core == prefix:
                return InboundKeyword(InboundIntent.LANGUAGE, spelled, None)
            if not core.startswith(f"{prefix} "):
                continue
            asked = core.removeprefix(f"{prefix} ")
            known = self.languages.get(asked)
            if known is None and _UNKNOWN_CODE.fullmatch(asked):
                known = (asked, asked.upper())  # a code callerloop does not know
            if known is not None:
                code, name = known
                return InboundKeyword(InboundIntent.LANGUAGE, f"{spelled} {name}", code)
        return None

    def _phrase_anywhere(self, words: str) -> InboundKeyword | None:
        padded = f" {words} "
        return next((keyword for phrase, keyword in self.phrases if phrase in padded), None)

    def _led_by_stop_word(self, words: str) -> InboundKeyword | None:
        if len(words.split()) > LEADING_WORD_LIMIT:
            return None
        padded = f"{words} "
        if padded.startswith(self.not_leading):
            return None
        return next((kw for word, kw in self.leading if padded.startswith(f"{word} ")), None)

    def _without_fillers(self, words: str) -> str:
        padded = f" {words} "
        for filler in self.fillers:
            while filler in padded:
                padded = padded.replace(filler, " ")
        return padded.strip()


def _without_repeats(tokens: Iterable[str]) -> list[str]:
    """ "stop stop STOP" is STOP."""
    kept: list[str] = []
    for token in tokens:
        if not kept or kept[-1] != token:
            kept.append(token)
    return kept


TABLES = KeywordTables.of(_SHIPPED)
KEYWORDS: Mapping[str, InboundKeyword] = TABLES.keywords
# The words that switch to each language ("ESPAÑOL", "SPANISH", "EN ESPAÑOL"…), by code.
LANGUAGE_WORDS: Mapping[str, tuple[str, ...]] = switch_words(_SHIPPED)


def classify_inbound(body: str) -> InboundKeyword:
    """What the text asks for (see the module docstring for the rule). Never raises."""
    return TABLES.classify(body)


def reply_word(language: Language) -> str:
    """The word a resident replies to get texts in `language`: its name in itself."""
    return language.name.upper()
