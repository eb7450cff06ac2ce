"""The CAD side's client over HTTP: posts CAD events to callerloop's ingest API
(`POST /v1/cad/events`), for a CAD that cannot reach Temporal itself."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Self

import httpx

from callerloop.cad.client import CallAlreadyFinished
from workflows.model import CadEvent

EVENTS_PATH = "/v1/cad/events"


class IngestRefused(Exception):
    """The ingest API answered with an error; the message is the server's."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code
        self.message = message


# Answers that say "not now": over the key's rate (429), Temporal unreachable (503, the
# events kept as a dead letter), a proxy in front of a restarting app (502, 504).
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class Retrying:
    """How a post that was told "not now", or could not reach the server, is tried again:
    after the server's Retry-After, else a doubling pause, neither longer than max_pause.
    Resending is safe: event ids make every event idempotent."""

    attempts: int | None = 5  # posts in all, the first included; None: no limit
    first_pause: float = 0.2
    max_pause: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts is not None and self.attempts < 1:
            raise ValueError(f"attempts must be at least 1 (or None), got {self.attempts}")

    def pause(self, retry: int, retry_after: str | None) -> float:
        """Seconds to wait before the `retry`-th retry (from 1)."""
        backoff = self.first_pause * 2.0 ** (retry - 1)
        if retry_after is not None and retry_after.strip().isdigit():
            backoff = float(retry_after)
        return min(backoff, self.max_pause)


NO_RETRY = Retrying(attempts=1)


class HttpCadClient:
    """Posts events to a callerloop ingest API. Use it as an async context manager to keep
    one connection for many posts (a replay); otherwise each post opens its own. With a
    `retrying` policy, a post answered 429/502/503/504 or not answered at all is sent
    again; `retries` counts those second tries."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        retrying: Retrying = NO_RETRY,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._timeout = timeout
        self._retrying = retrying
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self.retries = 0

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
        attempt = 1
        while True:
            try:
                response = await self._post_once(body)
            except httpx.TransportError:
                if not self._may_retry(attempt):
                    raise
                retry_after = None
            else:
                if not response.is_error:
                    answer: dict[str, Any] = response.json()
                    return answer
                if response.status_code not in RETRYABLE_STATUS or not self._may_retry(attempt):
                    raise IngestRefused(response.status_code, _server_message(response))
                retry_after = response.headers.get("Retry-After")
            self.retries += 1
            await asyncio.sleep(self._retrying.pause(attempt, retry_after))
            attempt += 1

    def _may_retry(self, attempt: int) -> bool:
        return self._retrying.attempts is None or attempt < self._retrying.attempts

    async def _post_once(self, body: str) -> httpx.Response:
        headers = {**self._headers, "Content-Type": "application/json"}
        if self._client is not None:
            return await self._client.post(EVENTS_PATH, content=body, headers=headers)
        async with self._new_client() as client:
            return await client.post(EVENTS_PATH, content=body, headers=headers)

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
