"""Parsing a CAD CSV export into call events, ordering them, and replaying them paced."""

from __future__ import annotations

import asyncio
import collections
import csv
import itertools
import math
import os
import re
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from callerloop.cad.replay import (
    ParsedExport,
    Quirk,
    ReplayCall,
    ReplayJournal,
    RowError,
    first_calls,
    parse_cad_export,
    replay,
    timeline,
)
from callerloop.cad.synthetic_day import synthetic_day, to_csv_lines
from callerloop.core.agency_config import AgencyConfig, load_agency_file
from callerloop.core.settings import PROJECT_ROOT, SHARED_CAD_EXPORT
from workflows.model import CadEvent, CadEventType, CallSource, LineType

T = CadEventType
NEW_YORK = ZoneInfo("America/New_York")
FICTIONAL_MOBILE = re.compile(r"^\+1(703|571)55501\d\d$")
TIMEOUT = 5.0  # seconds: a replay bug fails the test instead of hanging it

HEADER = (
    "Master_Incident_Number,Agency,Problem,Priority_Number,Call_Reception,Incident_Start_Time,"
    "Incident_Dispatch_Time,Incident_Enroute_Time,Incident_Arrival_Time,"
    "Incident_First_Close_Time,Final_Closed_Time,Call_Reopened,Disposition"
)
# One row per case; the line number in the file is in the comment (the header is line 1).
ROWS = [
    # 2: an ordinary phone call
    "25-000001,POLICE,SUSPICIOUS EVENT,2,Phone,2025-09-01 10:00:00.000,2025-09-01 10:07:30.000,"
    "2025-09-01 10:08:00.000,2025-09-01 10:20:00.000,2025-09-01 10:50:00.000,"
    "2025-09-01 10:50:00.100,0,NR-No Report",
    # 3: officer-initiated, every time up to arrival equal
    "25-000002,POLICE,TRAFFIC STOP,2,OFFICER,2025-09-01 10:05:00.000,2025-09-01 10:05:00.000,"
    "2025-09-01 10:05:00.000,2025-09-01 10:05:00.000,2025-09-01 10:25:00.000,NULL,0,CI-Citation",
    # 4: reopened: closed at 10:00, closed again at 12:00
    "25-000003,POLICE,LARCENY FROM AUTO DELAY,4,E-911,2025-09-01 09:00:00.000,"
    "2025-09-01 09:30:00.000,2025-09-01 09:31:00.000,2025-09-01 09:45:00.000,"
    "2025-09-01 10:00:00.000,2025-09-01 12:00:00.000,1,RE-Report",
    # 5: cancelled before anyone went
    "25-000004,POLICE,NOISE COMPLAINT IN PROG,4,Text,2025-09-01 11:00:00.000,"
    "2025-09-01 11:40:00.000,NULL,NULL,2025-09-01 11:45:00.000,2025-09-01 11:45:00.050,0,"
    "CN-Cancellation",
    # 6: bad priority
    "25-000005,POLICE,HAZARD,x,Phone,2025-09-01 12:00:00.000,NULL,NULL,NULL,NULL,NULL,0,",
    # 7: bad time
    "25-000006,POLICE,HAZARD,2,Phone,2025-09-01 12:10:00.000,2025-13-40 99:00,NULL,NULL,"
    "NULL,NULL,0,",
    # 8: the incident of line 2 again
    "25-000001,POLICE,SUSPICIOUS EVENT,2,Phone,2025-09-01 10:00:00.000,NULL,NULL,NULL,NULL,NULL,0,",
    # 9: the CAD put the arrival after the close
    "25-000007,POLICE,HAZARD,3,Phone,2025-09-01 13:00:00.000,2025-09-01 13:05:00.000,"
    "2025-09-01 13:06:00.000,2025-09-01 13:30:00.000,2025-09-01 13:20:00.000,NULL,0,NR-No Report",
    # 10: a source the agency does not map
    "25-000008,POLICE,HAZARD,3,Carrier Pigeon,2025-09-01 14:00:00.000,NULL,NULL,NULL,NULL,NULL,0,",
    # 11: no incident id
    ",POLICE,HAZARD,3,Phone,2025-09-01 15:00:00.000,NULL,NULL,NULL,NULL,NULL,0,",
]


@pytest.fixture(scope="module")
def agency() -> AgencyConfig:
    return load_agency_file(PROJECT_ROOT / "agencies" / "example.toml")


