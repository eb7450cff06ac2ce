"""Open data: small groups are suppressed and cannot be recovered from totals (a property,
attacked with hypothesis), the export validates with `frictionless`, never carries a
comment or a phone number, and its catalog is DCAT-US."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest  # type: ignore[import-untyped]
from sqlmodel import select
from typer.testing import CliRunner

from callerloop.core.agency_config import AgencyConfig, AgencyConfigError
from callerloop.core.db import Database, OutboxMessage
from callerloop.core.settings import get_settings
from callerloop.opendata import suppression
from callerloop.opendata.gather import CellKey, Tally, gather
from callerloop.opendata.package import export_files, responses_csv, scores_csv
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
NOW = datetime(2025, 10, 2, 6, tzinfo=UTC)


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
                    surveys = responses + draw(st.integers(0, 10))
                    tally = Tally(
                        texts_sent=responses * 3 + draw(st.integers(0, 20)),
                        surveys_sent=surveys,
                        # Now and then fewer receipts than answers (receipts lost).
                        surveys_delivered=draw(st.integers(0, surveys)),
                        # Mostly a provider with receipts; now and then the local one.
                        surveys_without_receipts=draw(st.sampled_from([0, 0, 0, 0, surveys])),
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
    # Suppressed rows show labels only; every published figure is worked out from
    # published counts alone, so no interval or share carries a withheld count.
    assert figures_not_from_published_counts(responses, scores) == []


RESPONSE_FIGURES = (
    "texts_sent", "surveys_sent", "surveys_delivered", "responses", "response_rate_basis",
    "response_rate", "response_rate_low", "response_rate_high", "share_of_surveys",
    "share_of_responses", "share_of_responses_low", "share_of_responses_high",
)  # fmt: skip
SCORE_FIGURES = ("answered", "mean_score", "share_satisfied", "share_satisfied_low",
                 "share_satisfied_high")  # fmt: skip


@functools.cache
def wilson(part: int, whole: int) -> list[str]:
    """A share and its interval as published (3 decimals), from scipy directly."""
    interval = binomtest(part, whole).proportion_ci(method="wilson")
    return [str(round(v, 3)) for v in (part / whole, interval.low, interval.high)]


def invited(row: dict[str, str]) -> int:
    """The invitations a published row's rate is over: its basis's count."""
    sent = row["response_rate_basis"] == "sent"
    return int(row["surveys_sent"] if sent else row["surveys_delivered"] or 0)


def figures_not_from_published_counts(
    responses: list[dict[str, str]], scores: list[dict[str, str]]
) -> list[str]:
    """Published figures that published counts do not give, and withheld rows that show
    any figure."""
    found = []
    months = {(r["agency"], r["month"]): r for r in responses if r["breakdown"] == "month"}
    for row in responses:
        if row["suppressed"] == "true":
            found += [f"withheld but shown: {name} {row}" for name in RESPONSE_FIGURES if row[name]]
            continue
        month = months[(row["agency"], row["month"])]

        if (
            month["suppressed"] == "false"
            and row["response_rate_basis"] != month["response_rate_basis"]
            and row["surveys_sent"] != "0"
        ):
            found.append(f"a month of two bases: {row}")
        rate = [row["response_rate"], row["response_rate_low"], row["response_rate_high"]]
        if invited(row) and int(row["responses"]) <= invited(row):
            expected = wilson(int(row["responses"]), invited(row))
        else:
            expected = ["", "", ""]
        if rate != expected:
            found.append(f"rate {rate} is not {expected} from the row's counts: {row}")
        shares = [row["share_of_surveys"], row["share_of_responses"],
                  row["share_of_responses_low"], row["share_of_responses_high"]]  # fmt: skip
        expected = ["", "", "", ""]
        if row is not month and month["suppressed"] == "false":
            expected[0] = str(round(invited(row) / invited(month), 3)) if invited(month) else ""
            if int(month["responses"]):
                expected[1:] = wilson(int(row["responses"]), int(month["responses"]))
        if shares != expected:
            found.append(f"shares {shares} are not {expected} from published counts: {row}")
    for row in scores:
        if row["suppressed"] == "true":
            found += [f"withheld but shown: {name} {row}" for name in SCORE_FIGURES if row[name]]
        elif row["answered"]:
            answered = int(row["answered"])
            satisfied = round(float(row["share_satisfied"]) * answered)
            shown = [
                row["share_satisfied"],
                row["share_satisfied_low"],
                row["share_satisfied_high"],
            ]
            if shown != wilson(satisfied, answered):
                found.append(f"share satisfied {shown} is not from {satisfied}/{answered}: {row}")
    return found


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
    # Every survey delivered: 25/30 over delivered, Wilson 0.664 to 0.927 (worked out in
    # test_score_intervals_and_a_package_over_surveys_sent_validate).
    shown = ("surveys_delivered", "response_rate_basis", "response_rate_low", "response_rate_high")
    assert [month[name] for name in shown] == ["30", "delivered", "0.664", "0.927"]
    assert cells["property"]["response_rate_low"] == cells["property"]["share_of_responses"] == ""
    assert (
        figures_not_from_published_counts(rows, read_csv(files["testville/survey_scores.csv"]))
        == []
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
    assert fields["share_satisfied_low"]["constraints"] == {"minimum": 0, "maximum": 1}
    response_fields = {f["name"]: f for f in package["resources"][0]["schema"]["fields"]}
    assert "AAPOR response rate 6" in response_fields["response_rate"]["description"]
    assert response_fields["response_rate_basis"]["constraints"] == {"enum": ["delivered", "sent"]}
    assert {"response_rate_high", "share_of_surveys", "share_of_responses_low"} <= set(
        response_fields
    )
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


def test_rates_intervals_and_shares_match_the_hand_computed_example() -> None:
    """One month, k = 5: English 20 surveys delivered (22 sent), 7 answered; French 15
    delivered, 6 answered; Spanish 10 delivered, 1 answered. Spanish is under k, and the
    month would give it back, so French goes too (together 7). By hand (Wilson, z = 1.96;
    tests/callerloop/test_survey_figures.py works them out): English 7/20 = 0.35, from
    0.181 to 0.567; 20/45 = 0.444 of the month's surveys; 7/14 = 0.5 of its responses,
    centre 0.5, half 1.959964 · √(0.25/14 + 3.841459/784) / 1.274390 = 0.232008: 0.268 to
    0.732. The month: 14/45 = 0.311, centre (0.311111 + 0.042683) / 1.085366 = 0.325968,
    half 1.959964 · √(0.004763 + 0.000474) / 1.085366 = 0.130681: 0.195 to 0.457."""
    cells = {
        CellKey("2025-09", 4, "disorder", "en"): Tally(
            surveys_sent=22, surveys_delivered=20, responses=7
        ),
        CellKey("2025-09", 4, "disorder", "fr"): Tally(
            surveys_sent=15, surveys_delivered=15, responses=6
        ),
        CellKey("2025-09", 4, "disorder", "es"): Tally(
            surveys_sent=10, surveys_delivered=10, responses=1
        ),
    }
    rows = read_csv(responses_csv(build_tables("testville", cells, [], 5).responses))
    assert attack(rows, "responses", 5) == []
    by_language = {r["language"]: r for r in rows if r["breakdown"] == "language"}
    figures = ("surveys_delivered", "responses", "response_rate_basis", "response_rate",
               "response_rate_low", "response_rate_high", "share_of_surveys",
               "share_of_responses", "share_of_responses_low",
               "share_of_responses_high")  # fmt: skip
    english = [by_language["en"][name] for name in figures]
    assert english == ["20", "7", "delivered", "0.35", "0.181", "0.567", "0.444", "0.5",
                       "0.268", "0.732"]  # fmt: skip
    for small in ("es", "fr"):
        withheld = by_language[small]
        assert withheld["suppressed"] == "true"
        assert [withheld[name] for name in figures] == [""] * len(figures)
    [month] = [r for r in rows if r["breakdown"] == "month"]
    assert [month[name] for name in figures] == [
        "45", "14", "delivered", "0.311", "0.195", "0.457", "", "", "", "",
    ]  # fmt: skip


def test_without_receipts_the_month_is_over_surveys_sent_and_says_so() -> None:
    """A month whose surveys went (partly) through the local provider: every rate of it is
    over surveys sent, and no delivered count is shown. 6 of 20 sent: 0.3, Wilson 0.145 to
    0.519 (centre (0.3 + 0.096036) / 1.192073 = 0.332225, half 1.959964 · √(0.0105 +
    0.002401) / 1.192073 = 0.186748)."""
    cells = {
        CellKey("2025-09", 4, "disorder", "en"): Tally(
            surveys_sent=20, surveys_delivered=0, surveys_without_receipts=20, responses=6
        ),
    }
    [cell, *_] = read_csv(responses_csv(build_tables("testville", cells, [], 5).responses))
    assert (cell["breakdown"], cell["response_rate_basis"], cell["surveys_delivered"]) == (
        "cell",
        "sent",
        "",
    )
    assert (cell["response_rate"], cell["response_rate_low"], cell["response_rate_high"]) == (
        "0.3",
        "0.145",
        "0.519",
    )


def test_more_answers_than_receipts_gives_no_rate() -> None:
    """Receipts lost (3 confirmed, 6 answered): a rate over 3 would be made up."""
    cells = {CellKey("2025-09", 4, "disorder", "en"): Tally(surveys_sent=8, surveys_delivered=3,
                                                           responses=6)}  # fmt: skip
    rows = read_csv(responses_csv(build_tables("testville", cells, [], 5).responses))
    assert {(r["response_rate"], r["response_rate_low"], r["suppressed"]) for r in rows} == {
        ("", "", "false")
    }


def test_score_intervals_and_a_package_over_surveys_sent_validate(
    surveyed: Database, tmp_path: Path
) -> None:
    """The local provider's texts (no receipts) in the seeded month: the package still
    validates, with the month over surveys sent. Its 25 answers of 30 sent: 0.833, Wilson
    0.664 to 0.927 (centre (0.833333 + 0.064024) / 1.128049 = 0.795496, half 1.959964 ·
    √(0.004630 + 0.001067) / 1.128049 = 0.131139)."""
    with surveyed.session() as session:
        for text in session.exec(select(OutboxMessage)):
            text.provider, text.status = "local", "sent"
            session.add(text)
        session.commit()
    agency = survey_agency()
    files = export_files(surveyed, {agency.id: agency}, "https://testville.example", NOW)
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    assert validate_package(tmp_path / "testville" / "datapackage.json") == []
    rows = read_csv(files["testville/survey_responses.csv"])
    [month] = [r for r in rows if r["breakdown"] == "month"]
    assert [month[name] for name in ("surveys_sent", "surveys_delivered", "response_rate_basis",
                                     "response_rate", "response_rate_low",
                                     "response_rate_high")] == [
        "30", "", "sent", "0.833", "0.664", "0.927"
    ]  # fmt: skip
    scores = read_csv(files["testville/survey_scores.csv"])
    [overall] = [r for r in scores if r["breakdown"] == "month" and r["question"] == "overall"]
    # 25 answers, 1 + index % 5: 4 and 5 are 10 of 25 = 0.4, Wilson 0.234 to 0.593
    # (centre (0.4 + 0.076829) / 1.153658 = 0.413319, half 1.959964 · √(0.0096 + 0.001537)
    # / 1.153658 = 0.179286).
    assert [overall[n] for n in ("share_satisfied", "share_satisfied_low",
                                 "share_satisfied_high")] == ["0.4", "0.234", "0.593"]  # fmt: skip
    assert figures_not_from_published_counts(rows, scores) == []
