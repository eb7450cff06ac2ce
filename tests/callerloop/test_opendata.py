"""Open data: small groups are suppressed and cannot be recovered from totals (a property,
attacked with hypothesis), the export validates with `frictionless`, never carries a
comment or a phone number, and its catalog is DCAT-US."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from callerloop.core.agency_config import AgencyConfig, AgencyConfigError
from callerloop.core.db import Database
from callerloop.core.settings import get_settings
from callerloop.opendata import suppression
from callerloop.opendata.gather import CellKey, Tally, gather
from callerloop.opendata.package import responses_csv, scores_csv
from callerloop.opendata.tables import build_tables
from callerloop.opendata.validate import validate_package
from starter.cli import app
from tests.callerloop.published_attack import attack, read_csv
from tests.factories import (
    call_record,
    make_agency,
    outbox_row_for_call,
    survey_comment,
    survey_response,
)

QUESTIONS = ("overall", "officer")


@st.composite
def tallies(draw: st.DrawFn) -> dict[CellKey, Tally]:
    """A month or two of cells, most with few answers, as small agencies have."""
    months = draw(st.lists(st.sampled_from(["2025-09", "2025-10"]), min_size=1, unique=True))
    priorities = draw(st.lists(st.sampled_from([2, 3, 4]), min_size=1, max_size=3, unique=True))
    groups = draw(
        st.lists(st.sampled_from(["traffic", "property", "other"]), min_size=1, unique=True)
    )
    languages = draw(st.lists(st.sampled_from(["en", "es", "fr"]), min_size=1, unique=True))
    cells: dict[CellKey, Tally] = {}
    for month in months:
        for priority in priorities:
            for group in groups:
                for language in languages:
                    if draw(st.integers(0, 3)) == 0:  # most cells have calls
                        continue
                    responses = draw(st.integers(0, 4) | st.integers(0, 40))
                    tally = Tally(
                        texts_sent=responses * 3 + draw(st.integers(0, 20)),
                        surveys_sent=responses + draw(st.integers(0, 10)),
                        responses=responses,
                    )
                    for question in QUESTIONS:
                        for _ in range(draw(st.integers(0, responses))):
                            tally.answer(question, draw(st.integers(1, 5)))
                    cells[CellKey(month, priority, group, language)] = tally
    return cells


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cells=tallies(), k=st.sampled_from([3, 5, 10]))
def test_no_small_group_is_published_or_recoverable_from_totals(
    cells: dict[CellKey, Tally], k: int
) -> None:
    tables = build_tables("testville", cells, QUESTIONS, k)
    responses = read_csv(responses_csv(tables.responses))
    scores = read_csv(scores_csv(tables.scores))
    assert attack(responses, "responses", k) == []
    assert attack(scores, "answered", k, by=("month", "question")) == []
    # Suppressed rows show labels only.
    for row in responses:
        if row["suppressed"] == "true":
            assert row["responses"] == row["texts_sent"] == row["response_rate"] == ""
    for row in scores:
        if row["suppressed"] == "true":
            assert row["mean_score"] == row["share_satisfied"] == row["answered"] == ""


def test_the_attack_finds_a_lone_suppressed_cell() -> None:
    """The attack is real: with only primary suppression the month total gives a cell away."""
    cells = {
        CellKey("2025-09", 4, "traffic", "en"): Tally(responses=30),
        CellKey("2025-09", 4, "other", "en"): Tally(responses=2),
    }
    rows = read_csv(responses_csv(build_tables("testville", cells, [], 10).responses))
    assert attack(rows, "responses", 10) == []
    naive = [dict(row) for row in rows]
    for row in naive:  # undo the complementary suppression of the 30
        if row["breakdown"] == "cell" and row["call_type_group"] == "traffic":
            row.update(suppressed="false", responses="30")
    assert any("recovered" in finding for finding in attack(naive, "responses", 10))
    assert any("gives 2 < 10" in finding for finding in attack(naive, "responses", 10))


def seeded_database(database: Database, answers: int = 25) -> None:
    """Calls texted and surveyed, answers in two groups, comments and phone numbers."""
    for index in range(answers + 5):
        workflow_id = call_record(
            database,
            f"OD-{index:03d}",
            at=datetime(2025, 9, 3, 15, tzinfo=UTC),
            call_type="NOISE COMPLAINT DELAY" if index % 5 else "LARCENY FROM AUTO",
            priority=4,
            language="en",
        )
        outbox_row_for_call(database, workflow_id, "confirmation")
        outbox_row_for_call(database, workflow_id, "survey")
    for index in range(answers):
        group = "disorder" if index % 5 else "property"
        survey_response(
            database, {"overall": 1 + index % 5, "officer": None}, call_type_group=group
        )
    survey_comment(database, "The officer at 12 Elm St was rude, call me on 703-555-0142")


@pytest.fixture
def surveyed(database: Database) -> Database:
    seeded_database(database)
    return database


def survey_agency() -> AgencyConfig:
    return make_agency(
        survey={"call_type_groups": {"disorder": [r"\bNOISE"], "property": [r"LARCENY"]}},
        open_data={"min_responses": 10, "contact_email": "opendata@testville.example"},
    )


def test_gather_counts_texts_surveys_and_answers_by_group(surveyed: Database) -> None:
    tallies = gather(surveyed, survey_agency())
    disorder = tallies[CellKey("2025-09", 4, "disorder", "en")]
    property_ = tallies[CellKey("2025-09", 4, "property", "en")]
    assert (disorder.texts_sent, disorder.surveys_sent, disorder.responses) == (48, 24, 20)
    assert (property_.texts_sent, property_.surveys_sent, property_.responses) == (12, 6, 5)
    assert disorder.answered["overall"] == 20 and disorder.answered["officer"] == 0
    assert property_.score_sum["overall"] == 5  # index 0, 5, 10, … all answered 1


def test_export_validates_and_publishes_no_comment_or_number(
    surveyed: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agencies_dir = tmp_path / "agencies"
    agencies_dir.mkdir()
    (agencies_dir / "testville.toml").write_text(AGENCY_TOML)
    monkeypatch.setenv("CALLERLOOP_DATABASE_URL", surveyed.url)
    monkeypatch.setenv("CALLERLOOP_AGENCIES_DIR", str(agencies_dir))
    monkeypatch.setenv("CALLERLOOP_PUBLIC_BASE_URL", "https://callerloop.testville.example")
    get_settings.cache_clear()
    out = tmp_path / "published"
    try:
        result = CliRunner().invoke(app, ["opendata", "export", "--out", str(out)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert validate_package(out / "testville" / "datapackage.json") == []
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert set(files) == {
        "data.json",
        "testville/data.json",
        "testville/datapackage.json",
        "testville/survey_responses.csv",
        "testville/survey_scores.csv",
    }
    everything = b"\n".join(files.values()).decode()
    for secret in ("Elm St", "rude", "703-555-0142", "+1703", "NOISE", "LARCENY", "OD-0"):
        assert secret not in everything
    rows = read_csv(files["testville/survey_responses.csv"])
    cells = {r["call_type_group"]: r for r in rows if r["breakdown"] == "cell"}
    # 20 answers in "disorder" are published; the 5 in "property" are not, and the month's
    # total would give them away, so the complementary row goes too.
    assert cells["property"]["suppressed"] == "true" and cells["property"]["responses"] == ""
    assert cells["disorder"]["suppressed"] == "true"
    assert attack(rows, "responses", 10) == []
    [month] = [r for r in rows if r["breakdown"] == "month"]
    assert (month["responses"], month["surveys_sent"], month["response_rate"]) == (
        "25",
        "30",
        "0.833",
    )
    package = json.loads(files["testville/datapackage.json"])
    assert package["licenses"] == [
        {
            "name": "OGL-Testville-1.0",
            "title": "Open Government Licence - Testville",
            "path": "https://testville.example/open-data-licence",
        }
    ]
    fields = {f["name"]: f for f in package["resources"][1]["schema"]["fields"]}
    assert fields["mean_score"]["unit"] == "score (1-5)"
    assert fields["share_satisfied"]["type"] == "number"
    catalog = json.loads(files["data.json"])
    assert catalog["conformsTo"] == "https://project-open-data.cio.gov/v1.1/schema"
    [dataset] = catalog["dataset"]
    for required in (
        "title", "description", "keyword", "modified", "publisher", "contactPoint",
        "identifier", "accessLevel", "distribution", "license",
    ):  # fmt: skip
        assert dataset[required], required
    assert dataset["contactPoint"]["hasEmail"] == "mailto:opendata@testville.example"
    assert dataset["temporal"] == "2025-09-01/2025-09-30"
    urls = [d["downloadURL"] for d in dataset["distribution"]]
    assert "https://callerloop.testville.example/opendata/testville/survey_scores.csv" in urls


AGENCY_TOML = """
[agency]
name = "Testville PD"
time_zone = "America/New_York"
non_emergency_phone = "703-555-0100"
sender_number = "+17035550100"
languages = ["en"]