@pytest.fixture(scope="module")
def export(agency: AgencyConfig) -> ParsedExport:
    return parse_cad_export([HEADER, *ROWS], agency)


def calls_by_id(export: ParsedExport) -> dict[str, ReplayCall]:
    return {call.incident_id: call for call in export.calls}


def kinds(call: ReplayCall) -> list[CadEventType]:
    return [event.event_type for event in call.events]


def at(hour: int, minute: int, second: float = 0.0) -> datetime:
    return datetime(2025, 9, 1, hour, minute, tzinfo=NEW_YORK) + timedelta(seconds=second)


def test_good_rows_become_calls_and_bad_rows_errors(export: ParsedExport) -> None:
    assert export.rows_read == 10
    assert [call.incident_id for call in export.calls] == [
        "25-000001", "25-000002", "25-000003", "25-000004", "25-000007", "25-000008",
    ]  # fmt: skip
    assert [(e.line, e.column) for e in export.errors] == [
        (6, "Priority_Number"),
        (7, "Incident_Dispatch_Time"),
        (8, "Master_Incident_Number"),
        (11, "Master_Incident_Number"),
    ]
    assert str(export.errors[0]) == "line 6, column Priority_Number: 'x' is not an integer"
    assert export.errors[1].value == "2025-13-40 99:00"
    assert "line 2" in export.errors[2].message


def test_an_ordinary_call_has_every_step_with_the_caller_details(export: ParsedExport) -> None:
    call = calls_by_id(export)["25-000001"]
    assert kinds(call) == [T.CREATED, T.ASSIGNED, T.ENROUTE, T.ON_SCENE, T.CLEARED]
    times = [at(10, 0), at(10, 7, 30), at(10, 8), at(10, 20), at(10, 50)]
    assert [e.occurred_at for e in call.events] == times
    assert call.created_at == at(10, 0)
    assert call.created_at.utcoffset() == timedelta(hours=-4)  # EDT
    created = call.events[0]
    assert created.agency == "example"
    assert created.case_number == "25-000001"
    assert created.priority == 2
    assert created.call_type == "SUSPICIOUS EVENT"
    assert created.source == CallSource.PHONE
    assert FICTIONAL_MOBILE.match(created.caller_phone or "")
    assert created.caller_line_type == LineType.MOBILE
    assert created.caller_language in ("en", "es", "fr")
    assert call.events[-1].disposition == "NR-No Report"
    assert [e.event_id for e in call.events] == [
        "25-000001:created:1",
        "25-000001:assigned:1",
        "25-000001:enroute:1",
        "25-000001:on_scene:1",
        "25-000001:cleared:1",
    ]


def test_an_officer_initiated_call_has_no_caller(export: ParsedExport) -> None:
    call = calls_by_id(export)["25-000002"]
    assert kinds(call) == [T.CREATED, T.ASSIGNED, T.ENROUTE, T.ON_SCENE, T.CLEARED]
    assert {e.occurred_at for e in call.events[:4]} == {at(10, 5)}
    created = call.events[0]
    assert created.source == CallSource.OFFICER
    assert (created.caller_phone, created.caller_line_type, created.caller_language) == (
        None, None, None,
    )  # fmt: skip


def test_a_reopened_call_reopens_halfway_and_closes_again(export: ParsedExport) -> None:
    call = calls_by_id(export)["25-000003"]
    assert kinds(call) == [
        T.CREATED, T.ASSIGNED, T.ENROUTE, T.ON_SCENE, T.CLEARED, T.REOPENED, T.CLEARED,
    ]  # fmt: skip
    assert [e.occurred_at for e in call.events[-3:]] == [at(10, 0), at(11, 0), at(12, 0)]
    assert [e.event_id for e in call.events[-3:]] == [
        "25-000003:cleared:1",
        "25-000003:reopened:1",
        "25-000003:cleared:2",
    ]
    assert call.events[0].source == CallSource.E911


def test_a_cancelled_call_is_cancelled_with_its_disposition(export: ParsedExport) -> None:
    call = calls_by_id(export)["25-000004"]
    assert kinds(call) == [T.CREATED, T.ASSIGNED, T.CANCELLED]  # no en-route, no arrival
    assert call.events[-1].disposition == "CN-Cancellation"
    assert call.events[0].source == CallSource.TEXT


