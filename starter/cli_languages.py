"""`callerloop languages check`: whether every language callerloop ships is complete.

For each language (a file in callerloop/languages/, its texts in default_templates.toml,
its page catalog in web/locales/): texts complete and valid, page catalog complete,
keywords there and read as meant, each text's SMS segments as sent. Drafts (awaiting a
native speaker's review) are listed, with the agencies that offer them. Exit code 2 when
a language has an error, as `agencies check` for an invalid agency file.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from callerloop.core.agency_config import AgencyConfigError, DraftLanguageWarning, load_agencies
from callerloop.core.settings import get_settings
from callerloop.languages import drafts_among
from callerloop.languages_check import (
    DEFAULT_MAX_SEGMENTS,
    LanguageReport,
    LanguageSources,
    check_languages,
)
from web.catalogs import language_catalog_problems

languages_app = typer.Typer(
    help="The languages callerloop speaks (callerloop/languages/).", no_args_is_help=True
)


@languages_app.command("check")
def languages_check(
    max_segments: Annotated[
        int,
        typer.Option("--max-segments", min=1, help="A text longer than this is an error."),
    ] = DEFAULT_MAX_SEGMENTS,
    texts: Annotated[
        bool, typer.Option("--texts", help="List every text with its encoding and segments.")
    ] = False,
    root: Annotated[
        Path | None,
        typer.Option(
            "--root", help="Check the languages of this callerloop tree (default: installed)."
        ),
    ] = None,
    agencies_dir: Annotated[
        Path | None,
        typer.Option("--agencies", help="Agency files to look for drafts in (default: settings)."),
    ] = None,
) -> None:
    """Check every language: texts, page catalog, keywords, segments; list the drafts."""
    sources = LanguageSources.under(root) if root else LanguageSources()

    def catalog_problems(language: str) -> list[str]:
        if root is None:
            return language_catalog_problems(language)
        return language_catalog_problems(language, root / "web" / "locales", root / "web")

    reports = check_languages(
        sources, max_segments=max_segments, page_catalog_problems=catalog_problems
    )
    Console().print(_table(reports))
    for report in reports:
        if texts:
            for text in report.texts:
                size = text.size
                typer.echo(
                    f"{report.code} {text.kind}: {size.encoding}, {size.units} units, "
                    f"{size.segments} segment(s)"
                )
        for finding in report.findings:
            # typer.echo, not rich: rich wraps long lines, which splits what users grep for.
            label = "error" if finding.error else "warning"
            typer.echo(f"{label}: {report.code}: {finding.where}: {finding.message}", err=True)
    for report in reports:
        if report.draft and report.language is not None:
            typer.echo(
                f"draft: {report.code} ({report.language.english_name}): "
                f"{report.language.data.review or 'awaiting review'}"
            )
    for line in _agencies_offering_drafts(agencies_dir or get_settings().agencies_dir):
        typer.echo(line, err=True)
    failed = [r.code for r in reports if r.errors]
    if failed:
        typer.echo(f"error: {len(failed)} language(s) with errors: {', '.join(failed)}", err=True)
        raise typer.Exit(2)


def _table(reports: list[LanguageReport]) -> Table:
    table = Table(title="Languages")
    for heading in ("code", "name", "direction", "status", "most segments"):
        table.add_column(heading)
    for report in reports:
        language = report.language
        name = "?" if language is None else language.name
        if language is not None and language.english_name != language.name:
            name += f" ({language.english_name})"
        direction = language.direction if language else "?"
        status = "errors" if report.errors else "draft" if report.draft else "ok"
        most = max((t.size.segments for t in report.texts), default=0)
        table.add_row(report.code, name, direction, status, str(most) if most else "")
    return table


def _agencies_offering_drafts(directory: Path) -> list[str]:
    """A warning for each agency that offers a draft language."""
    if not directory.is_dir():
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DraftLanguageWarning)  # said below, once each
        try:
            agencies = load_agencies(directory)
        except AgencyConfigError as error:
            return [f"warning: agencies not checked for drafts: {error}"]
    return [
        f"warning: agency {agency.id!r} offers draft language(s) {drafts}: have a native "
        "speaker review them before residents see them"
        for agency in agencies.values()
        if (drafts := drafts_among(agency.agency.languages))
    ]
