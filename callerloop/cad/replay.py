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
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from callerloop.core.agency_config import EXPORT_COLUMNS, AgencyConfig
from workflows.cad_limits import MAX_LENGTHS, occurred_at_problem, priority_problem, text_problem
from workflows.model import CadEvent, CadEventType, CallSource, LineType
from workflows.policy import CALLER_SOURCES

__all__ = [
    "LOGICAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "ParsedExport",
    "Quirk",
    "ReplayCall",
    "ReplayJournal",
    "ReplayReport",
    "RowError",
    "column_names",
    "first_calls",
    "parse_cad_export",
    "replay",
    "timeline",
]

# The export's columns by what they mean; `[replay.columns]` gives each one's name.
LOGICAL_COLUMNS = EXPORT_COLUMNS
REQUIRED_COLUMNS = LOGICAL_COLUMNS[:5]
# Status steps in the order a call goes through them.
_STATUS_COLUMNS: tuple[tuple[str, CadEventType], ...] = (
    ("dispatched", CadEventType.ASSIGNED),
    ("enroute", CadEventType.ENROUTE),
    ("on_scene", CadEventType.ON_SCENE),
)
_RESPONSE_STEPS = frozenset(kind for _, kind in _STATUS_COLUMNS)
_TIME_COLUMNS = ("created", "first_closed", "final_closed", *(c for c, _ in _STATUS_COLUMNS))
_MISSING = frozenset({"", "NULL"})
# Columns whose text becomes the CadEvent field of the same name, bounded like it.
_TEXT_COLUMNS = ("incident_id", "call_type", "final_call_type", "disposition")
# A value longer than this is not repeated in its row's error.
_SHOWN_LENGTH = 80
_REOPENED = frozenset({"1", "TRUE", "YES", "Y"})


class Quirk(StrEnum):
    """What real exports do that a clean feed would not; counted in the end-of-run report."""

    NULL_VALUES = "rows with NULL for a missing value"
    INSTANT_STEPS = "calls dispatched the instant they were created (officer-initiated)"
    STEP_BEFORE_CREATION = "calls with a step timed before creation (replayed at creation)"
    STEPS_OUT_OF_ORDER = "calls with a step timed before the previous one (moved after it)"
    RECLASSIFIED = "calls whose final type or priority differs (applied at creation)"
    REOPENED = "reopened calls (reopen and final close replayed)"
    DUPLICATE_INCIDENT = "rows repeating an earlier row's incident id (skipped)"
    MISSING_INCIDENT = "rows without an incident id (skipped)"


@dataclass
class RowError:
    line: int  # 1-based line in the file; the header is line 1
    column: str | None
    value: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        what = f"{self.value!r} {self.message}" if self.value is not None else self.message
        return f"{where}: {what}"


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
class _Context:
    """What every row needs, worked out once per export."""

    agency: AgencyConfig
    columns: Mapping[str, str]
    zone: ZoneInfo
    cancelled: tuple[re.Pattern[str], ...]
    time_formats: tuple[str, ...]
    phones: tuple[str, ...]
    languages: tuple[str, ...]
    language_weights: tuple[float, ...]
    seed: int
    since: datetime | None
    until: datetime | None
    now: datetime  # the wall clock, for the latest time an event may have


def column_names(agency: AgencyConfig) -> dict[str, str]:
    """Each logical column's name in the export; an unmapped one is named as itself."""
    return {key: agency.replay.columns.get(key, key) for key in LOGICAL_COLUMNS}


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
    header = _clean_header(fieldnames)
    reader.fieldnames = header
    columns = column_names(agency)
    _check_header(header, columns)
    zone = ZoneInfo(agency.replay.time_zone or agency.agency.time_zone)
    languages, weights = _language_weights(agency, language_mix)
    context = _Context(
        agency=agency,
        columns=columns,
        zone=zone,
        cancelled=tuple(re.compile(p) for p in agency.replay.cancelled_dispositions),
        time_formats=tuple(agency.replay.time_formats),
        phones=_fictional_phones(agency),
        languages=languages,
        language_weights=weights,
        seed=seed,
        since=_in_zone(since, zone),
        until=_in_zone(until, zone),
        now=datetime.now(UTC),
    )
    export = ParsedExport(calls=[], errors=[], rows_read=0)
    first_line: dict[str, int] = {}
    unmapped: Counter[str] = Counter()
    for record in _records(reader):
        export.rows_read += 1
        row = _Row(record, reader.line_num, len(header), context)
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