def test_a_step_the_cad_timed_too_early_is_clamped(export: ParsedExport) -> None:
    call = calls_by_id(export)["25-000007"]
    assert kinds(call)[-2:] == [T.ON_SCENE, T.CLEARED]
    assert call.events[-1].occurred_at == call.events[-2].occurred_at == at(13, 30)


def test_the_exports_quirks_are_counted(export: ParsedExport) -> None:
    assert export.quirks == {
        Quirk.NULL_VALUES: 4,  # lines 3, 5, 9, 10 (bad rows and the duplicate are not calls)
        Quirk.INSTANT_STEPS: 1,  # line 3
        Quirk.REOPENED: 1,  # line 4
        Quirk.STEPS_OUT_OF_ORDER: 1,  # line 9
        Quirk.DUPLICATE_INCIDENT: 1,  # line 8
        Quirk.MISSING_INCIDENT: 1,  # line 11
    }


def test_a_dispatch_before_creation_is_replayed_at_creation(agency: AgencyConfig) -> None:
    row = (
        "25-000009,POLICE,HAZARD,3,Phone,2025-09-01 10:00:00.000,2025-09-01 09:59:58.000,"
        "2025-09-01 10:03:00.000,NULL,NULL,NULL,0,"
    )
    export = parse_cad_export([HEADER, row], agency)
    (call,) = export.calls
    assert [e.occurred_at for e in call.events] == [at(10, 0), at(10, 0), at(10, 3)]
    assert export.quirks[Quirk.STEP_BEFORE_CREATION] == 1
    assert export.quirks[Quirk.STEPS_OUT_OF_ORDER] == 0


def test_a_limit_keeps_the_earliest_created_calls(export: ParsedExport) -> None:
    assert [c.incident_id for c in first_calls(export.calls, 2)] == ["25-000003", "25-000001"]
    assert len(first_calls(export.calls, None)) == len(export.calls)


async def test_a_replay_resumes_from_its_journal_and_sends_each_event_once(
    export: ParsedExport, tmp_path: Path
) -> None:
    """The first run dies after a few events (like a killed process); the second, with the
    same journal, sends exactly the events the first did not."""
    events = timeline(export.calls)
    sent: list[str] = []

    class Killed(BaseException):
        pass

    async def dies_after_five(event: CadEvent) -> None:
        if len(sent) == 5:
            raise Killed
        sent.append(event.event_id)

    journal = ReplayJournal(tmp_path / "replay.journal")
    with pytest.raises(BaseExceptionGroup):
        await replay(events, dies_after_five, speed=0, max_in_flight=1, on_sent=journal.record)
    journal.close()
    assert len(sent) == 5

    resumed = ReplayJournal(tmp_path / "replay.journal")
    pending = resumed.pending(events)
    assert len(pending) == len(events) - 5

    async def send(event: CadEvent) -> None:
        sent.append(event.event_id)

    await replay(pending, send, speed=0, on_sent=resumed.record)
    resumed.close()
    assert sorted(sent) == sorted(e.event_id for e in events)
    assert ReplayJournal(tmp_path / "replay.journal").pending(events) == []


def test_an_unmapped_source_is_unknown_and_counted(export: ParsedExport) -> None:
    created = calls_by_id(export)["25-000008"].events[0]
    assert created.source == CallSource.UNKNOWN
    assert created.caller_phone is None
    assert export.unmapped_sources == {"Carrier Pigeon": 1}


def test_event_ids_are_unique_and_parsing_is_deterministic(
    agency: AgencyConfig, export: ParsedExport
) -> None:
    ids = [e.event_id for e in timeline(export.calls)]
    assert len(ids) == len(set(ids))
    assert parse_cad_export([HEADER, *ROWS], agency) == export


def _row(incident: str, call_type: str = "HAZARD", priority: str = "2", **times: str) -> str:
    """A CSV row of HEADER's columns: created at 12:00, dispatched at `dispatched`."""
    created = times.get("created", "2025-09-01 12:00:00.000")
    dispatched = times.get("dispatched", "NULL")
    fields = [incident, "POLICE", call_type, priority, "Phone", created, dispatched]
    return ",".join([*fields, "NULL", "NULL", "NULL", "NULL", "0", times.get("disposition", "")])


