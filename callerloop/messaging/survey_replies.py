"""What a caller's text means as an answer to a survey question asked in the thread.

Read here, where the words of each language are data, so the workflow gets a plain score,
SKIP or "does not apply" (`SurveyReplySignal`) and keeps the body only for a comment.
Matching ignores case, accents and punctuation, as `sms_keywords` does. The message
must be a score and nothing else ("4", "4/5", "4 stars", "satisfied", "muy satisfecho",
"tout à fait d'accord"), or start with a lone digit 0-5 ("5 great job"): "I called 3 times"
is not a score, and the workflow asks the question once more.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

from sqlmodel import col, select

from callerloop.core.db import CallRecord, Database
from workflows.model import SurveyReplySignal

# Words that answer a five-point question, by language (satisfaction and agreement alike:
# one table, since a caller may answer either way). Written naturally, normalised below.
SCORE_WORDS: Mapping[str, Mapping[str, int]] = {
    "en": {
        "very satisfied": 5,
        "extremely satisfied": 5,
        "excellent": 5,
        "great": 5,
        "strongly agree": 5,
        "totally agree": 5,
        "satisfied": 4,
        "good": 4,
        "agree": 4,
        "neutral": 3,
        "neither": 3,
        "ok": 3,
        "okay": 3,
        "fine": 3,
        "average": 3,
        "neither satisfied nor dissatisfied": 3,
        "neither agree nor disagree": 3,
        "dissatisfied": 2,
        "unsatisfied": 2,
        "not satisfied": 2,
        "bad": 2,
        "poor": 2,
        "disagree": 2,
        "very dissatisfied": 1,
        "very unsatisfied": 1,
        "terrible": 1,
        "awful": 1,
        "very bad": 1,
        "strongly disagree": 1,
    },
    "es": {
        "muy satisfecho": 5,
        "muy satisfecha": 5,
        "excelente": 5,
        "totalmente de acuerdo": 5,
        "muy de acuerdo": 5,
        "satisfecho": 4,
        "satisfecha": 4,
        "bueno": 4,
        "buena": 4,
        "bien": 4,
        "de acuerdo": 4,
        "neutral": 3,
        "regular": 3,
        "normal": 3,
        "ni satisfecho ni insatisfecho": 3,
        "ni de acuerdo ni en desacuerdo": 3,
        "insatisfecho": 2,
        "insatisfecha": 2,
        "malo": 2,
        "mala": 2,
        "mal": 2,
        "en desacuerdo": 2,
        "muy insatisfecho": 1,
        "muy insatisfecha": 1,
        "muy malo": 1,
        "muy mal": 1,
        "pesimo": 1,
        "muy en desacuerdo": 1,
        "totalmente en desacuerdo": 1,
    },
    "fr": {
        "tres satisfait": 5,
        "tres satisfaite": 5,
        "excellent": 5,
        "tout a fait d'accord": 5,
        "tout a fait d accord": 5,
        "satisfait": 4,
        "satisfaite": 4,
        "bien": 4,
        "bon": 4,
        "d'accord": 4,
        "d accord": 4,
        "neutre": 3,
        "moyen": 3,
        "correct": 3,
        "ni satisfait ni insatisfait": 3,
        "ni d'accord ni pas d'accord": 3,
        "insatisfait": 2,
        "insatisfaite": 2,
        "mauvais": 2,
        "pas d'accord": 2,
        "pas d accord": 2,
        "tres insatisfait": 1,
        "tres insatisfaite": 1,
        "tres mauvais": 1,
        "pas du tout d'accord": 1,
        "pas du tout d accord": 1,
    },
}
SKIP_WORDS: Mapping[str, tuple[str, ...]] = {
    "en": ("skip", "pass", "next", "no comment", "none", "nothing"),
    "es": ("saltar", "omitir", "siguiente", "paso", "sin comentarios", "nada"),
    "fr": ("passer", "suivant", "sauter", "aucun commentaire", "rien"),
}
NOT_APPLICABLE_WORDS: Mapping[str, tuple[str, ...]] = {
    "en": ("n/a", "na", "does not apply", "doesn't apply", "no officer", "no officer came"),
    "es": ("no aplica", "no corresponde", "no vino nadie", "no vino un agente"),
    "fr": ("sans objet", "ne s'applique pas", "aucun agent", "pas d'agent"),
}
# A score as digits: "4", "4/5", "4 out of 5", "4 stars", "5!" — or a lone leading digit.
DIGIT_SCORE = re.compile(
    r"^([0-5])(?:\s*(?:/|out of|sur|de)\s*5)?(?:\s*(?:stars?|estrellas?|etoiles?))?$"
)
LEADING_DIGIT = re.compile(r"^([0-5])(?:\s|$)")


def normalise(text: str) -> str:
    """Lower case, no accents, punctuation as spaces except the apostrophe and slash."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    # Every script's digits are digits: Arabic-Indic four is 4 (NFKD already does full-width).
    plain = "".join(
        str(unicodedata.decimal(c)) if c.isdecimal() else c
        for c in decomposed
        if not unicodedata.combining(c)
    )
    plain = plain.replace("\u2019", "'")  # a phone's curly apostrophe
    return " ".join(re.sub(r"[^\w'/]+", " ", plain).split())


def _words(table: Mapping[str, tuple[str, ...]]) -> frozenset[str]:
    return frozenset(normalise(word) for words in table.values() for word in words)


_SCORES = {
    normalise(word): score for words in SCORE_WORDS.values() for word, score in words.items()
}
_SKIPS = _words(SKIP_WORDS)
_NOT_APPLICABLE = _words(NOT_APPLICABLE_WORDS)


def read_survey_reply(body: str, message_id: str = "") -> SurveyReplySignal:
    """The reply as an answer: every language's words count (a caller texted in English
    may answer in Spanish)."""
    text = normalise(body)
    reply = SurveyReplySignal(body=body.strip(), message_id=message_id)
    if text in _SKIPS:
        reply.skip = True
        return reply
    if text in _NOT_APPLICABLE:
        reply.not_applicable = True
        return reply
    digit = DIGIT_SCORE.match(text) or LEADING_DIGIT.match(text)
    if digit is not None:
        value = int(digit.group(1))
        if value == 0:
            reply.not_applicable = True
        else:
            reply.score = value
        return reply
    reply.score = _SCORES.get(text)
    return reply


def asking_call(db: Database, agency_id: str, phone: str) -> str | None:
    """The workflow id of the number's call whose survey is asking in the thread (the
    latest, should there be two), or None: then a text is not an answer."""
    with db.session() as session:
        return session.exec(
            select(CallRecord.workflow_id)
            .where(col(CallRecord.agency) == agency_id)
            .where(col(CallRecord.caller_phone) == phone)
            .where(col(CallRecord.survey_thread_open))
            .where(col(CallRecord.purged_at).is_(None))
            .order_by(col(CallRecord.received_at).desc())
        ).first()
