"""Replaying a CAD export into Temporal: its events in CAD-time order at a chosen speed,
through any deliverer (the Python CadClient's, the HTTP client's), with a progress bar
and a summary. Used by `callerloop cad replay`, `make run` and the benchmarks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from temporalio.client import Client

from callerloop.cad.client import CadClient, CallAlreadyFinished
from callerloop.cad.replay import (
    ParsedExport,
    Quirk,
    ReplayCall,
    ReplayJournal,
    ReplayReport,
    replay,
    timeline,
)
from workflows.model import CadEvent

SHOWN_PROBLEMS = 20


async def run_replay(
    client: Client,
    task_queue: str,
    calls: Sequence[ReplayCall],
    *,
    speed: float,
    console: Console | None = None,
    on_sent: Callable[[CadEvent], None] | None = None,
    journal: ReplayJournal | None = None,
) -> ReplayReport:
    """Send the calls' events to Temporal in CAD-time order at `speed` times real time,
    with a progress bar on `console` (none without one)."""
    cad = CadClient(client, task_queue)
    return await replay_calls(
        cad.publish, calls, speed=speed, console=console, on_sent=on_sent, journal=journal
    )


async def replay_calls(
    deliver: Callable[[CadEvent], Awaitable[str]],
    calls: Sequence[ReplayCall],
    *,
    speed: float,
    console: Console | None = None,
    on_sent: Callable[[CadEvent], None] | None = None,
    journal: ReplayJournal | None = None,
) -> ReplayReport:
    """Replay through `deliver` (a CadClient's or an HttpCadClient's), which raises
    CallAlreadyFinished for an event of an ended call. With a journal, events it lists
    are skipped and each event delivered (or refused as finished) is added to it."""
    events = timeline(calls)
    already_sent = 0
    if journal is not None:
        pending = journal.pending(events)
        already_sent, events = len(events) - len(pending), pending
    progress = Progress(
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("events · {task.fields[calls]} calls · {task.fields[failures]} failures"),
        TimeElapsedColumn(),
        console=console,
        disable=console is None,
    )
    task = progress.add_task("replay", total=len(events), calls=0, failures=0)
    calls_started: set[str] = set()
    failures = finished = 0

    async def send(event: CadEvent) -> str | None:
        nonlocal failures, finished
        try:
            return await deliver(event)
        except CallAlreadyFinished:
            finished += 1
            return None
        except Exception:
            failures += 1  # replay() records the error; the bar only counts it
            progress.update(task, advance=1, failures=failures)
            raise

    def sent(event: CadEvent) -> None:
        if journal is not None:
            journal.record(event)
        calls_started.add(event.incident_id)
        progress.update(task, advance=1, calls=len(calls_started))
        if on_sent is not None:
            on_sent(event)

    with progress:
        report = await replay(events, send, speed=speed, on_sent=sent)
    report.sent -= finished
    report.for_finished_calls = finished
    report.already_sent = already_sent
    return report


def print_replay_summary(console: Console, export: ParsedExport, report: ReplayReport) -> None:
    table = Table(title="Replay summary", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("rows read", str(export.rows_read))
    table.add_row("calls", str(len(export.calls)))
    table.add_row("events sent", str(report.sent))
    if report.already_sent:
        table.add_row("events sent by an earlier run (journal)", str(report.already_sent))
    table.add_row("events for finished calls (not applied)", str(report.for_finished_calls))
    if report.retries:
        table.add_row("posts sent again (server busy or unreachable)", str(report.retries))
    table.add_row("failures", str(len(report.failed)))
    table.add_row("bad rows", str(len(export.errors)))
    table.add_row("elapsed", f"{report.elapsed_seconds:.1f} s")
    for quirk in Quirk:
        if export.quirks[quirk]:
            table.add_row(quirk.value, str(export.quirks[quirk]))
    console.print(table)
    if export.unmapped_sources:
        unmapped = ", ".join(f"{k!r} ({n})" for k, n in sorted(export.unmapped_sources.items()))
        console.print(
            f"sources not in [cad.sources], replayed as unknown: {unmapped}", markup=False
        )
    print_problems(
        console,
        "failed sends",
        [f"{e.incident_id} {e.event_type}: {why}" for e, why in report.failed],
    )
    print_problems(console, "bad rows", [str(error) for error in export.errors])


def print_problems(console: Console, title: str, problems: Sequence[str]) -> None:
    if not problems:
        return
    console.print(f"{title}:", style="bold")
    for problem in problems[:SHOWN_PROBLEMS]:
        console.print(f"  {problem}", markup=False, highlight=False)
    if len(problems) > SHOWN_PROBLEMS:
        console.print(f"  … and {len(problems) - SHOWN_PROBLEMS} more")
