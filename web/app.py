"""The web app: `create_app(...)` for tests and embedding, `app_from_environment()` for
`callerloop web` (uvicorn), which is the same as

    uvicorn --factory web.app:app_from_environment --host 0.0.0.0 --port 8000 --proxy-headers

Residents open `/s/{token}` (status) and `/survey/{token}` from their texts, and
`/never-text/{agency_id}` from the agency's website (never text this number). Staff sign in
to `/dashboard` (users: `callerloop users add`); `/opendata/` serves the published survey
results. The dev stack's phone simulator (`/dev/phone`) is not part of the product: the
dev stack serves `devtools.web_app`, which adds it through `extensions`.

Configure Twilio's webhooks as `{CALLERLOOP_PUBLIC_BASE_URL}/twilio/status` (status
callback) and `{CALLERLOOP_PUBLIC_BASE_URL}/twilio/inbound` (incoming messages).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence

from fastapi import FastAPI, Response
from fastapi.responses import PlainTextResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import Client

from callerloop.cad.delivery import EIDO_PATH, EVENTS_PATH, temporal_signal_with_start
from callerloop.core.agency_config import AgencyConfig, load_agencies
from callerloop.core.db import Database, database_for
from callerloop.core.health import check_readiness, metrics_body, temporal_runtime
from callerloop.core.logging import configure_logging
from callerloop.core.settings import Settings, get_settings
from callerloop.core.temporal import FAIL_FAST, connect, payload_codec, required_payload_codec
from web.cad_ingest import RateLimit, cad_ingest_router
from web.codec_server import codec_app
from web.dashboard import dashboard_router
from web.dry_run_page import dry_run_router
from web.error_metrics import WebhookErrorMetrics
from web.i18n import STATIC_DIR, PageRenderer
from web.never_text import never_text_router
from web.opendata import opendata_router
from web.page_security import FormProtection, GuessLimiter
from web.resident_pages import resident_pages_router
from web.staff_auth import StaffAuth
from web.staff_pages import StaffRenderer
from web.twilio_signature import TwilioSignatureCheck
from web.twilio_webhooks import INBOUND_PATH, STATUS_PATH, temporal_signaller, twilio_router

ClientFactory = Callable[[], Awaitable[Client]]
# Adds routes to the app from outside the product (the dev stack's phone simulator).
AppExtension = Callable[[FastAPI, Settings, Database, PageRenderer], None]
# Requests from other systems: an error answered to them is counted (webhook errors).
MACHINE_ENDPOINTS = frozenset({STATUS_PATH, INBOUND_PATH, EVENTS_PATH, EIDO_PATH})


def create_app(
    settings: Settings,
    db: Database,
    agencies: Mapping[str, AgencyConfig],
    temporal_client_factory: ClientFactory,
    guess_limiter: GuessLimiter | None = None,
    login_limiter: GuessLimiter | None = None,
    extensions: Sequence[AppExtension] = (),
) -> FastAPI:
    app = FastAPI(title="callerloop", docs_url="/docs", redoc_url=None)
    signature_check = TwilioSignatureCheck(
        settings.public_base_url, settings.twilio_auth_token.get_secret_value()
    )
    client = once(temporal_client_factory)
    signal_call = temporal_signaller(client)
    app.include_router(twilio_router(signature_check, db, agencies, signal_call))
    app.include_router(
        cad_ingest_router(
            db,
            agencies,
            temporal_signal_with_start(client, settings.task_queue),
            rate_limit=RateLimit(settings.ingest_rate_per_second, settings.ingest_burst),
        )
    )

    renderer = PageRenderer()
    forms = FormProtection(
        settings.pages_secret.get_secret_value().encode(), settings.public_base_url
    )
    app.include_router(
        resident_pages_router(db, agencies, renderer, guess_limiter or GuessLimiter(), forms)
    )
    app.include_router(never_text_router(db, agencies, renderer, forms, signal_call))
    staff_renderer = StaffRenderer()
    auth = StaffAuth(db, forms, staff_renderer, client_limiter=login_limiter)
    app.include_router(auth.router())
    app.include_router(dashboard_router(db, agencies, auth, staff_renderer))
    app.include_router(dry_run_router(db, agencies, auth, staff_renderer, settings.public_base_url))
    app.include_router(opendata_router(db, agencies, settings.public_base_url))
    for extend in extensions:
        extend(app, settings, db, renderer)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    codec = payload_codec(settings)
    if codec is not None:
        tokens = settings.codec_access_tokens.get_secret_value().split(",")
        app.mount("/codec", codec_app(codec, settings.codec_cors_origins, tokens))

    @app.get("/healthz", response_class=PlainTextResponse)
    async def healthz() -> str:
        """The process is up (liveness)."""
        return "ok"

    @app.get("/readyz", response_class=PlainTextResponse)
    async def readyz() -> PlainTextResponse:
        """200 when Temporal and the database answer; 503 naming what does not."""
        readiness = await check_readiness(client, db, settings.readiness_timeout)
        return PlainTextResponse(readiness.body(), status_code=200 if readiness.ready else 503)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        """callerloop's Prometheus metrics (keep it off the public proxy: see docs/deploying.md)."""
        return Response(metrics_body(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(WebhookErrorMetrics, endpoints=MACHINE_ENDPOINTS)
    if settings.public_base_url.startswith("https://"):
        app.add_middleware(StrictTransportSecurity)
    return app


class StrictTransportSecurity:
    """Behind TLS (an https public URL), tell browsers to come back over https only, so a
    link token can never travel in clear on a later visit."""

    HEADER = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.HEADER]
            await send(message)

        await self.app(scope, receive, with_header)


def once(factory: ClientFactory) -> ClientFactory:
    """Connect on first use (most webhooks never signal a call) and reuse the client."""
    lock = asyncio.Lock()
    connected: list[Client] = []

    async def client() -> Client:
        async with lock:
            if not connected:
                connected.append(await factory())
            return connected[0]

    return client


def app_from_environment(extensions: Sequence[AppExtension] = ()) -> FastAPI:
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    required_payload_codec(settings)  # refuse at start, not at the first Temporal call
    db = database_for(settings)
    db.create_schema()
    agencies = load_agencies(settings.agencies_dir)
    runtime = temporal_runtime(settings.temporal_metrics_address)
    return create_app(
        settings,
        db,
        agencies,
        lambda: connect(settings, FAIL_FAST, runtime),
        extensions=extensions,
    )
