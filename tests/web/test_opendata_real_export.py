"""Done when: a slice of the real CAD export is replayed through the real workflow and
worker, the callers texted a survey answer it on the real survey page (seeded answers,
some comments with phone numbers in them), and the open-data export made from what they
left validates with `frictionless`, publishes no group of fewer than k answers, cannot be
subtracted back to one, and carries no phone number, comment or raw call type."""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from callerloop.cad.replay import ReplayCall, first_calls, parse_cad_export
from callerloop.cad.replaying import run_replay
from callerloop.core.agency_config import AgencyConfig, load_agency_file
from callerloop.core.db import Database, OutboxMessage, SurveyComment, SurveyResponse
from callerloop.core.settings import PROJECT_ROOT, get_settings
from callerloop.opendata.validate import validate_package
from starter.cli import app as cli_app
from tests.callerloop.published_attack import attack, read_csv
from tests.conftest import start_harness
from tests.factories import RecordingProvider
from tests.harness import Harness, skip_time
from tests.requirements import real_cad_export
from tests.web.pages import LINK, pages_app
from workflows.model import TextKind

DAY = datetime(2025, 9, 16)  # a Tuesday in the export
CALLS = 60
SEED = 20250916
BASE = "https://callerloop.test"


def example_agency() -> AgencyConfig:
    """The example agency as shipped, but with a sender fast enough for a test."""
    agency = load_agency_file(PROJECT_ROOT / "agencies" / "example.toml")
    texts = agency.texts.model_copy(update={"messages_per_second": 50.0})
    return agency.model_copy(update={"texts": texts})


@pytest.fixture
def replayed_calls() -> list[ReplayCall]:
    agency = example_agency()
    with real_cad_export().open(newline="", encoding="utf-8") as lines:
        export = parse_cad_export(lines, agency, since=DAY, until=DAY + timedelta(days=1))
    # Calls a caller made at a priority the agency texts: the rest would never reach a
    # survey, and each workflow costs test time. The policy still decides each one.
    candidates = [
        call
        for call in export.calls
        if call.events[0].priority in agency.eligibility.priorities
        and call.events[0].source in agency.eligibility.sources
    ]
    return first_calls(candidates, CALLS)


@pytest.fixture
async def replayed(
    env: WorkflowEnvironment,
    database: Database,
    replayed_calls: list[ReplayCall],
    provider: RecordingProvider,
) -> AsyncIterator[Harness]:
    """The slice replayed at once, then a worker runs it through the survey texts."""
    agency = example_agency()
    task_queue = f"opendata-{uuid.uuid4()}"
    report = await run_replay(env.client, task_queue, replayed_calls, speed=0)
    assert report.failed == [] and report.sent > 0
    async for harness in start_harness(
        env, database, {agency.id: agency}, provider, task_queue=task_queue
    ):
        for call in replayed_calls:
            harness.handles[call.incident_id] = harness.handle(call.incident_id, agency.id)
        await skip_time(env, timedelta(hours=40))  # the survey delay, past quiet hours
        for call in replayed_calls:
            await harness.settle(call.incident_id, agency=agency.id)
        yield harness


def answers_for(rng: random.Random, html: str) -> dict[str, str]:
    """What a resident might answer: mostly satisfied, some not, some comments."""

    def hidden(name: str) -> str:
        match = re.search(rf'name="{name}" value="([^"]*)"', html)
        assert match is not None, name
        return match.group(1)

    def score() -> str:
        return str(rng.choices([5, 4, 3, 2, 1], weights=[40, 30, 12, 10, 8])[0])

    answers = {
        "form_token": hidden("form_token"),
        "submission": hidden("submission"),
        "lang": hidden("lang"),
        "q_call_taker": score(),
        "q_officer": "na" if rng.random() < 0.3 else score(),
        "q_overall": score(),
        "q_respect": score(),
    }
    if rng.random() < 0.4:
        answers["q_comment"] = rng.choice(
            [
                "Please call me back on 703-555-0188 about my bike.",
                "The officer at 14 Maple Ave was very kind.",
                "Took three hours. Nobody told me why.",
            ]
        )
    return answers


async def answer_surveys(database: Database, agency: AgencyConfig, rng: random.Random) -> int:
    """Every survey link texted, opened on the real survey page; most are answered."""
    with database.session() as session:
        texts = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == TextKind.SURVEY.value)
        ).all()
    links = [match.group() for t in texts if t.body and (match := LINK.search(t.body))]
    app = pages_app(database, {agency.id: agency}, BASE)
    answered = 0
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as web:
        for link in links:
            if rng.random() > 0.9:  # not everyone answers
                continue
            form = await web.get(link)
            assert form.status_code == 200, form.text
            posted = await web.post(link, data=answers_for(rng, form.text))
            assert posted.status_code == 303, posted.text
            answered += 1
    return answered


async def test_replayed_real_day_exports_safe_valid_open_data(
    replayed: Harness,
    database: Database,
    replayed_calls: list[ReplayCall],
    provider: RecordingProvider,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agency = example_agency()
    answered = await answer_surveys(database, agency, random.Random(SEED))
    with database.session() as session:
        assert len(session.exec(select(SurveyResponse)).all()) == answered
        # Low scores reach the inbox without a comment too: only the written ones count here.
        comments = [c.comment for c in session.exec(select(SurveyComment)) if c.comment]
    assert answered >= 15, f"only {answered} surveys answered: the slice is too small"
    assert comments, "no comments: the test would not show they are left out"

    monkeypatch.setenv("CALLERLOOP_DATABASE_URL", database.url)
    monkeypatch.setenv("CALLERLOOP_PUBLIC_BASE_URL", BASE)
    get_settings.cache_clear()
    out = tmp_path / "opendata"
    try:
        result = CliRunner().invoke(
            cli_app, ["opendata", "export", "--out", str(out), "--agency", "example"]
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert validate_package(out / "example" / "datapackage.json") == []

    k = agency.open_data.min_responses
    responses = read_csv((out / "example" / "survey_responses.csv").read_bytes())
    scores = read_csv((out / "example" / "survey_scores.csv").read_bytes())
    assert attack(responses, "responses", k) == []
    assert attack(scores, "answered", k, by=("month", "question")) == []
    published = [row for row in responses if row["suppressed"] == "false"]
    assert published and len(published) < len(responses)  # some shown, some withheld
    month_total = sum(int(r["responses"]) for r in published if r["breakdown"] == "month")
    assert month_total == answered

    everything = "\n".join(p.read_text() for p in out.rglob("*") if p.is_file())
    phones = {text.to for text in provider.accepted} | {"703-555-0188"}
    assert not [phone for phone in phones if phone and phone in everything]
    assert not [c for c in comments if c in everything]
    assert "Maple" not in everything and "bike" not in everything
    raw_types = {e.call_type for call in replayed_calls for e in call.events if e.call_type}
    assert not [t for t in raw_types if t in everything]
    incidents = {call.incident_id for call in replayed_calls}
    assert not [i for i in incidents if i in everything]
