"""The chaos run: replay a day through the whole local stack while breaking it, then check
that nothing was lost and nothing was sent twice.

1. A fresh data dir: the agency's TOML (its survey window and open-call limit shortened so
   every call ends within the run), the SQLite files, one log per process start.
2. The Temporal dev server, the worker and the web app as processes; Twilio's stand-in here.
3. The day (the busiest of ../shared/data's export, or the seeded synthetic day) replayed
   at `speed` through the web app's ingest API, each event retried until it is accepted.
4. Meanwhile, on a schedule drawn from the seed: the worker SIGKILLed (once while Twilio
   holds a text it has not answered), the web app SIGKILLed, the dev server restarted,
   Twilio answering 500, 429 and too late, and status callbacks dropped.
5. And safety facts that race the texts (chaos.facts): CAD reclassifying a call sensitive,
   escalating it or flagging it do-not-text, the caller replying STOP then START through
   the signed inbound webhook, right after a CAD event that texts or while Twilio refuses
   the caller's texts; each journalled with when it was posted and accepted.
6. Wait until every workflow has completed, then judge against the oracle (chaos.oracle),
   which reads the CSV and the TOML with code of its own, and judge each text by when
   Twilio received it against the journal (chaos.invariants).
"""

from __future__ import annotations

import asyncio
import math
import re
import shutil
import socket
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as day_start
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlmodel import select
from temporalio.client import Client

from callerloop.cad.client import CallAlreadyFinished
from callerloop.cad.http_client import HttpCadClient, IngestRefused, Retrying
from callerloop.cad.replay import ReplayCall, first_calls, parse_cad_export, replay, timeline
from callerloop.cad.synthetic_day import synthetic_day, to_csv_lines
from callerloop.core.agency_config import AgencyConfig, load_agencies
from callerloop.core.db import CallEventRecord, Database, OutboxMessage
from callerloop.core.settings import PROJECT_ROOT, SHARED_CAD_EXPORT, Settings, get_settings
from callerloop.staff.api_keys import create_key
from chaos import facts as safety_facts
from chaos.acting import FactDriver, FactsDone
from chaos.faults import FULL_RUN, SHORT_RUN, Fault, Step, schedule
from chaos.invariants import (
    Observed,
    OutboxRow,
    ProviderMessage,
    Verdict,
    judge,
    resolved_texts,
    texts_within_grace,
)
from chaos.oracle import AgencyRules, Expectation, after_schedule, expectations
from chaos.stack import SERVER, WEB, WORKER, ChaosStack
from chaos.timeline import CadSent, Journal, wall_clock
from devtools.devstack import StackError, StackPaths, busiest_day, web_url, with_local_secrets
from devtools.twilio_standin import TwilioStandIn
from worker import sms_task_queue
from workflows.call_for_service import CallForServiceWorkflow, workflow_id_for
from workflows.model import CadEvent, CadEventType

CLOSING = frozenset({CadEventType.CLEARED, CadEventType.CANCELLED})

