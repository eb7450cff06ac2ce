"""Replaying a CAD CSV export as the stream of `CadEvent`s the CAD would have sent.

`parse_cad_export` turns each row (one call for service with its status times) into the
call's events; `timeline` merges the calls into one time-ordered stream; `replay` sends that
stream at `speed` times real time, in order within each incident.

The export holds no caller details, so caller-originated calls get a fictional mobile
number (555-0100…0199) and a language, both drawn from a RNG seeded by (seed, incident id):
the same export replays identically in every process.
"""

from __future__ import annotations

import asyncio
import csv
import math
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from callerloop.cad.export_rows import (
    REQUIRED_COLUMNS,
    CallRow,
    ExportRow,
    Quirk,
    RowError,
    RowReading,
    check_header,
    clean_header,
    column_names,
    read_call,
    row_reading,
    zoned,
)
from callerloop.core.agency_config import EXPORT_COLUMNS, AgencyConfig
from workflows.model import CadEvent, CadEventType, LineType
from workflows.policy import CALLER_SOURCES

__all__ = [
    "LOGICAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "Caller",
    "ParsedExport",
    "Quirk",
    "ReplayCall",
    "ReplayJournal",
    "ReplayReport",
    "RowError",
    "call_events",
    "column_names",
    "first_calls",
    "parse_cad_export",
    "replay",
    "row_caller",
    "timeline",
]

# The export's columns by what they mean; `[replay.columns]` gives each one's name.
LOGICAL_COLUMNS = EXPORT_COLUMNS
# Status steps in the order a call goes through them.
_STATUS_COLUMNS: tuple[tuple[str, CadEventType], ...] = (
    ("dispatched", CadEventType.ASSIGNED),
    ("enroute", CadEventType.ENROUTE),
    ("on_scene", CadEventType.ON_SCENE),
)
_RESPONSE_STEPS = frozenset(kind for _, kind in _STATUS_COLUMNS)


@dataclass
class ReplayCall:
    incident_id: str
    created_at: datetime
    events: list[CadEvent]


@dataclass
class ParsedExport:
    calls: list[ReplayCall]
    errors: list[RowError]
    rows_read: int
    # Source values the agency's `[cad.sources]` does not map (replayed as "unknown"): count.
    unmapped_sources: dict[str, int] = field(default_factory=dict)
    quirks: Counter[Quirk] = field(default_factory=Counter)


@dataclass(frozen=True)
class _Context(RowReading):
    """What every row of a replay needs, worked out once per export."""

    phones: tuple[str, ...]
    languages: tuple[str, ...]
    language_weights: tuple[float, ...]
    seed: int
    since: datetime | None
    until: datetime | None


def parse_cad_export(
    lines: Iterable[str] | TextIO,
    agency: AgencyConfig,
    *,
    seed: int = 7,
    since: datetime | None = None,
    until: datetime | None = None,
    language_mix: dict[str, float] | None = None,
) -> ParsedExport:
    """Every good row as a call with its events; every bad row as a `RowError`.

    Raises ValueError only when the header lacks a required column. `since` (inclusive) and
    `until` (exclusive) select calls by creation time; naive values are in the agency's zone.
    """
    reader = csv.DictReader(lines)
    try:
        fieldnames = reader.fieldnames
    except csv.Error as error:
        raise ValueError(f"line 1: the CSV header cannot be read: {error}") from None
    header = clean_header(fieldnames)
    reader.fieldnames = header
    reading = row_reading(agency)
    check_header(header, reading.columns)
    zone = reading.zone
    languages, weights = _language_weights(agency, language_mix)
    context = _Context(
        **vars(reading),
        phones=_fictional_phones(agency),
        languages=languages,
        language_weights=weights,
        seed=seed,
        since=_in_zone(since, zone),
        until=_in_zone(until, zone),
    )
    export = ParsedExport(calls=[], errors=[], rows_read=0)
    first_line: dict[str, int] = {}
    unmapped: Counter[str] = Counter()
    for record in _records(reader):
        export.rows_read += 1
        row = ExportRow(record, reader.line_num, len(header), context)
        call = _parse_row(row, context, unmapped)
        if call is None:
            export.errors.extend(row.errors)
            export.quirks.update(row.quirks & {Quirk.MISSING_INCIDENT})
        elif call.incident_id in first_line:
            export.errors.append(_duplicate(row, call.incident_id, first_line[call.incident_id]))
            export.quirks[Quirk.DUPLICATE_INCIDENT] += 1
        else:
            first_line[call.incident_id] = row.line
            export.calls.append(call)
            export.quirks.update(row.quirks)
    export.unmapped_sources = dict(unmapped)
    return export


