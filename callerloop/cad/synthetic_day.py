"""A synthetic day of CAD calls for service, shaped like a real dispatch centre's.

The rows take the shape of the agency's own export (`[replay]`: its column names, its
first time format, its words for sources and its codes for priorities, and a final type and
priority where it keeps them), so `parse_cad_export` reads them exactly as it reads a real
export; use them to demo or load-test callerloop without real data.

Every figure below was derived from a 98-day real CAD export (14,589 police calls from
2025-08-24 to 2025-11-29, described in ../shared/data/README.md): counts, shares and
quantiles only, never rows. This module never reads that file.
"""

from __future__ import annotations

import bisect
import csv
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from io import StringIO
from pathlib import Path
from typing import TextIO, TypeVar

from callerloop.cad.replay import LOGICAL_COLUMNS, column_names
from callerloop.core.agency_config import AgencyConfig
from workflows.model import CallSource

__all__ = [
    "CALL_TYPES",
    "CITIZEN_DISPATCH_MEDIAN_MINUTES",
    "DAILY_CALLS_MEAN",
    "PRIORITY_SHARES",
    "SOURCE_SHARES",
    "CallTypeProfile",
    "synthetic_day",
    "to_csv_lines",
    "write_csv",
]

PHONE, E911, TEXT = CallSource.PHONE, CallSource.E911, CallSource.TEXT
OFFICER, RADIO = CallSource.OFFICER, CallSource.RADIO
OTHER_AGENCY, UNKNOWN = CallSource.OTHER_AGENCY, CallSource.UNKNOWN

# --- the real export's figures (98 days, 14,589 calls) -------------------------------

DAILY_CALLS_MEAN = 149  # per day: 80 to 246, median 132; weekdays ~155, Sundays ~122
DAILY_CALLS_RANGE = (80, 246)
# Calls created in each hour of the day, 00:00 first.
HOUR_WEIGHTS = (
    423, 367, 297, 247, 238, 242, 329, 587, 882, 962, 899, 857,
    813, 821, 831, 859, 789, 777, 625, 583, 537, 492, 611, 521,
)  # fmt: skip
# Overall mixes, for checking the synthetic day against (the tables below produce them).
SOURCE_SHARES: dict[CallSource, float] = {
    PHONE: 0.530, E911: 0.207, OFFICER: 0.171, RADIO: 0.062,
    TEXT: 0.014, UNKNOWN: 0.012, OTHER_AGENCY: 0.004,
}  # fmt: skip
PRIORITY_SHARES: dict[int, float] = {2: 0.588, 4: 0.240, 3: 0.091, 8: 0.041, 1: 0.038}
# Creation to dispatch for caller-originated calls (phone, 911, text), in minutes.
CITIZEN_DISPATCH_MEDIAN_MINUTES = 7.3
CITIZEN_DISPATCH_P90_MINUTES = 69.7


@dataclass(frozen=True)
class CallTypeProfile:
    name: str
    priorities: Mapping[int, int]  # calls by priority
    sources: Mapping[CallSource, int]  # calls by source
    dispositions: Mapping[str, int]  # closed calls by disposition, cancellations aside

    @property
    def calls(self) -> int:
        return sum(self.priorities.values())


