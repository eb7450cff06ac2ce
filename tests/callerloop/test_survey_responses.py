"""What an answered survey leaves for the supervisors' inbox (`store_answers`)."""

from __future__ import annotations

from callerloop.core.db import Database
from tests.factories import answered_survey, make_agency, new_incident_id

GOOD = {"call_taker": "4", "officer": "na", "overall": "5", "respect": "4"}


def test_a_low_answer_reaches_the_inbox_even_when_the_overall_one_is_high(
    database: Database,
) -> None:
    agency = make_agency()
    item = answered_survey(database, agency, new_incident_id(), {**GOOD, "call_taker": "1"})
    assert item is not None
    assert (item.low_score, item.score, item.comment) == (True, 5.0, "")


def test_a_comment_reaches_the_inbox_and_says_whether_a_score_was_low(database: Database) -> None:
    agency = make_agency()
    item = answered_survey(database, agency, new_incident_id(), {**GOOD, "comment": "Kind."})
    assert item is not None
    assert (item.low_score, item.comment) == (False, "Kind.")


def test_good_answers_without_a_comment_leave_nothing_to_follow_up(database: Database) -> None:
    agency = make_agency()
    assert answered_survey(database, agency, new_incident_id(), GOOD) is None
