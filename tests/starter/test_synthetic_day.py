"""A synthetic CAD day: read by the replay parser unchanged, shaped like the real export."""

from __future__ import annotations

import builtins
import collections
import re
import statistics
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest

from callerloop.cad.replay import ParsedExport, ReplayCall, parse_cad_export
from callerloop.cad.synthetic_day import (
    CITIZEN_DISPATCH_MEDIAN_MINUTES,
    DAILY_CALLS_MEAN,
    PRIORITY_SHARES,
    SOURCE_SHARES,
    synthetic_day,
    to_csv_lines,
    write_csv,
)
from callerloop.core.agency_config import AgencyConfig, load_agency_file
from callerloop.core.settings import PROJECT_ROOT
from workflows.model import CadEventType, CallSource

DAY = date(2025, 9, 3)
CALLER_SOURCES = (CallSource.PHONE, CallSource.E911, CallSource.TEXT)


@pytest.fixture(scope="module")
def agency() -> AgencyConfig:
    return load_agency_file(PROJECT_ROOT / "agencies" / "example.toml")


@pytest.fixture(scope="module")
def big_day(agency: AgencyConfig) -> ParsedExport:
    """Enough calls for the mixes to show (a real day has ~149)."""
    export = parse_cad_export(to_csv_lines(synthetic_day(agency, DAY, calls=4000)), agency)
    assert export.errors == []
    return export


def share(calls: list[ReplayCall], has: Callable[[ReplayCall], bool]) -> float:
    return sum(1 for call in calls if has(call)) / len(calls)


def dispatch_minutes(call: ReplayCall) -> float | None:
    for event in call.events:
        if event.event_type == CadEventType.ASSIGNED:
            return (event.occurred_at - call.created_at).total_seconds() / 60
    return None


def test_a_default_day_parses_with_no_errors(agency: AgencyConfig) -> None:
    rows = synthetic_day(agency, DAY)
    assert len(rows) == DAILY_CALLS_MEAN == 149
    assert set(rows[0]) == set(agency.replay.columns.values())
    export = parse_cad_export(to_csv_lines(rows), agency)
    assert (export.rows_read, len(export.calls), export.errors) == (149, 149, [])
    assert export.unmapped_sources == {}
    ids = [call.incident_id for call in export.calls]
    assert all(re.fullmatch(r"SYN-25-246\d{3}", i) for i in ids)  # 3 September: day 246
    assert len(set(ids)) == len(ids)
    assert all(call.created_at.date() == DAY for call in export.calls)


def test_the_day_is_deterministic_for_a_seed(agency: AgencyConfig) -> None:
    assert synthetic_day(agency, DAY, seed=3) == synthetic_day(agency, DAY, seed=3)
    assert synthetic_day(agency, DAY, seed=3) != synthetic_day(agency, DAY, seed=4)
    assert synthetic_day(agency, DAY) != synthetic_day(agency, DAY + timedelta(days=1))
    assert synthetic_day(agency, DAY, calls=0) == []


def test_it_reads_no_files(agency: AgencyConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """It must work without ../shared: the figures are in the module."""

    def no_open(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"synthetic_day opened {args}")

    monkeypatch.setattr(builtins, "open", no_open)
    monkeypatch.setattr(Path, "open", no_open)
    assert len(synthetic_day(agency, DAY, calls=50)) == 50


def test_the_mix_of_sources_and_priorities_follows_the_real_export(big_day: ParsedExport) -> None:
    calls = big_day.calls
    officer = share(calls, lambda c: c.events[0].source == CallSource.OFFICER)
    assert officer == pytest.approx(SOURCE_SHARES[CallSource.OFFICER], abs=0.03)
    priorities = collections.Counter(call.events[0].priority for call in calls)
    for priority, expected in PRIORITY_SHARES.items():
        actual = priorities[priority] / len(calls)
        assert actual == pytest.approx(expected, abs=0.03), f"priority {priority}"


def test_caller_calls_wait_for_dispatch_as_long_as_real_ones(big_day: ParsedExport) -> None:
    delays = [
        minutes
        for call in big_day.calls
        if call.events[0].source in CALLER_SOURCES
        and (minutes := dispatch_minutes(call)) is not None
    ]
    assert statistics.median(delays) == pytest.approx(CITIZEN_DISPATCH_MEDIAN_MINUTES, abs=3)
    assert statistics.quantiles(delays, n=10)[-1] > 30  # a long tail: p90 is ~70 min


def test_officer_calls_are_mostly_logged_after_the_fact(big_day: ParsedExport) -> None:
    officer = [c for c in big_day.calls if c.events[0].source == CallSource.OFFICER]
    instant = share(officer, lambda c: len({e.occurred_at for e in c.events[:4]}) == 1)
    assert instant == pytest.approx(0.88, abs=0.05)


def test_reopened_and_cancelled_calls_occur_as_often_as_in_reality(
    big_day: ParsedExport,
) -> None:
    def has(kind: CadEventType) -> Callable[[ReplayCall], bool]:
        return lambda call: any(e.event_type == kind for e in call.events)

    assert 0.01 <= share(big_day.calls, has(CadEventType.REOPENED)) <= 0.04  # real: 2.4%
    assert 0.01 <= share(big_day.calls, has(CadEventType.CANCELLED)) <= 0.035  # real: 2.1%


def test_calls_come_by_day_more_than_by_night(big_day: ParsedExport) -> None:
    hours = collections.Counter(call.created_at.hour for call in big_day.calls)
    morning = sum(hours[h] for h in range(8, 12))
    small_hours = sum(hours[h] for h in range(2, 6))
    assert morning > 2.5 * small_hours  # real: 3,600 against 1,024


def test_callers_get_the_agency_language_mix(big_day: ParsedExport) -> None:
    languages = collections.Counter(
        call.events[0].caller_language
        for call in big_day.calls
        if call.events[0].source in CALLER_SOURCES
    )
    total = sum(languages.values())
    assert total > 2500
    assert languages["en"] / total == pytest.approx(0.80, abs=0.03)
    assert languages["es"] / total == pytest.approx(0.15, abs=0.03)
    assert languages["fr"] / total == pytest.approx(0.05, abs=0.02)


def test_a_day_when_clocks_go_back_parses(agency: AgencyConfig) -> None:
    export = parse_cad_export(to_csv_lines(synthetic_day(agency, date(2025, 11, 2))), agency)
    assert export.errors == []
    for call in export.calls:
        times = [e.occurred_at for e in call.events]
        assert times == sorted(times)


def test_write_csv_writes_what_to_csv_lines_returns(agency: AgencyConfig, tmp_path: Path) -> None:
    rows = synthetic_day(agency, DAY, calls=20)
    path = tmp_path / "day.csv"
    write_csv(rows, path)
    assert path.read_text(encoding="utf-8").splitlines(keepends=True) == to_csv_lines(rows)
    with path.open(newline="", encoding="utf-8") as file:
        assert len(parse_cad_export(file, agency).calls) == 20