# The 60 most common call types (90% of calls). The other 122 types' calls are folded in,
# by priority into each type's priority counts and by source into its source counts, so
# the overall priority and source mixes stay the real ones. Shares under 2% (priority),
# 1% (source) or 5% (disposition) of a type are left out.
# fmt: off
CALL_TYPES: tuple[CallTypeProfile, ...] = (
    CallTypeProfile("TRAFFIC STOP", {2: 1630},
                    {OFFICER: 1468, RADIO: 122}, {"CI-Citation": 847, "NR-No Report": 689}),
    CallTypeProfile("DISORDERLY CONDUCT", {2: 1233, 3: 86, 4: 37},
                    {PHONE: 796, E911: 596, RADIO: 49, OFFICER: 15}, {"NR-No Report": 1207}),
    CallTypeProfile("PARKING COMPLAINT", {4: 1170, 3: 185},
                    {PHONE: 1243, OFFICER: 22, RADIO: 17},
                    {"NR-No Report": 686, "CI-Citation": 452}),
    CallTypeProfile("OFF DUTY DETAIL", {8: 602},
                    {OFFICER: 538, PHONE: 57, RADIO: 14, UNKNOWN: 13}, {"NR-No Report": 599}),
    CallTypeProfile("SUSPICIOUS EVENT", {2: 498, 3: 47, 4: 46},
                    {PHONE: 428, E911: 173, RADIO: 17, OFFICER: 6}, {"NR-No Report": 522}),
    CallTypeProfile("MVC PROPERTY DAMAGE", {2: 507},
                    {E911: 284, PHONE: 238, RADIO: 38, OFFICER: 6},
                    {"NR-No Report": 417, "RE-Report": 33, "CI-Citation": 33}),
    CallTypeProfile("ALARM COMMERCIAL", {2: 487, 1: 42},
                    {PHONE: 395, TEXT: 138, E911: 10},
                    {"FALSE-False Alarm": 301, "NR-No Report": 162}),
    CallTypeProfile("DOMESTIC VIOL NO INJ", {2: 419, 1: 74},
                    {E911: 330, PHONE: 169}, {"NR-No Report": 336, "RE-Report": 98}),
    CallTypeProfile("WALK IN HQ LOBBY", {3: 391},
                    {PHONE: 386, E911: 12}, {"NR-No Report": 254, "RE-Report": 88}),
    CallTypeProfile("MENTAL HEALTH CASE", {2: 336},
                    {PHONE: 224, E911: 127, RADIO: 17, UNKNOWN: 5, OFFICER: 5},
                    {"NR-No Report": 227, "RE-Report": 80}),
    CallTypeProfile("POLICE INFORMATION", {4: 356},
                    {PHONE: 196, E911: 71, RADIO: 51, OFFICER: 23},
                    {"RE-Report": 278, "NR-No Report": 22}),
    CallTypeProfile("WARRANT SERVICE", {2: 276, 4: 12},
                    {PHONE: 163, RADIO: 89, OFFICER: 40, E911: 12, OTHER_AGENCY: 5},
                    {"RE-Report": 179, "NR-No Report": 74, "SUP-Supplement": 19}),
    CallTypeProfile("TRESPASSING IN PROG", {2: 278, 3: 7},
                    {PHONE: 216, E911: 70, RADIO: 14, OFFICER: 7},
                    {"NR-No Report": 240, "RE-Report": 24}),
    CallTypeProfile("PUBLIC SERVICE MULTI OFFICER", {2: 130, 3: 71, 4: 77},
                    {PHONE: 253, E911: 26}, {"NR-No Report": 231}),
    CallTypeProfile("TROUBLE UNKNOWN NO EMS", {2: 237, 1: 16, 3: 7},
                    {E911: 165, PHONE: 94, TEXT: 10}, {"NR-No Report": 221}),
    CallTypeProfile("ASSIST CITIZEN PROMPT", {3: 211, 4: 10, 2: 6},
                    {PHONE: 167, E911: 50, RADIO: 7, OFFICER: 4}, {"NR-No Report": 191}),
    CallTypeProfile("ASSIST CITIZEN DELAY", {4: 235},
                    {PHONE: 190, E911: 28, RADIO: 3, OFFICER: 2}, {"NR-No Report": 182}),
    CallTypeProfile("LARCENY COMM IN PROG", {2: 179, 3: 8, 4: 5},
                    {PHONE: 107, E911: 87, RADIO: 10, OFFICER: 4},
                    {"RE-Report": 143, "NR-No Report": 35}),
    CallTypeProfile("TROUBLE UNKNOWN EMS", {2: 142, 1: 88},
                    {E911: 134, PHONE: 62, TEXT: 2}, {"NR-No Report": 162}),
    CallTypeProfile("ADMINISTRATIVE TASK", {2: 166, 3: 10, 4: 5},
                    {PHONE: 166, RADIO: 16, OFFICER: 7, E911: 2}, {"NR-No Report": 159}),
    CallTypeProfile("911 HANG UP", {2: 169, 3: 6},
                    {E911: 174, PHONE: 17}, {"NR-No Report": 147, "FALSE-False Alarm": 11}),
    CallTypeProfile("NOISE COMPLAINT IN PROG", {4: 193},
                    {PHONE: 173, E911: 7}, {"NR-No Report": 153}),
    CallTypeProfile("NOISE COMPLAINT DELAY", {4: 181},
                    {PHONE: 153, E911: 15, OFFICER: 2}, {"NR-No Report": 144}),
    CallTypeProfile("ALARM RESIDENTIAL", {2: 141, 1: 7},
                    {PHONE: 96, TEXT: 54, E911: 2}, {"NR-No Report": 69, "FALSE-False Alarm": 57}),
    CallTypeProfile("DIP - DRUNK/INTOX PERSON", {2: 137},
                    {PHONE: 84, E911: 46, RADIO: 10, OFFICER: 7, UNKNOWN: 2},
                    {"NR-No Report": 92, "RE-Report": 39}),
    CallTypeProfile("FLAG DOWN", {2: 138}, {OFFICER: 113, RADIO: 21}, {"NR-No Report": 120}),
    CallTypeProfile("ASSIST OUTSIDE AGENCY", {2: 81, 4: 42, 3: 12, 1: 14},
                    {PHONE: 80, OTHER_AGENCY: 49, OFFICER: 4, E911: 5, RADIO: 2},
                    {"NR-No Report": 114, "RE-Report": 10}),
    CallTypeProfile("ANIMAL COMPLAINT", {4: 151},
                    {PHONE: 130, E911: 8, RADIO: 2, OFFICER: 2},
                    {"ACOR-Animal Control Report": 113, "RE-Report": 10}),
    CallTypeProfile("MVC HIT/RUN NO INJURY", {2: 118, 4: 10, 3: 7},
                    {E911: 81, PHONE: 58, RADIO: 3}, {"RE-Report": 67, "NR-No Report": 56}),
    CallTypeProfile("DISABLED MOTORIST", {2: 131},
                    {PHONE: 76, E911: 33, RADIO: 17, OFFICER: 12}, {"NR-No Report": 119}),
    CallTypeProfile("SUBJECT STOP", {2: 122}, {OFFICER: 81, RADIO: 41}, {"NR-No Report": 105}),
    CallTypeProfile("ON VIEW", {2: 121},
                    {UNKNOWN: 53, RADIO: 49, OFFICER: 19, PHONE: 2, E911: 2},
                    {"NR-No Report": 108}),
    CallTypeProfile("ASSAULT NO INJURY IN PROG", {2: 111, 1: 9},
                    {E911: 88, PHONE: 29, RADIO: 10, OFFICER: 2},
                    {"RE-Report": 83, "NR-No Report": 26}),
    CallTypeProfile("PROPERTY FOUND", {4: 121},
                    {PHONE: 89, OFFICER: 11, RADIO: 10, E911: 5},
                    {"RE-Report": 64, "NR-No Report": 38}),
    CallTypeProfile("ANIMAL SICK-INJURED", {2: 106},
                    {PHONE: 105, E911: 6, RADIO: 3}, {"ACOR-Animal Control Report": 94}),
    CallTypeProfile("MVC HIT/RUN NO INJ DELAY", {4: 120},
                    {PHONE: 99, E911: 13}, {"RE-Report": 65, "NR-No Report": 34}),
    CallTypeProfile("CIVIL PROCESS EVICTION", {4: 103, 2: 13},
                    {RADIO: 86, OFFICER: 18, PHONE: 6, E911: 1}, {"NR-No Report": 97}),
    CallTypeProfile("HAZARD", {2: 93, 3: 9}, {PHONE: 87, E911: 20, RADIO: 1}, {"NR-No Report": 93}),
    CallTypeProfile("ASSIST FIRE - IMMEDIATE", {2: 92, 1: 14},
                    {UNKNOWN: 40, E911: 33, RADIO: 19, PHONE: 11, OFFICER: 2},
                    {"NR-No Report": 86}),
    CallTypeProfile("ANIMAL DECEASED", {3: 94, 4: 2},
                    {PHONE: 86, E911: 5, RADIO: 3, OFFICER: 2},
                    {"ACOR-Animal Control Report": 67, "ACONR-Animal Control No Report": 8,
                     "NR-No Report": 6, "RE-Report": 5}),
    CallTypeProfile("SHOPLIFTING IN PROG", {2: 87, 4: 2},
                    {PHONE: 62, E911: 23, RADIO: 7, OFFICER: 4},
                    {"RE-Report": 66, "NR-No Report": 19}),
    CallTypeProfile("DRUG COMPLAINT IN PROG", {2: 76, 3: 7, 4: 4},
                    {PHONE: 63, E911: 24, RADIO: 3, OFFICER: 2},
                    {"NR-No Report": 72, "RE-Report": 8}),
    CallTypeProfile("LARCENY FROM AUTO DELAY", {4: 91},
                    {PHONE: 77, E911: 8, RADIO: 1}, {"RE-Report": 63, "NR-No Report": 13}),
    CallTypeProfile("PROTECTIVE ORDER ISSUED", {4: 74, 3: 9},
                    {PHONE: 53, RADIO: 19, OFFICER: 8}, {"NR-No Report": 62, "RE-Report": 5}),
    CallTypeProfile("SUICIDE IN PROG NO INJ", {1: 111, 2: 20},
                    {E911: 41, PHONE: 35, UNKNOWN: 1, RADIO: 1},
                    {"NR-No Report": 62, "RE-Report": 4}),
    CallTypeProfile("LARCENY OTHER DELAY", {4: 77, 3: 3},
                    {PHONE: 57, E911: 12, RADIO: 6, OFFICER: 1},
                    {"RE-Report": 48, "NR-No Report": 16}),
    CallTypeProfile("GLA DELAY", {4: 74},
                    {PHONE: 63, E911: 8}, {"RE-Report": 32, "NR-No Report": 29}),
    CallTypeProfile("ASSAULT NO INJURY DELAY", {4: 71},
                    {PHONE: 35, E911: 20, RADIO: 15, OFFICER: 1},
                    {"RE-Report": 51, "NR-No Report": 10}),
    CallTypeProfile("FIGHT NO WEAPONS", {1: 70, 2: 31},
                    {E911: 44, PHONE: 15, RADIO: 6, OFFICER: 3},
                    {"NR-No Report": 52, "RE-Report": 6}),
    CallTypeProfile("MVC CITY PROPERTY DAMAGE", {2: 61},
                    {PHONE: 24, RADIO: 21, E911: 15, OFFICER: 5, UNKNOWN: 2},
                    {"RE-Report": 48, "NR-No Report": 11}),
    CallTypeProfile("TRAFFIC DIRECTION-FIRE", {3: 61, 2: 2},
                    {UNKNOWN: 34, E911: 14, RADIO: 9, PHONE: 6, OFFICER: 1}, {"NR-No Report": 53}),
    CallTypeProfile("ANIMAL STRAY", {2: 57, 4: 2},
                    {PHONE: 57, E911: 5, RADIO: 1}, {"ACOR-Animal Control Report": 53}),
    CallTypeProfile("DWI - DRUNK/INTOX DRIVER", {2: 56},
                    {E911: 27, PHONE: 15, RADIO: 13, OFFICER: 7},
                    {"RE-Report": 33, "NR-No Report": 20}),
    CallTypeProfile("LARCENY COMMERCIAL DELAY", {4: 57, 3: 3},
                    {PHONE: 44, RADIO: 8, E911: 5, OFFICER: 1},
                    {"RE-Report": 39, "NR-No Report": 9}),
    CallTypeProfile("DEST OF PROP VEH DELAY", {4: 60},
                    {PHONE: 47, E911: 9}, {"RE-Report": 29, "NR-No Report": 19}),
    CallTypeProfile("TRAFFIC COMPLAINT", {4: 36, 3: 13, 2: 7},
                    {PHONE: 46, E911: 5, RADIO: 5}, {"NR-No Report": 48}),
    CallTypeProfile("ASSIST FIRE - EMERGENCY", {1: 90, 2: 9},
                    {E911: 24, UNKNOWN: 13, RADIO: 9, PHONE: 7, OFFICER: 1},
                    {"NR-No Report": 25, "RE-Report": 18}),
    CallTypeProfile("ANIMAL WILDLIFE", {3: 51, 4: 1},
                    {PHONE: 50, E911: 2}, {"ACOR-Animal Control Report": 41, "RE-Report": 4}),
    CallTypeProfile("FALSE PRETENSE/SWINDLE DELAY", {4: 55},
                    {PHONE: 46, RADIO: 2, E911: 2, OFFICER: 1},
                    {"RE-Report": 28, "NR-No Report": 17}),
    CallTypeProfile("OCCUPIED VEHICLE CHECK", {2: 48},
                    {OFFICER: 34, RADIO: 15}, {"NR-No Report": 46}),
)
# fmt: on

