"""The outcome oracle: random schedules of CAD events, STOP and START, operator updates,
provider faults, worker restarts and time jumps, driven through the real worker on the
time-skipping server, and judged only by what the provider received and when.

The rules are written here from issue 20, with lists of their own (which call types are
sensitive, which priorities escalate), never from the workflow's state or its planner:

1. Never after a safety fact: once CAD says the call is sensitive, escalated, in
   progress, officer-initiated or not to be texted, or an operator suppresses it, no
   text reaches the provider for that call (a fact in the first event: no text at all;
   the provider's own "unusable number": no text after its answer).
2. Never while opted out: from a STOP (the caller's, or the carrier's 21610) to the next
   START, nothing reaches the provider.
3. Never a stale stage: texts tell the stages in order (confirmation, delay notice, unit
   assigned, closing note, survey); none follows a later stage's text unless CAD reopened
   the call in between.
4. START never bursts: a text after a START tells a stage the call reached after it (or
   is an operator's resend asked for after it).
5. Never twice: each kind at most once, the confirmation once more per resend an
   operator was told had gone.
6. Everything ends: every update is answered and every call finishes.

A fact takes effect within FACT_TAKES_EFFECT_WITHIN of Temporal accepting it (the time
the worker needs to see it): the driver waits that long after each one before it lets
time jump, and a provider call that starts later breaks the rule.

`make test` runs ORACLE_EXAMPLES examples (ORACLE_N); `make oracle-deep` runs 5,000 in ten
batches of 500, each on a fresh time-skipping server.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.sms_providers.base import (
    OutgoingText,
    PermanentProviderError,
    ProviderReceipt,
    TransientProviderError,
)
from callerloop.core.db import Database
from callerloop.core.settings import Settings
from tests.conftest import TEST_ENCRYPTION_KEYS
from tests.factories import T0, cad_event, make_agency
from tests.harness import skip_time
from worker import all_running, build_workers, workflow_runner
from workflows.activity_errors import SmsFailure
from workflows.call_for_service import CallForServiceWorkflow, workflow_id_for
from workflows.model import (
    CadEventType,
    CallInput,
    CallOutcome,
    CallSource,
    LineType,
    MarkLanguageRequest,
    OptInSignal,
    OptOutSignal,
    ResendConfirmationRequest,
    SuppressRequest,
)

pytestmark = pytest.mark.slow

ORACLE_EXAMPLES = int(os.environ.get("ORACLE_N", "200"))
FACT_TAKES_EFFECT_WITHIN = float(os.environ.get("ORACLE_L", "0.25"))  # seconds of real time
LATE_ANSWER_SECONDS = 0.3
PHONE = "+17035550142"
AGENCY = make_agency()
SURVEY_DELAY = timedelta(hours=24)  # tests.factories' agency
LONGEST_DELAY_THRESHOLD = timedelta(hours=2)

# The oracle's own words for the facts the issue names.
SENSITIVE_TYPES = (
    "SEXUAL ASSAULT",
    "DOMESTIC DISTURBANCE",
    "INTIMATE PARTNER VIOLENCE",
    "ABDUCTION",
    "BOMB THREAT",
    "ALARM RESIDENTIAL",
    "DEMONSTRATION",
    "SUICIDE THREAT",
    "PROTECTIVE ORDER VIOLATION",
    "BURGLARY IN PROG",  # in progress (the agency's pattern)
)
PLAIN_TYPES = ("NOISE COMPLAINT", "PARKING COMPLAINT", "LARCENY FROM AUTO", "FOUND PROPERTY")
ESCALATED_PRIORITIES = (1, 2)  # above the agency's eligible 3 and 4
STAGE = {"confirmation": 0, "delayed": 1, "assigned": 2, "cleared": 3, "survey": 4}
UNIT_EVENTS = (CadEventType.ASSIGNED, CadEventType.ENROUTE, CadEventType.ON_SCENE)


def is_safety_fact(facts: dict[str, Any]) -> bool:
    return (
        facts.get("call_type") in SENSITIVE_TYPES
        or facts.get("priority") in ESCALATED_PRIORITIES
        or facts.get("in_progress") is True
        or facts.get("do_not_text") is True
        or facts.get("source") == CallSource.OFFICER
    )


# --- the schedule ---------------------------------------------------------------------


@dataclass(frozen=True)
class Cad:
    kind: CadEventType
    facts: tuple[tuple[str, Any], ...] = ()
    again: bool = False  # deliver the previous CAD event once more (a duplicate)


@dataclass(frozen=True)
class Caller:
    word: str  # STOP or START


@dataclass(frozen=True)
class Operator:
    action: str  # suppress, resend, language


@dataclass(frozen=True)
class Faults:
    answers: tuple[str, ...]  # the provider's next answers for this call


@dataclass(frozen=True)
class Jump:
    minutes: int


@dataclass(frozen=True)
class Restart:
    pass


Action = Cad | Caller | Operator | Faults | Jump | Restart


@dataclass(frozen=True)
class Step:
    action: Action
    settle: bool = True  # let the worker catch up before the next step; else a race


FAULTS = ("throttle", "server_error", "late", "lost", "unusable", "carrier_stop")


@st.composite
def created_facts(draw: st.DrawFn) -> tuple[tuple[str, Any], ...]:
    facts: dict[str, Any] = {
        "priority": draw(st.sampled_from([3, 4, 4, 3, 5, 1])),
        "call_type": draw(st.sampled_from(PLAIN_TYPES * 4 + SENSITIVE_TYPES[:3])),
        "source": draw(
            st.sampled_from([CallSource.PHONE, CallSource.E911] * 4 + [CallSource.OFFICER])
        ),
        "caller_phone": PHONE,
        "caller_line_type": LineType.MOBILE,
        "caller_language": draw(st.sampled_from(["en", "es", "fr"])),
    }
    return tuple(sorted(facts.items()))


@st.composite
def update_facts(draw: st.DrawFn) -> tuple[tuple[str, Any], ...]:
    name = draw(st.sampled_from(["call_type", "priority", "in_progress", "do_not_text", "source"]))
    values: dict[str, st.SearchStrategy[Any]] = {
        "call_type": st.sampled_from(PLAIN_TYPES + SENSITIVE_TYPES),
        "priority": st.sampled_from([1, 2, 3, 4, 5]),
        "in_progress": st.booleans(),
        "do_not_text": st.booleans(),
        "source": st.sampled_from([CallSource.PHONE, CallSource.OFFICER]),
    }
    return ((name, draw(values[name])),)


action_strategy: st.SearchStrategy[Action] = st.one_of(
    st.builds(
        Cad,
        st.sampled_from(
            [
                CadEventType.ASSIGNED,
                CadEventType.ENROUTE,
                CadEventType.DELAYED,
                CadEventType.CLEARED,
                CadEventType.CLEARED,
                CadEventType.CANCELLED,
                CadEventType.REOPENED,
            ]
        ),
    ),
    st.builds(Cad, st.just(CadEventType.UPDATED), update_facts()),
    st.builds(Cad, st.just(CadEventType.UPDATED), st.just(()), st.just(True)),
    st.builds(Caller, st.sampled_from(["STOP", "START"])),
    st.builds(Operator, st.sampled_from(["suppress", "resend", "resend", "language"])),
    st.builds(Faults, st.lists(st.sampled_from(FAULTS), min_size=1, max_size=3).map(tuple)),
    st.builds(Jump, st.sampled_from([1, 20, 61, 125, 24 * 60 + 1, 25 * 60, 3 * 24 * 60])),
    st.just(Restart()),
)

schedules = st.tuples(
    created_facts(),
    st.lists(st.builds(Step, action_strategy, st.booleans()), max_size=10),
)


# --- the provider: the carrier network's stand-in, which keeps the oracle's evidence ---


@dataclass
class ProviderCall:
    workflow_id: str
    kind: str
    started: float  # time.monotonic() when the text reached the provider
    answer: str = "pending"
    answered: float = 0.0

    @property
    def received(self) -> bool:
        return self.answer in ("accepted", "late", "lost")


class OracleProvider:
    """Records every text handed to it, answers with the faults a schedule queued for
    its call, and keeps message records (so a send lost mid-answer is reconciled)."""

    name = "oracle"
    in_flight_seconds = 0.05

    def __init__(self) -> None:
        self.calls: list[ProviderCall] = []
        self.faults: dict[str, list[str]] = {}
        self._receipts: dict[tuple[str, str], ProviderReceipt] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def send(self, text: OutgoingText) -> ProviderReceipt:
        workflow_id, kind = text.reference.rsplit("/", 1)
        call = ProviderCall(workflow_id, kind, time.monotonic())
        with self._lock:
            self.calls.append(call)
            queued = self.faults.get(workflow_id, [])
            answer = queued.pop(0) if queued else "accepted"
        try:
            if answer == "throttle":
                raise TransientProviderError("20429", "Too Many Requests")
            if answer == "server_error":
                raise TransientProviderError("500", "Internal Server Error")
            if answer == "unusable":
                raise PermanentProviderError(SmsFailure.NUMBER_UNUSABLE, "21211", "invalid To")
            if answer == "carrier_stop":
                raise PermanentProviderError(SmsFailure.OPTED_OUT, "21610", "unsubscribed")
            if answer == "late":
                time.sleep(LATE_ANSWER_SECONDS)
            receipt = ProviderReceipt(provider_id=f"SM{next(self._ids):032d}", status="queued")
            with self._lock:
                self._receipts[(text.to, text.body)] = receipt
            if answer == "lost":
                raise ConnectionResetError("connection reset after the request was written")
            return receipt
        finally:
            call.answer, call.answered = answer, time.monotonic()

    def find_sent(self, text: OutgoingText, since: datetime) -> ProviderReceipt | None:
        with self._lock:
            return self._receipts.get((text.to, text.body))

    def lookup_line_type(self, phone: str) -> LineType:
        return LineType.MOBILE

    def for_call(self, workflow_id: str) -> list[ProviderCall]:
        with self._lock:
            return [call for call in self.calls if call.workflow_id == workflow_id]


# --- the driver -----------------------------------------------------------------------


@dataclass
class Fact:
    what: str  # created, safety, stop, start, unit, delayed, cleared, reopened, resend
    at: float  # time.monotonic() once Temporal had it
    workflow_at: datetime | None = None
    detail: str = ""


@dataclass
class Run:
    """What the driver did to one call, and when."""

    workflow_id: str
    facts: list[Fact] = field(default_factory=list)
    resends_told_sent: int = 0
    created_unsafe: bool = False


class OracleStack:
    """The real workers on their own task queues. A restart stops the SMS worker, with a
    text on its way or not, and starts a new one. (The call workflow's worker stays: the
    time-skipping server keeps a call's tasks on a stopped worker's sticky queue for good,
    where the real server hands them back; each example's history is replayed instead.)"""

    def __init__(self, env: WorkflowEnvironment, db: Database) -> None:
        self.env, self.db = env, db
        self.provider = OracleProvider()
        self.settings = Settings(
            task_queue=f"oracle-{uuid.uuid4()}",
            database_url=db.url,
            public_base_url="https://callerloop.test",
            encryption_keys=SecretStr(TEST_ENCRYPTION_KEYS),
        )
        self._executor = ThreadPoolExecutor(8)
        self._calls: AsyncExitStack | None = None
        self._senders: AsyncExitStack | None = None
        self._sender_workers: list[Worker] = []

    async def start(self) -> None:
        main, *senders = build_workers(
            self.env.client,
            self.settings,
            self.db,
            {AGENCY.id: AGENCY},
            self.provider,
            self._executor,
            8,
        )
        self._calls = AsyncExitStack()
        await self._calls.enter_async_context(all_running([main]))
        await self._start(senders)

    async def _start(self, senders: list[Worker]) -> None:
        self._sender_workers = senders
        self._senders = AsyncExitStack()
        await self._senders.enter_async_context(all_running(senders))

    async def restart_senders(self) -> None:
        """Stop the SMS worker and start one like it (a worker is not restartable)."""
        assert self._senders is not None
        await self._senders.aclose()
        await self._start([Worker(**worker.config()) for worker in self._sender_workers])

    async def stop(self) -> None:
        for running in (self._senders, self._calls):
            if running is not None:
                await running.aclose()
        self._senders = self._calls = None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


_incidents = itertools.count(1)


async def drive(
    stack: OracleStack, created: tuple[tuple[str, Any], ...], steps: list[Step]
) -> tuple[Run, list[ProviderCall]]:
    env = stack.env
    incident = f"O-{next(_incidents):06d}"
    workflow_id = workflow_id_for(AGENCY.id, incident)
    run = Run(workflow_id)
    client = env.client
    minute = itertools.count(1)

    async def workflow_now() -> datetime:
        return await env.get_current_time()

    async def note(what: str, detail: str = "", *, when: bool = False) -> None:
        at = time.monotonic()
        run.facts.append(Fact(what, at, await workflow_now() if when else None, detail))

    first = cad_event(incident, CadEventType.CREATED, at=T0, **dict(created))
    handle: WorkflowHandle[Any, CallOutcome] = await client.start_workflow(
        CallForServiceWorkflow.run,
        CallInput(agency=AGENCY.id, incident_id=incident),
        id=workflow_id,
        task_queue=stack.settings.task_queue,
        start_signal="cad_event",
        start_signal_args=[first],
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    run.created_unsafe = is_safety_fact(dict(created))
    await note("created", when=True)
    updates: list[asyncio.Task[Any]] = []
    last_event = first

    async def act(action: Action) -> bool:
        """Carry out one step; True when it was a safety fact or a STOP."""
        nonlocal last_event
        safety = False
        if isinstance(action, Cad):
            if action.again:
                event = last_event
            else:
                event = cad_event(
                    incident,
                    action.kind,
                    at=T0 + timedelta(minutes=next(minute)),
                    **dict(action.facts),
                )
            await handle.signal(CallForServiceWorkflow.cad_event, event)
            last_event = event
            safety = is_safety_fact(dict(action.facts))
            if safety:
                await note("safety", str(action.facts))
            elif action.kind in UNIT_EVENTS:
                await note("unit")
            elif action.kind == CadEventType.DELAYED:
                await note("delayed")
            elif action.kind in (CadEventType.CLEARED, CadEventType.CANCELLED):
                await note("cleared", when=True)
            elif action.kind == CadEventType.REOPENED:
                await note("reopened")
        elif isinstance(action, Caller):
            if action.word == "STOP":
                await handle.signal(CallForServiceWorkflow.opt_out, OptOutSignal(keyword="STOP"))
                await note("stop")
                safety = True
            else:
                await handle.signal(CallForServiceWorkflow.opt_in, OptInSignal(keyword="START"))
                await note("start", when=True)
        elif isinstance(action, Operator):
            if action.action == "suppress":
                await note("safety", "operator suppress")
                updates.append(
                    asyncio.create_task(
                        handle.execute_update(
                            "suppress", SuppressRequest(by="oracle", reason="schedule")
                        )
                    )
                )
                safety = True
            elif action.action == "resend":
                asked = time.monotonic()
                updates.append(asyncio.create_task(_resend(handle, run, asked)))
            else:
                updates.append(
                    asyncio.create_task(
                        handle.execute_update(
                            CallForServiceWorkflow.mark_language,
                            MarkLanguageRequest(by="oracle", reason="schedule", language="es"),
                        )
                    )
                )
        elif isinstance(action, Faults):
            with stack.provider._lock:
                stack.provider.faults.setdefault(workflow_id, []).extend(action.answers)
        elif isinstance(action, Jump):
            await skip_time(env, timedelta(minutes=action.minutes))
        else:
            await stack.restart_senders()
        return safety

    for step in steps:
        try:
            safety = await act(step.action)
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            break  # the call has ended (e.g. closed for good): later news has no one to reach
        if safety:
            await asyncio.sleep(FACT_TAKES_EFFECT_WITHIN)
        if step.settle:
            await skip_time(env, timedelta(seconds=30))

    # Rule 6: the call ends (time skips to its end) and every update is answered.
    outcome = await asyncio.wait_for(handle.result(), 120)
    assert outcome.workflow_id == workflow_id
    # A worker that lost the call from its cache replays it: it must replay as it ran.
    await Replayer(
        workflows=[CallForServiceWorkflow],
        data_converter=client.data_converter,
        workflow_runner=workflow_runner(),
    ).replay_workflow(await handle.fetch_history())
    results = await asyncio.wait_for(asyncio.gather(*updates, return_exceptions=True), 30)
    for result in results:
        if isinstance(result, BaseException) and not _answered(result):
            raise AssertionError(f"an update was not answered: {result!r}")
    return run, stack.provider.for_call(workflow_id)


async def _resend(handle: WorkflowHandle[Any, Any], run: Run, asked: float) -> None:
    await handle.execute_update(
        CallForServiceWorkflow.resend_confirmation,
        ResendConfirmationRequest(by="oracle", reason="schedule"),
    )
    run.resends_told_sent += 1
    run.facts.append(Fact("resend", asked))


def _answered(error: BaseException) -> bool:
    """Refused or failed in words: an answer. (An update to a call that has finished is
    refused by the server the same way.)"""
    return isinstance(error, WorkflowUpdateFailedError | RPCError)


# --- the judge --------------------------------------------------------------------------


def judge(run: Run, calls: list[ProviderCall]) -> list[str]:
    """Every broken rule, in words; empty when the provider saw only what it should."""
    problems: list[str] = []
    grace = FACT_TAKES_EFFECT_WITHIN
    received = [call for call in calls if call.received]

    # 1. Never after a safety fact.
    if run.created_unsafe and calls:
        problems.append(f"texted a call unsafe from its first event: {_kinds(calls)}")
    safety = [fact.at for fact in run.facts if fact.what == "safety"]
    unusable = [call.answered for call in calls if call.answer == "unusable"]
    if safety:
        late = [call for call in calls if call.started > min(safety) + grace]
        if late:
            problems.append(f"handed to the provider after a safety fact: {_kinds(late)}")
    if unusable:
        late = [call for call in calls if call.started > min(unusable)]
        if late:
            problems.append(f"texted a number the provider called unusable: {_kinds(late)}")

    # 2. Never while opted out (the caller's STOP, or the carrier's).
    for stopped, resumed_at, slack in _opted_out_spans(run, calls):
        inside = [call for call in calls if stopped + slack < call.started < resumed_at]
        if inside:
            problems.append(f"handed over while opted out: {_kinds(inside)}")

    # 3. Never a stale stage.
    reopens = [fact.at for fact in run.facts if fact.what == "reopened"]
    told = -1
    told_at = 0.0
    for call in received:
        if any(told_at < reopen < call.started for reopen in reopens):
            told = -1
        stage = STAGE[call.kind]
        if stage < told:
            problems.append(f"{call.kind} after a later stage's text: {_kinds(received)}")
        told, told_at = max(told, stage), call.started

    # 4. START never bursts.
    for resumed in (f for f in run.facts if f.what == "start" and _follows_stop(run, calls, f)):
        for call in (call for call in received if call.started > resumed.at):
            if not _reached_after(run, call.kind, resumed):
                problems.append(f"{call.kind} after START for a stage reached before it")

    # 5. Never twice.
    for kind in STAGE:
        allowed = 1 + (run.resends_told_sent if kind == "confirmation" else 0)
        count = sum(1 for call in received if call.kind == kind)
        if count > allowed:
            problems.append(f"{kind} received {count} times: {_kinds(received)}")
    return problems


def _kinds(calls: list[ProviderCall]) -> list[str]:
    return [f"{call.kind}:{call.answer}" for call in calls]


def _opted_out_spans(run: Run, calls: list[ProviderCall]) -> list[tuple[float, float, float]]:
    """(from, to, grace) for each time the caller was opted out: a STOP the driver sent
    takes effect within the grace, the carrier's refusal at once."""
    marks = [
        (fact.at, "stop", FACT_TAKES_EFFECT_WITHIN) for fact in run.facts if fact.what == "stop"
    ]
    marks += [(call.answered, "stop", 0.0) for call in calls if call.answer == "carrier_stop"]
    marks += [(fact.at, "start", 0.0) for fact in run.facts if fact.what == "start"]
    spans = []
    opened: tuple[float, float] | None = None
    for at, what, slack in sorted(marks):
        if what == "stop" and opened is None:
            opened = (at, slack)
        elif what == "start" and opened is not None:
            spans.append((opened[0], at, opened[1]))
            opened = None
    if opened is not None:
        spans.append((opened[0], float("inf"), opened[1]))
    return spans


def _follows_stop(run: Run, calls: list[ProviderCall], start: Fact) -> bool:
    """A START that lifted an opt-out: the caller's or the carrier's STOP came last."""
    words = [(fact.at, fact.what) for fact in run.facts if fact.what in ("stop", "start")]
    words += [(call.answered, "stop") for call in calls if call.answer == "carrier_stop"]
    before = sorted(word for word in words if word[0] < start.at)
    return bool(before) and before[-1][1] == "stop"


def _reached_after(run: Run, kind: str, start: Fact) -> bool:
    """Whether a fact after the START could have brought this stage about."""
    after = [fact for fact in run.facts if fact.at > start.at]
    started_at = start.workflow_at
    assert started_at is not None
    if kind == "confirmation":  # only an operator's resend, asked while it was opted out
        return run.resends_told_sent > 0
    if kind == "assigned":
        return any(fact.what == "unit" for fact in after)
    if kind == "cleared":
        return any(fact.what == "cleared" for fact in after)
    if kind == "delayed":
        created = next(fact for fact in run.facts if fact.what == "created")
        assert created.workflow_at is not None
        by_threshold = created.workflow_at + LONGEST_DELAY_THRESHOLD > started_at
        return by_threshold or any(fact.what == "delayed" for fact in after)
    closures = [
        fact.workflow_at for fact in run.facts if fact.what == "cleared" and fact.workflow_at
    ]
    return bool(closures) and max(closures) + SURVEY_DELAY > started_at - timedelta(minutes=1)


# --- the test ---------------------------------------------------------------------------


@pytest.fixture
async def oracle_stack(env: WorkflowEnvironment, database: Database) -> AsyncIterator[OracleStack]:
    stack = OracleStack(env, database)
    await stack.start()
    yield stack
    await stack.stop()
    stack.close()


def first_event(call_type: str, priority: int, source: CallSource) -> tuple[tuple[str, Any], ...]:
    """The created event's facts, for the examples below."""
    facts = {
        "call_type": call_type,
        "caller_language": "en",
        "caller_line_type": LineType.MOBILE,
        "caller_phone": PHONE,
        "priority": priority,
        "source": source,
    }
    return tuple(sorted(facts.items()))


# Every schedule that ever failed, kept (what it found is in the comment above it).
EXAMPLES: list[tuple[tuple[tuple[str, Any], ...], list[Step]]] = [
    # A resend, then a worker restart: the restarted worker never got the call back from
    # the stopped one's sticky queue (the oracle now restarts the SMS worker only).
    (
        first_event("LARCENY FROM AUTO", 4, CallSource.E911),
        [
            Step(Cad(CadEventType.UPDATED, (("call_type", "LARCENY FROM AUTO"),))),
            Step(Operator("resend")),
            Step(Restart()),
        ],
    ),
    # Reclassified while the confirmation's answer was on its way: the cancel request
    # raced the activity's completion and wedged the time-skipping server (the send is
    # now revoked and abandoned, not cancelled at the server).
    (
        first_event("PARKING COMPLAINT", 3, CallSource.PHONE),
        [
            Step(Cad(CadEventType.UPDATED, (("source", CallSource.OFFICER),)), settle=False),
            Step(Jump(1500), settle=False),
        ],
    ),
    # News for a call that had ended: the driver's signal was refused (the call is over).
    (
        first_event("LARCENY FROM AUTO", 5, CallSource.OFFICER),
        [
            Step(Jump(1500), settle=False),
            Step(Caller("START")),
            Step(Caller("STOP")),
            Step(Jump(3 * 24 * 60)),
            Step(Cad(CadEventType.CLEARED)),
            Step(Cad(CadEventType.UPDATED, (("do_not_text", True),)), settle=False),
        ],
    ),
    # A resend held up by a restarted SMS worker, then do-not-text: the operator was told
    # "not resent" while the resend was reaching the provider (the answer now waits for it).
    (
        first_event("LARCENY FROM AUTO", 3, CallSource.E911),
        [
            Step(Cad(CadEventType.REOPENED)),
            Step(Operator("resend")),
            Step(Restart(), settle=False),
            Step(Cad(CadEventType.UPDATED, (("do_not_text", True),))),
            Step(Jump(3 * 24 * 60)),
            Step(Restart(), settle=False),
        ],
    ),
]


def with_examples(test: Any) -> Any:
    for schedule in reversed(EXAMPLES):
        test = example(schedule=schedule)(test)
    return test


@settings(
    max_examples=ORACLE_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(schedule=schedules)
@with_examples
def test_the_provider_never_receives_a_text_the_rules_forbid(
    schedule: tuple[tuple[tuple[str, Any], ...], list[Step]],
    oracle_stack: OracleStack,
    event_loop_for_sync_tests: asyncio.AbstractEventLoop,
) -> None:
    created, steps = schedule
    note(f"schedule: {schedule!r}")
    started = time.monotonic()
    run, calls = event_loop_for_sync_tests.run_until_complete(drive(oracle_stack, created, steps))
    if (took := time.monotonic() - started) > 5:
        print(f"a slow schedule ({took:.0f} s): {schedule!r}", file=sys.stderr)
    problems = judge(run, calls)
    assert not problems, "\n".join(problems)
