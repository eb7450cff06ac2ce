"""The `callerloop` command line: refusals at the edge, agency checks, the outbox export,
and the replay runner `cad replay` and `make run` share."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner, Result

from callerloop.cad.replay import ReplayReport, parse_cad_export
from callerloop.cad.replaying import print_replay_summary, run_replay
from callerloop.core.agency_config import load_agency_file
from callerloop.core.db import Database, OutboxMessage
from callerloop.core.settings import PROJECT_ROOT, get_settings
from starter.cli import EXPORT_FIELDS, app, replay_exit_code
from tests.conftest import TEST_ENCRYPTION_KEYS, start_harness
from tests.factories import RecordingProvider, eligible_call
from tests.harness import Harness
from workflows.call_for_service import CallForServiceWorkflow
from workflows.model import CallState, TextingState

runner = CliRunner()
FICTIONAL_MOBILE = re.compile(r"^\+1(703|571)55501\d\d$")


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Each test sees its own CALLERLOOP_… environment, not a cached Settings."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def invoke(*args: str, stdin: str | None = None) -> Result:
    # A wide terminal, so rich's error panels do not wrap the names the tests look for.
    return runner.invoke(app, list(args), input=stdin, env={"COLUMNS": "200"})


def event_json(**overrides: object) -> str:
    event = {
        "agency": "example",
        "incident_id": "25-000001",
        "event_type": "created",
        "occurred_at": "2025-09-01T10:00:00-04:00",
        "caller_phone": "+17035550142",
    }
    return json.dumps({**event, **overrides})


# --- cad send ---------------------------------------------------------------------------


def test_cad_send_refuses_invalid_json_naming_the_file(tmp_path: Path) -> None:
    events = tmp_path / "events.json"
    events.write_text('{"agency": "example",', encoding="utf-8")

    result = invoke("cad", "send", str(events))

    assert result.exit_code == 2
    assert f"{events}: not valid JSON" in result.stderr


def test_cad_send_refuses_an_unknown_agency() -> None:
    result = invoke("cad", "send", "-", stdin=event_json(agency="nowhere"))

    assert result.exit_code == 2
    assert "stdin.agency: unknown agency 'nowhere'" in result.stderr
    assert "example" in result.stderr  # the configured ones are listed


def test_cad_send_refuses_a_bad_phone_number_naming_the_field() -> None:
    result = invoke("cad", "send", "-", stdin=f"[{event_json(caller_phone='12')}]")

    assert result.exit_code == 2
    assert "stdin[0].caller_phone:" in result.stderr
    assert "'12'" in result.stderr


async def test_cad_send_as_a_program_prints_the_workflow_id_then_refuses_a_finished_call(
    dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """The real process, not a CliRunner: its exit status must survive the Temporal SDK's
    threads at interpreter exit (sdk-python #300)."""
    incident = f"CLI-{uuid.uuid4().hex[:8]}"
    events = tmp_path / "events.json"
    events.write_text(f"[{event_json(incident_id=incident)}]", encoding="utf-8")
    env = {
        **os.environ,
        "CALLERLOOP_TEMPORAL_ADDRESS": dev_server.client.service_client.config.target_host,
        "CALLERLOOP_TASK_QUEUE": f"cli-{incident}",  # no worker: the call just waits
        "CALLERLOOP_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEYS,  # without keys it would refuse
    }

    def cad_send() -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "starter.cli", "cad", "send", str(events)]
        return subprocess.run(
            command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60
        )

    sent = await asyncio.to_thread(cad_send)
    assert (sent.returncode, sent.stdout) == (0, f"call/example/{incident}\n"), sent.stderr

    await dev_server.client.get_workflow_handle(f"call/example/{incident}").terminate("test")
    refused = await asyncio.to_thread(cad_send)
    assert refused.returncode == 1, refused.stderr
    assert f"call already finished, event not applied: call/example/{incident}" in refused.stderr


# --- cad replay: refusals before anything is sent ---------------------------------------


def test_cad_replay_refuses_an_unknown_agency_listing_the_configured_ones() -> None:
    result = invoke(
        "cad", "replay", "--agency", "gotham", "--speed", "0", "--synthetic-day", "2025-11-10"
    )

    assert result.exit_code == 2
    configured = "example, example-county, ottawa, santa-monica"
    assert f"unknown agency 'gotham'; configured agencies: {configured}" in result.stderr


@pytest.mark.parametrize(
    ("languages", "bad_item"),
    [("en=0.8,de=0.2", "'de=0.2'"), ("en=0.8,es", "'es'"), ("en=lots", "'en=lots'")],
)
def test_cad_replay_names_the_bad_language_item(languages: str, bad_item: str) -> None:
    result = invoke(
        "cad",
        "replay",
        *("--agency", "example", "--speed", "0", "--synthetic-day", "2025-11-10"),
        *("--languages", languages),
    )

    assert result.exit_code == 2
    assert "--languages" in result.output
    assert bad_item in result.output