AGENCY = "example"
REPLAY_SEED = 7
# The survey stays open 150 s of the run (not 7 days), so every call ends within the run.
# A call ends without its survey if the survey (or the closing note before it) cannot be
# sent by the window's end: 150 s outlasts a worker's restart plus a send attempt's 30 s
# timeout on a busy machine, and is still short enough to wait for.
SURVEY_WINDOW_SECONDS = 150.0
# The short run's window. Its faults are over within about 35 s; a call's sends are held
# up longest by an attempt lost with a killed worker: it waits out its 30 s attempt
# timeout (SEND_ATTEMPT_TIMEOUT), and the call's next workflow task up to 10 s on the
# dead worker's sticky queue. A survey not sent by the window's end is lost, but that end
# is the survey delay (12 s at the short run's time scale) plus the window after the
# call closed: 60 s covers a held-up send from the close (33 s at most measured, ~45 s
# in the worst case) with room to spare. The last call's window is most of the short
# run's length: every second here is a second of CI.
SHORT_SURVEY_WINDOW_SECONDS = 60.0
# Calls replayed: those CAD closes within a day (3 h for the short run). A call CAD never
# closes would wait out the agency's max_open (30 days of policy time); one closed days
# later (a late reopen) would stretch the replay by as much.
LONGEST_CALL = timedelta(days=1)
SHORT_CALLS = 40
SHORT_SPAN = timedelta(hours=3)  # the short run's calls close within 3 h of CAD time
# Twilio answers 500 or 429 to every send for 2, 4 or 6 s: an outage that sends retried
# with backoff outlast (a count of failed answers would all land on one text's retries).
OUTAGE_SECONDS = 2.0
TWILIO_TIMEOUT_STALL = 13.0  # longer than the provider client's 10 s timeout
MID_SEND_STALL = 20.0  # Twilio holds the text at least this long: the worker dies meanwhile
MID_SEND_WAIT = 30.0  # how long to wait for a text to hold before killing anyway
QUERY_CONCURRENCY = 8
FAULT_GAP = 1.0  # seconds between one fault's recovery and the next fault
# The web app and Temporal come back within seconds: retry often, and for as long as it takes.
UNTIL_ACCEPTED = Retrying(attempts=None, first_pause=0.2, max_pause=2.0)


@dataclass(frozen=True)
class ChaosOptions:
    seed: int = 1
    short: bool = False
    calls: int | None = None  # the day's first N calls (default: all; short: 40)
    speed: float | None = None  # CAD speed-up (default: short 1200, full 240)
    time_scale: float | None = None  # policy durations divided (default: short 7200, full 720)
    day: date | None = None
    settle_timeout: float = 600.0  # after the replay, until every workflow has completed
    data_dir: Path | None = None


@dataclass
class Day:
    description: str
    csv_lines: list[str]
    calls: list[ReplayCall]
    left_out: int  # calls CAD does not close soon enough for the run


@dataclass
class Injected:
    planned: Counter[Fault] = field(default_factory=Counter)
    done: Counter[Fault] = field(default_factory=Counter)
    mid_send_caught: int = 0  # mid-send kills that found a text held by Twilio


@dataclass
class ChaosResult:
    verdict: Verdict
    injected: Injected
    observed_effects: dict[str, int]
    summary: dict[str, int]
    facts: FactsDone = field(default_factory=FactsDone)

    @property
    def passed(self) -> bool:
        return (
            self.verdict.passed
            and all(self.injected.done[fault] >= 1 for fault in self.injected.planned)
            and all(self.facts.done[kind] >= 1 for kind in self.facts.planned)
        )


# --- the day ----------------------------------------------------------------------------


def chaos_agency_dir(data_dir: Path, time_scale: float, window_seconds: float) -> Path:
    """agencies/example.toml with the shorter timing, in the run's own agencies dir."""
    text = (PROJECT_ROOT / "agencies" / f"{AGENCY}.toml").read_text(encoding="utf-8")
    window_hours = math.ceil(window_seconds * time_scale / 3600)
    for key, value in {"survey_window": f"PT{window_hours}H"}.items():
        text, found = re.subn(rf"(?m)^{key} = .*$", f'{key} = "{value}"', text)
        if found != 1:
            raise StackError(f"agencies/{AGENCY}.toml: no single `{key} = …` line to shorten")
    folder = data_dir / "agencies"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{AGENCY}.toml").write_text(text, encoding="utf-8")
    return folder


def choose_day(agency: AgencyConfig, options: ChaosOptions) -> Day:
    if SHARED_CAD_EXPORT.exists():
        day = options.day or busiest_day(SHARED_CAD_EXPORT, agency)[0]
        lines = SHARED_CAD_EXPORT.read_text(encoding="utf-8-sig").splitlines(keepends=True)
        description = f"{day} from {SHARED_CAD_EXPORT}"
    else:
        day = options.day or date(2025, 11, 10)
        lines = to_csv_lines(synthetic_day(agency, day, seed=REPLAY_SEED))
        description = f"the synthetic day {day} (seed {REPLAY_SEED}; no {SHARED_CAD_EXPORT})"
    start = datetime.combine(day, day_start())
    export = parse_cad_export(
        lines, agency, seed=REPLAY_SEED, since=start, until=start + timedelta(days=1)
    )
    longest = SHORT_SPAN if options.short else LONGEST_CALL
    fits = [
        call
        for call in export.calls
        if call.events[-1].event_type in CLOSING
        and call.events[-1].occurred_at - call.created_at < longest
    ]
    limit = options.calls if options.calls is not None else (SHORT_CALLS if options.short else None)
    calls = first_calls(fits, limit)
    return Day(description, lines, calls, len(export.calls) - len(fits))


