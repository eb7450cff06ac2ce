"""The lint rule of workflows/ruff.toml: `ruff check .` (part of `make test`) fails when
workflow code reads the clock, draws randomness or does I/O of its own.

Each probe is checked as if it were a file under workflows/ (`--stdin-filename`), so ruff
picks its configuration the way `ruff check .` from the root does, without writing into
the checkout; the same code elsewhere (starter/) passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from callerloop.core.settings import PROJECT_ROOT

RUFF = Path(sys.executable).parent / "ruff"

NON_DETERMINISTIC = {
    "datetime.now": "from datetime import datetime\n\n\ndef f() -> object:\n"
    "    return datetime.now()\n",
    "utcnow": "import datetime\n\n\ndef f() -> object:\n    return datetime.datetime.utcnow()\n",
    "date.today": "from datetime import date\n\n\ndef f() -> object:\n    return date.today()\n",
    "time.monotonic": "import time\n\n\ndef f() -> float:\n    return time.monotonic()\n",
    "time.sleep": "from time import sleep\n\n\ndef f() -> None:\n    sleep(1)\n",
    "random": "import random\n\n\ndef f() -> float:\n    return random.random()\n",
    "uuid4": "import uuid\n\n\ndef f() -> object:\n    return uuid.uuid4()\n",
    "os.urandom": "import os\n\n\ndef f() -> bytes:\n    return os.urandom(4)\n",
    "secrets": "import secrets\n\n\ndef f() -> str:\n    return secrets.token_hex()\n",
    "open": "def f() -> str:\n    with open('x') as file:\n        return file.read()\n",
    "httpx": "import httpx\n\n\ndef f() -> object:\n    return httpx.get('http://x')\n",
    "sqlmodel": "from sqlmodel import select\n\n\ndef f() -> object:\n    return select()\n",
    "structlog": "import structlog\n\nlog = structlog.get_logger()\n",
    "twilio": "from twilio.rest import Client\n\n\ndef f() -> object:\n    return Client()\n",
}


def ruff_check(source: str, as_file: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RUFF), "check", "--output-format", "concise", "--stdin-filename", as_file, "-"],
        input=source,
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        check=False,
    )


@pytest.mark.parametrize("source", NON_DETERMINISTIC.values(), ids=list(NON_DETERMINISTIC))
def test_a_non_deterministic_call_in_workflow_code_fails_the_lint(source: str) -> None:
    checked = ruff_check(source, "workflows/zz_probe.py")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "TID251" in checked.stdout or "PTH123" in checked.stdout, checked.stdout


def test_the_same_call_outside_workflows_is_not_the_rules_business() -> None:
    checked = ruff_check(NON_DETERMINISTIC["datetime.now"], "starter/zz_probe.py")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_workflow_code_as_it_is_passes_the_rule() -> None:
    checked = subprocess.run(
        [str(RUFF), "check", "--select", "TID251,PTH123", "--output-format", "concise", "."],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT / "workflows",
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