def test_replay_fails_only_when_nothing_got_through() -> None:
    event = eligible_call("T-1")
    assert replay_exit_code(ReplayReport(sent=3, failed=[(event, "boom")], elapsed_seconds=1)) == 0
    assert replay_exit_code(ReplayReport(sent=0, failed=[], elapsed_seconds=0)) == 0
    assert replay_exit_code(ReplayReport(sent=0, failed=[(event, "boom")], elapsed_seconds=1)) == 1


# --- agencies check ---------------------------------------------------------------------


def test_agencies_check_lists_every_agency() -> None:
    result = invoke("agencies", "check")

    assert result.exit_code == 0, result.output
    for agency_id in ("example", "example-county", "ottawa", "santa-monica"):
        assert re.search(rf"│ {agency_id}\s+│", result.stdout), result.stdout
    assert "Example City Police" in result.stdout


def test_agencies_check_says_which_file_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "broken.toml").write_text("[agency\n", encoding="utf-8")

    result = invoke("agencies", "check", "--dir", str(tmp_path))

    assert result.exit_code == 2
    assert f"{tmp_path / 'broken.toml'}: not valid TOML" in result.stderr


# --- messages export --------------------------------------------------------------------


def outbox_row(agency: str, incident: str, kind: str, sent: bool) -> OutboxMessage:
    created = datetime(2025, 9, 1, 14, 0, tzinfo=UTC)
    return OutboxMessage(
        workflow_id=f"call/{agency}/{incident}",
        agency=agency,
        incident_id=incident,
        kind=kind,
        language="es",
        to="+17035550142",
        body=f"{kind} de {incident}",
        encoding="GSM-7",
        segments=1,
        provider="local",
        status="sent" if sent else "pending",
        provider_id="local-1" if sent else None,
        created_at=created,
        sent_at=created.replace(second=2) if sent else None,
        updated_at=created,
    )