# --- replay that keeps trying ------------------------------------------------------------


@dataclass
class Deliveries:
    accepted: list[tuple[str, str]] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    retries: int = 0


async def deliver_all(
    url: str,
    key: str,
    calls: Sequence[ReplayCall],
    speed: float,
    journal: Journal,
    facts: FactDriver,
) -> Deliveries:
    """Each event through the ingest API until it is accepted: an outage (connection
    refused, 5xx while Temporal restarts) is retried; events are idempotent. Each accepted
    event is journalled, and the fact that follows it, if any, set going."""
    done = Deliveries()

    async with HttpCadClient(url, key, timeout=15, retrying=UNTIL_ACCEPTED) as cad:

        async def send(event: CadEvent) -> None:
            posted = wall_clock()
            facts.before_post(event)
            try:
                workflow_id = await cad.send(event)
            except CallAlreadyFinished:
                done.finished.append(event.event_id)
                facts.after_not_applied(event)
            except IngestRefused as error:
                done.refused.append(f"{event.event_id}: {error}")
                facts.after_not_applied(event)
            else:
                done.accepted.append((workflow_id, event.event_id))
                accepted = wall_clock()
                journal.cad.append(
                    CadSent(event.incident_id, event.event_type.value, posted, accepted)
                )
                facts.after_accepted(event)

        await replay(timeline(calls), send, speed=speed)
        done.retries = cad.retries
    return done


# --- faults -----------------------------------------------------------------------------


async def inject(
    stack: ChaosStack, steps: Sequence[Step], injected: Injected, console: Console
) -> None:
    started = time.monotonic()
    for step in steps:
        # At its moment, but never on top of the last fault's recovery.
        await asyncio.sleep(max(FAULT_GAP, started + step.at - time.monotonic()))
        console.print(f"[{time.monotonic() - started:6.1f} s] fault: {step.fault.value}")
        await apply(stack, step, injected)
        injected.done[step.fault] += 1


async def apply(stack: ChaosStack, step: Step, injected: Injected) -> None:
    twilio = stack.standin
    match step.fault:
        case Fault.WORKER_KILLED:
            stack.kill(WORKER)
            await asyncio.sleep(step.pause)
            await stack.restart(WORKER, kill=False)
            await stack.worker_started()
        case Fault.WORKER_KILLED_MID_SEND:
            before = twilio.stalls_started
            twilio.stall_next(MID_SEND_STALL)
            deadline = time.monotonic() + MID_SEND_WAIT
            # The stand-in answers from its own threads: a counter to poll, not an event.
            while twilio.stalls_started == before and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            injected.mid_send_caught += twilio.stalls_started > before
            stack.kill(WORKER)
            await asyncio.sleep(step.pause)
            await stack.restart(WORKER, kill=False)
            await stack.worker_started()
        case Fault.WEB_KILLED:
            stack.kill(WEB)
            await asyncio.sleep(step.pause)
            await stack.restart(WEB, kill=False)
        case Fault.SERVER_RESTARTED:
            await stack.restart(SERVER, kill=False)
        case Fault.TWILIO_500:
            twilio.fail_for(OUTAGE_SECONDS * step.size, 20500, 500, message="Internal Server Error")
        case Fault.TWILIO_429:
            twilio.fail_for(OUTAGE_SECONDS * step.size, 20429, 429)
        case Fault.TWILIO_TIMEOUT:
            twilio.stall_next(TWILIO_TIMEOUT_STALL)
        case Fault.CALLBACKS_DROPPED:
            twilio.drop_next_callbacks(step.size)