# Dispositions that mean cancelled (agencies/example.toml's cancelled_dispositions): 2.1%
# of calls, whatever their type. "CN-Cancellation" (1.6%) here includes its 5 combinations
# such as "CN-Cancellation,NR-No Report".
CANCELLATIONS: dict[str, int] = {
    "CN-Cancellation": 238, "DUPPD-Duplicate Police": 52, "TEST-Test Call": 9, "MD-911 Misdial": 1,
}  # fmt: skip
CANCELLED_SHARE = 300 / 14_589

# "Instant" calls have every time from creation to arrival equal: officer-initiated
# calls logged after the fact (2,211 of 2,501), many radio and uncaptured ones.
INSTANT_SHARE: dict[CallSource, float] = {
    OFFICER: 0.884, RADIO: 0.539, UNKNOWN: 0.379, PHONE: 0.004, E911: 0.003,
}  # fmt: skip

# Durations as quantile tables: minutes at each of these cumulative probabilities.
QUANTILE_POINTS = (0.01, 0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.99, 0.999)
Quantiles = tuple[float, ...]
# fmt: off
# Creation to dispatch of caller-originated calls that are not instant, by priority.
CITIZEN_DISPATCH_MINUTES: dict[int, Quantiles] = {
    1: (0.3, 0.6, 0.8, 1.2, 1.7, 2.6, 4.0, 5.9, 17.0, 359.0),
    2: (0.7, 1.2, 1.6, 2.5, 5.1, 12.1, 28.3, 50.4, 144.4, 318.7),
    3: (0.9, 2.0, 2.9, 5.6, 13.4, 35.3, 78.8, 122.9, 432.1, 2844.5),
    4: (0.5, 1.4, 2.5, 6.9, 22.4, 68.8, 172.3, 304.1, 1304.6, 3263.1),
}
# Creation to dispatch of every other call that is not instant.
OTHER_DISPATCH_MINUTES: Quantiles = (0.2, 0.3, 0.3, 0.5, 0.8, 4.9, 51.4, 168.8, 535.3, 980.2)
ENROUTE_MINUTES: Quantiles = (0.0, 0.0, 0.0, 0.0, 0.1, 0.1, 0.3, 0.5, 2.4, 53.6)
ARRIVAL_MINUTES: Quantiles = (0.0, 0.0, 0.0, 1.9, 5.5, 10.3, 18.0, 27.1, 100.3, 909.2)
ON_SCENE_MINUTES: Quantiles = (0.0, 0.9, 3.1, 8.6, 25.6, 79.4, 202.0, 310.7, 577.9, 2061.4)
# From the last step to the close when no unit arrived.
UNATTENDED_CLOSE_MINUTES: Quantiles = (0.0, 0.1, 0.1, 0.6, 7.4, 44.4, 125.3, 176.9, 388.9, 608.7)
INSTANT_CLOSE_MINUTES: Quantiles = (0.5, 3.8, 4.6, 6.7, 13.4, 82.8, 310.0, 472.3, 543.6, 998.2)
# First close to final close of reopened calls.
REOPEN_GAP_MINUTES: Quantiles = (0.0, 0.0, 3.1, 70.4, 389.6, 1279.6, 2096.3, 2844.1, 5355.6, 7060.0)
# fmt: on

