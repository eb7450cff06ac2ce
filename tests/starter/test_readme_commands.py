"""Every command the README and the manual document runs against a running `make run` stack.

The commands are read from README.md and the pages of the docs site (every page in
mkdocs.yml's nav, which `mkdocs build --strict` holds to every page in docs/): each
`uv run callerloop …` line of their `sh` blocks (continuation lines joined), so a command
added to the README or a page without a check here fails this test. One stack
(`python -m devtools`, as `make run` starts it) serves them all; each runs as its own
process, with the environment a second terminal beside `make run` has. The stack's ports
and data folder are the test's own, so its CALLERLOOP_* variables say where they are;
nothing says where the keys are: the commands find the stack's (in its data folder) as
they do beside `make run`.

The examples are run as written: the CAD event of "The command line" (incident
25-071089) is the call the `calls` commands act on, `event.json`, `export.csv`,
`password.txt` and `public/` are files in the working directory, `$KEY` is the key
`keys add` prints, and the example URLs (`https://callerloop.example.gov`,
`http://localhost:8000`) are the stack's web app.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from sqlmodel import col, select

from callerloop.cad.replay import column_names
from callerloop.core.agency_config import EXPORT_COLUMNS, load_agencies
from callerloop.core.db import Database, OutboxMessage
from callerloop.core.settings import PROJECT_ROOT
from tests.devstack_process import running_devstack
from tests.starter.test_devstack import free_port

pytestmark = pytest.mark.slow

README = PROJECT_ROOT / "README.md"
MKDOCS = PROJECT_ROOT / "mkdocs.yml"  # its nav lists the manual's pages, in docs/
# What `uv run callerloop` runs: the project's console script in its venv.
CALLERLOOP = Path(sys.executable).parent / "callerloop"
# Slow enough that the README's call sends no delay notice (90 min of CAD time) before
# `calls resend-confirmation` runs; its own one-call day replays in a second.
DEMO_SPEED = 60
STACK_START_SECONDS = 90
COMMAND_TIMEOUT_SECONDS = 90
README_CALL = "call/example/25-071089"  # the documented CAD event
PASSWORD = "correct horse battery staple"
HEALTH = "/healthz"
ERROR_LINES = 25  # of a failed command's stderr, in the test's report


@dataclass(frozen=True)
class Page:
    path: str  # from the project root: README.md, docs/command-line.md, …
    text: str


def documented_pages() -> list[Page]:
    """README.md, then the docs site's pages in the order of mkdocs.yml's nav."""
    config = yaml.safe_load(MKDOCS.read_text(encoding="utf-8"))
    docs_dir = PROJECT_ROOT / config.get("docs_dir", "docs")

    def files(nav: object) -> Iterator[str]:
        if isinstance(nav, str):
            yield nav
        elif isinstance(nav, list):
            for item in nav:
                yield from files(item)
        elif isinstance(nav, dict):
            for item in nav.values():
                yield from files(item)

    paths = [README, *(docs_dir / name for name in files(config["nav"]))]
    return [
        Page(str(path.relative_to(PROJECT_ROOT)), path.read_text(encoding="utf-8"))
        for path in paths
    ]


@dataclass(frozen=True)
class ReadmeCommand:
    page: str  # the page it is on: README.md, docs/command-line.md, …
    line: int  # where it starts on that page
    args: tuple[str, ...]  # after `uv run callerloop`
    stdin_file: str | None  # `< FILE`

    @property
    def name(self) -> str:
        """The command as the CLI names it: `calls show`, `worker`, …"""
        return " ".join(self.args[:1] if self.args[0] in SINGLE_COMMANDS else self.args[:2])

    def __str__(self) -> str:
        redirect = f" < {self.stdin_file}" if self.stdin_file else ""
        return f"{self.page}:{self.line}: callerloop {shlex.join(self.args)}{redirect}"


SINGLE_COMMANDS = {"worker", "web"}


def readme_commands(pages: Sequence[Page]) -> list[ReadmeCommand]:
    """The `uv run callerloop …` lines of the pages' sh blocks, in order, once each."""
    commands = [command for page in pages for command in page_commands(page)]
    unique: dict[tuple[tuple[str, ...], str | None], ReadmeCommand] = {}
    for command in commands:
        unique.setdefault((command.args, command.stdin_file), command)
    return list(unique.values())


