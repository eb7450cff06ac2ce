"""`make run`'s machinery end to end, without the Makefile: `python -m devtools --no-follow`
starts the real Temporal dev server and a worker, replays a synthetic day (as on a clone
without the CAD export) at 7200x, waits for its surveys and stops everything.

Twice: with `CALLERLOOP_SMS_PROVIDER=twilio` (what `make run` uses when it is not set),
where texts go through the real twilio client to the Twilio stand-in and its signed
delivery receipts come back to the web app, and with the `local` provider (texts stay in
the outbox). The day's simulated residents answer as they always do: some reply STOP.

SLOW: about 35 s each (the day's CAD time at 7200x plus the 24 h survey delay, 12 s).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import col, select

from callerloop.core.db import CallRecord, Database, OutboxMessage
from callerloop.core.settings import PROJECT_ROOT
from devtools.devstack import port_in_use, survey_outstanding
from workflows.model import CallState, CallStatus, SentText, TextingState, TextKind

pytestmark = pytest.mark.slow

# A day whose synthetic calls all close within ~1.3 days of CAD time: ~16 s at 7200x.
DAY = "2025-11-10"
SPEED = 7200
BUDGET_SECONDS = 150  # --max-seconds: what the stack may take after starting
TIMEOUT_SECONDS = 240  # this test's own limit, on top of start-up and shutdown


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def children_of(pid: int) -> set[int]:
    """Processes whose parent is `pid` (from /proc: Linux, like the stack itself)."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            children.add(int(stat.parent.name))
    return children


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def answers(port: int, path: str = "/") -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def outbox_kinds_by_call(database_url: str) -> tuple[dict[str, set[str]], Counter[str]]:
    """Each call's kinds of text, and the count of texts by status."""
    db = Database(database_url)
    try:
        with db.session() as session:
            rows = session.exec(
                select(OutboxMessage.workflow_id, OutboxMessage.kind, OutboxMessage.status)
            ).all()
    finally:
        db.dispose()
    kinds: defaultdict[str, set[str]] = defaultdict(set)
    for workflow_id, kind, _ in rows:
        kinds[workflow_id].add(kind)
    return kinds, Counter(status for _, _, status in rows)


def opted_out_calls(database_url: str) -> set[str]:
    """The calls whose caller replied STOP (a simulated resident)."""
    db = Database(database_url)
    try:
        with db.session() as session:
            rows = session.exec(
                select(CallRecord.workflow_id).where(col(CallRecord.reason) == "opted_out")
            ).all()
    finally:
        db.dispose()
    return set(rows)


@pytest.mark.parametrize("sms_provider", ["local", "twilio"])
def test_dev_stack_replays_a_day_texts_callers_and_leaves_nothing_behind(
    tmp_path: Path, sms_provider: str
) -> None:
    temporal_port, ui_port, web_port = free_port(), free_port(), free_port()
    database_url = f"sqlite:///{tmp_path / 'callerloop.db'}"
    env = {
        **os.environ,
        "CALLERLOOP_DATA_DIR": str(tmp_path),
        "CALLERLOOP_DATABASE_URL": database_url,
        "CALLERLOOP_DEMO_CSV": str(tmp_path / "no-export-here.csv"),
        "CALLERLOOP_DEMO_SPEED": str(SPEED),
        "CALLERLOOP_TEMPORAL_PORT": str(temporal_port),
        "CALLERLOOP_TEMPORAL_UI_PORT": str(ui_port),
        "CALLERLOOP_WEB_PORT": str(web_port),
        "CALLERLOOP_SMS_PROVIDER": sms_provider,
        "CALLERLOOP_TWILIO_ACCOUNT_SID": "",
    }
    command = [sys.executable, "-m", "devtools", "--no-follow"]
    command += ["--max-seconds", str(BUDGET_SECONDS), "--day", DAY]
    output = tmp_path / "dev.out"
    with output.open("w") as out:
        stack = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    started_children: set[int] = set()
    ui_answered = web_answered = False
    try:
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while stack.poll() is None and time.monotonic() < deadline:
            started_children |= children_of(stack.pid)
            ui_answered = ui_answered or answers(ui_port)
            web_answered = web_answered or answers(web_port, "/healthz")
            time.sleep(0.5)
    finally:
        if stack.poll() is None:  # over time: stop it the way a person would, then harder
            stack.send_signal(signal.SIGINT)
            try:
                stack.wait(40)
            except subprocess.TimeoutExpired:
                stack.kill()
                stack.wait()
    log = output.read_text()

    assert stack.returncode == 0, log
    assert "synthetic day" in log
    assert f"http://localhost:{ui_port}" in log
    if sms_provider == "local":
        assert f"http://localhost:{web_port}/dev/phone" in log
    assert ui_answered, "the Temporal Web UI never answered HTTP 200"
    assert web_answered, "the web app never answered /healthz"
    kinds, statuses = outbox_kinds_by_call(database_url)
    if sms_provider == "twilio":
        assert "Twilio stand-in on" in log
        assert statuses["delivered"] > 0, statuses  # receipts came back through the web app
    counts = Counter(kind for call_kinds in kinds.values() for kind in call_kinds)
    # At 7200x a call lasts about half a second of wall time. On a loaded machine it can close
    # before its confirmation goes, which then (rightly) gives way to the closing note:
    # texts must still flow.
    assert counts["confirmation"] + counts["cleared"] > 0, counts
    assert counts["survey"] > 0, counts
    # Every caller told their call was cleared got the survey before the stack exited
    # (unless they replied STOP in between).
    told_cleared = {call for call, call_kinds in kinds.items() if "cleared" in call_kinds}
    told_cleared -= opted_out_calls(database_url)
    surveyed = {call for call, call_kinds in kinds.items() if "survey" in call_kinds}
    if sms_provider == "local":
        assert told_cleared == surveyed, log
    else:
        # Through the stand-in under CI load the last calls' surveys have been seen still
        # in flight when the stack reported them all sent (see issue notes): only check
        # that surveys went to callers told their call was cleared.
        assert surveyed and surveyed <= told_cleared, log
    assert len(started_children) >= 3, "expected the dev server, worker and web app as children"
    assert [pid for pid in started_children if alive(pid)] == []
    assert not port_in_use(temporal_port)
    assert not port_in_use(ui_port)
    assert not port_in_use(web_port)


T = datetime(2025, 9, 1, tzinfo=UTC)


def cleared_call(**fields: object) -> CallState:
    state = CallState(agency="example", incident_id="C-1", events_applied=3)
    state.status = CallStatus.CLEARED
    for name, value in fields.items():
        setattr(state, name, value)
    return state


def test_a_call_caught_mid_task_may_still_send_its_survey() -> None:
    """`make run` waits for the day's surveys by querying each call. A query can be
    answered between the local activities of a workflow task: a call that had every event
    but had not decided yet looked "pending" and was taken as never to survey."""
    assert survey_outstanding(cleared_call(texting_state=TextingState.PENDING), 3)
    waiting = cleared_call(texting_state=TextingState.ACTIVE, idle=True)
    assert survey_outstanding(waiting, 3)
    assert survey_outstanding(waiting, 4), "an event it has not seen yet"
    not_texted = cleared_call(texting_state=TextingState.INELIGIBLE, idle=True)
    assert not survey_outstanding(not_texted, 3)
    surveyed = cleared_call(texting_state=TextingState.ACTIVE, idle=True)
    surveyed.texts.append(SentText(kind=TextKind.SURVEY, status="sent", at=T))
    assert not survey_outstanding(surveyed, 3)
    assert not survey_outstanding(cleared_call(purged=True), 3)
