"""`make run`'s machinery end to end, without the Makefile: `callerloop dev --no-follow`
starts the real Temporal dev server and a worker, replays a synthetic day (as on a clone
without the CAD export) at 3600x, waits for its surveys and stops everything.

SLOW: one test of about a minute (the day's CAD time at 3600x plus the 24 h survey delay).
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
from pathlib import Path

from sqlmodel import select

from callerloop.db import Database, OutboxMessage
from callerloop.settings import PROJECT_ROOT
from starter.devstack import port_in_use

# A day whose synthetic calls all close within ~1.3 days of CAD time: ~30 s at 3600x.
DAY = "2025-11-10"
SPEED = 3600
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


def web_ui_answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def outbox_kinds_by_call(database_url: str) -> dict[str, set[str]]:
    db = Database(database_url)
    try:
        with db.session() as session:
            rows = session.exec(select(OutboxMessage.workflow_id, OutboxMessage.kind)).all()
    finally:
        db.dispose()
    kinds: defaultdict[str, set[str]] = defaultdict(set)
    for workflow_id, kind in rows:
        kinds[workflow_id].add(kind)
    return kinds


def test_dev_stack_replays_a_day_texts_callers_and_leaves_nothing_behind(tmp_path: Path) -> None:
    temporal_port, ui_port = free_port(), free_port()
    database_url = f"sqlite:///{tmp_path / 'callerloop.db'}"
    env = {
        **os.environ,
        "CALLERLOOP_DATA_DIR": str(tmp_path),
        "CALLERLOOP_DATABASE_URL": database_url,
        "CALLERLOOP_DEMO_CSV": str(tmp_path / "no-export-here.csv"),
        "CALLERLOOP_DEMO_SPEED": str(SPEED),
        "CALLERLOOP_TEMPORAL_PORT": str(temporal_port),
        "CALLERLOOP_TEMPORAL_UI_PORT": str(ui_port),
    }
    command = [sys.executable, "-m", "starter.cli", "dev", "--no-follow"]
    command += ["--max-seconds", str(BUDGET_SECONDS), "--day", DAY]
    output = tmp_path / "dev.out"
    with output.open("w") as out:
        stack = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    started_children: set[int] = set()
    ui_answered = False
    try:
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while stack.poll() is None and time.monotonic() < deadline:
            started_children |= children_of(stack.pid)
            ui_answered = ui_answered or web_ui_answers(ui_port)
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
    assert ui_answered, "the Temporal Web UI never answered HTTP 200"
    kinds = outbox_kinds_by_call(database_url)
    counts = Counter(kind for call_kinds in kinds.values() for kind in call_kinds)
    assert counts["confirmation"] > 0, counts
    assert counts["survey"] > 0, counts
    # Every caller told their call was cleared got the survey before the stack exited.
    told_cleared = {call for call, call_kinds in kinds.items() if "cleared" in call_kinds}
    surveyed = {call for call, call_kinds in kinds.items() if "survey" in call_kinds}
    assert told_cleared == surveyed, log
    assert len(started_children) >= 2, "expected the dev server and the worker as children"
    assert [pid for pid in started_children if alive(pid)] == []
    assert not port_in_use(temporal_port)
    assert not port_in_use(ui_port)
