"""The web app as the dev stack serves it: the product's app plus the phone simulator
(`/dev/phone`) when texts stay in the outbox (the `local` SMS provider). uvicorn runs it as

    uvicorn --factory devtools.web_app:app_from_environment
"""

from __future__ import annotations

from fastapi import FastAPI

from callerloop.core.db import Database
from callerloop.core.settings import Settings
from devtools.phone_simulator import phone_simulator_router
from web import app as product
from web.i18n import PageRenderer


def with_phone_simulator(
    app: FastAPI, settings: Settings, db: Database, renderer: PageRenderer
) -> None:
    """Show the outbox as phones would, only while no text can leave it."""
    if settings.sms_provider == "local":
        app.include_router(phone_simulator_router(db, renderer))


def app_from_environment() -> FastAPI:
    return product.app_from_environment(extensions=(with_phone_simulator,))
