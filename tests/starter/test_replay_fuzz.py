"""Fuzzing the CAD CSV parser: whatever an export holds, every row comes out as a call or
as an error naming its line, and every call's events are ones the ingest API would take."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callerloop.cad.events import normalise_event
from callerloop.cad.replay import column_names, parse_cad_export
from callerloop.core.agency_config import load_agency_file
from callerloop.core.settings import PROJECT_ROOT

AGENCY = load_agency_file(PROJECT_ROOT / "agencies" / "example.toml")
COLUMNS = column_names(AGENCY)
HEADER = list(COLUMNS.values())
TIME_COLUMNS = {"created", "dispatched", "enroute", "on_scene", "first_closed", "final_closed"}

times = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
    lambda moment: moment.isoformat(sep=" ", timespec="milliseconds")
)
junk = st.text(max_size=30) | st.sampled_from(["", "NULL", "null", " ", "2025-13-40 25:61:00"])


def cell(key: str) -> st.SearchStrategy[str]:
    if key in TIME_COLUMNS:
        return times | junk
    if key == "priority":
        return st.integers(-5, 12).map(str) | junk
    if key == "source":
        return st.sampled_from([*AGENCY.cad.sources, "Telephone"]) | junk
    if key == "reopened":
        return st.sampled_from(["Yes", "No", "TRUE", "0"]) | junk
    if key == "disposition":
        return st.sampled_from(["CN-CALLER", "RPT", "TEST-1"]) | junk
    return st.text(min_size=1, max_size=12) | junk


rows = st.fixed_dictionaries({key: cell(key) for key in COLUMNS})
# Real exports also have ragged rows: cells missing at the end, or extra ones.
ragged = st.tuples(rows, st.integers(-3, 3))


def to_csv(records: list[tuple[dict[str, str], int]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    for record, width_change in records:
        values = [record[key] for key in COLUMNS]
        if width_change < 0:
            values = values[:width_change]
        else:
            values += ["extra"] * width_change
        writer.writerow(values)
    return buffer.getvalue()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ragged, max_size=8))
def test_every_row_is_a_call_or_an_error_with_its_line(
    records: list[tuple[dict[str, str], int]],
) -> None:
    text = to_csv(records)
    export = parse_cad_export(io.StringIO(text, newline=""), AGENCY)

    error_lines = {error.line for error in export.errors}
    physical_lines = len(io.StringIO(text, newline="").readlines())
    assert export.rows_read == len(records)
    assert len(export.calls) + len(error_lines) == export.rows_read
    for error in export.errors:
        assert 2 <= error.line <= physical_lines, error
        assert error.message and (error.column is None or error.column in HEADER), error
        assert str(error).startswith(f"line {error.line}")
    for call in export.calls:
        assert call.incident_id.strip()
        ids = [event.event_id for event in call.events]
        assert len(ids) == len(set(ids))
        moments = [event.occurred_at for event in call.events]
        assert moments == sorted(moments), "a call's events must be in time order"
        for event in call.events:
            assert event.occurred_at.tzinfo is not None
            assert normalise_event(event, AGENCY) == event  # what the ingest API accepts


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_any_text_as_an_export_is_parsed_or_refused_for_its_header(text: str) -> None:
    refusal: str | None = None
    try:
        export = parse_cad_export(io.StringIO(text), AGENCY)
    except ValueError as error:
        refusal = str(error)
    if refusal is not None:
        assert "header" in refusal or "column" in refusal or refusal.startswith("line "), refusal
    else:
        assert len(export.calls) + len({e.line for e in export.errors}) == export.rows_read


def test_a_field_too_large_for_the_csv_module_is_refused_with_its_line() -> None:
    record = {key: "x" for key in COLUMNS}
    text = to_csv([(record, 0), ({**record, "call_type": "x" * 200_000}, 0)])
    # The limit is process-wide and some libraries raise it on import: use the default.
    previous = csv.field_size_limit(131_072)
    try:
        with pytest.raises(ValueError, match=r"^line 3: the CSV cannot be read past here: field"):
            parse_cad_export(io.StringIO(text, newline=""), AGENCY)
    finally:
        csv.field_size_limit(previous)
