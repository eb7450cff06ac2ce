"""`callerloop cad poll status`: each CAD poller's watermark, lag and counts.

The pollers are workflows (`cad-poll/<agency>` for a database, `cad-folder/<agency>` for
a watched folder), started by the worker for every agency file with `[cad.poll]` or
`[cad.folder]`; this asks each for its `status`, as the Temporal UI shows it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import datetime
from typing import Annotated, NoReturn

import typer
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from callerloop.core.agency_config import AgencyConfigError, load_agencies
from callerloop.core.settings import get_settings
from callerloop.core.temporal import TemporalConfigError, connect, with_local_stack_keys
from workflows.cad_poller import CadPollerWorkflow, poller_workflow_id
from workflows.model import DATABASE_SOURCE, FOLDER_SOURCE, PollerStatus

poll_app = typer.Typer(
    help="The CAD pollers ([cad.poll] databases, [cad.folder] folders).", no_args_is_help=True
)


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


async def _client() -> Client:
    try:
        return await connect(with_local_stack_keys(get_settings()))
    except TemporalConfigError as error:
        _fail(str(error), 2)
    except RuntimeError as error:  # names the address it tried
        _fail(str(error), 1)


async def poller_status(client: Client, agency: str, source: str) -> PollerStatus | None:
    """The poller's status, or None when it has not been started."""
    workflow_id = poller_workflow_id(agency, source)
    handle = client.get_workflow_handle_for(CadPollerWorkflow.run, workflow_id)
    try:
        return await handle.query(CadPollerWorkflow.status)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


def status_line(agency: str, source: str, status: PollerStatus | None) -> str:
    name = f"{agency} ({source})"
    if status is None:
        return f"{name}: not running (the worker starts it; a database needs its URL setting)"
    lag = "?" if status.lag_seconds is None else f"{status.lag_seconds:.0f} s"
    last = f"{status.last_poll_at:%Y-%m-%d %H:%M:%S} UTC" if status.last_poll_at else "never"
    where = (
        f"last file {status.watermark or 'none yet'}, {status.files} files read, "
        f"{status.rejected_files} moved aside"
        if source == FOLDER_SOURCE
        else f"watermark {status.watermark or 'none yet'}, lag {lag}"
    )
    line = (
        f"{name}: {where}, {status.polls} polls (last {last}), {status.rows} rows read, "
        f"{status.events} events, {status.dead_letters} dead letters"
    )
    if status.last_error:
        line += f"; FAILING since {status.failing_since:%Y-%m-%d %H:%M:%S} UTC: {status.last_error}"
    return line


@poll_app.command("status")
def poll_status(
    agency: Annotated[
        str | None, typer.Option("--agency", help="One agency (default: every polled one).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per agency.")] = False,
) -> None:
    """Each poller's watermark, lag behind the CAD, counts and last error."""
    settings = get_settings()
    try:
        agencies = load_agencies(settings.agencies_dir)
    except AgencyConfigError as error:
        _fail(str(error), 2)
    polled = [
        (config.id, source)
        for config in sorted(agencies.values(), key=lambda a: a.id)
        for source, section in (
            (DATABASE_SOURCE, config.cad.poll),
            (FOLDER_SOURCE, config.cad.folder),
        )
        if section is not None and agency in (None, config.id)
    ]
    if not polled:
        which = f"agency {agency!r}" if agency else "no agency file"
        _fail(f"{which} in {settings.agencies_dir} has no [cad.poll] or [cad.folder]", 2)

    async def statuses() -> list[tuple[str, str, PollerStatus | None]]:
        client = await _client()
        return [
            (name, source, await poller_status(client, name, source)) for name, source in polled
        ]

    for name, source, status in asyncio.run(statuses()):
        if as_json:
            data = (
                dataclasses.asdict(status)
                if status
                else {"agency": name, "source": source, "running": False}
            )
            typer.echo(json.dumps(data, default=_default))
        else:
            typer.echo(status_line(name, source, status))


def _default(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)