[eligibility]
priorities = [3, 4]

[survey.call_type_groups]
disorder = ['\\bNOISE']
property = ['LARCENY']

[open_data]
min_responses = 10
contact_email = "opendata@testville.example"

[open_data.licence]
name = "OGL-Testville-1.0"
title = "Open Government Licence - Testville"
path = "https://testville.example/open-data-licence"
"""


@pytest.mark.parametrize(
    ("open_data", "message"),
    [
        (
            {"min_responses": 1},
            "open_data.min_responses: Input should be greater than or equal to 3",
        ),
        ({"licence": {"name": "x", "title": "y", "path": "ftp:x"}}, "open_data.licence.path"),
        ({"contact_email": "nobody"}, "open_data.contact_email"),
        ({"k": 5}, "open_data.k: Extra inputs are not permitted"),
    ],
)
def test_bad_open_data_settings_name_the_key(open_data: dict[str, object], message: str) -> None:
    with pytest.raises(AgencyConfigError, match=message.replace("(", r"\(")):
        make_agency(open_data=open_data)


def test_export_refuses_an_unknown_agency(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["opendata", "export", "--out", str(tmp_path), "--agency", "atlantis"]
    )
    assert result.exit_code == 2
    assert "--agency: unknown agency ['atlantis']" in result.output


def test_the_audit_stops_recoveries_that_take_several_totals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by searching with the audit switched off: complementary suppression alone
    leaves small cells that totals by group, priority and language give back together."""
    counts = {
        (3, "a", "fr"): 4, (3, "b", "en"): 9, (3, "b", "fr"): 15, (3, "c", "en"): 20,
        (3, "c", "fr"): 6, (4, "a", "en"): 0, (4, "b", "fr"): 2, (4, "c", "en"): 6,
    }  # fmt: skip
    cells = {
        CellKey("2025-09", p, g, lang): Tally(responses=n) for (p, g, lang), n in counts.items()
    }

    def published() -> list[dict[str, str]]:
        return read_csv(responses_csv(build_tables("testville", cells, [], 5).responses))

    assert attack(published(), "responses", 5) == []
    monkeypatch.setattr(suppression, "_first_recoverable", lambda *_: None)
    assert any("recovered" in finding for finding in attack(published(), "responses", 5))