def test_a_row_out_of_bounds_is_refused_naming_row_and_column(agency: AgencyConfig) -> None:
    """Never delivered: a row whose value a call could not apply is a bad row, with its line
    and column, like any other (issue 20, finding 5)."""
    ahead = (datetime.now(NEW_YORK) + timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S")
    rows = [
        _row("25-100001", priority="9223372036854775808"),  # 2: beyond int64
        _row("25-100002", priority="9"),  # 3: example's scale is 1 to 8
        _row("25-100003", call_type="H" * 201),  # 4
        _row('"25-10\t0004"'),  # 5: a tab in a quoted field
        _row("25-100005", created="1999-12-31 18:59:59.000"),  # 6: 23:59:59 UTC
        _row("25-100006", dispatched=ahead),  # 7
        _row("25-100007", created="0001-01-01 00:00:00+05:00"),  # 8: year 0 in New York
        _row("25-100008", disposition="NR-" + "x" * 200),  # 9
        _row("25-100009", priority="8"),  # 10: the good one
    ]
    export = parse_cad_export([HEADER, *rows], agency)
    assert [call.incident_id for call in export.calls] == ["25-100009"]
    errors = [str(error) for error in export.errors]
    assert errors[5].startswith(
        f"line 7, column Incident_Dispatch_Time: {ahead!r} is more than 2 days ahead of the "
        "clock (latest accepted now: "
    )
    assert errors[:5] + errors[6:] == [
        "line 2, column Priority_Number: '9223372036854775808' is outside the signed 64-bit "
        "range of the CallPriority search attribute",
        "line 3, column Priority_Number: '9' is not on this agency's priority scale (1 to 8)",
        "line 4, column Problem: longer than 200 characters (201)",
        "line 5, column Master_Incident_Number: '25-10\\t0004' contains a control character "
        "(NUL, newline, …)",
        "line 6, column Incident_Start_Time: '1999-12-31 18:59:59.000' is before 2000-01-01: "
        "not a time a CAD event can have",
        "line 8, column Incident_Start_Time: '0001-01-01 00:00:00+05:00' is not a time like "
        "2025-08-24 00:07:06.000 (set [replay] time_formats for others)",
        "line 9, column Disposition: longer than 200 characters (203)",
    ]


def test_a_missing_required_column_names_it_and_the_header(agency: AgencyConfig) -> None:
    header = HEADER.replace("Problem,", "")
    with pytest.raises(ValueError, match=r"\['Problem'\].*Master_Incident_Number"):
        parse_cad_export([header], agency)


def test_since_and_until_select_by_creation_time(agency: AgencyConfig) -> None:
    window = parse_cad_export(
        [HEADER, *ROWS], agency, since=datetime(2025, 9, 1, 10, 0), until=at(11, 0)
    )
    assert [c.incident_id for c in window.calls] == ["25-000001", "25-000002"]
    # Line 8 repeats 25-000001 inside the window; lines 6 and 7 are outside it.
    assert [e.line for e in window.errors] == [8]


def test_the_language_mix_keeps_only_offered_languages(agency: AgencyConfig) -> None:
    rows = to_csv_lines(synthetic_day(agency, date(2025, 9, 1), calls=300))
    only_english = parse_cad_export(rows, agency, language_mix={"en": 1.0, "de": 5.0})
    nothing_offered = parse_cad_export(rows, agency, language_mix={"de": 1.0})
    for export in (only_english, nothing_offered):
        languages = {c.events[0].caller_language for c in export.calls}
        assert languages == {"en", None}  # None: calls with no caller


def test_phones_and_languages_depend_only_on_seed_and_incident(agency: AgencyConfig) -> None:
    rows = to_csv_lines(synthetic_day(agency, date(2025, 9, 1), calls=300))

    def callers(seed: int) -> dict[str, tuple[str | None, str | None]]:
        export = parse_cad_export(rows, agency, seed=seed)
        return {
            c.incident_id: (c.events[0].caller_phone, c.events[0].caller_language)
            for c in export.calls
            if c.events[0].caller_phone is not None
        }

    seven = callers(7)
    assert len(seven) > 150
    assert all(FICTIONAL_MOBILE.match(phone or "") for phone, _ in seven.values())
    assert agency.agency.sender_number not in {phone for phone, _ in seven.values()}
    assert callers(7) == seven
    # Another seed draws other numbers.
    assert sum(seven[i] != other for i, other in callers(8).items()) > 0.9 * len(seven)
    # The row order does not matter: each call's draw is its own.
    reversed_rows = parse_cad_export([rows[0], *reversed(rows[1:])], agency)
    phones = {c.incident_id: c.events[0].caller_phone for c in reversed_rows.calls}
    assert all(phones[i] == phone for i, (phone, _) in seven.items())


def test_phones_do_not_depend_on_the_process_hash_seed() -> None:
    script = (
        "from callerloop.core.agency_config import load_agency_file\n"
        "from callerloop.core.settings import PROJECT_ROOT\n"
        "from callerloop.cad.replay import parse_cad_export\n"
        "import sys\n"
        "agency = load_agency_file(PROJECT_ROOT / 'agencies' / 'example.toml')\n"
        "export = parse_cad_export(sys.stdin.read().splitlines(), agency)\n"
        "print([c.events[0].caller_phone for c in export.calls])\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            input="\n".join([HEADER, *ROWS]),
            capture_output=True,
            text=True,
            check=True,
            cwd=PROJECT_ROOT,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
        ).stdout
        for hash_seed in ("1", "2")
    }
    assert len(outputs) == 1


