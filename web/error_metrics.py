"""Counts the errors answered to other systems (Twilio's webhooks, the CAD ingest API) in
`callerloop_webhook_errors_total`: a plain ASGI middleware, so nothing else it passes is
touched (bodies stream through as they are)."""

from __future__ import annotations

from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callerloop.core import metrics


class WebhookErrorMetrics:
    def __init__(self, app: ASGIApp, endpoints: Collection[str]) -> None:
        self.app = app
        self.endpoints = frozenset(endpoints)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path not in self.endpoints:
            await self.app(scope, receive, send)
            return
        status: list[int] = []

        async def send_counting(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
                if message["status"] >= 400:
                    metrics.WEBHOOK_ERRORS.labels(path, str(message["status"])).inc()
            await send(message)

        try:
            await self.app(scope, receive, send_counting)
        except Exception:
            if not status:  # the server answers 500 for it
                metrics.WEBHOOK_ERRORS.labels(path, "500").inc()
            raise
