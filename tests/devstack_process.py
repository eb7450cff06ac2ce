"""`make run`'s stack as a test runs it: `python -m devtools` in the background, waited for
until its day is replayed and the web app answers, stopped with Ctrl-C as a person would."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from callerloop.core.settings import PROJECT_ROOT
from tests.starter.test_devstack import answers


@contextmanager
def running_devstack(
    env: Mapping[str, str], output: Path, web_port: int, start_seconds: float
) -> Iterator[subprocess.Popen[bytes]]:
    """The stack, its output in `output`, up within `start_seconds` or the test fails."""
    with output.open("w") as out:
        dev = subprocess.Popen(
            [sys.executable, "-m", "devtools", "--max-seconds", "600"],
            cwd=PROJECT_ROOT,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + start_seconds
        while "texts keep flowing" not in output.read_text() or not answers(web_port, "/healthz"):
            assert dev.poll() is None, output.read_text()
            assert time.monotonic() < deadline, f"the stack never came up:\n{output.read_text()}"
            time.sleep(0.3)
        yield dev
    finally:
        dev.send_signal(signal.SIGINT)  # Ctrl-C, as a person stops it
        try:
            dev.wait(60)
        except subprocess.TimeoutExpired:
            dev.kill()
            dev.wait()
