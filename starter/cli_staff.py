"""Staff and open-data commands.

callerloop users add NAME            a dashboard user (asks for the password)
callerloop users list
callerloop users disable NAME        no more sign-ins; open sessions end
callerloop opendata export --out DIR survey results for the public (CSV, Frictionless
                                     data package, DCAT-US data.json)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from callerloop.core import audit
from callerloop.core.agency_config import AgencyConfigError, load_agencies
from callerloop.core.db import database_for, utcnow
from callerloop.core.settings import get_settings
from callerloop.opendata.package import CATALOG_FILE, PACKAGE_FILE, export_files
from callerloop.opendata.validate import validate_package
from callerloop.staff.users import StaffUserError, add_user, disable_user, list_users

users_app = typer.Typer(help="Who may sign in to the staff dashboard.", no_args_is_help=True)
opendata_app = typer.Typer(help="Survey results for the public.", no_args_is_help=True)

Username = Annotated[str, typer.Argument(help="Lower-case login name, e.g. sgt.lee")]


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@users_app.command("add")
def users_add(
    username: Username,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Add a dashboard user. The password (12 characters or more) is asked for twice,
    or read from standard input; only its Argon2id hash is stored."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    db = database_for(get_settings())
    db.create_schema()
    try:
        add_user(db, username, password)
    except StaffUserError as error:
        _fail(str(error), 2)
    audit.record(db, "user added", username, actor=audit.local_actor(), source="cli")
    typer.echo(f"user {username} added")


@users_app.command("list")
def users_list() -> None:
    """Every user, when they were added, and whether they are disabled."""
    db = database_for(get_settings())
    db.create_schema()
    for user in list_users(db):
        state = f"disabled {user.disabled_at.isoformat()}" if user.disabled_at else "active"
        typer.echo(f"{user.username}\t{user.created_at.isoformat()}\t{state}")


@users_app.command("disable")
def users_disable(username: Username) -> None:
    """The user can no longer sign in; their open sessions end at once."""
    db = database_for(get_settings())
    db.create_schema()
    try:
        disable_user(db, username)
    except StaffUserError as error:
        _fail(str(error), 2)
    audit.record(db, "user disabled", username, actor=audit.local_actor(), source="cli")
    typer.echo(f"user {username} disabled")


@opendata_app.command("export")
def opendata_export(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the files to.")],
    agency: Annotated[
        list[str] | None, typer.Option("--agency", help="Only this agency (repeatable).")
    ] = None,
) -> None:
    """Write each agency's survey results (CSV), its Frictionless data package and a
    DCAT-US data.json catalog, then validate every package. Run it on a schedule and let
    the portal harvest data.json (or serve /opendata/ from the web app)."""
    settings = get_settings()
    try:
        agencies = load_agencies(settings.agencies_dir)
    except AgencyConfigError as error:
        _fail(str(error), 2)
    unknown = sorted(set(agency or []) - set(agencies))
    if unknown:
        _fail(f"--agency: unknown agency {unknown}; known: {sorted(agencies)}", 2)
    chosen = {a: agencies[a] for a in agency} if agency else agencies
    db = database_for(settings)
    db.create_schema()
    files = export_files(db, chosen, settings.public_base_url, utcnow())
    for name, content in files.items():
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    problems = [
        problem
        for agency_id in chosen
        for problem in validate_package(out / agency_id / PACKAGE_FILE)
    ]
    if problems:
        _fail("the data package does not validate:\n" + "\n".join(problems), 1)
    for config in chosen.values():
        if not config.open_data.contact_email:
            typer.echo(
                f"warning: {config.id}: open_data.contact_email is not set; DCAT-US catalogs "
                "need a contact email for harvesting",
                err=True,
            )
    audit.record(
        db, "opendata export", str(out), f"{', '.join(sorted(chosen))}: {len(files)} file(s)",
        actor=audit.local_actor(), source="cli",
    )  # fmt: skip
    typer.echo(f"wrote {len(files)} file(s) to {out} (catalog: {out / CATALOG_FILE})")
