"""Helpers for the resident-page tests: the web app beside a harness, and the links the
real send activity put in the outbox."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from temporalio.client import Client

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database
from callerloop.core.settings import Settings
from devtools.web_app import with_phone_simulator
from tests.harness import Harness
from web.app import create_app
from web.page_security import GuessLimiter

LINK = re.compile(r"https?://\S+/(?:s|survey)/[A-Za-z0-9_-]+")


def pages_app(
    database: Database,
    agencies: dict[str, AgencyConfig],
    public_base_url: str = "https://callerloop.test",
    guess_limiter: GuessLimiter | None = None,
    login_limiter: GuessLimiter | None = None,
    **settings: Any,
) -> FastAPI:
    async def no_temporal() -> Client:
        raise AssertionError("the resident pages never talk to Temporal")

    return create_app(
        Settings(public_base_url=public_base_url, database_url=database.url, **settings),
        database,
        agencies,
        no_temporal,
        guess_limiter=guess_limiter,
        login_limiter=login_limiter,
        extensions=(with_phone_simulator,),  # as the dev stack serves it
    )


def link_in_text(harness: Harness, incident_id: str, kind: str) -> str:
    """The link in the text of `kind` the send activity wrote to the outbox."""
    [row] = [r for r in harness.outbox(incident_id) if r.kind == kind]
    assert row.body is not None, f"the {kind} text has been purged"
    match = LINK.search(row.body)
    assert match is not None, f"no link in the {kind} text: {row.body!r}"
    return match.group()