# Shares of calls that are not instant, cancelled or not, with no en-route time, and with
# an en-route time but no arrival.
NO_ENROUTE_SHARE = {True: 14 / 287, False: 317 / 11_501}
NO_ARRIVAL_SHARE = {True: 183 / 273, False: 1_142 / 11_184}
# Reopened: 352 calls (2.4%), nearly all of them not instant.
REOPENED_SHARE = {True: 8 / 2_801, False: 344 / 11_788}  # by "instant"
# Calls never reopened whose final close time is NULL; the others close again ~0.1 s later.
NO_FINAL_CLOSE_SHARE = 1_264 / 14_237
TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # as the export writes them, trimmed to milliseconds
# Calls whose type or priority changed after creation, for an export that keeps both. The
# real export keeps only the final type, so this share is an assumption, not a figure.
RECLASSIFIED_SHARE = 0.05
# Columns written only for an agency whose `[replay.columns]` names them.
_OPTIONAL_COLUMNS = frozenset({"final_call_type", "final_priority"})
# Columns a synthetic day never writes: its callers are made up by the replay, and it
# names no officer (the assigned text names one only where the agency chooses).
_UNWRITTEN_COLUMNS = frozenset({"caller_phone", "caller_language", "officer"})

_CALL_TYPE_WEIGHTS = tuple(profile.calls for profile in CALL_TYPES)
_K = TypeVar("_K")


