"""The CAD side's client over HTTP: posts CAD events to callerloop's ingest API
(`POST /v1/cad/events`), for a CAD that cannot reach Temporal itself."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

import httpx

from workflows.model import CadEvent

EVENTS_PATH = "/v1/cad/events"


class IngestRefused(Exception):
    """The ingest API answered with an error; the message is the server's."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code
        self.message = message


class HttpCadClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._timeout = timeout
        self._transport = transport

    async def publish(self, event: CadEvent | list[CadEvent]) -> list[str]:
        """Deliver one event or a list; returns the workflow ids of the delivered events."""
        payload = [event_json(e) for e in event] if isinstance(event, list) else event_json(event)
        return await self.publish_json(json.dumps(payload))

    async def publish_json(self, body: str) -> list[str]:
        """Deliver a JSON body as it is (one event or a list): the server validates it."""
        async with httpx.AsyncClient(
            base_url=self._base_url, timeout=self._timeout, transport=self._transport
        ) as client:
            response = await client.post(
                EVENTS_PATH,
                content=body,
                headers={**self._headers, "Content-Type": "application/json"},
            )
        if response.is_error:
            raise IngestRefused(response.status_code, _server_message(response))
        workflow_ids: list[str] = response.json()["workflow_ids"]
        return workflow_ids


def event_json(event: CadEvent) -> dict[str, Any]:
    return {
        name: value.isoformat() if isinstance(value, datetime) else value
        for name, value in asdict(event).items()
    }


def _server_message(response: httpx.Response) -> str:
    """The server's `detail`: a string, or `loc: msg` items joined; else the raw text."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return response.text or response.reason_phrase
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(p) for p in item.get('loc', []))}: {item.get('msg', '')}"
            for item in detail
            if isinstance(item, dict)
        )
    return str(detail) if detail is not None else response.text