@pytest.fixture
def outbox(database: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    with database.session() as session:
        session.add(outbox_row("example", "25-000001", "confirmation", sent=True))
        session.add(outbox_row("ottawa", "OT-7", "survey", sent=False))
        session.commit()
    monkeypatch.setenv("CALLERLOOP_DATABASE_URL", database.url)
    return database


@pytest.mark.usefixtures("outbox")
def test_messages_export_writes_one_json_line_per_text_in_id_order() -> None:
    result = invoke("messages", "export", "--format", "jsonl")

    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [list(record) for record in records] == [list(EXPORT_FIELDS)] * 2
    assert records[0] == {
        "agency": "example",
        "incident_id": "25-000001",
        "workflow_id": "call/example/25-000001",
        "kind": "confirmation",
        "language": "es",
        "to": "+17035550142",
        "body": "confirmation de 25-000001",
        "segments": 1,
        "status": "sent",
        "provider_id": "local-1",
        "created_at": "2025-09-01T14:00:00+00:00",
        "sent_at": "2025-09-01T14:00:02+00:00",
    }
    assert (records[1]["incident_id"], records[1]["sent_at"]) == ("OT-7", None)


@pytest.mark.usefixtures("outbox")
def test_messages_export_filters_by_agency_into_a_file(tmp_path: Path) -> None:
    out = tmp_path / "texts.jsonl"

    result = invoke(
        "messages", "export", "--format", "jsonl", "--agency", "ottawa", "--out", str(out)
    )

    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [record["agency"] for record in records] == ["ottawa"]


@pytest.mark.usefixtures("outbox")
def test_messages_export_refuses_an_unknown_format() -> None:
    result = invoke("messages", "export", "--format", "xml")

    assert result.exit_code == 2
    assert "'xml' is not one of 'jsonl'" in result.output


def test_messages_export_refuses_a_missing_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nothing-here.db"
    monkeypatch.setenv("CALLERLOOP_DATABASE_URL", f"sqlite:///{missing}")

    result = invoke("messages", "export", "--format", "jsonl")

    assert result.exit_code == 1
    assert f"no database at {missing}" in result.stderr
    assert not missing.exists()  # an export never creates an empty database


# --- run_replay against Temporal --------------------------------------------------------

HEADER = (
    "Master_Incident_Number,Agency,Problem,Priority_Number,Call_Reception,Incident_Start_Time,"
    "Incident_Dispatch_Time,Incident_Enroute_Time,Incident_Arrival_Time,"
    "Incident_First_Close_Time,Final_Closed_Time,Call_Reopened,Disposition"
)
ASSIGNED_CALL, WAITING_CALL, OFFICER_CALL = "25-100001", "25-100002", "25-100003"
CSV_LINES = [
    HEADER,
    # line 2: a phone caller's report; a unit is dispatched half an hour later
    f"{ASSIGNED_CALL},POLICE,LARCENY FROM AUTO DELAY,4,Phone,2025-09-01 10:00:00.000,"
    "2025-09-01 10:30:00.000,NULL,NULL,NULL,NULL,0,",
    # line 3: a 911 caller, no unit yet
    f"{WAITING_CALL},POLICE,HAZARD,3,E-911,2025-09-01 10:05:00.000,NULL,NULL,NULL,NULL,NULL,0,",
    # line 4: officer-initiated: nobody to text
    f"{OFFICER_CALL},POLICE,TRAFFIC STOP,2,OFFICER,2025-09-01 10:10:00.000,"
    "2025-09-01 10:10:00.000,2025-09-01 10:10:00.000,2025-09-01 10:10:00.000,NULL,NULL,0,",
    # line 5: a priority the CAD never writes
    "25-100004,POLICE,HAZARD,x,Phone,2025-09-01 10:20:00.000,NULL,NULL,NULL,NULL,NULL,0,",
]
REPLAYED = (ASSIGNED_CALL, WAITING_CALL, OFFICER_CALL)


@pytest.fixture
async def example_harness(
    env: WorkflowEnvironment, database: Database, provider: RecordingProvider
) -> AsyncIterator[Harness]:
    """A worker that knows the example agency, whose replay columns the CSV uses."""
    example = load_agency_file(PROJECT_ROOT / "agencies" / "example.toml")
    async for running in start_harness(env, database, {example.id: example}, provider):
        yield running
        # Replayed calls wait for days of timers: stop them before the shared clock moves on.
        for incident in REPLAYED:
            handle = running.handle(incident, agency="example")
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate(reason="test finished")


async def settled_state(harness: Harness, incident: str, events: int) -> CallState:
    """The call's state once it has applied `events` events and has nothing in flight."""
    handle = harness.handle(incident, agency="example")
    for _ in range(500):
        state: CallState = await handle.query(CallForServiceWorkflow.state)
        if state.idle and state.events_applied + state.events_ignored >= events:
            return state
        await asyncio.sleep(0.02)
    raise AssertionError(f"{incident} never settled: {state}")


async def test_run_replay_delivers_the_events_and_eligible_callers_get_texts(
    example_harness: Harness, provider: RecordingProvider
) -> None:
    example = example_harness.agencies["example"]
    export = parse_cad_export([line + "\n" for line in CSV_LINES], example)

    report = await run_replay(
        example_harness.env.client, example_harness.settings.task_queue, export.calls, speed=0
    )

    assert (report.sent, report.failed) == (7, [])  # 2 + 1 + 4 events; the bad row has none
    assert [str(error) for error in export.errors] == [
        "line 5, column Priority_Number: 'x' is not an integer"
    ]
    assert (await settled_state(example_harness, ASSIGNED_CALL, 2)).texts_counted() == 2
    assert (await settled_state(example_harness, WAITING_CALL, 1)).texts_counted() == 1
    officer = await settled_state(example_harness, OFFICER_CALL, 4)
    assert officer.texting_state in (TextingState.INELIGIBLE, TextingState.BLOCKED)

    def kinds(incident: str) -> list[str]:
        return [row.kind for row in example_harness.outbox(incident, agency="example")]

    assert kinds(ASSIGNED_CALL) == ["confirmation", "assigned"]
    assert kinds(WAITING_CALL) == ["confirmation"]
    assert kinds(OFFICER_CALL) == []
    assert len(provider.accepted) == 3
    assert all(FICTIONAL_MOBILE.match(text.to) for text in provider.accepted)


def test_replay_summary_lists_bad_rows_and_failures() -> None:
    example = load_agency_file(PROJECT_ROOT / "agencies" / "example.toml")
    export = parse_cad_export([line + "\n" for line in CSV_LINES], example)
    refused = export.calls[0].events[0]
    report = ReplayReport(
        sent=6, failed=[(refused, "call/example/… has finished")], elapsed_seconds=2
    )
    output = StringIO()

    print_replay_summary(Console(file=output, width=200), export, report)

    text = output.getvalue()
    assert re.search(r"rows read\s+│\s+4 │", text), text
    assert re.search(r"events sent\s+│\s+6 │", text)
    assert re.search(r"failures\s+│\s+1 │", text)
    assert re.search(r"bad rows\s+│\s+1 │", text)
    assert f"{ASSIGNED_CALL} created: call/example/… has finished" in text
    assert "line 5, column Priority_Number: 'x' is not an integer" in text


def test_the_old_dev_command_says_where_it_went_and_runs_the_dev_stack() -> None:
    """`callerloop dev` (before the dev tools left the product) still works, deprecated."""
    callerloop = Path(sys.executable).parent / "callerloop"
    shown = subprocess.run(
        [str(callerloop), "dev", "--help"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert "`callerloop dev` is deprecated" in shown.stderr
    assert "python -m devtools" in shown.stderr
    assert "--keep" in shown.stdout and "--max-seconds" in shown.stdout  # the dev stack's own


def test_poll_status_says_when_no_agency_file_polls_its_cad(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "example.toml").write_text(
        (PROJECT_ROOT / "agencies" / "example.toml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    monkeypatch.setenv("CALLERLOOP_AGENCIES_DIR", str(tmp_path))
    get_settings.cache_clear()
    result = invoke("cad", "poll", "status")
    assert result.exit_code == 2, result.output
    assert "has no [cad.poll] or [cad.folder]" in result.output
