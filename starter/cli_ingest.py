"""`callerloop keys` and `callerloop deadletter`: the ingest API's keys and the CAD bodies
it could not take.

    callerloop keys add AGENCY --name NAME      a new key (printed once, never again)
    callerloop keys revoke KEY_ID
    callerloop keys list
    callerloop deadletter list [--all]          open dead letters (--all: resolved too)
    callerloop deadletter show ID               the reason and the body as received
    callerloop deadletter retry ID [--file FIXED.json]
                                                validate and deliver again (or the fixed body)

Kept apart from `starter.cli` (which adds these sub-apps) so neither imports the other.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from temporalio.client import Client

from callerloop.cad import dead_letters
from callerloop.cad.delivery import body_delivery, temporal_signal_with_start
from callerloop.cad.edge_stops import holding_at_edge
from callerloop.core import audit
from callerloop.core.agency_config import AgencyConfig, AgencyConfigError, load_agencies
from callerloop.core.db import Database, DeadLetter, database_for
from callerloop.core.settings import Settings, get_settings
from callerloop.core.temporal import connect, with_local_stack_keys
from callerloop.staff import api_keys

keys_app = typer.Typer(help="API keys of the CAD ingest API.", no_args_is_help=True)
deadletter_app = typer.Typer(
    help="CAD request bodies the ingest API refused or could not deliver.", no_args_is_help=True
)


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _database(settings: Settings) -> Database:
    db = database_for(settings)
    db.create_schema()  # an older database gets the newest migrations
    return db


def _agencies(settings: Settings) -> dict[str, AgencyConfig]:
    try:
        return load_agencies(settings.agencies_dir)
    except AgencyConfigError as error:
        _fail(str(error), 2)


# --- keys -------------------------------------------------------------------------------


@keys_app.command("add")
def keys_add(
    agency: Annotated[str, typer.Argument(help="The agency id the key may send events for.")],
    name: Annotated[str, typer.Option("--name", help="Who uses it, e.g. 'Tiburon CAD prod'.")],
) -> None:
    """Create a key; it is printed once and cannot be shown again."""
    settings = get_settings()
    agencies = _agencies(settings)
    if agency not in agencies:
        # The local operator's own files: listing them helps and discloses nothing.
        _fail(f"unknown agency {agency!r}; configured agencies: {', '.join(sorted(agencies))}", 2)
    key_id, key = api_keys.create_key(_database(settings), agency, name)
    typer.echo(
        f"key {key_id} for {agency} ({name}); store it now, it is not shown again:", err=True
    )
    typer.echo(key)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[int, typer.Argument(help="The id `keys list` shows.")]) -> None:
    """Revoke a key: requests with it are refused from now on."""
    try:
        row = api_keys.revoke_key(_database(get_settings()), key_id)
    except api_keys.UnknownApiKey as error:
        _fail(str(error), 2)
    typer.echo(f"revoked key {key_id} ({row.agency}, {row.name})")


@keys_app.command("list")
def keys_list() -> None:
    """Every key: id, agency, name, created, revoked (the keys themselves are not stored)."""
    for row in api_keys.list_keys(_database(get_settings())):
        revoked = row.revoked_at.isoformat() if row.revoked_at else "-"
        typer.echo(f"{row.id}\t{row.agency}\t{row.name}\t{row.created_at.isoformat()}\t{revoked}")


# --- deadletter -------------------------------------------------------------------------


@deadletter_app.command("list")
def deadletter_list(
    include_resolved: Annotated[
        bool, typer.Option("--all", help="Also the delivered and discarded ones.")
    ] = False,
) -> None:
    """Dead letters: id, received, status, agency, reason."""
    db = _database(get_settings())
    for row in dead_letters.list_dead_letters(db, include_resolved=include_resolved):
        first_line = row.reason.splitlines()[0] if row.reason else ""
        typer.echo(
            f"{row.id}\t{row.received_at.isoformat()}\t{row.status}\t{row.agency or '-'}"
            f"\t{first_line}"
        )


@deadletter_app.command("show")
def deadletter_show(dead_letter_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """The reason (stderr) and the body exactly as received (stdout, to fix and retry)."""
    db = _database(get_settings())
    row = dead_letters.show(db, dead_letter_id)
    if row is None:
        _fail(f"no dead letter {dead_letter_id}", 2)
    # The body is a CAD event as sent: it may carry a caller's number.
    audit.record(
        db, "view dead letter", str(dead_letter_id), row.agency or "",
        actor=audit.local_actor(), source="cli",
    )  # fmt: skip
    typer.echo(
        f"dead letter {row.id}: {row.status}, {row.endpoint}, agency {row.agency or '-'}, "
        f"received {row.received_at.isoformat()}\nreason: {row.reason}",
        err=True,
    )
    typer.echo(row.body)


@deadletter_app.command("retry")
def deadletter_retry(
    dead_letter_id: Annotated[int, typer.Argument(metavar="ID")],
    file: Annotated[
        Path | None, typer.Option("--file", help="A fixed body to deliver instead.")
    ] = None,
) -> None:
    """Validate the body (or FIXED.json) again and deliver it; the row is then closed."""
    settings = get_settings()
    fixed_body = _read_fixed(file) if file is not None else None
    row = asyncio.run(_retry(settings, dead_letter_id, fixed_body))
    if row.status != dead_letters.DELIVERED:
        _fail(f"dead letter {dead_letter_id} not delivered: {row.reason}", 1)
    typer.echo(f"dead letter {dead_letter_id} delivered")


def _read_fixed(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8-sig")
    except OSError as error:
        _fail(f"{file}: cannot read: {error.strerror}", 2)


async def _retry(settings: Settings, dead_letter_id: int, fixed_body: str | None) -> DeadLetter:
    connected: list[Client] = []

    async def client() -> Client:
        # Connected on first use, so a body that fails validation needs no Temporal.
        if not connected:
            connected.append(await connect(with_local_stack_keys(settings)))
        return connected[0]

    signal_with_start = holding_at_edge(
        temporal_signal_with_start(client, settings.task_queue),
        _database(settings),
        _agencies(settings),
    )
    kept = dead_letters.show(_database(settings), dead_letter_id)
    # Validated for the agency of the key it came with, as the endpoint did.
    endpoint, agency = (kept.endpoint, kept.agency) if kept else ("", None)
    deliver = body_delivery(_agencies(settings), signal_with_start, endpoint, agency)
    try:
        return await dead_letters.retry(
            _database(settings), dead_letter_id, deliver, fixed_body=fixed_body
        )
    except dead_letters.DeadLetterNotOpen as error:
        _fail(str(error), 2)
