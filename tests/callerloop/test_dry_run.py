"""The go-live dry run (`callerloop cad dryrun`): an export through the agency's policy and
the lifecycle, with no Temporal, as tables: what would be texted, what not and by which
rule, the call types to review, and what the texts would cost."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from callerloop.cad.replay import parse_cad_export
from callerloop.cad.synthetic_day import synthetic_day, to_csv_lines
from callerloop.core.agency_config import AgencyConfig, load_agency_file
from callerloop.core.settings import PROJECT_ROOT
from callerloop.core.sms_encoding import measure
from callerloop.golive.dry_run import AVERAGE_MONTH_DAYS, DryRun, Table, dry_run
from callerloop.golive.report import write_report
from callerloop.messaging.messages import MessageContext, render_message
from tests.factories import county_row, parse_rows
from tests.requirements import real_cad_export

COUNTY: AgencyConfig = load_agency_file(PROJECT_ROOT / "agencies" / "example-county.toml")
EXAMPLE: AgencyConfig = load_agency_file(PROJECT_ROOT / "agencies" / "example.toml")
BASE_URL = "https://status.county.example"


def run_rows(*rows: dict[str, str], price: float = 0.01) -> DryRun:
    export = parse_rows(COUNTY, rows)
    return dry_run(export, COUNTY, public_base_url=BASE_URL, price_per_segment=price)


def table(run: DryRun, name: str) -> Table:
    return next(t for t in run.tables if t.name == name)


def row_for(run: DryRun, name: str, key: object) -> dict[str, object]:
    found = table(run, name)
    for row in found.rows:
        if row[0] == key:
            return dict(zip(found.columns, row, strict=True))
    raise AssertionError(f"no {key!r} in {name}: {found.rows}")


def number(cell: object) -> float:
    assert isinstance(cell, int | float), cell
    return cell


# Daytime calls (quiet hours are 21:00 to 08:00 in the county).
DAY = {
    "CallReceived": "9/3/2025 10:00",
    "FirstDispatched": "9/3/2025 10:20",
    "FirstArrived": "9/3/2025 10:40",
    "Closed": "9/3/2025 11:00",
}


def test_each_call_is_texted_as_the_lifecycle_would_or_excluded_by_its_rule() -> None:
    run = run_rows(
        county_row("EC-1", **DAY),
        county_row("EC-2", **DAY, SelfInitiated="Y"),
        county_row("EC-3", **DAY, InitialCallType="DOMESTIC DISTURBANCE"),
        county_row("EC-4", **DAY, InitialCallType="ROBBERY DELAY", FinalCallType="ROBBERY DELAY"),
        county_row("EC-5", **DAY, InitialPriority="E", FinalPriority="E"),
        county_row("EC-6", **DAY, FinalCallType="DOMESTIC DISTURBANCE"),
    )
    by_id = {call.incident_id: call for call in run.calls}
    assert [kind.value for kind in by_id["EC-1"].texts] == [
        "confirmation",
        "assigned",
        "cleared",
        "survey",
    ]
    assert {incident: by_id[incident].rule for incident in ("EC-2", "EC-3", "EC-4", "EC-5")} == {
        "EC-2": "officer_initiated",
        "EC-3": "call_type_sensitive",
        "EC-4": "call_type_excluded",
        "EC-5": "priority_escalated",
    }
    # Final type sensitive: the update comes at creation, so not one text.
    assert by_id["EC-6"].texts == () and by_id["EC-6"].rule == "call_type_sensitive"
    assert row_for(run, "by_call_type", "NOISE COMPLAINT") == {
        "call_type": "NOISE COMPLAINT",
        "calls": 4,
        "texted": 1,
        "confirmation": 1,
        "assigned": 1,
        "delayed": 0,
        "cleared": 1,
        "survey": 1,
        "not texted": 3,
        "why not": "call_type_sensitive (1); officer_initiated (1); priority_escalated (1)",
    }
    excluded: Counter[object] = Counter()
    for rule, _detail, calls in table(run, "exclusions").rows:
        excluded[rule] += calls  # type: ignore[operator]
    assert excluded == {
        "officer_initiated": 1,
        "call_type_sensitive": 2,
        "call_type_excluded": 1,
        "priority_escalated": 1,
    }


def test_a_call_left_waiting_gets_its_delay_notice_at_the_threshold() -> None:
    # 2D (rank 3) waits 1 h for a delay notice; dispatched 90 min after the call.
    late = {
        **DAY,
        "FirstDispatched": "9/3/2025 11:30",
        "FirstArrived": "",
        "Closed": "9/3/2025 12:00",
    }
    (call,) = run_rows(county_row("EC-7", **late)).calls
    assert [kind.value for kind in call.texts] == [
        "confirmation",
        "delayed",
        "assigned",
        "cleared",
        "survey",
    ]


def test_the_review_list_names_watch_words_reclassifications_and_new_types() -> None:
    weeks_later = {
        "CallReceived": "10/1/2025 10:00",
        "FirstDispatched": "10/1/2025 10:20",
        "FirstArrived": "10/1/2025 10:40",
        "Closed": "10/1/2025 11:00",
    }
    run = run_rows(
        county_row("EC-8", **DAY, InitialCallType="ANIMAL ABUSE", FinalCallType="ANIMAL ABUSE"),
        county_row("EC-9", **DAY, FinalCallType="LARCENY FROM AUTO"),
        county_row("EC-10", **weeks_later, InitialCallType="E-SCOOTER", FinalCallType="E-SCOOTER"),
    )
    review = {(call_type, why) for call_type, why, _, _ in table(run, "review").rows}
    assert review == {
        ("ANIMAL ABUSE", "would be texted, but its name has ABUSE"),
        ("NOISE COMPLAINT", "became LARCENY FROM AUTO (initial and final type differ)"),
        ("E-SCOOTER", "first seen 2025-10-01"),
    }
    assert run.headline["call types to review"] == 3


def test_segments_and_cost_follow_the_templates_as_they_render() -> None:
    run = run_rows(county_row("EC-11", **DAY), county_row("EC-12", **DAY), price=0.02)
    (call, _) = run.calls
    language = call.language or "en"
    link = f"{BASE_URL}/s/" + "x" * 22
    confirmation = render_message(
        COUNTY, "confirmation", language, MessageContext("EC-11", status_url=link)
    )
    assert call.segments[0] == measure(confirmation).segments
    volume = {(row[0], row[1]): row for row in table(run, "volume").rows}
    confirmations = [row for (kind, _), row in volume.items() if kind == "confirmation"]
    segments = sum(number(row[4]) for row in confirmations)
    assert sum(number(row[2]) for row in confirmations) == 2
    per_month = segments / 1 * AVERAGE_MONTH_DAYS  # both calls on one day
    cost = sum(number(row[6]) for row in confirmations)
    assert cost == pytest.approx(per_month * 0.02, abs=0.02)
    assert run.headline["texts"] == 8


def test_refused_rows_are_listed_and_the_rest_still_run() -> None:
    run = run_rows(county_row("EC-13", **DAY), county_row("EC-14", **DAY, InitialPriority="9Z"))
    assert [call.incident_id for call in run.calls] == ["EC-13"]
    (refused,) = table(run, "refused_rows").rows
    assert refused[:3] == (3, "InitialPriority", "9Z")
    assert run.headline["rows not read"] == 1


def test_the_report_is_deterministic_and_written_as_html_and_csv(tmp_path: Path) -> None:
    lines = to_csv_lines(synthetic_day(COUNTY, date(2025, 9, 3)))

    def report(out: Path) -> dict[str, bytes]:
        run = dry_run(parse_cad_export(lines, COUNTY), COUNTY, public_base_url=BASE_URL)
        write_report(run, out)
        return {path.name: path.read_bytes() for path in sorted(out.iterdir())}

    first, second = report(tmp_path / "a"), report(tmp_path / "b")
    assert first == second
    assert set(first) == {
        "report.html",
        "by_call_type.csv",
        "by_priority.csv",
        "by_source.csv",
        "exclusions.csv",
        "review.csv",
        "volume.csv",
        "refused_rows.csv",
    }
    html = first["report.html"].decode()
    assert "Go-live dry run: Example County Sheriff" in html
    assert 'href="review.csv"' in html
    rows = list(csv.reader((tmp_path / "a" / "by_source.csv").open(encoding="utf-8")))
    assert rows[0][:3] == ["source", "calls", "texted"]
    assert {row[0] for row in rows[1:]} == {"phone", "officer"}


def test_a_negative_price_is_refused() -> None:
    with pytest.raises(ValueError, match="price per segment must be >= 0"):
        dry_run(
            parse_rows(COUNTY, [county_row("EC-15")]),
            COUNTY,
            public_base_url=BASE_URL,
            price_per_segment=-1,
        )


def test_the_whole_real_export(tmp_path: Path) -> None:
    with real_cad_export().open(encoding="utf-8-sig", newline="") as handle:
        export = parse_cad_export(handle, EXAMPLE)
    run = dry_run(export, EXAMPLE, public_base_url=BASE_URL)
    assert run.headline["calls"] == len(export.calls) == 14_580
    assert run.days == 98
    assert 0.3 < float(run.headline["texted share"]) < 0.6  # type: ignore[arg-type]
    review = {call_type for call_type, *_ in table(run, "review").rows}
    assert "ANIMAL ABUSE-NEGLECT" in review  # texted by example.toml, and worth a look
    assert write_report(run, tmp_path).exists()
