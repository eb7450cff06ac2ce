"""Operator commands: look at a call and step in, as from the Temporal UI.

    callerloop calls show INCIDENT --agency A        the call's state (number masked)
    callerloop calls suppress INCIDENT --agency A --by NAME --reason WHY
    callerloop calls language INCIDENT es --agency A --by NAME --reason WHY
    callerloop calls resend-confirmation INCIDENT --agency A --by NAME --reason WHY
    callerloop encryption new-key KEY_ID             a key for CALLERLOOP_ENCRYPTION_KEYS
    callerloop retention run                         purge personal data past retention
    callerloop audit list                            who did what, when

The changes are Temporal updates: the workflow checks them before they reach its history
and keeps who asked and why.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import datetime
from typing import Annotated, Any, NoReturn

import typer
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from callerloop.core import audit
from callerloop.core.agency_config import AgencyConfigError, load_agencies
from callerloop.core.codec import new_key_spec
from callerloop.core.db import database_for, utcnow
from callerloop.core.settings import get_settings
from callerloop.core.temporal import TemporalConfigError, connect, with_local_stack_keys
from callerloop.staff.retention import run_retention
from workflows.call_for_service import CallForServiceWorkflow, workflow_id_for
from workflows.model import (
    CallState,
    MarkLanguageRequest,
    OperatorResult,
    ResendConfirmationRequest,
    SuppressRequest,
)

calls_app = typer.Typer(help="Look at a call and step in (Temporal updates).", no_args_is_help=True)
encryption_app = typer.Typer(help="Keys that encrypt Temporal payloads.", no_args_is_help=True)
retention_app = typer.Typer(help="Personal data past its retention.", no_args_is_help=True)
audit_app = typer.Typer(help="Who did what, when (append-only).", no_args_is_help=True)

Incident = Annotated[str, typer.Argument(help="The CAD incident id.")]
AgencyOption = Annotated[str, typer.Option("--agency", help="Agency id (agencies/<id>.toml).")]
By = Annotated[str, typer.Option("--by", help="Who is asking (kept with the call).")]
Reason = Annotated[str, typer.Option("--reason", help="Why (kept with the call).")]


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


async def _client() -> Client:
    """Connected with the configured keys, or else those of the local stack (`make run`)."""
    settings = with_local_stack_keys(get_settings())
    try:
        return await connect(settings)
    except TemporalConfigError as error:
        _fail(str(error), 2)
    except RuntimeError as error:  # names the address it tried
        _fail(str(error), 1)


def masked(phone: str | None) -> str | None:
    """Enough of a number to tell two callers apart, not enough to call them."""
    return None if phone is None else f"{phone[:5]}…{phone[-2:]}"


def _jsonable(state: CallState) -> dict[str, Any]:
    data = dataclasses.asdict(state)
    for key in ("caller_phone", "opt_out_checked_for", "line_type_looked_up_for", "unusable_phone"):
        data[key] = masked(data[key])
    data.pop("applied_event_ids", None)
    data.pop("field_times", None)
    return data


@calls_app.command("show")
def calls_show(incident: Incident, agency: AgencyOption) -> None:
    """The call's state: status, texting decision and reason, texts, operator actions."""

    async def query() -> CallState:
        handle = (await _client()).get_workflow_handle(workflow_id_for(agency, incident))
        try:
            state: CallState = await handle.query(CallForServiceWorkflow.state)
        except RPCError as error:
            _fail(_not_found(agency, incident, error), 2)
        return state

    state = asyncio.run(query())
    typer.echo(json.dumps(_jsonable(state), indent=2, default=_default, ensure_ascii=False))


@calls_app.command("suppress")
def calls_suppress(incident: Incident, agency: AgencyOption, by: By, reason: Reason) -> None:
    """Stop every text of the call, for good."""
    request = SuppressRequest(by=by, reason=reason)
    result = asyncio.run(_update(agency, incident, "suppress", request))
    typer.echo(f"{workflow_id_for(agency, incident)}: {result.message} ({result.texting_state})")


@calls_app.command("resend-confirmation")
def calls_resend_confirmation(
    incident: Incident, agency: AgencyOption, by: By, reason: Reason
) -> None:
    """Send the confirmation again, if nothing of this call reached the caller."""
    request = ResendConfirmationRequest(by=by, reason=reason)
    result = asyncio.run(_update(agency, incident, "resend_confirmation", request))
    typer.echo(f"{workflow_id_for(agency, incident)}: {result.message}")


@calls_app.command("language")
def calls_language(
    incident: Incident,
    language: Annotated[
        str,
        typer.Argument(
            help="A language the agency offers, e.g. es (see `callerloop languages check`)."
        ),
    ],
    agency: AgencyOption,
    by: By,
    reason: Reason,
) -> None:
    """The caller's language, for the texts still to come."""
    request = MarkLanguageRequest(by=by, reason=reason, language=language)
    result = asyncio.run(_update(agency, incident, "mark_language", request))
    typer.echo(f"{workflow_id_for(agency, incident)}: {result.message}")


async def _update(agency: str, incident: str, name: str, request: object) -> OperatorResult:
    handle = (await _client()).get_workflow_handle(workflow_id_for(agency, incident))
    try:
        result: OperatorResult = await handle.execute_update(
            name, request, result_type=OperatorResult
        )
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        _fail(f"refused: {cause.message if isinstance(cause, ApplicationError) else cause}", 2)
    except RPCError as error:
        _fail(_not_found(agency, incident, error), 2)
    return result


def _not_found(agency: str, incident: str, error: RPCError) -> str:
    if error.status == RPCStatusCode.NOT_FOUND:
        return f"no call {incident!r} for agency {agency!r} ({workflow_id_for(agency, incident)})"
    return f"{workflow_id_for(agency, incident)}: {error}"


def _default(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


@encryption_app.command("new-key")
def encryption_new_key(
    key_id: Annotated[str, typer.Argument(help="A name for the key, e.g. 2026-11.")],
) -> None:
    """Print a new KEY_ID:BASE64 key. Put it first in CALLERLOOP_ENCRYPTION_KEYS and keep
    the old keys after it until no running call needs them."""
    typer.echo(new_key_spec(key_id))


@retention_app.command("run")
def retention_run() -> None:
    """Remove numbers, texts and tokens past each agency's retention (idempotent: run it
    daily). The opt-out registry keeps pseudonyms only, so it is left as it is."""
    settings = get_settings()
    try:
        agencies = load_agencies(settings.agencies_dir)
    except AgencyConfigError as error:
        _fail(str(error), 2)
    db = database_for(settings)
    db.create_schema()
    report = run_retention(db, agencies, utcnow(), settings.line_type_cache_days)
    audit.record(
        db, "retention run", "all agencies", f"{report.total} item(s) purged",
        actor=audit.local_actor(), source="cli",
    )  # fmt: skip
    for line in report.lines():
        typer.echo(line)
    typer.echo(f"retention run done: {report.total} item(s) purged")


@audit_app.command("list")
def audit_list(
    limit: Annotated[int, typer.Option(min=1, help="The latest N entries.")] = 100,
) -> None:
    """The audit log, oldest first: when, who, what, on what, details, through what."""
    db = database_for(get_settings())
    db.create_schema()
    for entry in audit.latest(db, limit):
        typer.echo(
            f"{entry.at.isoformat()}\t{entry.actor}\t{entry.action}\t{entry.target}"
            f"\t{entry.detail}\t{entry.source}"
        )
