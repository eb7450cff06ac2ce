"""An export shaped unlike example.toml's, read from its agency file alone
(agencies/example-county.toml): priority codes, initial and final call types and
priorities, a Y/N self-initiated flag and M/D/YYYY H:MM times in the county's zone. And the
bad configurations that must fail at load, naming the file, the key and what is wrong."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from callerloop.cad.poller import Poll
from callerloop.cad.replay import ParsedExport, Quirk, ReplayCall, parse_cad_export
from callerloop.cad.synthetic_day import synthetic_day, to_csv_lines
from callerloop.core.agency_config import AgencyConfig, AgencyConfigError, load_agency_file
from callerloop.core.settings import PROJECT_ROOT
from tests.factories import RecordingProvider, county_row, parse_rows
from tests.harness import Harness
from workflows.call_for_service import workflow_id_for
from workflows.model import CadEvent, CadEventType, CallSource, LineType

COUNTY_FILE = PROJECT_ROOT / "agencies" / "example-county.toml"
COUNTY: AgencyConfig = load_agency_file(COUNTY_FILE)
CHICAGO = ZoneInfo("America/Chicago")
T = CadEventType


def county_export(*rows: Mapping[str, str]) -> ParsedExport:
    return parse_rows(COUNTY, rows)


def only_call(export: ParsedExport) -> ReplayCall:
    assert export.errors == []
    (call,) = export.calls
    return call


def test_codes_flag_and_local_times_are_read_from_the_agency_file() -> None:
    call = only_call(county_export(county_row("EC-1")))
    created = call.events[0]
    assert created.priority == 3  # 2D's rank in [cad] priorities
    assert created.source == CallSource.PHONE  # SelfInitiated = N
    assert created.caller_phone is not None  # a resident called: a made-up mobile
    assert created.occurred_at == datetime(2025, 8, 24, 0, 7, tzinfo=CHICAGO)
    assert [
        (e.event_type, e.occurred_at.astimezone(CHICAGO).strftime("%H:%M")) for e in call.events
    ] == [
        (T.CREATED, "00:07"),
        (T.ASSIGNED, "00:31"),
        (T.ON_SCENE, "00:45"),
        (T.CLEARED, "01:10"),
    ]


def test_a_self_initiated_call_is_the_officers_and_has_no_caller() -> None:
    created = only_call(county_export(county_row("EC-2", SelfInitiated="Y"))).events[0]
    assert created.source == CallSource.OFFICER
    assert created.caller_phone is None


def test_the_final_type_and_priority_are_an_update_at_creation() -> None:
    export = county_export(
        county_row("EC-3", FinalCallType="DOMESTIC DISTURBANCE", FinalPriority="E")
    )
    call = only_call(export)
    created, updated = call.events[:2]
    assert (created.call_type, created.priority) == ("NOISE COMPLAINT", 3)
    assert updated.event_type == T.UPDATED
    assert (updated.call_type, updated.priority) == ("DOMESTIC DISTURBANCE", 1)
    assert updated.occurred_at == created.occurred_at
    assert export.quirks[Quirk.RECLASSIFIED] == 1


def test_an_unchanged_final_type_adds_no_event() -> None:
    call = only_call(county_export(county_row("EC-4")))
    assert T.UPDATED not in [event.event_type for event in call.events]


def test_an_arrival_with_no_dispatch_and_a_missing_close_are_skipped_steps() -> None:
    call = only_call(county_export(county_row("EC-5", FirstDispatched="", Closed="NULL")))
    assert [event.event_type for event in call.events] == [T.CREATED, T.ON_SCENE]


def test_iso_times_with_or_without_seconds_and_zone_are_read_too() -> None:
    export = county_export(
        county_row("EC-6", CallReceived="2025-08-24T00:07"),
        county_row("EC-7", CallReceived="2025-08-24 05:07:30+00:00"),
    )
    assert export.errors == []
    first, second = (call.events[0].occurred_at for call in export.calls)
    assert first == datetime(2025, 8, 24, 0, 7, tzinfo=CHICAGO)
    assert second == datetime(2025, 8, 24, 0, 7, 30, tzinfo=CHICAGO)


def test_a_priority_code_the_file_does_not_rank_is_refused_with_row_and_column() -> None:
    export = county_export(county_row("EC-8"), county_row("EC-9", FinalPriority="2X"))
    assert [call.incident_id for call in export.calls] == ["EC-8"]
    (error,) = export.errors
    assert (error.line, error.column, error.value) == (3, "FinalPriority", "2X")
    assert "nor a code in [cad.priorities]" in error.message and "'P3'" in error.message


def test_a_time_in_no_configured_format_is_refused_naming_the_formats() -> None:
    export = county_export(county_row("EC-10", CallReceived="24.08.2025 00:07"))
    (error,) = export.errors
    assert (error.column, error.value) == ("CallReceived", "24.08.2025 00:07")
    assert "'%m/%d/%Y %H:%M'" in error.message


def test_a_synthetic_day_takes_the_countys_shape_and_reads_back_without_error() -> None:
    rows = synthetic_day(COUNTY, date(2025, 9, 3), calls=400)
    # Every column the file names but the caller's number: the replay makes callers up.
    mapped = {key: name for key, name in COUNTY.replay.columns.items() if key != "caller_phone"}
    assert sorted(rows[0]) == sorted(mapped.values())
    assert {row["InitialPriority"] for row in rows} <= set(COUNTY.cad.priorities)
    assert {row["SelfInitiated"] for row in rows} == {"N", "Y"}
    assert datetime.strptime(rows[0]["CallReceived"], "%m/%d/%Y %H:%M")
    export = parse_cad_export(to_csv_lines(rows), COUNTY)
    assert export.errors == [] and export.unmapped_sources == {}
    assert len(export.calls) == 400
    assert 0 < export.quirks[Quirk.RECLASSIFIED] < 60  # about 5%


# --- through the real worker ----------------------------------------------------------


@pytest.fixture
def agency() -> AgencyConfig:
    """The harness's worker serves the county (tests.conftest's `harness` uses this)."""
    return COUNTY


async def test_a_call_sensitive_at_creation_is_never_texted_though_its_final_type_is_not(
    harness: Harness, provider: RecordingProvider
) -> None:
    export = county_export(
        county_row("EC-20", InitialCallType="DOMESTIC DISTURBANCE"),
        county_row("EC-21"),  # the same call, never sensitive: texted
    )
    assert export.errors == []
    sensitive, plain = export.calls
    for call in export.calls:
        for event in call.events:  # one by one, as CAD would: each stage has its text
            await harness.send(event)
    await harness.finish(plain.incident_id)
    await harness.finish(sensitive.incident_id)
    texted = [text.reference.rsplit("/", 1) for text in provider.accepted]
    assert [
        kind for call, kind in texted if call == workflow_id_for(COUNTY.id, sensitive.incident_id)
    ] == []
    assert [
        kind for call, kind in texted if call == workflow_id_for(COUNTY.id, plain.incident_id)
    ] == [
        "confirmation",
        "assigned",
        "cleared",
        "survey",
    ]


# --- bad configuration fails at load --------------------------------------------------


def county_file_with(tmp_path: Path, old: str, new: str) -> Path:
    text = COUNTY_FILE.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "example-county.toml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        pytest.param(
            'disposition = "Disposition"',
            'dispositon = "Disposition"',
            "replay.columns: unknown column(s) ['dispositon']",
            id="unknown-column",
        ),
        pytest.param(
            '"P3" = 4,',
            '"P3" = "routine",',
            "cad.priorities.P3: Input should be a valid integer",
            id="code-without-rank",
        ),
        pytest.param(
            '"P3" = 4,',
            '"P3" = 12,',
            "priorities {'P3': 12} not on priority_scale (1 to 8)",
            id="code-off-the-scale",
        ),
        pytest.param(
            'time_formats = ["%m/%d/%Y %H:%M"]',
            'time_formats = ["%m/%d/%Y %Q"]',
            "replay.time_formats.0: '%m/%d/%Y %Q' is not a time format strptime can read",
            id="bad-directive",
        ),
        pytest.param(
            'time_formats = ["%m/%d/%Y %H:%M"]',
            'time_formats = ["%m/%d %H:%M"]',
            "does not read back the year (%Y) of a time",
            id="format-without-year",
        ),
        pytest.param(
            'time_zone = "America/Chicago"\ntime_formats',
            'time_zone = "America/Chicgo"\ntime_formats',
            "replay.time_zone: unknown time zone 'America/Chicgo'",
            id="unknown-zone",
        ),
    ],
)
def test_bad_export_configuration_fails_at_load_naming_file_and_key(
    tmp_path: Path, old: str, new: str, complaint: str
) -> None:
    path = county_file_with(tmp_path, old, new)
    with pytest.raises(AgencyConfigError) as raised:
        load_agency_file(path)
    assert str(path) in str(raised.value)
    assert complaint in str(raised.value)


# --- the county's CAD database, polled from the file alone ------------------------------


def county_database(path: Path) -> tuple[sa.Engine, sa.Table]:
    """The county's reporting view as its `[cad.poll]` names it (`dbo.CallsForService`,
    SQLite's `dbo` an attached file): every column text, as the export writes them (codes,
    Y/N, M/D/YYYY H:MM), and the LastModified stamp."""
    poll = COUNTY.cad.poll
    assert poll is not None and poll.table is not None
    schema, table_name = poll.table.split(".")
    engine = sa.create_engine(f"sqlite:///{path / 'cad.db'}")

    @sa.event.listens_for(engine, "connect")
    def attach(connection: Any, _record: Any) -> None:
        connection.execute(f"ATTACH DATABASE '{path / 'dbo.db'}' AS {schema}")

    table = sa.Table(
        table_name,
        sa.MetaData(),
        *(sa.Column(name, sa.String()) for name in COUNTY.replay.columns.values()),
        sa.Column(poll.watermark, sa.DateTime()),
        schema=schema,
    )
    table.metadata.create_all(engine)
    return engine, table


async def test_the_countys_database_is_polled_from_its_file_alone_and_sensitive_first_never_texts(
    harness: Harness, provider: RecordingProvider, tmp_path: Path
) -> None:
    engine, table = county_database(tmp_path)
    poll = Poll(COUNTY, engine, harness.db)

    async def deliver(event: CadEvent) -> bool:
        await harness.send(event)  # one by one, each applied before the next
        return True

    try:
        first = await poll.run(None, None, deliver, started=False)  # go-live: "now"
        rows = [
            county_row(
                "EC-30", InitialCallType="DOMESTIC DISTURBANCE", CallbackNumber="+13125550130"
            ),
            county_row("EC-31", CallbackNumber="+13125550131"),
        ]
        with engine.begin() as connection:
            for n, row in enumerate(rows):
                stamp = datetime(2025, 8, 24, 1, 15 + n)
                connection.execute(table.insert().values({**row, poll.config.watermark: stamp}))
        for row in rows:
            provider.line_types[row["CallbackNumber"]] = LineType.MOBILE
        told = await poll.run(first.watermark, first.calls_from, deliver)
    finally:
        engine.dispose()

    assert (
        told.dead_letters == 0 and told.events == 4 + 5
    )  # four steps each, and EC-30's final type
    await harness.finish("EC-31")
    await harness.finish("EC-30")
    texted = [text.reference.rsplit("/", 1) for text in provider.accepted]
    assert [kind for call, kind in texted if call == workflow_id_for(COUNTY.id, "EC-30")] == []
    assert [kind for call, kind in texted if call == workflow_id_for(COUNTY.id, "EC-31")] == [
        "confirmation",
        "assigned",
        "cleared",
        "survey",
    ]
