"""Fuzzing the survey form: whatever a browser (or a script) posts to a real survey link,
the answer is a page or a redirect, never a 5xx, and at most one response is stored."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import func, select

from callerloop.core.db import Database, SurveyResponse, utcnow
from callerloop.messaging.links import SURVEY
from tests.factories import call_record, issue_link, make_agency, new_incident_id
from tests.web.pages import pages_app

BASE = "https://callerloop.test"
AGENCY = make_agency(survey={"call_type_groups": {"disorder": [r"\bNOISE"]}})
FIELDS = ["q_call_taker", "q_officer", "q_overall", "q_respect", "q_comment", "lang"]

values = st.sampled_from(["1", "5", "na", "0", "6", "-1", "", "fr", "xx"]) | st.text(max_size=80)
answers = st.dictionaries(st.sampled_from(FIELDS) | st.text(min_size=1, max_size=10), values)
tamper = st.sampled_from(["none", "form_token", "submission", "both"])


@pytest.fixture
def survey(database: Database) -> Iterator[tuple[TestClient, str]]:
    incident = new_incident_id()
    workflow_id = call_record(database, incident, utcnow(), call_type="NOISE COMPLAINT DELAY")
    with database.session() as session:
        link = issue_link(
            session,
            base_url=BASE,
            workflow_id=workflow_id,
            purpose=SURVEY,
            expires_at=utcnow() + timedelta(days=1),
        )
        session.commit()
    app = pages_app(database, {AGENCY.id: AGENCY}, BASE)
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as client:
        yield client, link.removeprefix(BASE)


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    return match.group(1) if match else ""


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(answers, tamper)
def test_any_survey_post_gets_a_page_never_a_server_error(
    survey: tuple[TestClient, str], database: Database, fields: dict[str, str], change: str
) -> None:
    client, path = survey
    page = client.get(path)
    assert page.status_code in (200, 404, 429), page.status_code  # 404 once answered
    form = {
        "form_token": hidden(page.text, "form_token"),
        "submission": hidden(page.text, "submission"),
        **fields,
    }
    if change in ("form_token", "both"):
        form["form_token"] = form["form_token"][::-1]
    if change in ("submission", "both"):
        form["submission"] = "x" + form["submission"]
    response = client.post(path, data=form, headers={"Origin": BASE}, follow_redirects=False)
    assert response.status_code < 500, (response.status_code, form)
    with database.session() as session:
        stored = session.exec(select(func.count()).select_from(SurveyResponse)).one()
    assert stored <= 1
