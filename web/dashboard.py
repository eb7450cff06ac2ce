"""The staff dashboard (`/dashboard`), with the supervisors' comments inbox
(`/dashboard/comments`, web/comments_inbox.py): sign-in required (see `staff_auth`).

Each chart is an SVG drawn on the server from a table (`dashboard_data`), shown with a
one-sentence summary (its alt text) and a link to the same table as HTML and CSV.
Filters: agency and date range (the agency's days), checked with a clear error.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations.

import csv
import io
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import Session

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database
from web import charts
from web.comments_inbox import comments_inbox_router
from web.dashboard_data import (
    KINDS,
    FilterError,
    Filters,
    Table,
    delivery_rate,
    not_texted_by_reason,
    opt_out_rate,
    parse_filters,
    read,
    response_rate_by_group,
    response_rate_by_language,
    response_rate_by_month,
    response_rate_by_priority,
    satisfaction_by_group,
    satisfaction_by_language,
    satisfaction_by_month,
    satisfaction_by_priority,
    texts_per_day,
    time_to_first_text,
)
from web.staff_auth import DASHBOARD, LOGOUT_PATH, StaffAuth
from web.staff_pages import STAFF_HEADERS, StaffRenderer

CHART_CACHE_SECONDS = 60.0


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    read: Callable[[Session, Filters], Table]
    draw: Callable[[Table], str]


def _column(table: Table, index: int) -> list[Any]:
    return [row[index] for row in table.rows]


def _named(table: Table, name: str) -> list[Any]:
    return _column(table, table.columns.index(name))


def _by_question(
    table: Table,
) -> tuple[list[str], dict[str, list[float | None]], dict[str, tuple[list[Any], list[Any]]]]:
    """Satisfaction rows (value, question, …) as a series per question, and its intervals."""
    values = sorted({str(row[0]) for row in table.rows})
    share, low, high = (table.columns.index(c) for c in SHARE_SATISFIED)
    series: dict[str, list[float | None]] = {}
    intervals: dict[str, tuple[list[Any], list[Any]]] = {}
    for row in table.rows:
        at = values.index(str(row[0]))
        series.setdefault(row[1], [None] * len(values))[at] = row[share]
        lows, highs = intervals.setdefault(row[1], ([None] * len(values), [None] * len(values)))
        lows[at], highs[at] = row[low], row[high]
    return values, series, intervals


SHARE_SATISFIED = ("share satisfied", "share 95% low", "share 95% high")


def _satisfaction_lines(table: Table) -> str:
    months, series, intervals = _by_question(table)
    return charts.lines(months, series, percent=True, label="satisfied", intervals=intervals)


def _satisfaction_bars(table: Table) -> str:
    values, series, intervals = _by_question(table)
    return charts.bars(values, series, percent=True, label="satisfied", intervals=intervals)


def _response_rates(table: Table, *, horizontal: bool = False) -> str:
    """Each group's response rate, with its interval."""
    interval = (_named(table, "rate 95% low"), _named(table, "rate 95% high"))
    return charts.bars(
        [str(v) for v in _column(table, 0)],
        {"answered": _named(table, "response rate")},
        percent=True,
        horizontal=horizontal,
        label="response rate",
        axis=table.columns[0],
        intervals={"answered": interval},
    )


def _answered_vs_texted(table: Table) -> str:
    """Each group's share of the surveys (who was texted) beside its share of the
    responses (who answered, with its interval)."""
    answered = (_named(table, "share 95% low"), _named(table, "share 95% high"))
    return charts.bars(
        [str(v) for v in _column(table, 0)],
        {
            "texted": _named(table, "share of surveys"),
            "answered": _named(table, "share of responses"),
        },
        percent=True,
        horizontal=True,
        label="share",
        axis=table.columns[0],
        intervals={"answered": answered},
    )


CHARTS = {
    chart.id: chart
    for chart in [
        Chart(
            "texts",
            "Texts sent per day, by kind",
            texts_per_day,
            lambda t: charts.stacked_steps(
                _column(t, 0),
                {kind: _column(t, i + 1) for i, kind in enumerate(KINDS)},
                label="texts",
            ),
        ),
        Chart(
            "delivery",
            "Delivery rate",
            delivery_rate,
            lambda t: charts.lines(_column(t, 0), {"delivered": _column(t, 3)}, percent=True),
        ),
        Chart(
            "opt-outs",
            "Opt-out rate (texted callers who replied STOP)",
            opt_out_rate,
            lambda t: charts.lines(_column(t, 0), {"opted out": _column(t, 3)}, percent=True),
        ),
        Chart(
            "not-texted",
            "Calls not texted, and why",
            not_texted_by_reason,
            lambda t: charts.bars(
                _column(t, 0), {"calls": _column(t, 1)}, horizontal=True, label="calls"
            ),
        ),
        Chart(
            "response-rate",
            "Survey response rate, by month",
            response_rate_by_month,
            _response_rates,
        ),
        *(
            chart
            for suffix, by, reader in [
                ("language", "language", response_rate_by_language),
                ("group", "call-type group", response_rate_by_group),
                ("priority", "call priority", response_rate_by_priority),
            ]
            for chart in [
                Chart(
                    f"response-rate-{suffix}",
                    f"Survey response rate, by {by}",
                    reader,
                    lambda t: _response_rates(t, horizontal=True),
                ),
                Chart(
                    f"answered-vs-texted-{suffix}",
                    f"Who answered vs who was texted, by {by}",
                    reader,
                    _answered_vs_texted,
                ),
            ]
        ),
        Chart(
            "satisfaction",
            "Satisfaction over time, by question",
            satisfaction_by_month,
            _satisfaction_lines,
        ),
        Chart(
            "satisfaction-priority",
            "Satisfaction by call priority",
            satisfaction_by_priority,
            _satisfaction_bars,
        ),
        Chart(
            "satisfaction-group",
            "Satisfaction by call-type group",
            satisfaction_by_group,
            _satisfaction_bars,
        ),
        Chart(
            "satisfaction-language",
            "Satisfaction by language",
            satisfaction_by_language,
            _satisfaction_bars,
        ),
        Chart(
            "first-text",
            "Time from call creation to first text",
            time_to_first_text,
            lambda t: charts.bars(
                _column(t, 0), {"calls": _column(t, 1)}, label="calls", axis="minutes"
            ),
        ),
    ]
}


