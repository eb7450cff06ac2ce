"""The web app as the dev stack serves it: the product's app plus the phone simulator
(`/dev/phone`) while no text can leave the machine (the `local` provider, or the local
Twilio stand-in). uvicorn runs it as

    uvicorn --factory devtools.web_app:app_from_environment
"""

from __future__ import annotations

from fastapi import FastAPI

from callerloop.core.agency_config import load_agencies
from callerloop.core.db import Database
from callerloop.core.settings import Settings
from devtools.conversation_log import ConversationLog
from devtools.inbound_texts import InboundTexts
from devtools.phone_simulator import phone_simulator_router
from devtools.twilio_standin import DEFAULT_ACCOUNT_SID
from web import app as product
from web.i18n import PageRenderer


def has_phone_simulator(settings: Settings) -> bool:
    """Only while texts stay on this machine: a simulated reply must never answer a real
    resident's real text."""
    return not settings.sends_through_real_twilio


def with_phone_simulator(
    app: FastAPI, settings: Settings, db: Database, renderer: PageRenderer
) -> None:
    """Show the outbox as phones would, and let a person reply as the resident."""
    if not has_phone_simulator(settings):
        return
    texts = InboundTexts(
        settings.public_base_url,
        settings.twilio_account_sid or DEFAULT_ACCOUNT_SID,
        settings.twilio_auth_token.get_secret_value(),
    )
    app.include_router(
        phone_simulator_router(
            db,
            renderer,
            load_agencies(settings.agencies_dir),
            texts,
            ConversationLog.in_folder(settings.data_dir),
        )
    )


def app_from_environment() -> FastAPI:
    return product.app_from_environment(extensions=(with_phone_simulator,))
