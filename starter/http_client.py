"""The CAD side's client over HTTP: posts CAD events to callerloop's ingest API
(`POST /v1/cad/events`), for a CAD that cannot reach Temporal itself."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any, Self

import httpx

from starter.cad_client import CallAlreadyFinished
from workflows.model import CadEvent

EVENTS_PATH = "/v1/cad/events"


class IngestRefused(Exception):
    """The ingest API answered with an error; the message is the server's."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code
        self.message = message


class HttpCadClient:
    """Posts events to a callerloop ingest API. Use it as an async context manager to keep
    one connection for many posts (a replay); otherwise each post opens its own."""

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
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Self:
        self._client = self._new_client()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def publish(self, event: CadEvent | list[CadEvent]) -> list[str]:
        """Deliver one event or a list; returns the workflow ids of the delivered events."""
        payload = [event_json(e) for e in event] if isinstance(event, list) else event_json(event)
        return await self.publish_json(json.dumps(payload))

    async def publish_json(self, body: str) -> list[str]:
        """Deliver a JSON body as it is (one event or a list): the server validates it."""
        workflow_ids: list[str] = (await self._post(body))["workflow_ids"]
        return workflow_ids

    async def send(self, event: CadEvent) -> str:
        """Deliver one event, like `CadClient.publish`: its workflow id, or
        CallAlreadyFinished when the call has ended and the event was not applied."""
        answer = await self._post(json.dumps(event_json(event)))
        if answer["finished"]:
            raise CallAlreadyFinished(answer["finished"][0].get("detail", event.event_id))
        workflow_id: str = answer["workflow_ids"][0]
        return workflow_id

    async def _post(self, body: str) -> dict[str, Any]:
        headers = {**self._headers, "Content-Type": "application/json"}
        if self._client is not None:
            response = await self._client.post(EVENTS_PATH, content=body, headers=headers)
        else:
            async with self._new_client() as client:
                response = await client.post(EVENTS_PATH, content=body, headers=headers)
        if response.is_error:
            raise IngestRefused(response.status_code, _server_message(response))
        answer: dict[str, Any] = response.json()
        return answer

    def _new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self._base_url, timeout=self._timeout, transport=self._transport
        )


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