class _Recent:
    """Values made in the last minute, by key: a page load asks for every chart and its
    table, and a supervisor reloading it should not read and draw them all again."""

    def __init__(self, seconds: float, size: int = 256) -> None:
        self._seconds = seconds
        self._size = size
        self._entries: dict[tuple[str, ...], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...], make: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._lock:
            found = self._entries.get(key)
        if found is not None and now - found[0] < self._seconds:
            return found[1]
        value = make()
        with self._lock:
            if len(self._entries) >= self._size:
                self._entries.clear()
            self._entries[key] = (now, value)
        return value


def dashboard_router(
    db: Database, agencies: Mapping[str, AgencyConfig], auth: StaffAuth, renderer: StaffRenderer
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    recent = _Recent(CHART_CACHE_SECONDS)

    def filters_or_error(request: Request) -> Filters | str:
        try:
            return parse_filters(dict(request.query_params), agencies)
        except FilterError as error:
            return str(error)

    def table_of(chart: Chart, filters: Filters) -> Table:
        # By reader: charts drawn from the same table (rates and shares) read it once.
        table: Table = recent.get(
            ("table", chart.read.__name__, filters.query()), lambda: read(db, chart.read, filters)
        )
        return table

    def svg_of(chart: Chart, filters: Filters) -> str:
        # Drawn when the browser asks for the picture, not while the page is made.
        svg: str = recent.get(
            ("svg", chart.id, filters.query()), lambda: chart.draw(table_of(chart, filters))
        )
        return svg

    def page(template: str, request: Request, status_code: int = 200, **context: Any) -> Response:
        return renderer.page(
            template,
            status_code,
            agencies=sorted(agencies.values(), key=lambda a: a.agency.name),
            params=request.query_params,
            logout_path=LOGOUT_PATH,
            **context,
        )

    @router.get(DASHBOARD)
    def dashboard(request: Request) -> Response:
        user = auth.current(request)
        if user is None:
            return auth.sign_in_first(request)
        filters = filters_or_error(request)
        if isinstance(filters, str):
            return page("dashboard.html", request, 400, user=user, error=filters, charts=[])
        shown = [(chart, table_of(chart, filters).summary) for chart in CHARTS.values()]
        return page("dashboard.html", request, user=user, charts=shown, query=filters.query())

    @router.get(DASHBOARD + "/charts/{chart_id}.svg")
    def chart_image(chart_id: str, request: Request) -> Response:
        if auth.current(request) is None:
            return Response(status_code=401, headers=STAFF_HEADERS)
        chart = CHARTS.get(chart_id)
        filters = filters_or_error(request)
        if chart is None:
            return Response("no such chart", status_code=404, headers=STAFF_HEADERS)
        if isinstance(filters, str):
            return Response(filters, status_code=400, headers=STAFF_HEADERS)
        svg = svg_of(chart, filters)
        return Response(svg, media_type="image/svg+xml", headers=STAFF_HEADERS)

    @router.get(DASHBOARD + "/tables/{chart_id}")
    def chart_table(chart_id: str, request: Request) -> Response:
        user = auth.current(request)
        if user is None:
            return auth.sign_in_first(request)
        chart = CHARTS.get(chart_id)
        if chart is None:
            return page("table.html", request, 404, user=user, error="No such chart.", chart=None)
        filters = filters_or_error(request)
        if isinstance(filters, str):
            return page("table.html", request, 400, user=user, error=filters, chart=chart)
        table = table_of(chart, filters)
        if request.query_params.get("format") == "csv":
            return Response(
                _csv(table),
                media_type="text/csv; charset=utf-8",
                headers={
                    **STAFF_HEADERS,
                    "Content-Disposition": f'attachment; filename="{chart.id}.csv"',
                },
            )
        return page(
            "table.html", request, user=user, chart=chart, table=table, query=filters.query()
        )

    router.include_router(comments_inbox_router(db, agencies, auth, page))
    return router


def _csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows(["" if v is None else v for v in row] for row in table.rows)
    return out.getvalue()
