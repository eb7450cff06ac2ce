"""`callerloop`: the command line of the CAD side and of the operator.

    callerloop worker                         run the Temporal worker
    callerloop web                            run the web app (webhooks, ingest API, pages)
    callerloop cad send FILE|-                send CAD events (JSON) to their calls' workflows
    callerloop cad replay FILE --agency A --speed N
                                              replay a CAD CSV export (or a synthetic day)
    callerloop cad dryrun FILE --agency A --out DIR
                                              what the agency's policy would text, before go-live
    callerloop messages export --format jsonl the outbox, one JSON object per text
    callerloop agencies check                 validate every agency file

Errors go to stderr; exit code 2 means the input was refused, 1 that something failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TextIO

import httpx
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import inspect
from sqlalchemy.engine.url import make_url
from sqlmodel import col, select
from temporalio.client import Client

from callerloop.cad.client import CadClient, CallAlreadyFinished, Delivered
from callerloop.cad.edge_stops import hold_at_edge
from callerloop.cad.events import InvalidCadEvent, UnknownAgency, parse_cad_json
from callerloop.cad.http_client import HttpCadClient, IngestRefused, Retrying
from callerloop.cad.replay import (
    ParsedExport,
    ReplayCall,
    ReplayJournal,
    ReplayReport,
    first_calls,
    parse_cad_export,
)
from callerloop.cad.replaying import print_replay_summary, replay_calls, run_replay
from callerloop.cad.synthetic_day import synthetic_day, to_csv_lines
from callerloop.core import audit
from callerloop.core.agency_config import (
    SUPPORTED_LANGUAGES,
    AgencyConfig,
    AgencyConfigError,
    load_agencies,
)
from callerloop.core.db import Database, OutboxMessage, database_for
from callerloop.core.logging import configure_logging
from callerloop.core.schema import SchemaError
from callerloop.core.settings import Settings, get_settings
from callerloop.core.temporal import (
    TemporalConfigError,
    connect,
    required_payload_codec,
    with_local_stack_keys,
)
from callerloop.golive.dry_run import DEFAULT_PRICE_PER_SEGMENT, dry_run
from callerloop.golive.report import write_report
from starter.cli_db import db_app
from starter.cli_ingest import deadletter_app, keys_app
from starter.cli_languages import languages_app
from starter.cli_operator import audit_app, calls_app, encryption_app, retention_app
from starter.cli_poll import poll_app
from starter.cli_staff import opendata_app, users_app
from workflows.model import CadEvent


def leave(code: int) -> NoReturn:
    """Exit now, without interpreter finalisation: there the Temporal SDK's Rust threads can
    abort the process (PyGILState_Release, sdk-python #300), turning success into 134."""
    with contextlib.suppress(OSError):  # e.g. `… | head` closed the pipe
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def exit_status(code: object) -> int:
    """SystemExit.code as a process exit status (a message means failure)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    typer.echo(str(code), err=True)
    return 1


class CallerloopApp(typer.Typer):
    """Called only as a program (the console script, `python -m starter.cli`); CliRunner
    invokes the command directly, so tests keep their process."""

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        try:
            super().__call__(*args, **kwargs)
        except SystemExit as done:
            leave(exit_status(done.code))
        except SchemaError as error:  # any command's database: unreachable, not migrated
            typer.echo(f"error: {error}", err=True)
            leave(1)
        except Exception as error:
            sys.excepthook(type(error), error, error.__traceback__)
            leave(1)
        leave(0)


app = CallerloopApp(
    help="callerloop: texts people who call the police about their call.",
    no_args_is_help=True,
    add_completion=False,
)
cad_app = typer.Typer(
    help="Send CAD events to callerloop, replay an export, poll the CAD's database.",
    no_args_is_help=True,
)
messages_app = typer.Typer(help="The texts callerloop sent (the outbox).", no_args_is_help=True)
agencies_app = typer.Typer(help="Agency configuration files.", no_args_is_help=True)
app.add_typer(cad_app, name="cad")
cad_app.add_typer(poll_app, name="poll")
app.add_typer(messages_app, name="messages")
app.add_typer(agencies_app, name="agencies")
app.add_typer(languages_app, name="languages")

# How many bad rows and failed sends the replay summary lists one by one.
# The fields of `messages export`, in this order: everything but internal bookkeeping.
EXPORT_FIELDS = (
    "agency",
    "incident_id",
    "workflow_id",
    "kind",
    "language",
    "to",
    "body",
    "segments",
    "status",
    "provider_id",
    "created_at",
    "sent_at",
)


def fail(message: str, code: int) -> NoReturn:
    # typer.echo, not rich: rich wraps long lines, which splits the names users grep for.
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def load_agencies_or_exit(directory: Path) -> dict[str, AgencyConfig]:
    try:
        return load_agencies(directory)
    except AgencyConfigError as error:
        fail(str(error), 2)


async def connect_or_exit(settings: Settings) -> Client:
    """Connected with the configured keys, or else those of the local stack of `make run`
    (so the documented commands read its encrypted payloads)."""
    try:
        return await connect(with_local_stack_keys(settings))
    except TemporalConfigError as error:
        fail(str(error), 2)
    except RuntimeError as error:  # names the address it tried
        fail(str(error), 1)


def check_payload_encryption(settings: Settings) -> None:
    """A worker or web app without encryption keys stops at once, not at its first call."""
    try:
        required_payload_codec(settings)
    except TemporalConfigError as error:
        fail(str(error), 2)


# --- worker and dev ---------------------------------------------------------------------


app.add_typer(keys_app, name="keys")
app.add_typer(deadletter_app, name="deadletter")
app.add_typer(calls_app, name="calls")
app.add_typer(encryption_app, name="encryption")
app.add_typer(retention_app, name="retention")
app.add_typer(audit_app, name="audit")
app.add_typer(users_app, name="users")
app.add_typer(opendata_app, name="opendata")
app.add_typer(db_app, name="db")


@app.command("worker")
def worker_command() -> None:
    """Run the Temporal worker: the call workflow and its activities (Ctrl-C stops it)."""
    from worker import run_worker  # heavy (activities, SQLModel): only when running one

    settings = get_settings()
    check_payload_encryption(settings)
    configure_logging(settings.log_format, settings.log_level)
    asyncio.run(run_worker(settings))


@app.command("web")
def web_command(
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on (default CALLERLOOP_WEB_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (default CALLERLOOP_WEB_PORT).")
    ] = None,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="Log every request.")
    ] = True,
) -> None:
    """Run the web app: Twilio webhooks, CAD ingest API, resident pages, codec, /metrics."""
    import uvicorn  # only when serving

    settings = get_settings()
    check_payload_encryption(settings)
    uvicorn.run(
        "web.app:app_from_environment",
        factory=True,
        host=host or settings.web_host,
        port=port or settings.web_port,
        access_log=access_log,
        # Behind the TLS-terminating proxy: its X-Forwarded-* headers are trusted from the
        # addresses in CALLERLOOP_FORWARDED_ALLOW_IPS only.
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        log_level=settings.log_level.lower(),
    )


@app.command(
    "dev",
    hidden=True,
    # Every option, --help too, is the dev stack's.
    context_settings={
        "allow_extra_args": True,
        "ignore_unknown_options": True,
        "help_option_names": [],
    },
)
def dev_command(context: typer.Context) -> None:
    """Deprecated: `make run` (python -m devtools) starts the local stack now."""
    print(
        "`callerloop dev` is deprecated: the local stack is `make run` "
        "(uv run python -m devtools); running that",
        file=sys.stderr,
    )
    # Not imported: the dev tools are not part of the product (nor of its wheel).
    if importlib.util.find_spec("devtools") is None:
        fail("the local stack needs the repository's devtools/: run `make run` in a clone", 1)
    os.execv(sys.executable, [sys.executable, "-m", "devtools", *context.args])


# --- cad send ---------------------------------------------------------------------------

# `cad send` and `cad replay` can post to a callerloop's ingest API instead of Temporal.
IngestUrl = Annotated[
    str | None,
    typer.Option(help="Post to a callerloop ingest API (HTTP) instead of Temporal."),
]
IngestKey = Annotated[
    str | None, typer.Option(envvar="CALLERLOOP_API_KEY", help="API key for --url.")
]


def read_input(file: str) -> tuple[str, str]:
    """The text of FILE (or stdin for `-`) and how to name it in error messages."""
    if file == "-":
        return sys.stdin.read(), "stdin"
    try:
        return Path(file).read_text(encoding="utf-8-sig"), file
    except OSError as error:
        fail(f"{file}: cannot read: {error.strerror}", 2)


@cad_app.command("send")
def cad_send(
    file: Annotated[str, typer.Argument(help="JSON: one CAD event or a list; - for stdin.")],
    url: IngestUrl = None,
    key: IngestKey = None,
) -> None:
    """Validate CAD events and deliver each to its call's workflow; prints workflow ids."""
    if url is not None:
        post_remotely(file, url, key)
        return
    settings = get_settings()
    agencies = load_agencies_or_exit(settings.agencies_dir)
    text, where = read_input(file)
    try:
        events = parse_cad_json(text, agencies, where)
    except UnknownAgency as error:
        # Only the local operator sees the list; the ingest API names no other agency.
        fail(f"{error}; configured agencies: {', '.join(sorted(agencies))}", 2)
    except InvalidCadEvent as error:
        fail(str(error), 2)
    finished = asyncio.run(send_events(settings, events, agencies))
    if finished:
        raise typer.Exit(1)


def post_remotely(file: str, url: str, key: str | None) -> None:
    """The remote callerloop validates with its own agency files; its errors are shown."""
    if not key:
        fail("--url needs an API key: --key or CALLERLOOP_API_KEY", 2)
    text, _ = read_input(file)
    try:
        workflow_ids = asyncio.run(HttpCadClient(url, key).publish_json(text))
    except IngestRefused as error:
        fail(str(error), 2 if 400 <= error.status_code < 500 else 1)
    except httpx.HTTPError as error:
        fail(f"cannot reach {url}: {error}", 1)
    for workflow_id in workflow_ids:
        typer.echo(workflow_id)


async def send_events(
    settings: Settings, events: Sequence[CadEvent], agencies: Mapping[str, AgencyConfig]
) -> int:
    """Send in order; a finished call refuses its event but the others still go.
    Returns how many events were refused. An event that makes its call unsafe withdraws
    the call's sends first, as the ingest API does (`callerloop.edge_stops`)."""
    cad = CadClient(await connect_or_exit(settings), settings.task_queue)
    db = database_for(settings)
    db.create_schema()
    refused = 0
    for event in events:
        hold_at_edge(db, agencies, event)
        try:
            delivered: Delivered = await cad.send(event)
        except CallAlreadyFinished as error:
            typer.echo(f"error: call already finished, event not applied: {error}", err=True)
            refused += 1
        else:
            typer.echo(delivered.workflow_id)
    return refused


# --- cad replay -------------------------------------------------------------------------


def parse_language_mix(value: str | None) -> dict[str, float] | None:
    """`en=0.8,es=0.15,fr=0.05` → weights; a bad item is named in the error."""
    if value is None:
        return None
    mix: dict[str, float] = {}
    for item in (part.strip() for part in value.split(",")):
        language, sep, weight = (part.strip() for part in item.partition("="))
        if not sep or not language:
            raise bad_languages(f"{item!r}: expected LANGUAGE=WEIGHT like en=0.8")
        if language not in SUPPORTED_LANGUAGES:
            supported = ", ".join(SUPPORTED_LANGUAGES)
            raise bad_languages(
                f"{item!r}: unsupported language {language!r}; supported: {supported}"
            )
        try:
            mix[language] = float(weight)
        except ValueError:
            raise bad_languages(f"{item!r}: weight {weight!r} is not a number") from None
        if not mix[language] >= 0:  # also refuses NaN
            raise bad_languages(f"{item!r}: weight must be >= 0")
    if sum(mix.values()) <= 0:
        raise bad_languages(f"{value!r}: at least one weight must be positive")
    return mix


def bad_languages(message: str) -> typer.BadParameter:
    return typer.BadParameter(message, param_hint="--languages")


def pick_agency(agencies: Mapping[str, AgencyConfig], name: str) -> AgencyConfig:
    agency = agencies.get(name)
    if agency is None:
        fail(f"unknown agency {name!r}; configured agencies: {', '.join(sorted(agencies))}", 2)
    return agency


@contextmanager
def open_csv(file: Path) -> Iterator[TextIO]:
    if str(file) == "-":
        yield sys.stdin
        return
    try:
        # utf-8-sig: exports saved by spreadsheet tools start with a byte-order mark.
        with file.open(encoding="utf-8-sig", newline="") as handle:
            yield handle
    except OSError as error:
        fail(f"{file}: cannot read: {error.strerror}", 2)


def one_export_source(file: Path | None, synthetic: datetime | None) -> None:
    """A command that reads an export takes a FILE or --synthetic-day, exactly one."""
    if (file is None) == (synthetic is None):
        raise typer.BadParameter(
            "give either a CSV FILE or --synthetic-day, not both or neither",
            param_hint="FILE / --synthetic-day",
        )


def read_export(
    file: Path | None,
    synthetic: date | None,
    agency: AgencyConfig,
    *,
    seed: int,
    since: datetime | None,
    until: datetime | None,
    language_mix: dict[str, float] | None,
) -> ParsedExport:
    def parse(lines: Sequence[str] | TextIO) -> ParsedExport:
        try:
            return parse_cad_export(
                lines, agency, seed=seed, since=since, until=until, language_mix=language_mix
            )
        except ValueError as error:  # the header lacks a required column
            fail(f"{file or 'synthetic day'}: {error}", 2)

    if synthetic is not None:
        return parse(to_csv_lines(synthetic_day(agency, synthetic, seed=seed)))
    assert file is not None
    with open_csv(file) as handle:
        return parse(handle)


@cad_app.command("replay")
def cad_replay(
    agency_name: Annotated[str, typer.Option("--agency", help="Agency id (agencies/<id>.toml).")],
    speed: Annotated[
        float, typer.Option(min=0, help="Times real time: 720 replays a day in 2 min; 0: no pause.")
    ],
    file: Annotated[
        Path | None, typer.Argument(help="CAD CSV export; omit with --synthetic-day.")
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option("--from", help="Only calls created at or after this (agency time)."),
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(help="Only calls created before this (agency time).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds the fictional phones and languages.")] = 7,
    languages: Annotated[
        str | None, typer.Option(help="Caller language mix, e.g. en=0.8,es=0.15,fr=0.05.")
    ] = None,
    synthetic: Annotated[
        datetime | None,
        typer.Option(
            "--synthetic-day", formats=["%Y-%m-%d"], help="Replay a generated day (no FILE)."
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Only the first N calls (by creation time).")
    ] = None,
    journal: Annotated[
        Path | None,
        typer.Option(
            help="Record each event sent in this file; run again with it to resume where "
            "the replay stopped."
        ),
    ] = None,
    url: IngestUrl = None,
    key: IngestKey = None,
) -> None:
    """Replay a CAD CSV export as the events the CAD would have sent, paced by --speed."""
    settings = get_settings()
    agency = pick_agency(load_agencies_or_exit(settings.agencies_dir), agency_name)
    language_mix = parse_language_mix(languages)
    one_export_source(file, synthetic)
    if url is not None and not key:
        fail("--url needs an API key: --key or CALLERLOOP_API_KEY", 2)
    export = read_export(
        file,
        synthetic.date() if synthetic else None,
        agency,
        seed=seed,
        since=since,
        until=until,
        language_mix=language_mix,
    )
    console = Console()
    calls = first_calls(export.calls, limit)
    replay_journal = ReplayJournal(journal) if journal is not None else None
    try:
        if url is not None:
            assert key is not None
            report = asyncio.run(replay_over_http(url, key, calls, speed, console, replay_journal))
        else:
            report = asyncio.run(
                replay_to_temporal(settings, calls, speed, console, replay_journal)
            )
    finally:
        if replay_journal is not None:
            replay_journal.close()
    print_replay_summary(console, export, report)
    raise typer.Exit(replay_exit_code(report))


@cad_app.command("dryrun")
def cad_dryrun(
    agency_name: Annotated[str, typer.Option("--agency", help="Agency id (agencies/<id>.toml).")],
    out: Annotated[Path, typer.Option(help="Directory for report.html and the CSV tables.")],
    file: Annotated[
        Path | None, typer.Argument(help="CAD CSV export; omit with --synthetic-day.")
    ] = None,
    synthetic: Annotated[
        datetime | None,
        typer.Option(
            "--synthetic-day", formats=["%Y-%m-%d"], help="Dry-run a generated day (no FILE)."
        ),
    ] = None,
    price: Annotated[
        float, typer.Option("--price-per-segment", min=0, help="What one SMS segment costs.")
    ] = DEFAULT_PRICE_PER_SEGMENT,
    currency: Annotated[str, typer.Option(help="The price's currency, as shown.")] = "USD",
    seed: Annotated[int, typer.Option(help="Seeds the fictional phones and languages.")] = 7,
) -> None:
    """Run the agency's policy and the call lifecycle over an export, with no Temporal and
    no phones: what would be texted, what would not and why, what to review, and the cost."""
    settings = get_settings()
    agency = pick_agency(load_agencies_or_exit(settings.agencies_dir), agency_name)
    one_export_source(file, synthetic)
    export = read_export(
        file,
        synthetic.date() if synthetic else None,
        agency,
        seed=seed,
        since=None,
        until=None,
        language_mix=None,
    )
    run = dry_run(
        export,
        agency,
        public_base_url=settings.public_base_url,
        price_per_segment=price,
        currency=currency,
    )
    report = write_report(run, out)
    table = Table(title=f"Dry run of {agency.id}: {file or 'synthetic day'}", show_header=False)
    table.add_column("")
    table.add_column("", justify="right")
    for name, value in run.headline.items():
        table.add_row(name, str(value))
    console = Console()
    console.print(table)
    typer.echo(f"Report: {report}")  # unwrapped, whatever the path's length


async def replay_to_temporal(
    settings: Settings,
    calls: Sequence[ReplayCall],
    speed: float,
    console: Console,
    journal: ReplayJournal | None = None,
) -> ReplayReport:
    client = await connect_or_exit(settings)
    return await run_replay(
        client, settings.task_queue, calls, speed=speed, console=console, journal=journal
    )


async def replay_over_http(
    url: str,
    key: str,
    calls: Sequence[ReplayCall],
    speed: float,
    console: Console | None,
    journal: ReplayJournal | None = None,
) -> ReplayReport:
    """The same replay through a callerloop ingest API, as a CAD adapter would post it:
    a post the server answers "not now" (over the key's rate, Temporal unreachable) is
    sent again after the server's Retry-After."""
    async with HttpCadClient(url, key, retrying=Retrying()) as cad:
        report = await replay_calls(cad.send, calls, speed=speed, console=console, journal=journal)
        report.retries = cad.retries
    return report


def replay_exit_code(report: ReplayReport) -> int:
    """Bad rows never fail a replay; a replay where nothing got through does."""
    return 1 if report.failed and report.sent == 0 else 0


# --- messages export --------------------------------------------------------------------


class ExportFormat(StrEnum):
    JSONL = "jsonl"


def outbox_record(row: OutboxMessage) -> dict[str, Any]:
    record: dict[str, Any] = {name: getattr(row, name) for name in EXPORT_FIELDS}
    for name in ("created_at", "sent_at"):
        moment = record[name]
        record[name] = moment.isoformat() if moment is not None else None
    return record


def open_outbox(url: str) -> Database:
    """The application database, refusing to create one: an export from nothing is a
    mistake (wrong CALLERLOOP_DATABASE_URL) that an empty file would hide."""
    parsed = make_url(url)
    is_sqlite_file = parsed.get_backend_name() == "sqlite" and parsed.database not in (
        None,
        "",
        ":memory:",
    )
    if is_sqlite_file and not Path(str(parsed.database)).exists():
        fail(f"no database at {parsed.database} (set CALLERLOOP_DATABASE_URL or run `make run`)", 1)
    db = Database(url)
    if not inspect(db.engine).has_table(OutboxMessage.__tablename__):
        db.dispose()
        fail(f"{parsed.render_as_string(hide_password=True)} has no outbox table yet", 1)
    return db


def write_outbox_jsonl(db: Database, out: TextIO, agency: str | None) -> int:
    statement = select(OutboxMessage).order_by(col(OutboxMessage.id))
    if agency is not None:
        statement = statement.where(col(OutboxMessage.agency) == agency)
    written = 0
    with db.session() as session:
        for row in session.exec(statement):
            out.write(json.dumps(outbox_record(row), ensure_ascii=False) + "\n")
            written += 1
    return written


@messages_app.command("export")
def messages_export(
    output_format: Annotated[
        ExportFormat, typer.Option("--format", help="Output format.")
    ] = ExportFormat.JSONL,
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
    agency: Annotated[str | None, typer.Option(help="Only this agency's texts.")] = None,
) -> None:
    """Every text in the outbox, oldest first, one JSON object per line."""
    db = open_outbox(get_settings().database_url)
    try:
        db.create_schema()  # an older database gets the newest migrations
        if out is None:
            written = write_outbox_jsonl(db, sys.stdout, agency)
        else:
            with out.open("w", encoding="utf-8") as handle:
                written = write_outbox_jsonl(db, handle, agency)
            typer.echo(f"{written} texts written to {out}", err=True)
        detail = f"{written} texts to {out or 'stdout'} as {output_format.value}"
        audit.record(
            db, "export messages", agency or "all agencies", detail,
            actor=audit.local_actor(), source="cli",
        )  # fmt: skip
    finally:
        db.dispose()


# --- agencies check ---------------------------------------------------------------------


@agencies_app.command("check")
def agencies_check(
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Folder of agency files (default: settings).")
    ] = None,
) -> None:
    """Load and validate every agency file; list them, or say what is wrong and where."""
    agencies = load_agencies_or_exit(directory or get_settings().agencies_dir)
    table = Table(title="Agencies")
    for heading in ("id", "name", "languages", "eligible priorities"):
        table.add_column(heading)
    for agency in agencies.values():
        table.add_row(
            agency.id,
            agency.agency.name,
            ", ".join(agency.agency.languages),
            ", ".join(str(p) for p in agency.eligibility.priorities),
        )
    Console().print(table)


if __name__ == "__main__":
    app()