@dataclass
class _Times:
    dispatched: datetime
    enroute: datetime | None
    on_scene: datetime | None
    first_closed: datetime


def synthetic_day(
    agency: AgencyConfig, day: date, *, seed: int = 7, calls: int | None = None
) -> list[dict[str, str]]:
    """One day of calls as export rows named by `[replay.columns]`, in creation order.

    Deterministic for a given (seed, day); incident ids are SYN-<yy>-<day of year><n>.
    """
    count = DAILY_CALLS_MEAN if calls is None else calls
    if count < 0:
        raise ValueError(f"calls must be >= 0, got {count}")
    rng = random.Random(f"{seed}:{day.isoformat()}")
    created = sorted(_created_time(rng, day) for _ in range(count))
    shape = _Shape.of(agency)
    prefix = f"SYN-{day:%y}-{day.timetuple().tm_yday:03d}"
    return [
        _export_row(_synthetic_call(rng, f"{prefix}{n:03d}", at, shape), shape)
        for n, at in enumerate(created, start=1)
    ]


@dataclass(frozen=True)
class _Shape:
    """How the agency's export writes a call."""

    columns: Mapping[str, str]  # the logical columns it has, by their names in the export
    source_words: Mapping[CallSource, str]
    priority_codes: Mapping[int, str]  # rank -> the CAD's code, where it uses codes
    time_format: str
    reclassifies: bool  # it keeps the final type and priority beside the initial ones

    @classmethod
    def of(cls, agency: AgencyConfig) -> _Shape:
        names, mapped = column_names(agency), agency.replay.columns
        # An agency that names its columns has those; else every column but the optional
        # ones, each under its own name.
        kept = [
            key
            for key in LOGICAL_COLUMNS
            if key not in _UNWRITTEN_COLUMNS
            and (key in mapped or not (mapped or key in _OPTIONAL_COLUMNS))
        ]
        codes: dict[int, str] = {}
        for code, rank in agency.cad.priorities.items():
            codes.setdefault(rank, code)
        return cls(
            columns={key: names[key] for key in kept},
            source_words=_source_words(agency),
            priority_codes=codes,
            time_format=(agency.replay.time_formats or [TIME_FORMAT])[0],
            reclassifies=bool(_OPTIONAL_COLUMNS & set(agency.replay.columns)),
        )

    def priority(self, rank: int) -> str:
        return self.priority_codes.get(rank, str(rank))

    def time(self, moment: datetime) -> str:
        if self.time_format == TIME_FORMAT:
            return moment.strftime(TIME_FORMAT)[:-3]  # milliseconds, as the real export
        return moment.strftime(self.time_format)