def test_timeline_orders_by_time_and_keeps_each_calls_order(export: ParsedExport) -> None:
    events = timeline(export.calls)
    assert [e.occurred_at for e in events] == sorted(e.occurred_at for e in events)
    assert events[0].incident_id == "25-000003"  # created first, at 09:00
    for call in export.calls:
        assert [e for e in events if e.incident_id == call.incident_id] == call.events


# --- replay ---------------------------------------------------------------------------


def event(incident: str, seconds: float, kind: CadEventType = T.CREATED) -> CadEvent:
    return CadEvent(
        agency="example",
        incident_id=incident,
        event_type=kind,
        occurred_at=at(10, 0, seconds),
        event_id=f"{incident}:{kind}:{seconds}",
    )


async def test_replay_paces_events_by_cad_time_over_speed() -> None:
    events = [event("A", 0), event("B", 0.5), event("A", 1, T.ASSIGNED), event("B", 2, T.ASSIGNED)]
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent_at: list[float] = []

    async def send(_: CadEvent) -> None:
        sent_at.append(loop.time() - started)

    report = await asyncio.wait_for(replay(events, send, speed=20), TIMEOUT)
    assert (report.sent, report.failed) == (4, [])
    for due, actual in zip([0, 0.025, 0.05, 0.1], sent_at, strict=True):
        assert due - 0.005 <= actual < due + 0.5
    assert report.elapsed_seconds >= 0.1 - 0.005


async def test_replay_keeps_order_within_an_incident_but_not_across() -> None:
    events = [event("A", 0), event("B", 0), event("A", 0, T.ASSIGNED), event("B", 0, T.ASSIGNED)]
    log: list[str] = []

    async def send(e: CadEvent) -> None:
        name = f"{e.incident_id}:{e.event_type}"
        log.append(f"start {name}")
        await asyncio.sleep(0.05 if name == "A:created" else 0.0)
        log.append(f"end {name}")

    await asyncio.wait_for(replay(events, send, speed=math.inf), TIMEOUT)
    assert log.index("start A:assigned") > log.index("end A:created")
    # B did not wait for A's slow send.
    assert log.index("end B:assigned") < log.index("end A:created")


async def test_a_failed_send_is_reported_and_the_replay_goes_on() -> None:
    events = [event("A", 0), event("A", 1, T.ASSIGNED), event("A", 2, T.CLEARED), event("B", 3)]
    delivered: list[CadEvent] = []

    async def send(e: CadEvent) -> None:
        if e.event_type == T.ASSIGNED:
            raise RuntimeError("temporal unavailable")

    report = await asyncio.wait_for(
        replay(events, send, speed=0, on_sent=delivered.append), TIMEOUT
    )
    assert report.sent == 3
    assert report.failed == [(events[1], "temporal unavailable")]
    assert delivered == [events[0], events[2], events[3]]


async def test_max_in_flight_bounds_concurrent_sends() -> None:
    events = [event(f"I{n}", 0) for n in range(12)]
    in_flight = peak = 0

    async def send(_: CadEvent) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001)
        in_flight -= 1

    report = await asyncio.wait_for(replay(events, send, speed=math.inf, max_in_flight=3), TIMEOUT)
    assert report.sent == 12
    assert peak == 3


