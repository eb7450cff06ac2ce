"""`python -m devtools`: the local stack of `make run` (see devtools/devstack.py).

uv run python -m devtools            what `make run` runs
uv run python -m devtools --keep     keep the previous run's workflows and texts
uv run python -m devtools --no-residents   no simulated residents: only you reply
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from devtools import devstack

app = typer.Typer(add_completion=False)


@app.command()
def dev(
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the previous run's workflows and texts.")
    ] = False,
    day: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Replay this day instead of the busiest one."),
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(min=1, help="Times real time (default CALLERLOOP_DEMO_SPEED)."),
    ] = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow/--no-follow",
            help="Keep showing texts after the replay; --no-follow exits once surveys are sent.",
        ),
    ] = True,
    max_seconds: Annotated[
        float | None,
        typer.Option(min=1, help="Stop (exit 0) this many seconds after the stack is up."),
    ] = None,
    residents: Annotated[
        bool,
        typer.Option(
            "--residents/--no-residents",
            help="Simulated residents answer the texts (surveys, STOP, HELP).",
        ),
    ] = True,
) -> None:
    """Start a local stack (Temporal dev server, worker, web app), replay a day, show texts
    flow."""
    options = devstack.DevOptions(
        keep=keep,
        day=day.date() if day else None,
        speed=speed,
        follow=follow,
        max_seconds=max_seconds,
        residents=residents,
    )
    raise typer.Exit(devstack.main(options))


if __name__ == "__main__":
    app()
