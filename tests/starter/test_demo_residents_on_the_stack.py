"""After a `make run` day the staff and the public see a working program: `python -m devtools
--no-follow` as `make run` starts it (no SMS provider set: texts go through the Twilio
stand-in), a synthetic day at 7200x, its simulated residents answering. Then the
dashboard's figures are real (texts delivered, answers, opt-outs, low scores), the
comments inbox has comments, and the open data (`callerloop opendata export`, /opendata/)
publishes at least one group of at least `open_data.min_responses` answers.

SLOW: about 45 s (the stack's run, as tests/starter/test_devstack.py's, plus the residents'
answers).
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlmodel import col, select

from callerloop.core.agency_config import load_agencies
from callerloop.core.db import CallRecord, Database, SurveyComment, SurveyResponse
from callerloop.core.settings import PROJECT_ROOT
from callerloop.opendata.package import RESPONSES_FILE, SCORES_FILE
from devtools.conversation_log import ConversationLog, Entry
from tests.starter.test_devstack import free_port
from tests.web.pages import pages_app
from web.dashboard_data import Filters, delivery_rate, read

pytestmark = pytest.mark.slow

DAY = "2025-11-10"  # test_devstack's day: its calls close within ~1.3 days of CAD time
SPEED = 7200
TIMEOUT_SECONDS = 300
CALLERLOOP = Path(sys.executable).parent / "callerloop"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """The data folder, database URL and output of one `make run` day."""
    data = tmp_path_factory.mktemp("demo")
    database_url = f"sqlite:///{data / 'callerloop.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALLERLOOP_", "TEMPORAL_"))}
    env |= {
        "CALLERLOOP_DATA_DIR": str(data),
        "CALLERLOOP_DATABASE_URL": database_url,
        "CALLERLOOP_DEMO_CSV": str(data / "no-export-here.csv"),
        "CALLERLOOP_DEMO_SPEED": str(SPEED),
        "CALLERLOOP_TEMPORAL_PORT": str(free_port()),
        "CALLERLOOP_TEMPORAL_UI_PORT": str(free_port()),
        "CALLERLOOP_WEB_PORT": str(free_port()),
    }
    done = subprocess.run(
        [sys.executable, "-m", "devtools", "--no-follow", "--day", DAY, "--max-seconds", "200"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Twilio stand-in on" in output, "make run texts through the stand-in by default"
    return data, database_url, output


def test_the_dashboard_shows_deliveries_answers_opt_outs_and_comments(
    demo: tuple[Path, str, str],
) -> None:
    data, database_url, output = demo
    assert "simulated residents (seed " in output
    db = Database(database_url)
    try:
        delivery = read(db, delivery_rate, Filters())
        with db.session() as session:
            responses = session.exec(select(SurveyResponse)).all()
            comments = session.exec(select(SurveyComment)).all()
            opted_out = session.exec(
                select(CallRecord).where(col(CallRecord.reason) == "opted_out")
            ).all()
    finally:
        db.dispose()
    delivered = sum(row[2] for row in delivery.rows)
    assert delivered > 0, delivery.summary  # the stand-in's signed receipts came back
    assert not delivery.summary.startswith("0%"), delivery.summary
    assert len(responses) >= 10, len(responses)
    # The example agency offers both: residents answer on the page and in the thread.
    assert {response.channel for response in responses} == {"link", "thread"}
    assert any(comment.comment for comment in comments), "a resident commented"
    assert any(comment.score is not None and comment.score <= 2 for comment in comments)
    assert opted_out, "a resident replied STOP"
    # The residents' texts and the agency's answers, as the phone simulator shows them.
    log = ConversationLog.in_folder(data).entries()
    replies = [entry for entry in log if entry.kind == Entry.REPLY]
    assert replies and all(entry.simulated and entry.error is None for entry in replies)
    helped = [e for e in replies if e.text in ("HELP", "AYUDA", "AIDE")]
    assert helped and all(e.answer and "911" in e.answer for e in helped), helped
    assert any(e.kind == Entry.NOTE and e.text.startswith("Answered the survey") for e in log)


def published(table: bytes) -> list[dict[str, str]]:
    rows = csv.DictReader(io.StringIO(table.decode("utf-8")))
    return [row for row in rows if row["suppressed"] == "false"]


async def test_the_open_data_publishes_the_days_answers(
    demo: tuple[Path, str, str], tmp_path: Path
) -> None:
    data, database_url, _ = demo
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLERLOOP_")}
    env |= {"CALLERLOOP_DATABASE_URL": database_url, "CALLERLOOP_DATA_DIR": str(data)}
    out = tmp_path / "public"
    export = await asyncio.to_thread(
        subprocess.run,
        [str(CALLERLOOP), "opendata", "export", "--out", str(out), "--agency", "example"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert export.returncode == 0, export.stdout + export.stderr
    responses = published((out / "example" / RESPONSES_FILE).read_bytes())
    scores = published((out / "example" / SCORES_FILE).read_bytes())
    min_responses = load_agencies(PROJECT_ROOT / "agencies")["example"].open_data.min_responses
    assert responses, "no group of the day was published"
    assert all(int(row["responses"]) >= min_responses for row in responses)
    assert scores and all(float(row["mean_score"]) >= 1 for row in scores)

    # /opendata/ serves the same tables.
    db = Database(database_url)
    try:
        agencies = load_agencies(PROJECT_ROOT / "agencies")
        app = pages_app(db, agencies, "http://localhost:8000")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as web:
            served = await web.get(f"/opendata/example/{RESPONSES_FILE}")
    finally:
        db.dispose()
    assert served.status_code == 200
    assert published(served.content) == responses