def page_commands(page: Page) -> list[ReadmeCommand]:
    """The `uv run callerloop …` lines of one page's sh blocks, in order."""
    commands: list[ReadmeCommand] = []
    in_shell, pending, start = False, "", 0
    for number, line in enumerate(page.text.splitlines(), start=1):
        if line.startswith("```"):
            in_shell = line.strip() == "```sh"
            continue
        if not in_shell:
            continue
        if pending:
            pending += " " + line.strip()
        elif line.startswith("uv run callerloop "):
            pending, start = line, number
        else:
            continue
        if pending.rstrip().endswith("\\"):
            pending = pending.rstrip()[:-1]
            continue
        commands.append(parse(pending, page.path, start))
        pending = ""
    return commands


def parse(line: str, page: str, number: int) -> ReadmeCommand:
    words = shlex.split(line, comments=True)
    assert words[:3] == ["uv", "run", "callerloop"], line
    words = words[3:]
    stdin_file = None
    if "<" in words:
        at = words.index("<")
        stdin_file, words = words[at + 1], words[:at] + words[at + 2 :]
    return ReadmeCommand(page, number, tuple(words), stdin_file)


def readme_cad_event(pages: Sequence[Page]) -> str:
    """The documented example CAD event: the json block after "A CAD event"."""
    for page in pages:
        found = re.search(r"A CAD event .*?```json\n(.*?)```", page.text, re.DOTALL)
        if found:
            return found.group(1)
    raise AssertionError(f"no example CAD event in {[page.path for page in pages]}")


# --- the stack -------------------------------------------------------------------------


