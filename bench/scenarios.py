"""The four scenarios of `make bench`. Each starts its own fresh stack and returns a
JSON-able dict of figures; `samples` hold what the plots need."""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from activities.texts import sender_rate
from bench import floor
from bench.dry_run import measure_dry_run
from bench.floor_workflow import FLOOR_TASK_QUEUE, FloorInput, FloorWorkflow, text_task_queue
from bench.history import breakdowns, summarize_breakdowns
from bench.load import (
    Calls,
    Recorder,
    Sent,
    Text,
    all_calls,
    busiest_day_calls,
    eligible_call,
    events_of,
    http_sender,
    match_texts,
    python_sender,
    read_texts,
    timed_replay,
    trim_tail,
)
from bench.machine import cpu_seconds, file_size, load_average, peak_rss_mb, rss_mb
from bench.stack import BenchStack, StackConfig
from bench.stats import max_in_window, per_second_counts, percentile, rate, summarize
from callerloop.core.agency_config import AgencyConfig
from callerloop.core.settings import get_settings
from workflows.model import CadEvent, CadEventType

# The bench's own process: the CAD side, sending the events.
BENCH_PROCESS = "bench (the CAD side)"
# A replayed day is cut this long after its first event (calls reopened days later).
DAY_HOURS = 26.0
P99_LIMIT_SECONDS = 2.0


@dataclass
class Options:
    quick: bool
    work_dir: Path
    agency: AgencyConfig
    console: Console
    scale_days: int | None = None
    waiting_target: int = 10_000
    latency_clients: tuple[str, ...] = ("python", "http")


# --- shared helpers ------------------------------------------------------------------------


class RssSampler:
    """Samples a process's RSS every `every` seconds while running."""

    def __init__(self, pid: int, every: float = 1.0) -> None:
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, float]] = []
        self._task: asyncio.Task[None] | None = None
        self._start = time.time()

    def __enter__(self) -> RssSampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            value = rss_mb(self.pid)
            if value is not None:
                self.samples.append((round(time.time() - self._start, 1), value))
            await asyncio.sleep(self.every)

    @property
    def peak(self) -> float | None:
        return max((v for _, v in self.samples), default=None)


class CpuMeter:
    """CPU seconds used by the stack's processes between start and `used()`, and by the
    bench itself: the CAD side shares the machine's two cores with the stack."""

    def __init__(self, stack: BenchStack) -> None:
        self.pids = {child.name: child.process.pid for child in stack.children}
        self.pids[BENCH_PROCESS] = os.getpid()
        self.before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def used(self, per: int | None = None) -> dict[str, float]:
        """Seconds per process (milliseconds per item when `per` items were done)."""
        result = {}
        for name, pid in self.pids.items():
            now, before = cpu_seconds(pid), self.before.get(name)
            if now is not None and before is not None:
                spent = now - before
                result[name] = round(spent * 1000 / per) if per else round(spent, 1)
        return result


