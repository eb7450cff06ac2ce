"""Reading a caller's text as an answer to a survey question asked in the thread."""

from __future__ import annotations

import pytest

from callerloop.messaging.survey_replies import read_survey_reply


@pytest.mark.parametrize(
    ("body", "score"),
    [
        ("5", 5),
        (" 4. ", 4),
        ("4/5", 4),
        ("3 out of 5", 3),
        ("5 stars", 5),
        ("5 great job", 5),
        ("Very satisfied!", 5),
        ("satisfied", 4),
        ("Dissatisfied", 2),
        ("strongly disagree", 1),
        ("Muy satisfecha", 5),
        ("de acuerdo", 4),
        ("pésimo", 1),
        ("Très satisfait", 5),
        ("Tout à fait d\u2019accord", 5),  # a phone's curly apostrophe
        ("pas d'accord", 2),
        ("\u0664", 4),  # Arabic-Indic digit four
        ("\uff15", 5),  # full-width five, as Chinese keyboards type it
    ],
)
def test_scores_as_digits_or_words_in_each_language(body: str, score: int) -> None:
    reply = read_survey_reply(body)
    assert (reply.score, reply.skip, reply.not_applicable) == (score, False, False)


@pytest.mark.parametrize("body", ["skip", "SKIP", "Saltar", "passer", "no comment", "rien"])
def test_skip_words(body: str) -> None:
    reply = read_survey_reply(body)
    assert reply.skip and reply.score is None


@pytest.mark.parametrize("body", ["0", "N/A", "no officer came", "no aplica", "sans objet"])
def test_does_not_apply(body: str) -> None:
    reply = read_survey_reply(body)
    assert reply.not_applicable and reply.score is None


@pytest.mark.parametrize(
    "body",
    ["I called 3 times", "6", "45", "who is this?", "satisfied with the wait, not the rest"],
)
def test_anything_else_is_no_score_and_keeps_the_body(body: str) -> None:
    reply = read_survey_reply(body, message_id="SM1")
    assert (reply.score, reply.skip, reply.not_applicable) == (None, False, False)
    assert reply.body == body and reply.message_id == "SM1"