# --- waiting and observing ----------------------------------------------------------------


async def wait_until_all_completed(stack: ChaosStack, patience: float, console: Console) -> int:
    """Running workflows left when `patience` seconds have passed (0: quiescent)."""
    deadline = time.monotonic() + patience
    last_report = 0.0
    running = -1
    while time.monotonic() < deadline:
        dead = stack.dead_children()
        if dead:
            raise StackError(dead[0].obituary())
        try:
            running = (await stack.client.count_workflows("ExecutionStatus='Running'")).count
        except Exception as error:  # the server may be restarting: ask again
            console.print(f"counting running workflows failed ({error}); retrying")
            running = -1
        if running == 0:
            return 0
        if time.monotonic() - last_report > 15:
            console.print(f"waiting for {running} running workflows to complete …")
            last_report = time.monotonic()
        await asyncio.sleep(1.0)
    return running


async def skipped_kinds(client: Client, incidents: Sequence[str]) -> dict[str, frozenset[str]]:
    """What each call's workflow says it skipped (its `state` query, on closed workflows too)."""
    slots = asyncio.Semaphore(QUERY_CONCURRENCY)

    async def one(incident: str) -> tuple[str, frozenset[str]]:
        async with slots:
            handle = client.get_workflow_handle(workflow_id_for(AGENCY, incident))
            state = await handle.query(CallForServiceWorkflow.state)
            return incident, frozenset(kind.value for kind in state.skipped)

    return dict(await asyncio.gather(*(one(incident) for incident in incidents)))


def read_outbox(db: Database) -> tuple[list[OutboxRow], set[tuple[str, str]]]:
    with db.session() as session:
        rows = [
            OutboxRow(
                id=row.id or 0,
                workflow_id=row.workflow_id,
                incident_id=row.incident_id,
                kind=row.kind,
                attempt=row.attempt,
                status=row.status,
            )
            for row in session.exec(select(OutboxMessage))
        ]
        events = {
            (record.workflow_id, record.event_id)
            for record in session.exec(select(CallEventRecord))
        }
    return rows, events