def outbox_counts(db_path: Path) -> tuple[int, int, int]:
    """(texts, texts not yet settled, CAD events recorded) read straight from SQLite."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30) as connection:
        texts = connection.execute("SELECT count(*) FROM outbox").fetchone()[0]
        unsettled = connection.execute(
            "SELECT count(*) FROM outbox WHERE status IN ('pending', 'handing_over')"
        ).fetchone()[0]
        events = connection.execute("SELECT count(*) FROM call_events").fetchone()[0]
    return int(texts), int(unsettled), int(events)


async def wait_until_settled(
    stack: BenchStack, events_expected: int, quiet_seconds: float, limit: float
) -> float:
    """Until every accepted CAD event is on record and the outbox has been still for
    `quiet_seconds`; returns the epoch time the last change was seen."""
    assert stack.db is not None
    deadline = time.monotonic() + limit
    last, last_change = (-1, -1, -1), time.time()
    while time.monotonic() < deadline:
        stack.check_alive()
        now = outbox_counts(stack.paths.callerloop_db)
        if now != last:
            last, last_change = now, time.time()
        elif (
            now[2] >= events_expected and now[1] == 0 and time.time() - last_change > quiet_seconds
        ):
            break
        await asyncio.sleep(0.5)
    return last_change


def texts_by_kind(texts: Sequence[Any]) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for text in texts:
        kinds[text.kind] = kinds.get(text.kind, 0) + 1
    return kinds


WARM_UP = "WARMUP"


async def warm_up(
    stack: BenchStack, send: Callable[[CadEvent], Awaitable[object]], agency: str
) -> None:
    """One texted call through the same path first, so the measured calls do not pay for
    first connections, imports and caches; its texts are left out of every figure."""
    assert stack.db is not None
    created = eligible_call(agency, f"{WARM_UP}-00001", 1)[0]
    await send(created)
    deadline = time.time() + 60
    while time.time() < deadline:
        if any(t.incident_id.startswith(WARM_UP) for t in read_texts(stack.db)):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("the warm-up call sent no text within 60 s")


def measured(texts: Sequence[Text]) -> list[Text]:
    return [t for t in texts if not t.incident_id.startswith(WARM_UP)]


# --- 1. latency ----------------------------------------------------------------------------


async def latency(options: Options) -> dict[str, Any]:
    calls = busiest_day_calls(options.agency)
    if options.quick:  # the calls of one busy morning hour
        first = min(call.created_at for call in calls.calls)
        morning = first.replace(hour=9, minute=0, second=0, microsecond=0)
        calls.calls = [
            c for c in calls.calls if morning <= c.created_at < morning + timedelta(hours=1)
        ]
        calls.description += ", its calls created 09:00-10:00"
    hours = 2.0 if options.quick else DAY_HOURS
    events, trimmed = trim_tail(events_of(calls.calls), hours)
    runs = []
    for speed in (360.0, 3600.0):
        for transport in options.latency_clients:
            options.console.print(
                f"[bold]latency[/]: {len(events)} events of {calls.description} at {speed:g}x "
                f"through the {transport} client"
            )
            runs.append(await _latency_run(options, events, speed, transport))
    return {
        "source": calls.description,
        "real_data": calls.real,
        "cad_hours": hours,
        "events": len(events),
        "calls": len({e.incident_id for e in events}),
        "events_trimmed": trimmed,
        "runs": runs,
    }


async def _latency_run(
    options: Options, events: list[CadEvent], speed: float, transport: str
) -> dict[str, Any]:
    config = StackConfig(time_scale=speed, web=transport == "http")
    folder = options.work_dir / f"latency-{int(speed)}-{transport}"
    async with BenchStack(folder, config, options.console) as stack:
        assert stack.client is not None and stack.db is not None and stack.worker is not None
        if transport == "http":
            send = http_sender(stack.web_url, stack.api_keys)
        else:
            send = python_sender(stack.client, stack.task_queue)
        await warm_up(stack, send, options.agency.id)
        load_before = load_average()
        cpu = CpuMeter(stack)
        with RssSampler(stack.worker.process.pid) as rss:
            report, recorder = await timed_replay(events, send, speed)
            await wait_until_settled(stack, 0, quiet_seconds=3.0, limit=60.0)
        calls = len({e.incident_id for e in events})
        texts = measured(read_texts(stack.db))
        matched = match_texts(texts, recorder.sent.values())
        found = await breakdowns(stack.client, matched)
        ingest = [r.accepted - r.submitted for r in recorder.sent.values() if r.accepted]
        start = min(r.submitted for r in recorder.sent.values())
        span = (events[-1].occurred_at - events[0].occurred_at).total_seconds() / speed
        return {
            "speed": speed,
            "time_scale": speed,
            "transport": transport,
            "events_sent": report.sent,
            "events_failed": len(report.failed),
            "failures": sorted({why for _, why in report.failed})[:5],
            "scheduled_seconds": round(span, 1),
            "replay_seconds": round(report.elapsed_seconds, 1),
            "texts": texts_by_kind(texts),
            "event_to_handoff_ms": summarize(m.seconds for m in matched).as_dict(),
            "by_kind_ms": {
                kind: summarize(m.seconds for m in matched if m.text.kind == kind).as_dict()
                for kind in ("confirmation", "assigned", "cleared")
            },
            "accepted_ms": summarize(ingest).as_dict(),
            "first_text_breakdown_ms": summarize_breakdowns(found),
            "worker_peak_rss_mb": rss.peak,
            "cpu_seconds": cpu.used(),
            "cpu_ms_per_call": cpu.used(per=calls),
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "samples": {
                "latency": sorted(
                    (round(m.trigger.submitted - start, 2), round(m.seconds * 1000, 1))
                    for m in matched
                ),
            },
        }


# --- 2. throughput -------------------------------------------------------------------------

THROUGHPUT_TIME_SCALE = 7200.0  # a 24 h survey delay is 12 s, its 7-day window 84 s
SURVEY_DELAY_SECONDS = 24 * 3600 / THROUGHPUT_TIME_SCALE
# Fine steps where callerloop and the floor saturate (8-15 calls/s here), so the ratio is
# not an artefact of the step size.
FULL_RATES = (
    1.0,
    2.0,
    4.0,
    6.0,
    7.0,
    8.0,
    9.0,
    10.0,
    11.0,
    12.0,
    13.0,
    14.0,
    15.0,
    17.0,
    20.0,
    25.0,
    30.0,
)
QUICK_RATES = (1.0, 3.0)


@dataclass
class Step:
    rate: float
    calls: int
    seconds: float
    sent: list[Sent] = field(default_factory=list)


async def offer_calls(
    rate_per_second: float,
    seconds: float,
    label: str,
    agency: str,
    send: Callable[[CadEvent], Awaitable[object]],
) -> Step:
    """Start `rate` calls a second for `seconds`; each call: created, assigned at once,
    cleared a second later (so its survey follows, and its purge after the window)."""
    count = max(1, round(rate_per_second * seconds))
    recorder = Recorder(send)
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def call(number: int) -> None:
        await asyncio.sleep(max(0.0, start + number / rate_per_second - loop.time()))
        created, assigned, cleared = eligible_call(agency, f"{label}-{number:05d}", number)
        try:
            await recorder(created)
            await recorder(assigned)
            await asyncio.sleep(1.0)
            await recorder(cleared)
        except Exception:
            pass

    await asyncio.gather(*(call(n) for n in range(count)))
    return Step(rate_per_second, count, seconds, list(recorder.sent.values()))


def told(step: Step, handoffs: dict[str, float], supersedable: bool) -> dict[str, float]:
    """Per event of the step, when the caller was told of it: its own text's hand-off or,
    where the side may rightly skip a text (`supersedable`), the call's closing note's.
    callerloop skips a confirmation or an update that a closure overtook: the closing note
    says it all, and it is what the caller gets for that event. An event told neither way
    is missing."""
    closing = {
        s.event.incident_id: handoffs[s.event.event_id]
        for s in step.sent
        if s.event.event_type == CadEventType.CLEARED and s.event.event_id in handoffs
    }
    at: dict[str, float] = {}
    for s in step.sent:
        own = handoffs.get(s.event.event_id)
        if own is None and supersedable:
            own = closing.get(s.event.incident_id)
        if own is not None:
            at[s.event.event_id] = own
    return at


def step_latencies(sent: Sequence[Sent], told_at: dict[str, float], now: float) -> list[float]:
    """Per event: when the caller was told minus submission; an event not yet told counts
    as `now` minus submission (a lower bound)."""
    return [told_at.get(s.event.event_id, now) - s.submitted for s in sent]


@dataclass
class Contender:
    """One side of the throughput comparison: how it starts a call's events, where its
    hand-offs are read, and its steps so far."""

    name: str
    send: Callable[[CadEvent], Awaitable[object]]
    handoffs: Callable[[], dict[str, float]]
    supersedable: bool  # whether a text may rightly be skipped for the closing note (`told`)
    steps: list[dict[str, Any]] = field(default_factory=list)
    server_cpu_seconds: float = 0.0  # the server's CPU during this side's steps

    @property
    def saturated(self) -> bool:
        """Its step at the current rate failed twice."""
        return len(self.steps) >= 2 and not any(step["passed"] for step in self.steps[-2:])

    @property
    def sustained(self) -> float:
        return max((s["offered_calls_per_second"] for s in self.steps if s["passed"]), default=0.0)

    @property
    def calls(self) -> int:
        return sum(step["calls"] for step in self.steps)


async def _run_step(
    options: Options, contender: Contender, label: str, offered: float, seconds: float
) -> dict[str, Any]:
    step = await offer_calls(offered, seconds, label, options.agency.id, contender.send)
    # Give the last events a moment (the limit itself) to be handed off.
    deadline = time.time() + P99_LIMIT_SECONDS
    while time.time() < deadline:
        if len(told(step, contender.handoffs(), contender.supersedable)) == len(step.sent):
            break
        await asyncio.sleep(0.2)
    found = contender.handoffs()
    told_at = told(step, found, contender.supersedable)
    now = time.time()
    latencies = step_latencies(step.sent, told_at, now)
    missing = len(step.sent) - len(told_at)
    superseded = sum(1 for s in step.sent if s.event.event_id not in found) - missing
    first = min(s.submitted for s in step.sent)
    calls_done = len({s.event.incident_id for s in step.sent if s.event.event_id in told_at})
    summary = summarize(latencies).as_dict()
    passed = (summary["p99"] or math.inf) <= P99_LIMIT_SECONDS * 1000 and missing == 0
    options.console.print(
        f"  {contender.name}: {offered:g} calls/s offered: p99 {summary['p99']} ms, "
        f"{superseded} events told by their closing note, {missing} of {len(step.sent)} "
        f"untold: {'ok' if passed else 'over the limit'}"
    )
    return {
        "offered_calls_per_second": offered,
        "calls": step.calls,
        "events": len(step.sent),
        "events_untold": missing,
        "events_told_by_closing_note": superseded,
        "achieved_calls_per_second": round(
            rate(calls_done, max(told_at.values(), default=now) - first), 2
        ),
        "latency_ms": summary,
        "passed": passed,
    }


async def _race(
    options: Options,
    stack: BenchStack,
    contenders: Sequence[Contender],
    seconds: float,
    rates: Sequence[float],
) -> None:
    """Both sides step up the rates together, taking turns at each rate (and swapping who
    goes first at the next), each until its own step fails twice. This VM's speed drifts by a
    fifth within an hour: run one side's whole search after the other's and the drift
    lands in their ratio; interleaved, both meet the same machine.

    After each step its calls' surveys are let through before the next step starts, so
    neither side's step carries the other's surveys (callerloop's weigh more). The purges
    at the end of callerloop's 84 s window still land in later steps of either side."""
    server = next(child for child in stack.children if child.name == "Temporal dev server")
    for index, offered in enumerate(rates):
        order = contenders if index % 2 == 0 else list(reversed(contenders))
        for contender in order:
            if contender.saturated:
                continue
            # A step that fails is run once more before the side's search ends: one bad
            # moment of a shared VM should not decide it.
            for attempt in (1, 2):
                before = cpu_seconds(server.process.pid) or 0.0
                started = time.time()
                label = f"{contender.name}{index:02d}{'' if attempt == 1 else 'b'}"
                step = await _run_step(options, contender, label, offered, seconds)
                contender.steps.append({**step, "attempt": attempt})
                # The step's last call was cleared about `seconds` + 1 s after it started.
                surveys_done = started + seconds + 1 + SURVEY_DELAY_SECONDS + P99_LIMIT_SECONDS
                await asyncio.sleep(max(0.0, surveys_done - time.time()))
                contender.server_cpu_seconds += (cpu_seconds(server.process.pid) or 0.0) - before
                if step["passed"]:
                    break
        if all(contender.saturated for contender in contenders):
            return


def _cpu_per_call(contender: Contender, worker_cpu_seconds: float) -> dict[str, float]:
    """Milliseconds of CPU per call: the server's during this side's steps (the other
    side's timers still firing then land here too, as this side's land in its steps) and
    the whole of this side's own worker."""
    per_call = 1000 / max(contender.calls, 1)
    return {
        "Temporal dev server": round(contender.server_cpu_seconds * per_call),
        "worker": round(worker_cpu_seconds * per_call),
    }


async def throughput(options: Options) -> dict[str, Any]:
    seconds = 5.0 if options.quick else 20.0
    rates = QUICK_RATES if options.quick else FULL_RATES
    config = StackConfig(time_scale=THROUGHPUT_TIME_SCALE)
    async with BenchStack(options.work_dir / "throughput", config, options.console) as stack:
        assert stack.client is not None and stack.db is not None and stack.worker is not None
        client, db = stack.client, stack.db
        recorders_sent: list[Sent] = []
        python_send = python_sender(client, stack.task_queue)

        async def callerloop_send(event: CadEvent) -> object:
            recorders_sent.append(Sent(event, time.time()))
            return await python_send(event)

        def callerloop_handoffs() -> dict[str, float]:
            sent = {s.event.event_id: s for s in recorders_sent}
            return {
                m.trigger.event.event_id: m.text.sent_at
                for m in match_texts(read_texts(db), sent.values())
                if m.text.sent_at is not None
            }

        # The floor's worker runs beside callerloop's, on task queues of its own; its texts'
        # queue is paced like callerloop's sender queue.
        log = stack.folder / "floor-steps.log"
        texts_per_second = sender_rate(options.agency, THROUGHPUT_TIME_SCALE)
        floor_worker = stack.spawn_child(
            "floor worker",
            [
                sys.executable,
                "-m",
                "bench.floor",
                stack.address,
                FLOOR_TASK_QUEUE,
                str(log),
                str(texts_per_second),
            ],
            "floor-worker.log",
        )
        await stack.wait_for_pollers(FLOOR_TASK_QUEUE, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)
        await stack.wait_for_pollers(
            text_task_queue(FLOOR_TASK_QUEUE), TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
        )

        async def floor_send(event: CadEvent) -> object:
            return await client.start_workflow(
                FloorWorkflow.run,
                FloorInput(events=3, survey_delay_seconds=SURVEY_DELAY_SECONDS),
                id=f"floor/{event.incident_id}",
                task_queue=FLOOR_TASK_QUEUE,
                start_signal="cad_event",
                start_signal_args=[event.event_id],
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )

        def floor_handoffs() -> dict[str, float]:
            return {name: at for _, name, at in floor.read_steps(log)}

        # Each side warms up with one call through its whole path.
        await warm_up(stack, python_send, options.agency.id)
        warm_event = eligible_call(options.agency.id, f"{WARM_UP}-floor", 0)[0]
        await floor_send(warm_event)
        for _ in range(300):
            if warm_event.event_id in floor_handoffs():
                break
            await asyncio.sleep(0.2)

        callerloop = Contender(
            "callerloop", callerloop_send, callerloop_handoffs, supersedable=True
        )
        floor_side = Contender("floor", floor_send, floor_handoffs, supersedable=False)
        options.console.print(
            f"[bold]throughput[/]: callerloop and the floor in turns, {seconds:g} s per step"
        )
        workers = {
            callerloop.name: stack.worker.process.pid,
            floor_side.name: floor_worker.process.pid,
        }
        workers_before = {name: cpu_seconds(pid) or 0.0 for name, pid in workers.items()}
        with RssSampler(stack.worker.process.pid) as rss:
            await _race(options, stack, (callerloop, floor_side), seconds, rates)
        worker_cpu = {
            name: (cpu_seconds(pid) or 0.0) - workers_before[name] for name, pid in workers.items()
        }
        texts = read_texts(db)
    callerloop_rate, floor_rate = callerloop.sustained, floor_side.sustained
    return {
        "time_scale": THROUGHPUT_TIME_SCALE,
        "step_seconds": seconds,
        "p99_limit_ms": P99_LIMIT_SECONDS * 1000,
        "order": "interleaved: at each rate one side's step, then the other's (alternating "
        "which goes first), each side until its own step fails twice at one rate; after each "
        "step its surveys go out before the next starts",
        "call_shape": "created, assigned at once, cleared 1 s later; texts: confirmation, "
        "assigned, cleared, survey 12 s after clearing (+ purge after the 84 s window)",
        "floor_shape": "signal-with-start + 2 signals, one no-op activity per signal, a "
        "12 s timer, a no-op activity, a no-op local activity: the same 4 activities and "
        "local purge, no logic; its texts, like callerloop's, on a task queue of their own "
        f"paced at {texts_per_second:g}/s",
        "callerloop_steps": callerloop.steps,
        "floor_steps": floor_side.steps,
        "callerloop_calls_per_second": callerloop_rate,
        "floor_calls_per_second": floor_rate,
        "ratio": round(callerloop_rate / floor_rate, 2) if floor_rate else None,
        "texts": texts_by_kind(texts),
        "worker_peak_rss_mb": rss.peak,
        "callerloop_cpu_ms_per_call": _cpu_per_call(callerloop, worker_cpu[callerloop.name]),
        "floor_cpu_ms_per_call": _cpu_per_call(floor_side, worker_cpu[floor_side.name]),
        "load_average_after": load_average(),
    }


# --- 3. scale ------------------------------------------------------------------------------


async def scale(options: Options) -> dict[str, Any]:
    days = options.scale_days or (2 if options.quick else None)
    calls: Calls = all_calls(options.agency, days)
    events = events_of(calls.calls)
    waiting_target = 300 if options.quick else options.waiting_target
    # Time scale 1: surveys wait their 24 h, so texted calls pile up waiting. The sender is
    # a short code's (100 messages/s): at a long code's 1/s the replay would measure pacing.
    agencies = fast_sender_agencies(options, SCALE_SENDER_RATE)
    config = StackConfig(time_scale=1.0, agencies_dir=agencies)
    async with BenchStack(options.work_dir / "scale", config, options.console) as stack:
        assert stack.client is not None and stack.db is not None and stack.worker is not None
        client, pid = stack.client, stack.worker.process.pid
        app_db, temporal_db = stack.paths.callerloop_db, stack.paths.temporal_db
        sizes_before = (file_size(app_db), file_size(temporal_db))
        options.console.print(
            f"[bold]scale[/]: {len(events)} events of {calls.description}, as fast as accepted"
        )
        cpu = CpuMeter(stack)
        with RssSampler(pid, every=2.0) as rss:
            started = time.time()
            report, _recorder = await timed_replay(
                events, python_sender(client, stack.task_queue), speed=0, max_in_flight=64
            )
            accepted_seconds = time.time() - started
            options.console.print(
                f"  accepted {report.sent} events in {accepted_seconds:.0f} s; "
                "waiting for the worker to finish them"
            )
            recorded = report.sent  # every applied or ignored event is recorded
            last_change = await wait_until_settled(stack, recorded, quiet_seconds=5.0, limit=3600.0)
            total = last_change - started
            texts = read_texts(stack.db)
            sizes_after = (file_size(app_db), file_size(temporal_db))
            running = await _running(client)
            rss_after_replay = rss_mb(pid)
            cpu_replay = cpu.used(per=len(calls.calls))
            sdk = workflow_cache_figures(await stack.worker_metrics(), len(calls.calls))
            options.console.print(
                f"  done in {total:.0f} s: {len(texts)} texts, {running} calls still open"
            )
            topped_up = await _top_up(options, stack, client, running, waiting_target)
            await asyncio.sleep(5)
            waiting = await _running(client)
            rss_waiting = rss_mb(pid)
        sent_texts = [t for t in texts if t.sent_at is not None]
        return {
            "source": calls.description,
            "real_data": calls.real,
            "time_scale": 1.0,
            "sender_messages_per_second": SCALE_SENDER_RATE,
            "calls": len(calls.calls),
            "events": len(events),
            "events_failed": len(report.failed),
            "accept_seconds": round(accepted_seconds, 1),
            "total_seconds": round(total, 1),
            "calls_per_second": round(rate(len(calls.calls), total), 2),
            "events_per_second": round(rate(report.sent, total), 1),
            "texts": texts_by_kind(texts),
            "texts_per_second": round(rate(len(sent_texts), total), 2),
            "worker_peak_rss_mb": max(filter(None, [rss.peak, peak_rss_mb(pid)]), default=None),
            "worker_rss_after_replay_mb": rss_after_replay,
            "cpu_ms_per_call": cpu_replay,
            "worker_sdk": sdk,
            "open_calls_after_replay": running,
            "app_db_bytes_per_call": round((sizes_after[0] - sizes_before[0]) / len(calls.calls)),
            "temporal_db_bytes_per_call": round(
                (sizes_after[1] - sizes_before[1]) / len(calls.calls)
            ),
            "app_db_mb": round(sizes_after[0] / 2**20, 1),
            "temporal_db_mb": round(sizes_after[1] / 2**20, 1),
            "synthetic_calls_added_to_wait": topped_up,
            "calls_waiting": waiting,
            "worker_rss_waiting_mb": rss_waiting,
            "load_average_after": load_average(),
            "samples": {"rss": rss.samples},
        }


SCALE_SENDER_RATE = 100.0


def workflow_cache_figures(metrics: Mapping[str, float], calls: int) -> dict[str, Any]:
    """What the worker's SDK says of the replay: its workflow tasks, how many found their
    call in the cache, and how long tasks waited for the worker and ran in it."""
    if not metrics:
        return {}

    def mean_ms(name: str) -> float | None:
        count = metrics.get(f"{name}_count")
        return round(metrics[f"{name}_sum"] / count, 1) if count else None

    tasks = metrics.get("temporal_workflow_task_queue_poll_succeed", 0.0)
    cached = metrics.get("temporal_sticky_cache_hit", 0.0)
    return {
        "workflow_tasks": int(tasks),
        "from_cache": int(cached),
        # Every call's first task brings its history; any other one that did was a call
        # evicted from the cache, replayed from its whole history.
        "replayed_after_eviction": max(0, int(tasks - cached) - calls),
        "forced_evictions": int(metrics.get("temporal_sticky_cache_total_forced_eviction", 0)),
        "task_wait_ms_mean": mean_ms("temporal_workflow_task_schedule_to_start_latency"),
        "task_run_ms_mean": mean_ms("temporal_workflow_task_execution_latency"),
        "local_activity_ms_mean": mean_ms("temporal_local_activity_execution_latency"),
    }


def fast_sender_agencies(options: Options, rate_per_second: float) -> Path:
    """A copy of the agency's file whose sender sends `rate_per_second` messages/s."""
    folder = options.work_dir / "agencies-fast-sender"
    folder.mkdir(parents=True, exist_ok=True)
    source = get_settings().agencies_dir / f"{options.agency.id}.toml"
    text = source.read_text(encoding="utf-8")
    if "\n[texts]\n" not in text or "messages_per_second" in text:
        raise RuntimeError(f"{source}: cannot set [texts] messages_per_second for the bench")
    text = text.replace("\n[texts]\n", f"\n[texts]\nmessages_per_second = {rate_per_second:g}\n")
    (folder / source.name).write_text(text, encoding="utf-8")
    return folder


async def _running(client: Client) -> int:
    count = await client.count_workflows('ExecutionStatus="Running"')
    return count.count


async def _top_up(
    options: Options, stack: BenchStack, client: Client, running: int, target: int
) -> int:
    """Add eligible synthetic calls (created, cleared) until `target` calls are open,
    each waiting for its survey."""
    missing = max(0, target - running)
    if missing == 0:
        return 0
    options.console.print(f"  adding {missing} calls that wait for their survey")
    events = []
    for number in range(missing):
        created, _, cleared = eligible_call(options.agency.id, f"WAIT-{number:05d}", number)
        events += [created, cleared]
    _report, _ = await timed_replay(
        events, python_sender(client, stack.task_queue), speed=0, max_in_flight=64
    )
    before = outbox_counts(stack.paths.callerloop_db)[2]
    await wait_until_settled(stack, before, quiet_seconds=5.0, limit=1800.0)
    return missing


# --- 4. sender pacing ----------------------------------------------------------------------


async def pacing(options: Options) -> dict[str, Any]:
    count = 10 if options.quick else 30
    config = StackConfig(time_scale=1.0)  # the example agency's sender: 1 message/s
    async with BenchStack(options.work_dir / "pacing", config, options.console) as stack:
        assert stack.client is not None and stack.db is not None
        options.console.print(f"[bold]pacing[/]: {count} calls at once, sender limit 1 message/s")
        events = [eligible_call(options.agency.id, f"PACE-{n:05d}", n)[0] for n in range(count)]
        started = time.time()
        report, _ = await timed_replay(events, python_sender(stack.client, stack.task_queue), 0)
        deadline = time.time() + count * 2 + 30
        while time.time() < deadline:
            texts = [t for t in read_texts(stack.db) if t.sent_at is not None]
            if len(texts) >= report.sent:
                break
            await asyncio.sleep(0.5)
        handoffs = sorted(t.sent_at for t in texts if t.sent_at is not None)
    gaps = [b - a for a, b in itertools.pairwise(handoffs)]
    drain = (len(handoffs) - 1) / (handoffs[-1] - handoffs[0]) if len(handoffs) > 1 else math.nan
    return {
        "limit_per_second": options.agency.texts.messages_per_second,
        "calls": count,
        "texts": len(handoffs),
        "max_in_any_second": max(per_second_counts(handoffs), default=0),
        "max_in_any_1s_window": max_in_window(handoffs, 1.0),
        "min_gap_s": round(min(gaps), 3) if gaps else None,
        "median_gap_s": round(percentile(gaps, 50), 3) if gaps else None,
        "drain_per_second": round(drain, 3),
        "first_after_s": round(handoffs[0] - started, 2) if handoffs else None,
        "samples": {"handoffs": [round(h - started, 3) for h in handoffs]},
    }


async def dry_run_scenario(options: Options) -> dict[str, Any]:
    out = options.work_dir / "dryrun"
    return measure_dry_run(options.agency, quick=options.quick, out=out, console=options.console)


SCENARIOS: dict[str, Callable[[Options], Awaitable[dict[str, Any]]]] = {
    "latency": latency,
    "throughput": throughput,
    "scale": scale,
    "pacing": pacing,
    "dryrun": dry_run_scenario,
}