def _clean_header(fieldnames: Sequence[str] | None) -> list[str]:
    if not fieldnames:
        raise ValueError("the CAD export is empty: no header line")
    # A byte-order mark survives when the file was not opened as utf-8-sig.
    return [name.lstrip("\ufeff").strip() for name in fieldnames]


def _check_header(header: list[str], columns: Mapping[str, str]) -> None:
    missing = [columns[key] for key in REQUIRED_COLUMNS if columns[key] not in header]
    if missing:
        raise ValueError(
            f"the CAD export lacks required column(s) {missing} "
            f"(see [replay.columns]); its header is {header}"
        )


def _in_zone(moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    return None if moment is None else _zoned(moment, zone)


def _zoned(moment: datetime, zone: ZoneInfo) -> datetime:
    """A naive time is the zone's; an aware one is moved to it."""
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment.astimezone(zone)


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


class _Row:
    """One CSV record, read by logical column; problems are collected in `errors`."""

    def __init__(
        self, record: Mapping[str | None, object], line: int, width: int, context: _Context
    ) -> None:
        self.record = record
        self.line = line
        self.context = context
        self.errors: list[RowError] = []
        self.quirks: set[Quirk] = set()
        if any(isinstance(v, str) and v.strip().upper() == "NULL" for v in record.values()):
            self.quirks.add(Quirk.NULL_VALUES)
        if None in record or any(value is None for value in record.values()):
            fields = width + len(_extra_fields(record)) - _missing_fields(record)
            self.fail(None, None, f"row has {fields} fields but the header has {width}")

    def fail(self, key: str | None, value: str | None, message: str) -> None:
        column = self.context.columns[key] if key else None
        self.errors.append(RowError(self.line, column, value, message))

    def text(self, key: str) -> str | None:
        """The stripped value, or None when the column is absent, empty or NULL."""
        value = self.record.get(self.context.columns[key])
        if not isinstance(value, str) or value.strip().upper() in _MISSING:
            return None
        return value.strip()

    def time(self, key: str) -> datetime | None:
        raw = self.text(key)
        if raw is None:
            return None
        try:
            moment = _zoned(_parse_time(raw, self.context.time_formats), self.context.zone)
        except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 moved to the zone
            formats = self.context.time_formats
            expected = f"an ISO 8601 time nor one of [replay] time_formats {list(formats)}"
            self.fail(key, _shown(raw), f"is not {expected}" if formats else _NOT_ISO)
            return None
        problem = occurred_at_problem(moment, self.context.now)
        if problem is not None:
            self.fail(key, raw, f"is {problem}")
            return None
        return moment

    def priority(self, key: str = "priority") -> int | None:
        """The priority as the agency's rank: a code through `[cad.priorities]`, else a
        number on the scale."""
        raw = self.text(key)
        if raw is None:
            return None  # not prioritised yet: allowed, eligibility decides
        cad = self.context.agency.cad
        mapped = cad.priorities.get(raw)
        if mapped is not None:
            return mapped  # on the scale: checked when the agency file was loaded
        try:
            priority = int(raw)
        except ValueError:
            codes = f" nor a code in [cad.priorities] {sorted(cad.priorities)}"
            self.fail(key, _shown(raw), "is not an integer" + (codes if cad.priorities else ""))
            return None
        problem = priority_problem(priority, cad.priority_scale.bounds)
        if problem is not None:
            self.fail(key, _shown(raw), f"is {problem}")
            return None
        return priority

    def check_texts(self) -> None:
        """Each text that becomes an event field is within that field's bounds."""
        for key in _TEXT_COLUMNS:
            value = self.text(key)
            bound = MAX_LENGTHS[key.removeprefix("final_")]
            if value is not None and (problem := text_problem(value, bound)):
                self.fail(key, _shown(value), problem)


_NOT_ISO = "is not a time like 2025-08-24 00:07:06.000 (set [replay] time_formats for others)"


def _parse_time(raw: str, formats: Sequence[str]) -> datetime:
    """ISO 8601 first (with or without seconds or zone), then the agency's formats."""
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        for time_format in formats:
            try:
                return datetime.strptime(raw, time_format)
            except ValueError:
                continue
        raise


def _shown(value: str) -> str | None:
    """The value as a row's error repeats it, or None when too long to repeat."""
    return value if len(value) <= _SHOWN_LENGTH else None


def _extra_fields(record: Mapping[str | None, object]) -> list[object]:
    extra = record.get(None)
    return extra if isinstance(extra, list) else []


def _missing_fields(record: Mapping[str | None, object]) -> int:
    return sum(1 for key, value in record.items() if key is not None and value is None)


def _duplicate(row: _Row, incident_id: str, first: int) -> RowError:
    column = row.context.columns["incident_id"]
    return RowError(row.line, column, incident_id, f"repeats the incident of line {first}")


@dataclass(frozen=True)
class _Identity:
    """What a row must have to be a call."""

    incident_id: str
    call_type: str
    created: datetime


def _parse_row(row: _Row, context: _Context, unmapped: Counter[str]) -> ReplayCall | None:
    """The row's call, or None when the row is bad (see `row.errors`) or outside the window."""
    row.check_texts()
    incident_id = row.text("incident_id")
    call_type = row.text("call_type")
    priority = row.priority()
    final_call_type = row.text("final_call_type")
    final_priority = row.priority("final_priority")
    times = {key: row.time(key) for key in _TIME_COLUMNS}
    created = times["created"]
    if created is not None and not _in_window(created, context):
        row.errors.clear()  # outside the requested window: not this replay's business
        return None
    if incident_id is None:
        row.fail("incident_id", None, "incident id is missing")
        row.quirks.add(Quirk.MISSING_INCIDENT)
    if call_type is None:
        row.fail("call_type", None, "call type is missing")
    if created is None and not any(e.column == context.columns["created"] for e in row.errors):
        row.fail("created", None, "creation time is missing")
    if row.errors or incident_id is None or call_type is None or created is None:
        return None
    identity = _Identity(incident_id, call_type, created)
    created_event = _created_event(row, identity, priority, unmapped)
    reclassified = _reclassification(row, created_event, final_call_type, final_priority)
    events = [created_event, *reclassified, *_status_events(row, identity, times)]
    return ReplayCall(incident_id=incident_id, created_at=created, events=events)


def _in_window(created: datetime, context: _Context) -> bool:
    if context.since is not None and created < context.since:
        return False
    return context.until is None or created < context.until


_OWN_SOURCE_WORDS = {source.value: source for source in CallSource}


def _source(row: _Row, unmapped: Counter[str]) -> CallSource:
    """The CAD's word through `[cad.sources]`; callerloop's own words ("phone", "911")
    need no mapping. Any other word is an unknown source, counted for the report."""
    raw = row.text("source") or ""
    source = row.context.agency.cad.sources.get(raw) or _OWN_SOURCE_WORDS.get(raw)
    if source is None:
        unmapped[raw] += 1
        return CallSource.UNKNOWN
    return source


def _created_event(
    row: _Row, identity: _Identity, priority: int | None, unmapped: Counter[str]
) -> CadEvent:
    context = row.context
    incident_id = identity.incident_id
    source = _source(row, unmapped)
    event = CadEvent(
        agency=context.agency.id,
        incident_id=incident_id,
        event_type=CadEventType.CREATED,
        occurred_at=identity.created,
        event_id=f"{incident_id}:{CadEventType.CREATED}:1",
        case_number=incident_id,
        priority=priority,
        call_type=identity.call_type,
        source=source,
    )
    if source in CALLER_SOURCES:
        # A string seed is hashed with SHA-512, unlike hash(): stable across processes.
        rng = random.Random(f"{context.seed}:{incident_id}")
        event.caller_phone = rng.choice(context.phones)
        event.caller_line_type = LineType.MOBILE
        event.caller_language = rng.choices(context.languages, context.language_weights)[0]
    return event


def _reclassification(
    row: _Row, created: CadEvent, final_call_type: str | None, final_priority: int | None
) -> list[CadEvent]:
    """The final type and priority, where the export keeps them and they differ, as an
    `updated` event at the creation instant: the export does not say when the call was
    reclassified, so it counts from the start, and a call sensitive at any point is."""
    call_type = final_call_type if final_call_type not in (None, created.call_type) else None
    priority = final_priority if final_priority not in (None, created.priority) else None
    if call_type is None and priority is None:
        return []
    row.quirks.add(Quirk.RECLASSIFIED)
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


def _status_events(
    row: _Row, identity: _Identity, times: Mapping[str, datetime | None]
) -> list[CadEvent]:
    """Events after creation; a step whose time is missing is skipped."""
    disposition = row.text("disposition")
    closing = _closing_type(disposition, row.context)
    steps = [(kind, times[column]) for column, kind in _STATUS_COLUMNS]
    first_closed = times["first_closed"] or times["final_closed"]
    steps.append((closing, first_closed))
    # CAD clocks sometimes put a later step earlier (arrival after close): clamp forward.
    ordered: list[tuple[CadEventType, datetime]] = []
    latest = identity.created
    for kind, moment in steps:
        if moment is not None:
            if moment < identity.created:
                row.quirks.add(Quirk.STEP_BEFORE_CREATION)
            elif moment < latest:
                row.quirks.add(Quirk.STEPS_OUT_OF_ORDER)
            latest = max(latest, moment)
            ordered.append((kind, latest))
    response = [moment for kind, moment in steps if kind in _RESPONSE_STEPS and moment]
    if response and all(moment == identity.created for moment in response):
        row.quirks.add(Quirk.INSTANT_STEPS)
    last_close = latest if ordered and ordered[-1][0] == closing else None
    ordered.extend(_reopening(row, closing, last_close, times["final_closed"]))
    return _numbered_events(row.context, identity.incident_id, ordered, disposition)


def _closing_type(disposition: str | None, context: _Context) -> CadEventType:
    if disposition is not None and any(p.search(disposition) for p in context.cancelled):
        return CadEventType.CANCELLED
    return CadEventType.CLEARED


def _reopening(
    row: _Row, closing: CadEventType, closed: datetime | None, final: datetime | None
) -> list[tuple[CadEventType, datetime]]:
    """REOPENED halfway between the two closes (the export has no reopen time), then the
    final close, of the same kind as the first since the disposition is the final one."""
    reopened = (row.text("reopened") or "").upper() in _REOPENED
    if not reopened or closed is None or final is None or final <= closed:
        return []
    row.quirks.add(Quirk.REOPENED)
    return [(CadEventType.REOPENED, closed + (final - closed) / 2), (closing, final)]


def _numbered_events(
    context: _Context,
    incident_id: str,
    steps: list[tuple[CadEventType, datetime]],
    disposition: str | None,
) -> list[CadEvent]:
    seen: Counter[CadEventType] = Counter({CadEventType.CREATED: 1})
    events: list[CadEvent] = []
    for kind, moment in steps:
        seen[kind] += 1
        closes = kind in (CadEventType.CLEARED, CadEventType.CANCELLED)
        events.append(
            CadEvent(
                agency=context.agency.id,
                incident_id=incident_id,
                event_type=kind,
                occurred_at=moment,
                event_id=f"{incident_id}:{kind}:{seen[kind]}",
                disposition=disposition if closes else None,
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