async def test_replay_rejects_a_negative_speed() -> None:
    async def send(_: CadEvent) -> None:
        return None

    with pytest.raises(ValueError, match="speed"):
        await replay([event("A", 0)], send, speed=-1)
    assert (await replay([], send, speed=1)).sent == 0


# --- the real export ------------------------------------------------------------------


def test_the_real_export_parses(agency: AgencyConfig) -> None:
    if not SHARED_CAD_EXPORT.exists():
        pytest.skip(f"real CAD export not found at {SHARED_CAD_EXPORT} (not part of the repo)")
    with SHARED_CAD_EXPORT.open(newline="", encoding="utf-8") as file:
        export = parse_cad_export(file, agency)
    assert export.rows_read == 14_589
    bad_lines = {error.line for error in export.errors}
    assert len(export.calls) + len(bad_lines) == export.rows_read
    assert all(isinstance(error, RowError) and 2 <= error.line <= 14_590 for error in export.errors)
    per_day = collections.Counter(call.created_at.date() for call in export.calls)
    assert len(per_day) == 98
    assert all(80 <= count <= 246 for count in per_day.values())
    for call in export.calls:
        times = [e.occurred_at for e in call.events]
        assert times == sorted(times)
    assert export.quirks == real_export_quirks(), "counted quirks differ from the raw CSV's"


def real_export_quirks() -> collections.Counter[Quirk]:
    """The quirks counted straight from the CSV text, independently of the parser."""
    with SHARED_CAD_EXPORT.open(newline="", encoding="utf-8-sig") as file:
        rows = list(csv.DictReader(file))
    seen: set[str] = set()
    quirks: collections.Counter[Quirk] = collections.Counter()
    for row in rows:
        incident = row["Master_Incident_Number"]
        if not incident:
            quirks[Quirk.MISSING_INCIDENT] += 1
            continue
        if incident in seen:
            quirks[Quirk.DUPLICATE_INCIDENT] += 1
            continue
        seen.add(incident)

        created = row["Incident_Start_Time"]
        response = present(
            row, "Incident_Dispatch_Time", "Incident_Enroute_Time", "Incident_Arrival_Time"
        )
        # The first close, or the final one when the first is missing.
        first_close = present(row, "Incident_First_Close_Time", "Final_Closed_Time")[:1]
        steps = response + first_close
        if "NULL" in row.values():
            quirks[Quirk.NULL_VALUES] += 1
        if response and all(step == created for step in response):
            quirks[Quirk.INSTANT_STEPS] += 1
        if any(step < created for step in steps):
            quirks[Quirk.STEP_BEFORE_CREATION] += 1
        if any(b < a for a, b in itertools.pairwise(s for s in steps if s >= created)):
            quirks[Quirk.STEPS_OUT_OF_ORDER] += 1
        final = present(row, "Final_Closed_Time")
        if row["Call_Reopened"] == "1" and first_close and final and final[0] > max(steps):
            quirks[Quirk.REOPENED] += 1
    return +quirks


def present(row: dict[str, str], *columns: str) -> list[str]:
    """The columns' values that are there (neither empty nor NULL), in column order."""
    return [row[c] for c in columns if row[c] not in ("", "NULL")]


def test_an_officer_column_names_the_officer_on_the_assigned_event_only(
    agency: AgencyConfig,
) -> None:
    columns = {**agency.replay.columns, "officer": "Primary_Officer"}
    named = agency.model_copy(
        update={"replay": agency.replay.model_copy(update={"columns": columns})}
    )
    export = parse_cad_export([f"{HEADER},Primary_Officer", f"{ROWS[0]},Ofc. Lee #221"], named)
    [call] = export.calls
    officers = {event.event_type: event.officer for event in call.events}
    assert officers == {T.CREATED: None, T.ASSIGNED: "Ofc. Lee #221", T.ENROUTE: None,
                        T.ON_SCENE: None, T.CLEARED: None}  # fmt: skip


def test_a_call_type_no_safety_rule_can_read_is_a_row_error(agency: AgencyConfig) -> None:
    export = parse_cad_export([HEADER, ROWS[0].replace("SUSPICIOUS EVENT", "???")], agency)
    assert export.calls == []
    [error] = export.errors
    assert (error.line, error.column, error.value) == (2, "Problem", "???")
    assert "no safety rule can read it" in error.message
