"""Reading one row of a CAD export by what its columns mean, for every way an export comes
in: the CSV replay (`callerloop cad replay`, the go-live dry run) and the database poller.

`[replay.columns]` names each logical column, `[cad.priorities]` maps priority codes,
`[cad.sources]` the source words, `[replay] time_formats` and `time_zone` read the times.
A value that cannot be read is a `RowError` naming the line (or row), column and value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from callerloop.core.agency_config import EXPORT_COLUMNS, AgencyConfig
from workflows.cad_limits import MAX_LENGTHS, occurred_at_problem, priority_problem, text_problem
from workflows.model import CallSource
from workflows.policy import call_type_problem

# The columns every export must have (the rest may be missing or empty).
REQUIRED_COLUMNS = EXPORT_COLUMNS[:5]
# Status steps, by column, in the order a call goes through them.
STATUS_COLUMNS = ("dispatched", "enroute", "on_scene")
TIME_COLUMNS = ("created", "first_closed", "final_closed", *STATUS_COLUMNS)
_MISSING = frozenset({"", "NULL"})
# Columns whose text becomes the CadEvent field of the same name, bounded like it.
_TEXT_COLUMNS = (
    "incident_id",
    "call_type",
    "final_call_type",
    "disposition",
    "caller_phone",
    "caller_language",
    "officer",
)
# A value longer than this is not repeated in its row's error.
_SHOWN_LENGTH = 80
_REOPENED = frozenset({"1", "TRUE", "YES", "Y"})
_OWN_SOURCE_WORDS = {source.value: source for source in CallSource}


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
    line: int  # 1-based line in the file (the header is line 1), or the row's number in a poll
    column: str | None
    value: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        what = f"{self.value!r} {self.message}" if self.value is not None else self.message
        return f"{where}: {what}"


@dataclass(frozen=True)
class RowReading:
    """What reading any row of one agency's export needs, worked out once."""

    agency: AgencyConfig
    columns: Mapping[str, str]
    zone: ZoneInfo
    cancelled: tuple[re.Pattern[str], ...]
    time_formats: tuple[str, ...]
    now: datetime  # the wall clock, for the latest time an event may have


def column_names(agency: AgencyConfig) -> dict[str, str]:
    """Each logical column's name in the export; an unmapped one is named as itself."""
    return {key: agency.replay.columns.get(key, key) for key in EXPORT_COLUMNS}


def row_reading(agency: AgencyConfig, now: datetime | None = None) -> RowReading:
    return RowReading(
        agency=agency,
        columns=column_names(agency),
        zone=ZoneInfo(agency.replay.time_zone or agency.agency.time_zone),
        cancelled=tuple(re.compile(p) for p in agency.replay.cancelled_dispositions),
        time_formats=tuple(agency.replay.time_formats),
        now=now or datetime.now(UTC),
    )


def clean_header(fieldnames: Sequence[str] | None) -> list[str]:
    """A CSV header's names as the columns are named: a byte-order mark (which survives
    when a file was not opened as utf-8-sig) and spaces around names dropped."""
    if not fieldnames:
        raise ValueError("the CAD export is empty: no header line")
    return [name.lstrip("\ufeff").strip() for name in fieldnames]


def check_header(header: Sequence[str], columns: Mapping[str, str]) -> None:
    """Raises ValueError naming the required columns the header lacks."""
    missing = [columns[key] for key in REQUIRED_COLUMNS if columns[key] not in header]
    if missing:
        raise ValueError(
            f"the CAD export lacks required column(s) {missing} "
            f"(see [replay.columns]); its header is {list(header)}"
        )


def zoned(moment: datetime, zone: ZoneInfo) -> datetime:
    """A naive time is the zone's; an aware one is moved to it."""
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment.astimezone(zone)


