"""The dry run as files: an HTML report and a CSV per table, or the report's body for the
dashboard (whose pages allow no inline style)."""

from __future__ import annotations

import csv
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from callerloop.golive.dry_run import DryRun, Table

TEMPLATES = Path(__file__).with_name("templates")
ROW_LIMIT = 200  # rows of a table shown in the HTML; the CSV has them all
_environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def report_body(run: DryRun, row_limit: int = ROW_LIMIT) -> Markup:
    """The report's content, escaped, for a page that brings its own styles."""
    html = _environment.get_template("report_body.html").render(run=run, row_limit=row_limit)
    return Markup(html)


def write_report(run: DryRun, out: Path) -> Path:
    """`report.html` and one CSV per table in `out` (created); the report's path."""
    out.mkdir(parents=True, exist_ok=True)
    for table in run.tables:
        write_table(table, out / f"{table.name}.csv")
    page = _environment.get_template("report.html").render(run=run, body=report_body(run))
    report = out / "report.html"
    report.write_text(page, encoding="utf-8")
    return report


def write_table(table: Table, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(table.columns)
        writer.writerows(table.rows)