def _records(reader: csv.DictReader[str]) -> Iterator[dict[str | Any, str | Any]]:
    """The reader's records; a file the csv module cannot read on (a field over its size
    limit, a stray carriage return) is refused with the line where reading stopped."""
    try:
        yield from reader
    except csv.Error as error:
        raise ValueError(
            f"line {reader.line_num + 1}: the CSV cannot be read past here: {error}"
        ) from None


def first_calls(calls: Sequence[ReplayCall], limit: int | None) -> list[ReplayCall]:
    """The `limit` earliest-created calls (all of them without a limit)."""
    ordered = sorted(calls, key=lambda call: call.created_at)
    return ordered if limit is None else ordered[:limit]


def timeline(calls: Iterable[ReplayCall]) -> list[CadEvent]:
    """All events by CAD time; the sort is stable, so each call keeps its own order."""
    return sorted((event for call in calls for event in call.events), key=lambda e: e.occurred_at)


# --- header and context ---------------------------------------------------------------


def _in_zone(moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    return None if moment is None else zoned(moment, zone)


def _language_weights(
    agency: AgencyConfig, language_mix: Mapping[str, float] | None
) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """The mix restricted to the languages the agency offers (choices() renormalises)."""
    mix = agency.replay.language_mix if language_mix is None else language_mix
    offered = [(lang, w) for lang, w in mix.items() if lang in agency.agency.languages and w > 0]
    if not offered:
        return (agency.agency.default_language,), (1.0,)
    return tuple(lang for lang, _ in offered), tuple(w for _, w in offered)


def _fictional_phones(agency: AgencyConfig) -> tuple[str, ...]:
    """555-0100…0199 in each area code, less the agency's own sender number: a caller
    sharing it would have the agency texting itself."""
    numbers = (f"+1{area}55501{n:02d}" for area in agency.replay.area_codes for n in range(100))
    return tuple(number for number in numbers if number != agency.agency.sender_number)


# --- rows -----------------------------------------------------------------------------


def _duplicate(row: ExportRow, incident_id: str, first: int) -> RowError:
    column = row.context.columns["incident_id"]
    return RowError(row.line, column, incident_id, f"repeats the incident of line {first}")


def _parse_row(row: ExportRow, context: _Context, unmapped: Counter[str]) -> ReplayCall | None:
    """The row's call, or None when the row is bad (see `row.errors`) or outside the window."""
    call = read_call(row, lambda created: _in_window(created, context))
    if call is None:
        return None
    if not call.source_mapped:
        unmapped[call.source_word] += 1
    events = call_events(call, context, row.quirks, _caller(call, context))
    return ReplayCall(incident_id=call.incident_id, created_at=call.created, events=events)


def _in_window(created: datetime, context: _Context) -> bool:
    if context.since is not None and created < context.since:
        return False
    return context.until is None or created < context.until


@dataclass(frozen=True)
class Caller:
    phone: str
    language: str
    line_type: LineType | None = None  # None: looked up before the first text


def row_caller(call: CallRow, reading: RowReading) -> Caller | None:
    """The caller the row names (`caller_phone`, `caller_language`), if it names one."""
    if call.caller_phone is None:
        return None
    language = call.caller_language or reading.agency.agency.default_language
    return Caller(call.caller_phone, language.lower())


def _caller(call: CallRow, context: _Context) -> Caller | None:
    """The row's caller, else a made-up mobile caller for a caller-originated call (an
    export for replay rarely keeps callers' numbers)."""
    named = row_caller(call, context)
    if named is not None or call.source not in CALLER_SOURCES:
        return named
    # A string seed is hashed with SHA-512, unlike hash(): stable across processes.
    rng = random.Random(f"{context.seed}:{call.incident_id}")
    phone = rng.choice(context.phones)
    language = rng.choices(context.languages, context.language_weights)[0]
    return Caller(phone, language, LineType.MOBILE)


def call_events(
    call: CallRow, reading: RowReading, quirks: set[Quirk], caller: Caller | None
) -> list[CadEvent]:
    """The events the CAD would have sent for this row's call, in order: its creation, its
    reclassification where the row keeps a final type or priority, then its steps."""
    created = _created_event(call, reading, caller)
    reclassified = _reclassification(call, created, quirks)
    return [created, *reclassified, *_status_events(call, reading, quirks)]


def _created_event(call: CallRow, reading: RowReading, caller: Caller | None) -> CadEvent:
    event = CadEvent(
        agency=reading.agency.id,
        incident_id=call.incident_id,
        event_type=CadEventType.CREATED,
        occurred_at=call.created,
        event_id=f"{call.incident_id}:{CadEventType.CREATED}:1",
        case_number=call.incident_id,
        priority=call.priority,
        call_type=call.call_type,
        source=call.source,
    )
    if caller is not None:
        event.caller_phone = caller.phone
        event.caller_line_type = caller.line_type
        event.caller_language = caller.language
    return event


def _reclassification(call: CallRow, created: CadEvent, quirks: set[Quirk]) -> list[CadEvent]:
    """The final type and priority, where the export keeps them and they differ, as an
    `updated` event at the creation instant: the export does not say when the call was
    reclassified, so it counts from the start, and a call sensitive at any point is."""
    final_type, final_priority = call.final_call_type, call.final_priority
    call_type = final_type if final_type not in (None, created.call_type) else None
    priority = final_priority if final_priority not in (None, created.priority) else None
    if call_type is None and priority is None:
        return []
    quirks.add(Quirk.RECLASSIFIED)
    return [
        CadEvent(
            agency=created.agency,
            incident_id=created.incident_id,
            event_type=CadEventType.UPDATED,
            occurred_at=created.occurred_at,
            event_id=f"{created.incident_id}:{CadEventType.UPDATED}:1",
            call_type=call_type,
            priority=priority,
        )
    ]


def _status_events(call: CallRow, reading: RowReading, quirks: set[Quirk]) -> list[CadEvent]:
    """Events after creation; a step whose time is missing is skipped."""
    closing = CadEventType.CANCELLED if call.closing_cancels(reading) else CadEventType.CLEARED
    times = call.times
    steps = [(kind, times[column]) for column, kind in _STATUS_COLUMNS]
    first_closed = times["first_closed"] or times["final_closed"]
    steps.append((closing, first_closed))
    # CAD clocks sometimes put a later step earlier (arrival after close): clamp forward.
    ordered: list[tuple[CadEventType, datetime]] = []
    latest = call.created
    for kind, moment in steps:
        if moment is not None:
            if moment < call.created:
                quirks.add(Quirk.STEP_BEFORE_CREATION)
            elif moment < latest:
                quirks.add(Quirk.STEPS_OUT_OF_ORDER)
            latest = max(latest, moment)
            ordered.append((kind, latest))
    response = [moment for kind, moment in steps if kind in _RESPONSE_STEPS and moment]
    if response and all(moment == call.created for moment in response):
        quirks.add(Quirk.INSTANT_STEPS)
    last_close = latest if ordered and ordered[-1][0] == closing else None
    ordered.extend(_reopening(call, quirks, closing, last_close, times["final_closed"]))
    return _numbered_events(reading, call.incident_id, ordered, call.disposition, call.officer)


def _reopening(
    call: CallRow,
    quirks: set[Quirk],
    closing: CadEventType,
    closed: datetime | None,
    final: datetime | None,
) -> list[tuple[CadEventType, datetime]]:
    """REOPENED halfway between the two closes (the export has no reopen time), then the
    final close, of the same kind as the first since the disposition is the final one."""
    if not call.reopened or closed is None or final is None or final <= closed:
        return []
    quirks.add(Quirk.REOPENED)
    return [(CadEventType.REOPENED, closed + (final - closed) / 2), (closing, final)]


def _numbered_events(
    reading: RowReading,
    incident_id: str,
    steps: list[tuple[CadEventType, datetime]],
    disposition: str | None,
    officer: str | None = None,
) -> list[CadEvent]:
    seen: Counter[CadEventType] = Counter({CadEventType.CREATED: 1})
    events: list[CadEvent] = []
    for kind, moment in steps:
        seen[kind] += 1
        closes = kind in (CadEventType.CLEARED, CadEventType.CANCELLED)
        events.append(
            CadEvent(
                agency=reading.agency.id,
                incident_id=incident_id,
                event_type=kind,
                occurred_at=moment,
                event_id=f"{incident_id}:{kind}:{seen[kind]}",
                disposition=disposition if closes else None,
                officer=officer if kind == CadEventType.ASSIGNED else None,
            )
        )
    return events


# --- sending --------------------------------------------------------------------------


class ReplayJournal:
    """The ids of the events a replay has delivered, one per line, appended as each one
    goes: a replay stopped midway resumes with the same journal and sends only the rest.
    Replayed event ids are stable (seeded), and the workflows ignore a repeated id anyway."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = []
        self.delivered = {line for line in lines if line}
        self._handle: TextIO | None = None

    def pending(self, events: Iterable[CadEvent]) -> list[CadEvent]:
        return [event for event in events if event.event_id not in self.delivered]

    def record(self, event: CadEvent) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", encoding="utf-8")
        self._handle.write(f"{event.event_id}\n")
        self._handle.flush()  # a crash loses at most the event in hand
        self.delivered.add(event.event_id)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


@dataclass
class ReplayReport:
    sent: int
    failed: list[tuple[CadEvent, str]]
    elapsed_seconds: float
    # Events refused because their call had already finished (e.g. a late reopen of a call
    # that could never be texted): not applied, but not an error either.
    for_finished_calls: int = 0
    # Events skipped because the journal of an earlier, interrupted run lists them.
    already_sent: int = 0
    # Over HTTP: posts sent again after a "not now" (429, 503) or no answer.
    retries: int = 0


async def replay(
    events: Sequence[CadEvent],
    send: Callable[[CadEvent], Awaitable[object]],
    *,
    speed: float,
    max_in_flight: int = 64,
    on_sent: Callable[[CadEvent], None] | None = None,
) -> ReplayReport:
    """Send `events` (as `timeline` orders them) at `speed` times CAD time.

    Event i is due (occurred_at_i - occurred_at_0) / speed seconds after the start; speed 0
    or infinity sends as fast as possible. Up to `max_in_flight` sends run at once, but an
    incident's event waits for that incident's previous send. A failed send is reported and
    the replay goes on.
    """
    if math.isnan(speed) or speed < 0:
        raise ValueError(f"speed must be >= 0 (0 or inf: no pacing), got {speed}")
    if max_in_flight < 1:
        raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
    loop = asyncio.get_running_loop()
    started = loop.time()
    report = ReplayReport(sent=0, failed=[], elapsed_seconds=0.0)
    slots = asyncio.Semaphore(max_in_flight)
    last_send: dict[str, asyncio.Task[None]] = {}

    async def deliver(event: CadEvent, previous: asyncio.Task[None] | None) -> None:
        try:
            if previous is not None:
                await previous
            try:
                await send(event)
            except Exception as error:  # the report carries it; one bad event stops nothing
                report.failed.append((event, str(error) or type(error).__name__))
            else:
                report.sent += 1
                if on_sent is not None:
                    on_sent(event)
        finally:
            slots.release()
            if last_send.get(event.incident_id) is asyncio.current_task():
                del last_send[event.incident_id]

    async with asyncio.TaskGroup() as group:
        for event in events:
            due = started + _offset_seconds(event, events[0], speed)
            await asyncio.sleep(max(0.0, due - loop.time()))
            await slots.acquire()
            previous = last_send.get(event.incident_id)
            last_send[event.incident_id] = group.create_task(deliver(event, previous))
    report.elapsed_seconds = loop.time() - started
    return report


def _offset_seconds(event: CadEvent, first: CadEvent, speed: float) -> float:
    if speed == 0 or math.isinf(speed):
        return 0.0
    return (event.occurred_at - first.occurred_at).total_seconds() / speed