# --- the run ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def run_chaos(options: ChaosOptions, console: Console) -> ChaosResult:
    data_dir = (options.data_dir or PROJECT_ROOT / ".data" / f"chaos-{options.seed}").resolve()
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    paths = StackPaths(data_dir)
    # The full run replays at a pace where a healthy stack confirms a call well before CAD
    # closes it, so most confirmations are tested (outages make calls close first).
    speed = options.speed or (1200.0 if options.short else 240.0)
    scale = options.time_scale or (7200.0 if options.short else 720.0)
    window = SHORT_SURVEY_WINDOW_SECONDS if options.short else SURVEY_WINDOW_SECONDS
    base = get_settings()
    settings: Settings = base.model_copy(
        update={
            "data_dir": data_dir,
            "agencies_dir": chaos_agency_dir(data_dir, scale, window),
            "temporal_port": free_port(),
            "temporal_ui_port": free_port(),
            "web_port": free_port(),
            "sms_provider": "twilio",
            "task_queue": "callerloop",
        }
    )
    settings = with_local_secrets(settings, paths)
    agency = load_agencies(settings.agencies_dir)[AGENCY]
    day = choose_day(agency, options)
    database_url = f"sqlite:///{paths.callerloop_db}"
    db = Database(database_url)
    db.create_schema()
    key = create_key(db, AGENCY, "chaos run")[1]
    events = timeline(day.calls)
    span = (events[-1].occurred_at - events[0].occurred_at).total_seconds() / speed
    planned = SHORT_RUN if options.short else FULL_RUN
    # Faults while the day is replayed and its calls close (a bounded stretch of it).
    steps = schedule(options.seed, planned, within=max(30.0, min(span, 600.0)))
    rules = AgencyRules.from_toml(settings.agencies_dir / f"{AGENCY}.toml")
    expected = expectations(day.csv_lines, rules, {call.incident_id for call in day.calls})
    eligible = [incident for incident, e in expected.items() if e.eligible]
    wanted = safety_facts.SHORT_RUN if options.short else safety_facts.FULL_RUN
    facts = safety_facts.plan(options.seed, day.calls, eligible, wanted, short=options.short)
    journal = Journal(phones=callers(day.calls))
    console.print(
        f"chaos run, seed {options.seed}: {len(day.calls)} calls of {day.description} "
        f"({day.left_out} left out: not closed within {'3 h' if options.short else 'a day'}), "
        f"{len(events)} events at {speed:g}x (about {span:.0f} s), time scale {scale:g}, "
        f"{len(steps)} faults, {len(facts)} safety facts"
    )
    standin = TwilioStandIn(auto_callbacks=True, callback_delay=0.05).start()
    stack = ChaosStack(settings, paths, database_url, scale, standin, console)
    injected = Injected(planned=Counter(planned))
    try:
        await stack.start_server()
        stack.start_worker()
        await stack.start_web()
        await stack.worker_started()
        await stack.wait_for_worker(settings.task_queue, sms_task_queue(settings, AGENCY))
        url = f"http://127.0.0.1:{settings.web_port}"
        started = time.monotonic()
        faults = asyncio.create_task(inject(stack, steps, injected, console))
        async with HttpCadClient(url, key, timeout=15, retrying=UNTIL_ACCEPTED) as cad:
            driver = FactDriver(
                facts, standin, cad, web_url(settings), agency_number(agency), rules, journal
            )
            deliveries = await deliver_all(url, key, day.calls, speed, journal, driver)
            console.print(
                f"replay done in {time.monotonic() - started:.0f} s: "
                f"{len(deliveries.accepted)} events accepted, "
                f"{deliveries.retries} retried deliveries"
            )
            await driver.finish()
        await faults
        running = await wait_until_all_completed(stack, options.settle_timeout, console)
        console.print(
            f"quiescent after {time.monotonic() - started:.0f} s"
            if running == 0
            else f"{running} workflows still running after {options.settle_timeout:.0f} s"
        )
        told = Told(expected, journal, driver.done)
        return await observe_and_judge(stack, db, day, deliveries, injected, told)
    finally:
        stack.stop()
        standin.stop()
        db.dispose()


def callers(calls: Sequence[ReplayCall]) -> dict[str, str]:
    """Each call's number, as its created event gives it (calls from officers have none)."""
    return {
        call.incident_id: phone
        for call in calls
        if (phone := call.events[0].caller_phone) is not None
    }


def agency_number(agency: AgencyConfig) -> str:
    """The number residents text: the inbound webhook finds the agency by it."""
    number = agency.agency.sender_number
    if not number:
        raise StackError(f"agencies/{AGENCY}.toml has no sender_number for replies to reach")
    return number


@dataclass(frozen=True)
class Told:
    """What the oracle expects before the schedule's facts, and what the driver told."""

    expected: dict[str, Expectation]
    journal: Journal
    facts: FactsDone