class ExportRow:
    """One record of an export (a CSV line or a database row as text), read by logical
    column; problems are collected in `errors`."""

    def __init__(
        self, record: Mapping[str | None, object], line: int, width: int, context: RowReading
    ) -> None:
        self.record = record
        self.line = line
        self.context = context
        self.errors: list[RowError] = []
        self.quirks: set[Quirk] = set()
        if any(isinstance(v, str) and v.strip().upper() == "NULL" for v in record.values()):
            self.quirks.add(Quirk.NULL_VALUES)
        if None in record or any(value is None for value in record.values()):
            fields = width + len(extra_fields(record)) - missing_fields(record)
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
            moment = zoned(parse_time(raw, self.context.time_formats), self.context.zone)
        except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 moved to the zone
            formats = self.context.time_formats
            expected = f"an ISO 8601 time nor one of [replay] time_formats {list(formats)}"
            self.fail(key, shown(raw), f"is not {expected}" if formats else _NOT_ISO)
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
            self.fail(key, shown(raw), "is not an integer" + (codes if cad.priorities else ""))
            return None
        problem = priority_problem(priority, cad.priority_scale.bounds)
        if problem is not None:
            self.fail(key, shown(raw), f"is {problem}")
            return None
        return priority

    def check_texts(self) -> None:
        """Each text that becomes an event field is within that field's bounds, and a call
        type is one the safety rules can read."""
        for key in _TEXT_COLUMNS:
            value = self.text(key)
            bound = MAX_LENGTHS[key.removeprefix("final_")]
            if value is None:
                continue
            problem = text_problem(value, bound)
            if problem is None and key.endswith("call_type"):
                problem = call_type_problem(value)
            if problem is not None:
                self.fail(key, shown(value), problem)


_NOT_ISO = "is not a time like 2025-08-24 00:07:06.000 (set [replay] time_formats for others)"


def parse_time(raw: str, formats: Sequence[str]) -> datetime:
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


def shown(value: str) -> str | None:
    """The value as a row's error repeats it, or None when too long to repeat."""
    return value if len(value) <= _SHOWN_LENGTH else None


def extra_fields(record: Mapping[str | None, object]) -> list[object]:
    extra = record.get(None)
    return extra if isinstance(extra, list) else []


def missing_fields(record: Mapping[str | None, object]) -> int:
    return sum(1 for key, value in record.items() if key is not None and value is None)


@dataclass(frozen=True)
class CallRow:
    """A call as one row tells it: its values as they stand in the row, each checked."""

    incident_id: str
    call_type: str
    priority: int | None
    final_call_type: str | None
    final_priority: int | None
    created: datetime
    times: Mapping[str, datetime | None]  # by logical column in TIME_COLUMNS
    source: CallSource
    source_word: str  # as the CAD wrote it
    source_mapped: bool  # False: a word neither `[cad.sources]` nor callerloop knows
    disposition: str | None
    reopened: bool
    caller_phone: str | None = None
    caller_language: str | None = None
    officer: str | None = None

    def closing_cancels(self, reading: RowReading) -> bool:
        """The disposition says the call was cancelled, not cleared."""
        disposition = self.disposition
        return disposition is not None and any(p.search(disposition) for p in reading.cancelled)


def read_call(
    row: ExportRow, in_window: Callable[[datetime], bool] = lambda _: True
) -> CallRow | None:
    """The row's call, or None when the row is bad (see `row.errors`) or was created outside
    the window asked for (not this reading's business: its errors are dropped)."""
    row.check_texts()
    incident_id = row.text("incident_id")
    call_type = row.text("call_type")
    priority = row.priority()
    final_call_type = row.text("final_call_type")
    final_priority = row.priority("final_priority")
    times = {key: row.time(key) for key in TIME_COLUMNS}
    created = times["created"]
    if created is not None and not in_window(created):
        row.errors.clear()
        return None
    if incident_id is None:
        row.fail("incident_id", None, "incident id is missing")
        row.quirks.add(Quirk.MISSING_INCIDENT)
    if call_type is None:
        row.fail("call_type", None, "call type is missing")
    created_column = row.context.columns["created"]
    if created is None and not any(e.column == created_column for e in row.errors):
        row.fail("created", None, "creation time is missing")
    if row.errors or incident_id is None or call_type is None or created is None:
        return None
    word = row.text("source") or ""
    source = call_source(row, word)
    return CallRow(
        incident_id=incident_id,
        call_type=call_type,
        priority=priority,
        final_call_type=final_call_type,
        final_priority=final_priority,
        created=created,
        times=times,
        source=CallSource.UNKNOWN if source is None else source,
        source_word=word,
        source_mapped=source is not None,
        disposition=row.text("disposition"),
        reopened=(row.text("reopened") or "").upper() in _REOPENED,
        caller_phone=row.text("caller_phone"),
        caller_language=row.text("caller_language"),
        officer=row.text("officer"),
    )


def call_source(row: ExportRow, word: str) -> CallSource | None:
    """The CAD's word through `[cad.sources]`; callerloop's own words ("phone", "911")
    need no mapping. None for any other word (an unknown source, counted in reports)."""
    return row.context.agency.cad.sources.get(word) or _OWN_SOURCE_WORDS.get(word)