@dataclass
class RunningStack:
    env: dict[str, str]
    cwd: Path
    web_url: str
    database_url: str
    key: str = ""  # filled by `keys add`

    def run(self, command: ReadmeCommand, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        stdin = (self.cwd / command.stdin_file).read_text() if command.stdin_file else None
        if command.name == "users add" and stdin is None:
            stdin = f"{PASSWORD}\n{PASSWORD}\n"  # asked twice, as a person types it
        return subprocess.run(
            [str(CALLERLOOP), *args],
            cwd=self.cwd,
            env=self.env,
            input=stdin or "",
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
            start_new_session=True,  # no terminal: a password prompt reads stdin
            check=False,
        )

    def texts_of(self, workflow_id: str) -> list[str]:
        db = Database(self.database_url)
        try:
            with db.session() as session:
                rows = session.exec(
                    select(OutboxMessage.kind).where(col(OutboxMessage.workflow_id) == workflow_id)
                )
                return list(rows)
        finally:
            db.dispose()


def stack_environment(tmp_path: Path, ports: dict[str, int]) -> dict[str, str]:
    """A terminal's environment beside `make run`, with this stack's ports and folder (the
    defaults of both are `make run`'s), and no keys or Temporal settings of its own."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CALLERLOOP_", "TEMPORAL_"))
    }
    data = tmp_path / "data"
    return env | {
        "CALLERLOOP_DATA_DIR": str(data),
        "CALLERLOOP_DATABASE_URL": f"sqlite:///{data / 'callerloop.db'}",
        "CALLERLOOP_DEMO_CSV": str(tmp_path / "demo.csv"),
        "CALLERLOOP_DEMO_SPEED": str(DEMO_SPEED),
        "CALLERLOOP_TEMPORAL_PORT": str(ports["temporal"]),
        "CALLERLOOP_TEMPORAL_UI_PORT": str(ports["ui"]),
        "CALLERLOOP_WEB_PORT": str(ports["web"]),
        "CALLERLOOP_TEMPORAL_ADDRESS": f"127.0.0.1:{ports['temporal']}",
        "CALLERLOOP_PUBLIC_BASE_URL": f"http://localhost:{ports['web']}",
        # The outbox only: `make run` texts through its Twilio stand-in, whose receipts say
        # the confirmation reached the caller, and then `calls resend-confirmation` rightly
        # refuses. With no receipts nothing is known to have reached anyone.
        "CALLERLOOP_SMS_PROVIDER": "local",
    }


def write_export(path: Path, calls: Sequence[tuple[str, str, str, str]]) -> None:
    """A CAD export in the example agency's columns: (incident, call type, priority,
    source) created on 2025-09-12, each closed within a minute of CAD time."""
    names = column_names(load_agencies(PROJECT_ROOT / "agencies")["example"])
    # example.toml keeps no such columns (and an export for replay no caller's number)
    optional = ("final_call_type", "final_priority", "caller_phone", "caller_language", "officer")
    columns = {key: names[key] for key in EXPORT_COLUMNS if key not in optional}
    lines = [",".join(columns.values())]
    for n, (incident, call_type, priority, source) in enumerate(calls):
        at = f"2025-09-12 10:00:{10 * n:02d}.000"
        closed = f"2025-09-12 10:01:{10 * n:02d}.000"
        row = {
            "incident_id": incident, "call_type": call_type, "priority": priority,
            "source": source, "created": at, "dispatched": at, "enroute": "NULL",
            "on_scene": "NULL", "first_closed": closed, "final_closed": closed,
            "reopened": "0", "disposition": "GOA-Gone on Arrival",
        }  # fmt: skip
        lines.append(",".join(row[key] for key in columns))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """`python -m devtools` (what `make run` runs), replaying a one-call day, then following."""
    tmp_path = tmp_path_factory.mktemp("readme")
    ports = {name: free_port() for name in ("temporal", "ui", "web")}
    env = stack_environment(tmp_path, ports)
    write_export(tmp_path / "demo.csv", [("25-900001", "NOISE COMPLAINT DELAY", "4", "Phone")])
    cwd = tmp_path / "terminal"
    cwd.mkdir()
    output = tmp_path / "dev.out"
    with running_devstack(env, output, ports["web"], STACK_START_SECONDS):
        yield RunningStack(
            env, cwd, f"http://localhost:{ports['web']}", env["CALLERLOOP_DATABASE_URL"]
        )


# --- what each command must print ------------------------------------------------------

Check = Callable[[RunningStack, subprocess.CompletedProcess[str]], None]


def prints(*expected: str) -> Check:
    def check(_: RunningStack, done: subprocess.CompletedProcess[str]) -> None:
        for text in expected:
            assert text in done.stdout, f"expected {text!r} in:\n{done.stdout}"

    return check


def keeps_the_key(stack: RunningStack, done: subprocess.CompletedProcess[str]) -> None:
    [key] = done.stdout.split()
    assert key.startswith("clk_"), done.stdout
    stack.key = key


def shows_the_call(_: RunningStack, done: subprocess.CompletedProcess[str]) -> None:
    state = json.loads(done.stdout)
    assert (state["incident_id"], state["texting_state"]) == ("25-071089", "active")
    assert state["caller_phone"] == "+1703…42"  # masked


def exports_the_outbox(_: RunningStack, done: subprocess.CompletedProcess[str]) -> None:
    texts = [json.loads(line) for line in done.stdout.splitlines()]
    assert any(t["workflow_id"] == README_CALL and t["kind"] == "confirmation" for t in texts)


def makes_a_key(_: RunningStack, done: subprocess.CompletedProcess[str]) -> None:
    assert re.fullmatch(r"2026-11:[A-Za-z0-9+/]{43}=\n", done.stdout), done.stdout


def writes_the_dry_run(stack: RunningStack, done: subprocess.CompletedProcess[str]) -> None:
    [report] = re.findall(r"Report: (\S+report\.html)", done.stdout)
    path = stack.cwd / report if not Path(report).is_absolute() else Path(report)
    assert "Go-live dry run" in path.read_text(encoding="utf-8")
    assert "texted calls" in done.stdout


@dataclass(frozen=True)
class Plan:
    stage: int  # stages run in order; the commands of one stage run side by side
    check: Check | None  # None: not run here, see `skipped`
    skipped: str = ""


PLANS: dict[str, Plan] = {
    "worker": Plan(0, None, "the stack's own worker: the dev stack runs it"),
    "web": Plan(0, None, "the stack's own web app: the dev stack runs it"),
    "keys add": Plan(1, keeps_the_key),
    "cad send": Plan(2, prints(README_CALL)),  # the README's own event, locally or posted
    "agencies check": Plan(2, prints("example")),
    "languages check": Plan(2, prints("draft: zh", "draft: ar")),
    "encryption new-key": Plan(2, makes_a_key),
    "db upgrade": Plan(2, prints("already at")),
    "users add": Plan(2, prints("added")),
    "cad replay": Plan(3, prints("events sent")),
    "cad dryrun": Plan(3, writes_the_dry_run),
    "calls show": Plan(3, shows_the_call),
    "messages export": Plan(3, exports_the_outbox),
    "opendata export": Plan(3, lambda _, done: None),
    "retention run": Plan(3, prints("retention run done")),
    "users list": Plan(3, prints("sgt.lee")),
    # One call, one update at a time, suppression last: after it nothing is resent.
    "calls language": Plan(4, prints(f"{README_CALL}: texts to come will be in 'es'")),
    "calls resend-confirmation": Plan(5, prints(f"{README_CALL}: confirmation sent again")),
    "calls suppress": Plan(6, prints(f"{README_CALL}: no more texts will be sent")),
    "audit list": Plan(7, prints("suppress", "mark_language", "user added", "retention run")),
    "users disable": Plan(7, prints("disabled")),
}


def filled(command: ReadmeCommand, stack: RunningStack, users_added: list[str]) -> list[str]:
    """The command's arguments with the README's stand-ins made real."""
    stand_ins = {
        "$KEY": stack.key,
        "https://callerloop.example.gov": stack.web_url,
        "http://localhost:8000": stack.web_url,
    }
    args = [stand_ins.get(arg, arg) for arg in command.args]
    if command.name == "users add":  # the README adds sgt.lee twice, two ways
        user = args[2] if args[2] not in users_added else f"{args[2]}-{len(users_added)}"
        users_added.append(user)
        args[2] = user
    return args


def prepare_terminal(stack: RunningStack, pages: Sequence[Page]) -> None:
    """The files the documented commands name, in the terminal's working directory."""
    (stack.cwd / "event.json").write_text(readme_cad_event(pages), encoding="utf-8")
    (stack.cwd / "password.txt").write_text(PASSWORD + "\n", encoding="utf-8")
    (stack.cwd / ".data").mkdir()  # the replay's journal goes in .data/, as beside make run
    write_export(
        stack.cwd / "export.csv",
        [("25-912001", "LARCENY FROM AUTO", "4", "Phone"), ("25-912002", "THEFT", "3", "911")],
    )