async def observe_and_judge(
    stack: ChaosStack,
    db: Database,
    day: Day,
    deliveries: Deliveries,
    injected: Injected,
    told: Told,
) -> ChaosResult:
    standin = stack.standin
    messages = [
        ProviderMessage(m.sid, m.body, m.status_callback, m.to, m.created_at)
        for m in standin.messages
    ]
    outbox, recorded = read_outbox(db)
    incidents = {call.incident_id for call in day.calls}
    journal, facts = told.journal, told.facts
    expected = after_schedule(told.expected, journal)
    confirmed = {row.incident_id for row in outbox if row.kind == "confirmation"}
    unconfirmed = [i for i, e in expected.items() if e.eligible and i not in confirmed]
    skipped = await skipped_kinds(stack.client, unconfirmed)
    not_completed = (await stack.client.count_workflows("ExecutionStatus!='Completed'")).count
    observed = Observed(
        provider_messages=messages,
        outbox=outbox,
        skipped=skipped,
        recorded_events=recorded,
        accepted_events=deliveries.accepted,
        workflows_not_completed=not_completed,
        journal=journal,
    )
    verdict = judge(expected, observed)
    verdict.check(
        "the oracle knows every replayed call",
        len(expected) == len(incidents),
        f"{len(incidents) - len(expected)} replayed calls not found in the CSV",
    )
    verdict.check(
        "no CAD event refused",
        not deliveries.refused,
        "; ".join(deliveries.refused[:5]),
    )
    verdict.check(
        "no safety fact refused (reclassification, STOP, START)",
        not facts.refused,
        "; ".join(facts.refused[:5]),
    )
    within_grace = texts_within_grace(resolved_texts(messages, outbox), journal)
    answers = Counter(request.status for request in standin.requests)
    effects = {
        "Twilio answers 500": answers[500],
        "Twilio answers 429": answers[429],
        "Twilio answers held back (timeout or mid-send)": standin.stalls_started,
        "status callbacks dropped": standin.callbacks_dropped,
        "status callbacks lost (web app down)": sum(
            1 for c in standin.callbacks if c.http_status is None and c.error != "dropped"
        ),
        "mid-send kills that caught a text in Twilio's hands": injected.mid_send_caught,
        "CAD deliveries retried (outages)": deliveries.retries,
        "safety facts told while Twilio refused their call's text": facts.caught_in_retry,
        "texts withdrawn on their way (outbox withheld)": sum(
            1 for row in outbox if row.status == "withheld"
        ),
        "texts that reached Twilio within the grace after a fact": len(within_grace),
        "latest of them, ms after the fact": round(1000 * max(within_grace, default=0.0)),
        "STOP/START posts retried (outages)": facts.reply_retries,
    }
    summary = {
        "calls replayed": len(incidents),
        "eligible calls": sum(1 for e in expected.values() if e.eligible),
        "texts at the provider": len(messages),
        "eligible calls closed before their confirmation": sum(
            1 for kinds in skipped.values() if "confirmation" in kinds
        ),
        "CAD events accepted": len(deliveries.accepted),
        "events for calls already finished (not applied)": len(deliveries.finished),
        "calls interrupted by a safety fact": sum(1 for e in expected.values() if e.interrupted),
        "of them opted back in before CAD closed them": sum(
            1 for e in expected.values() if e.resumed
        ),
        "safety facts not applied (their call had ended)": len(facts.finished_first),
    }
    return ChaosResult(verdict, injected, effects, summary, facts)


def print_report(result: ChaosResult, console: Console) -> None:
    faults = Table(title="Faults injected", title_justify="left")
    faults.add_column("fault")
    faults.add_column("planned", justify="right")
    faults.add_column("injected", justify="right")
    for fault in Fault:
        faults.add_row(
            fault.value, str(result.injected.planned[fault]), str(result.injected.done[fault])
        )
    console.print(faults)
    facts = Table(title="Safety facts told", title_justify="left")
    facts.add_column("fact")
    facts.add_column("race")
    facts.add_column("planned", justify="right")
    facts.add_column("told", justify="right")
    for fact, race in sorted(result.facts.planned):
        planned = result.facts.planned[(fact, race)]
        facts.add_row(fact.value, race.value, str(planned), str(result.facts.done[(fact, race)]))
    console.print(facts)
    effects = Table(title="What the faults did", title_justify="left", show_header=False)
    for name, count in {**result.observed_effects, **result.summary}.items():
        effects.add_row(name, str(count))
    console.print(effects)
    checks = Table(title="Invariants checked", title_justify="left")
    checks.add_column("invariant")
    checks.add_column("checks", justify="right")
    checks.add_column("breaches", justify="right")
    breaches = Counter(b.split(":", 1)[0] for b in result.verdict.breaches)
    for name, count in result.verdict.checks.items():
        checks.add_row(name, str(count), str(breaches[name]))
    console.print(checks)
    total = sum(result.verdict.checks.values())
    for breach in result.verdict.breaches[:30]:
        console.print(f"  BREACH {breach}", markup=False)
    verdict = "PASSED" if result.passed else "FAILED"
    console.print(
        f"chaos run {verdict}: {sum(result.injected.done.values())} faults injected, "
        f"{total} invariant checks, {len(result.verdict.breaches)} breaches"
    )
