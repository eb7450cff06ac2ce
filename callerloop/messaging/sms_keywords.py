"""What an inbound text asks for: opt out, opt back in, help, or something else.

STOP and START are first-class events (as in RapidPro), decided here once from data
tables rather than by string checks spread over the code. Matching ignores case,
punctuation and accents, and works on whole words.

The rule (the US FCC rule since 2025-04-11: any reasonable request to stop revokes
consent; a false opt-out costs a caller some updates, a missed one breaks the law):

1. The message, once polite filler ("please", "por favor", "svp", "thanks"…) and repeats
   are set aside, is exactly a keyword ("STOP", "stop please", "Arrêt!", "START", "HELP").
2. A plain request to stop appears anywhere in it ("can you stop texting me",
   "dejen de enviarme mensajes", "no more texts", "wrong number").
3. A short message (at most `LEADING_WORD_LIMIT` words) starts with an unambiguous stop
   word ("Stop. Wrong person", "STOP this now", "Alto ya no").

Anything else is OTHER, so "I stopped by the store", "I can't stop shaking" or "the alarm
won't stop" are not opt-outs: a stop word that neither is the message, leads a short one,
nor sits in a request to stop is talking about something else. Weak words that are
everyday words too (CANCEL, END, QUIT, YES, INFO…) count only under rule 1.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum


class InboundIntent(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    OTHER = "other"


@dataclass(frozen=True)
class InboundKeyword:
    intent: InboundIntent
    keyword: str = ""  # what matched, as the table spells it: "STOP", "ARRÊT", "NO MORE TEXTS"
    language: str | None = None  # the language the words tell, None when they do not


# --- the data ----------------------------------------------------------------------------
# Written naturally; normalised by the same function as the messages. `None` is for
# words used alike in every language (French and Spanish speakers reply STOP too).

OPT_OUT_KEYWORDS: Mapping[str | None, tuple[str, ...]] = {
    None: ("STOP", "STOPALL", "STOP ALL"),
    "en": ("UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT", "REMOVE"),
    "es": ("ALTO", "PARAR", "PARA", "BAJA", "CANCELAR", "DETENER", "NO MÁS", "BASTA"),
    "fr": ("ARRÊT", "ARRÊTE", "ARRÊTEZ", "ARRÊTER", "ANNULER", "DÉSABONNER", "DÉSINSCRIRE"),
}

OPT_IN_KEYWORDS: Mapping[str | None, tuple[str, ...]] = {
    # Twilio's and the industry's defaults. No Spanish or French words: no carrier or
    # provider defines any, and a stray "sí" or "oui" must not undo a revocation.
    None: ("START", "UNSTOP"),
    "en": ("YES",),
}

HELP_KEYWORDS: Mapping[str | None, tuple[str, ...]] = {
    None: ("INFO",),
    "en": ("HELP",),
    "es": ("AYUDA",),
    "fr": ("AIDE",),
}

# Stop words unambiguous enough to count when they lead a short message (rule 3).
LEADING_OPT_OUT_WORDS: tuple[str, ...] = (
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "OPTOUT",
    "REVOKE",
    "ALTO",
    "PARAR",
    "ARRÊT",
    "ARRÊTEZ",
)
LEADING_WORD_LIMIT = 5
# "Stop by" and friends mean "visit": not a request to stop.
LEADING_EXCEPTIONS: tuple[str, ...] = ("stop by", "stop in", "stop at", "stop over")

# Plain requests to stop, matched as whole words anywhere in the message (rule 2).
OPT_OUT_PHRASES: Mapping[str, tuple[str, ...]] = {
    "en": (
        "stop texting",
        "stop sending",
        "stop messaging",
        "stop contacting",
        "stop the texts",
        "stop the messages",
        "stop these texts",
        "stop these messages",
        "quit texting",
        "quit sending",
        "cancel the texts",
        "cancel my texts",
        "cancel these texts",
        "no more texts",
        "no more text messages",
        "no more messages",
        "no more texting",
        "don't text me",
        "do not text me",
        "don't text this number",
        "do not text this number",
        "don't message me",
        "do not message me",
        "don't contact me",
        "do not contact me",
        "don't send me",
        "do not send me",
        "unsubscribe",
        "opt out",
        "optout",
        "remove me",
        "take me off",
        "remove my number",
        "i said stop",
        "wrong number",
    ),
    "es": (
        "dejen de enviarme",
        "deje de enviarme",
        "dejen de mandarme",
        "deje de mandarme",
        "dejen de escribirme",
        "deje de escribirme",
        "dejen de textearme",
        "no me envíen",
        "no me envíe",
        "no me manden",
        "no me mande",
        "no me escriban",
        "no más mensajes",
        "no más textos",
        "no quiero mensajes",
        "no quiero más mensajes",
        "no quiero recibir",
        "darme de baja",
        "dar de baja",
        "número equivocado",
    ),
    "fr": (
        "arrêtez de m'écrire",
        "arrêtez de m'envoyer",
        "arrêtez de me texter",
        "arrête de m'écrire",
        "arrête de m'envoyer",
        "arrêtez les messages",
        "arrêtez les textos",
        "ne m'écrivez plus",
        "ne m'envoyez plus",
        "je ne veux plus de messages",
        "je ne veux plus recevoir",
        "plus de messages",
        "plus de textos",
        "désabonnez-moi",
        "me désabonner",
        "me désinscrire",
        "mauvais numéro",
    ),
}

# Politeness and emphasis that does not change what a keyword asks for (rule 1).
FILLER_PHRASES: tuple[str, ...] = (
    "please",
    "pls",
    "plz",
    "thanks",
    "thank you",
    "thx",
    "ok",
    "okay",
    "now",
    "already",
    "just",
    "por favor",
    "porfavor",
    "favor",
    "gracias",
    "ya",
    "ahora",
    "s'il vous plaît",
    "s'il te plaît",
    "svp",
    "stp",
    "merci",
    "maintenant",
)


# --- normalising -------------------------------------------------------------------------

_APOSTROPHES = re.compile(r"['\u2019\u02bc`]")  # "don't" → "dont", "m'écrire" → "mécrire"
_NOT_A_WORD = re.compile(r"[^0-9a-z]+")


def normalise(text: str) -> str:
    """Lower-case ASCII words separated by single spaces: accents folded, punctuation,
    symbols and emoji gone. "  Arrêtez!!! " → "arretez"."""
    decomposed = unicodedata.normalize("NFKD", _APOSTROPHES.sub("", text))
    unaccented = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NOT_A_WORD.sub(" ", unaccented.casefold()).strip()


def _keyword_table(
    intent: InboundIntent, table: Mapping[str | None, tuple[str, ...]]
) -> dict[str, InboundKeyword]:
    return {
        normalise(word): InboundKeyword(intent, word.upper(), language)
        for language, words in table.items()
        for word in words
    }


KEYWORDS: Mapping[str, InboundKeyword] = {
    **_keyword_table(InboundIntent.HELP, HELP_KEYWORDS),
    **_keyword_table(InboundIntent.OPT_IN, OPT_IN_KEYWORDS),
    **_keyword_table(InboundIntent.OPT_OUT, OPT_OUT_KEYWORDS),  # last: opting out wins
}
_PHRASES: tuple[tuple[str, InboundKeyword], ...] = tuple(
    (
        f" {normalise(phrase)} ",
        InboundKeyword(InboundIntent.OPT_OUT, phrase.upper(), lang),
    )
    for lang, phrases in OPT_OUT_PHRASES.items()
    for phrase in phrases
)
_LEADING: frozenset[str] = frozenset(normalise(word) for word in LEADING_OPT_OUT_WORDS)
_NOT_LEADING: tuple[str, ...] = tuple(f"{normalise(p)} " for p in LEADING_EXCEPTIONS)
# Longest first, so "thank you" is removed whole before a shorter filler could split it.
_FILLERS: tuple[str, ...] = tuple(
    sorted({f" {normalise(f)} " for f in FILLER_PHRASES}, key=len, reverse=True)
)
OTHER = InboundKeyword(InboundIntent.OTHER)


# --- classifying -------------------------------------------------------------------------


def classify_inbound(body: str) -> InboundKeyword:
    """What the text asks for (see the module docstring for the rule). Never raises."""
    words = normalise(body)
    if not words:
        return OTHER
    return (
        _whole_message_keyword(words)
        or _phrase_anywhere(words)
        or _led_by_stop_word(words)
        or OTHER
    )


def _whole_message_keyword(words: str) -> InboundKeyword | None:
    core = _without_repeats(_without_fillers(words).split())
    return KEYWORDS.get(" ".join(core)) if core else None


def _phrase_anywhere(words: str) -> InboundKeyword | None:
    padded = f" {words} "
    return next((keyword for phrase, keyword in _PHRASES if phrase in padded), None)


def _led_by_stop_word(words: str) -> InboundKeyword | None:
    tokens = words.split()
    if len(tokens) > LEADING_WORD_LIMIT or tokens[0] not in _LEADING:
        return None
    if f"{words} ".startswith(_NOT_LEADING):
        return None
    return KEYWORDS[tokens[0]]


def _without_fillers(words: str) -> str:
    padded = f" {words} "
    for filler in _FILLERS:
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