def test_the_readme_documents_commands_and_each_has_a_check() -> None:
    commands = readme_commands(documented_pages())
    assert len(commands) >= 20, [str(c) for c in commands]
    unplanned = [str(c) for c in commands if c.name not in PLANS]
    assert not unplanned, f"documented commands this test does not run: {unplanned}"


def test_the_readme_links_lead_somewhere() -> None:
    """Every file README.md links to exists (mkdocs build --strict checks the pages')."""
    text = re.sub(r"```.*?```", "", README.read_text(encoding="utf-8"), flags=re.DOTALL)
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t)]
    assert len(local) >= 10, targets
    missing = [target for target in local if not (PROJECT_ROOT / target).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_every_readme_command_runs_against_the_make_run_stack(stack: RunningStack) -> None:
    pages = documented_pages()
    commands = [c for c in readme_commands(pages) if c.name in PLANS]
    prepare_terminal(stack, pages)
    users_added: list[str] = []
    failures: list[str] = []
    ran: list[str] = []
    for stage in sorted({PLANS[c.name].stage for c in commands} - {0}):
        batch = [c for c in commands if PLANS[c.name].stage == stage]
        runs = [(c, filled(c, stack, users_added)) for c in batch]
        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(lambda run: stack.run(*run), runs))
        for (command, _), done in zip(runs, results, strict=True):
            ran.append(command.name)
            failures += outcome(command, done, stack)
        if stage == 2:  # the README's call has its confirmation before the `calls` commands
            wait_for_confirmation(stack)
    assert not failures, "\n\n".join(failures)
    skipped = {c.name for c in readme_commands(pages)} - set(ran)
    assert skipped == {name for name, plan in PLANS.items() if plan.check is None}


def outcome(
    command: ReadmeCommand, done: subprocess.CompletedProcess[str], stack: RunningStack
) -> list[str]:
    if done.returncode != 0:
        stderr = "\n".join(done.stderr.splitlines()[-ERROR_LINES:])
        return [f"{command}: exit {done.returncode}\n{done.stdout}\n{stderr}"]
    check = PLANS[command.name].check
    assert check is not None
    try:
        check(stack, done)
    except AssertionError as error:
        return [f"{command}: {error}"]
    return []


def wait_for_confirmation(stack: RunningStack, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while "confirmation" not in stack.texts_of(README_CALL):
        assert time.monotonic() < deadline, f"{README_CALL} never sent its confirmation"
        time.sleep(0.2)