def to_csv_lines(rows: Sequence[Mapping[str, str]]) -> list[str]:
    """The rows as CSV text lines (each ending in a newline), header first."""
    if not rows:
        return []
    buffer = StringIO()
    _write(rows, buffer)
    return buffer.getvalue().splitlines(keepends=True)


def write_csv(rows: Sequence[Mapping[str, str]], path: Path | str) -> None:
    with Path(path).open("w", newline="", encoding="utf-8") as file:
        _write(rows, file)


def _write(rows: Sequence[Mapping[str, str]], file: TextIO) -> None:
    if not rows:
        return  # no rows, no columns to name
    writer = csv.DictWriter(file, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


# --- one call -------------------------------------------------------------------------


@dataclass
class _Call:
    incident_id: str
    call_type: str
    priority: int
    source: str  # the agency's CAD word for it
    final_call_type: str
    final_priority: int
    created: datetime
    times: _Times
    final_closed: datetime | None
    reopened: bool
    disposition: str


def _synthetic_call(
    rng: random.Random, incident_id: str, created: datetime, shape: _Shape
) -> _Call:
    profile = rng.choices(CALL_TYPES, _CALL_TYPE_WEIGHTS)[0]
    priority = _pick(rng, profile.priorities)
    source = _pick(rng, profile.sources)
    cancelled = rng.random() < CANCELLED_SHARE
    disposition = _pick(rng, CANCELLATIONS if cancelled else profile.dispositions)
    instant = rng.random() < INSTANT_SHARE.get(source, 0.0)
    if instant:
        times = _instant_times(rng, created)
    else:
        times = _attended_times(rng, created, priority, source, cancelled)
    reopened = rng.random() < REOPENED_SHARE[instant]
    final = profile, priority
    if shape.reclassifies and rng.random() < RECLASSIFIED_SHARE:
        # Reclassified as another type seen from the same source, with one of its priorities.
        kin = [p for p in CALL_TYPES if source in p.sources and p is not profile] or [profile]
        retyped = rng.choices(kin, [p.calls for p in kin])[0]
        final = retyped, _pick(rng, retyped.priorities)
    return _Call(
        incident_id=incident_id,
        call_type=profile.name,
        priority=priority,
        source=shape.source_words.get(source, source.value),
        final_call_type=final[0].name,
        final_priority=final[1],
        created=created,
        times=times,
        final_closed=_final_close(rng, times.first_closed, reopened),
        reopened=reopened,
        disposition=disposition,
    )


def _created_time(rng: random.Random, day: date) -> datetime:
    hour = rng.choices(range(24), HOUR_WEIGHTS)[0]
    return datetime.combine(day, time(hour)) + timedelta(seconds=rng.randrange(3600))


def _instant_times(rng: random.Random, created: datetime) -> _Times:
    closed = created + _minutes(rng, INSTANT_CLOSE_MINUTES)
    return _Times(dispatched=created, enroute=created, on_scene=created, first_closed=closed)


def _attended_times(
    rng: random.Random, created: datetime, priority: int, source: CallSource, cancelled: bool
) -> _Times:
    citizen = source in (PHONE, E911, TEXT)
    delays = CITIZEN_DISPATCH_MINUTES.get(priority) if citizen else None
    dispatched = created + _minutes(rng, delays or OTHER_DISPATCH_MINUTES)
    enroute = on_scene = None
    if rng.random() >= NO_ENROUTE_SHARE[cancelled]:
        enroute = dispatched + _minutes(rng, ENROUTE_MINUTES)
        if rng.random() >= NO_ARRIVAL_SHARE[cancelled]:
            on_scene = enroute + _minutes(rng, ARRIVAL_MINUTES)
    if on_scene is not None:
        closed = on_scene + _minutes(rng, ON_SCENE_MINUTES)
    else:
        closed = (enroute or dispatched) + _minutes(rng, UNATTENDED_CLOSE_MINUTES)
    return _Times(dispatched, enroute, on_scene, closed)


def _final_close(rng: random.Random, first_closed: datetime, reopened: bool) -> datetime | None:
    if reopened:
        return first_closed + _minutes(rng, REOPEN_GAP_MINUTES)
    if rng.random() < NO_FINAL_CLOSE_SHARE:
        return None
    return first_closed + timedelta(seconds=rng.uniform(0.0, 0.2))


def _pick(rng: random.Random, counts: Mapping[_K, int]) -> _K:
    return rng.choices(list(counts), list(counts.values()))[0]


def _minutes(rng: random.Random, quantiles: Quantiles) -> timedelta:
    """A draw from the distribution the quantile table describes (linear in between)."""
    u = rng.random()
    i = bisect.bisect_left(QUANTILE_POINTS, u)
    if i == 0:
        minutes = quantiles[0]
    elif i == len(QUANTILE_POINTS):
        minutes = quantiles[-1]
    else:
        p0, p1 = QUANTILE_POINTS[i - 1], QUANTILE_POINTS[i]
        v0, v1 = quantiles[i - 1], quantiles[i]
        minutes = v0 + (v1 - v0) * (u - p0) / (p1 - p0)
    # The export has millisecond times; keep that grain.
    return timedelta(milliseconds=round(minutes * 60_000))


def _source_words(agency: AgencyConfig) -> dict[CallSource, str]:
    """The agency's first CAD word for each source. A source it has no word for takes the
    word of its kind (a caller's, or an officer's) where the CAD names fewer sources, as a
    `SelfInitiated` Y/N flag does; else it keeps callerloop's word (and replays as unknown)."""
    words: dict[CallSource, str] = {}
    for word, source in agency.cad.sources.items():
        words.setdefault(source, word)
    caller_word = next((words[kin] for kin in (PHONE, E911, TEXT) if kin in words), None)
    officer_word = words.get(OFFICER)
    for source in CallSource:
        kin_word = caller_word if source in (PHONE, E911, TEXT) else officer_word
        if source not in words and kin_word is not None:
            words[source] = kin_word
    return words


def _export_row(call: _Call, shape: _Shape) -> dict[str, str]:
    times = call.times
    values: dict[str, str | datetime | None] = {
        "incident_id": call.incident_id,
        "call_type": call.call_type,
        "priority": shape.priority(call.priority),
        "final_call_type": call.final_call_type,
        "final_priority": shape.priority(call.final_priority),
        "source": call.source,
        "created": call.created,
        "dispatched": times.dispatched,
        "enroute": times.enroute,
        "on_scene": times.on_scene,
        "first_closed": times.first_closed,
        "final_closed": call.final_closed,
        "reopened": "1" if call.reopened else "0",
        "disposition": call.disposition,
    }
    return {name: _cell(values[key], shape) for key, name in shape.columns.items()}


def _cell(value: str | datetime | None, shape: _Shape) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, datetime):
        return shape.time(value)
    return value
