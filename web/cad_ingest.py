"""The CAD ingest API: `POST /v1/cad/events` with one CAD event or a list of them, and
`POST /v1/cad/eido` with a NENA-STA-021 EIDO incident document.

Thin like the Twilio router: authenticate the key, validate with `parse_cad_json` (the same
edge validation as `callerloop cad send`), signal-with-start each event's workflow. A body
that is refused as invalid, or that cannot reach Temporal, is kept as a dead letter.

A key sends for its own agency only, and its errors name no other: an event for any other
agency, configured or not, is refused alike (403), so a key holder cannot learn which
agencies this callerloop serves.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, TypeAdapter
from starlette.concurrency import run_in_threadpool

from callerloop.cad import dead_letters
from callerloop.cad.delivery import (
    EIDO_PATH,
    EVENTS_PATH,
    BodyParser,
    NotTheKeysAgency,
    SignalWithStart,
    TemporalUnavailable,
    deliver_events,
    eido_parser,
    events_parser,
)
from callerloop.cad.edge_stops import holding_at_edge
from callerloop.cad.events import InvalidCadEvent
from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database
from callerloop.staff.api_keys import agency_for_key
from workflows.cad_limits import MAX_LENGTHS
from workflows.model import CadEvent

log = structlog.get_logger("web.cad_ingest")

MAX_BODY_BYTES = 1024 * 1024
MAX_EVENTS = 500


@dataclass(frozen=True)
class RateLimit:
    per_second: float = 50.0
    burst: float = 100.0


class TokenBuckets:
    """One token bucket per API key, in memory (per process: enough to stop a runaway CAD)."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)

    def take(self, key: str) -> float:
        """0 when a request may go now, else the seconds until one may."""
        now = self._clock()
        tokens, last = self._buckets.get(key, (self._limit.burst, now))
        tokens = min(self._limit.burst, tokens + (now - last) * self._limit.per_second)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self._limit.per_second
        self._buckets[key] = (tokens - 1, now)
        return 0.0


def cad_ingest_router(
    db: Database,
    agencies: Mapping[str, AgencyConfig],
    signal_with_start: SignalWithStart,
    *,
    rate_limit: RateLimit = RateLimit(),
    max_body_bytes: int = MAX_BODY_BYTES,
    max_events: int = MAX_EVENTS,
) -> APIRouter:
    router = APIRouter()
    buckets = TokenBuckets(rate_limit)
    parse_events, parse_eido = events_parser(agencies), eido_parser(agencies)
    signal_with_start = holding_at_edge(signal_with_start, db, agencies)

    @router.post(
        EVENTS_PATH,
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        openapi_extra=_OPENAPI_REQUEST,
        responses=_OPENAPI_RESPONSES,
    )
    async def receive_cad_events(
        request: Request, key: Annotated[str, Depends(presented_key)]
    ) -> JSONResponse:
        """CAD events (one object or a list of up to 500): each starts or advances its
        call's workflow. Authenticate with `Authorization: Bearer <key>` or `X-API-Key`."""
        return await ingest(request, key, EVENTS_PATH, parse_events)

    @router.post(
        EIDO_PATH,
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        openapi_extra=_OPENAPI_EIDO_REQUEST,
        responses=_OPENAPI_RESPONSES,
    )
    async def receive_eido(
        request: Request, key: Annotated[str, Depends(presented_key)]
    ) -> JSONResponse:
        """A NENA-STA-021 EIDO incident document for the key's agency: its status, units,
        priority, type and callback number become the call's CAD events."""
        return await ingest(request, key, EIDO_PATH, parse_eido)

    async def keep(path: str, agency: str, reason: str, body: str) -> int:
        return await run_in_threadpool(dead_letters.keep, db, path, agency, reason, body)

    async def ingest(request: Request, key: str, path: str, parse: BodyParser) -> JSONResponse:
        agency = await run_in_threadpool(agency_for_key, db, key)
        if agency is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown or revoked API key")
        wait = buckets.take(key)
        if wait > 0:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                "too many requests for this API key",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        body = await _read_body(request, max_body_bytes)
        try:
            events = parse(body, agency)
        except NotTheKeysAgency as error:
            letter = await keep(path, agency, str(error), body)
            return _refused(status.HTTP_403_FORBIDDEN, str(error), letter)
        except InvalidCadEvent as error:
            return _invalid(str(error), await keep(path, agency, str(error), body))
        if len(events) > max_events:
            reason = f"{len(events)} events in one request; at most {max_events}"
            letter = await keep(path, agency, reason, body)
            return _refused(status.HTTP_413_CONTENT_TOO_LARGE, reason, letter)
        try:
            delivery = await deliver_events(events, signal_with_start)
        except TemporalUnavailable as error:
            letter = await keep(path, agency, str(error), body)
            log.warning("cad events kept for later", dead_letter=letter, reason=str(error))
            return JSONResponse(
                {"detail": f"{error}; kept as dead letter {letter}", "dead_letter_id": letter},
                status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
                headers={"Retry-After": "30"},
            )
        return JSONResponse(
            {"workflow_ids": delivery.workflow_ids, "finished": delivery.finished},
            status_code=status.HTTP_202_ACCEPTED,
        )

    return router


# Declared as security schemes (so OpenAPI documents them); checked by presented_key.
_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="The API key in `X-API-Key`"
)


def presented_key(
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(_api_key_header)],
) -> str:
    key = (bearer.credentials.strip() if bearer else "") or (header_key or "").strip()
    if not key:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "API key missing: send `Authorization: Bearer <key>` or `X-API-Key: <key>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return key


async def _read_body(request: Request, limit: int) -> str:
    """The body as text, refused past `limit` bytes without reading it all."""
    too_large = HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE, f"request body larger than {limit} bytes"
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8-sig", errors="replace")


def _refused(code: int, reason: str, dead_letter_id: int) -> JSONResponse:
    detail = f"{reason}; kept as dead letter {dead_letter_id}"
    return JSONResponse({"detail": detail, "dead_letter_id": dead_letter_id}, status_code=code)


def _invalid(message: str, dead_letter_id: int) -> JSONResponse:
    return JSONResponse(
        {"detail": validation_details(message), "dead_letter_id": dead_letter_id},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


def validation_details(message: str) -> list[dict[str, Any]]:
    """`body[0].priority: expected …; body[1]: …` as FastAPI-style `{loc, msg}` items."""
    details = []
    for part in re.split(r"; (?=body\b)", message):
        path, _, problem = part.partition(": ")
        details.append({"loc": _loc(path), "msg": problem, "type": "value_error"})
    return details


def _loc(path: str) -> list[str | int]:
    """`body[0].caller_phone` → ["body", 0, "caller_phone"]."""
    return [
        int(index) if index else name for index, name in re.findall(r"\[(\d+)\]|([^.\[\]]+)", path)
    ]


def _inline_refs(schema: Any, definitions: Mapping[str, Any]) -> Any:
    """Replace `#/$defs/…` references (which OpenAPI cannot resolve here) by their schema."""
    if isinstance(schema, dict):
        reference = schema.get("$ref", "")
        if reference.startswith("#/$defs/"):
            return _inline_refs(definitions[reference.removeprefix("#/$defs/")], definitions)
        return {k: _inline_refs(v, definitions) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline_refs(item, definitions) for item in schema]
    return schema


def _event_schema() -> dict[str, Any]:
    schema = TypeAdapter(CadEvent).json_schema()
    inlined: dict[str, Any] = _inline_refs(schema, schema.get("$defs", {}))
    return _with_bounds(inlined)


# What the schema cannot say itself (OpenAPI's models turn an int64 bound into a float).
_DESCRIPTIONS = {
    "priority": "On the agency's priority scale (`[cad] priority_scale`, 0 to 9 by default).",
    "occurred_at": (
        "With a UTC offset; from 2000-01-01 up to two days ahead of the server's clock."
    ),
}


def _with_bounds(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with the bounds ingest enforces: string lengths as `maxLength`, the
    others in words."""
    properties = {}
    for name, prop in schema["properties"].items():
        if name in MAX_LENGTHS:
            prop = _max_length(prop, MAX_LENGTHS[name])
        if name in _DESCRIPTIONS:
            prop = {**prop, "description": _DESCRIPTIONS[name]}
        properties[name] = prop
    return {**schema, "properties": properties}


def _max_length(prop: dict[str, Any], length: int) -> dict[str, Any]:
    """The string property, or its string branch (`anyOf` with null), at most `length`."""
    if prop.get("type") == "string":
        return {**prop, "maxLength": length}
    if "anyOf" in prop:
        return {**prop, "anyOf": [_max_length(branch, length) for branch in prop["anyOf"]]}
    return prop


class FinishedCall(BaseModel):
    event_id: str
    incident_id: str
    detail: str


class Accepted(BaseModel):
    """Delivered events' workflow ids, and the events refused because their call ended."""

    workflow_ids: list[str]
    finished: list[FinishedCall]


class Problem(BaseModel):
    detail: str


class KeptProblem(BaseModel):
    """Refused, but the body is kept: `callerloop deadletter show/retry DEAD_LETTER_ID`."""

    detail: str
    dead_letter_id: int


class InvalidField(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class InvalidBody(BaseModel):
    """What is wrong and where (`loc`), for every problem found; the body is kept."""

    detail: list[InvalidField]
    dead_letter_id: int


_EXAMPLE_EVENT = {
    "agency": "example",
    "incident_id": "2025-081234",
    "event_type": "created",
    "occurred_at": "2025-09-01T10:04:00-04:00",
    "event_id": "cad-7781-1",
    "priority": 4,
    "call_type": "NOISE COMPLAINT",
    "source": "phone",
    "caller_phone": "+17035550142",
    "caller_language": "en",
}
_EVENT_SCHEMA = _event_schema()
_OPENAPI_REQUEST: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        _EVENT_SCHEMA,
                        {"type": "array", "items": _EVENT_SCHEMA, "maxItems": MAX_EVENTS},
                    ]
                },
                "examples": {
                    "one event": {"value": _EXAMPLE_EVENT},
                    "a list": {
                        "value": [
                            _EXAMPLE_EVENT,
                            {
                                "agency": "example",
                                "incident_id": "2025-081234",
                                "event_type": "assigned",
                                "occurred_at": "2025-09-01T10:09:30-04:00",
                                "event_id": "cad-7781-2",
                            },
                        ]
                    },
                },
            }
        },
    }
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
_OPENAPI_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "API key missing, unknown or revoked"},
    403: {"model": KeptProblem, "description": "An event is for another agency; kept"},
    413: {
        "model": KeptProblem | Problem,
        "description": "More than 500 events (kept), or a body over 1 MiB (not read, not kept)",
    },
    422: {"model": InvalidBody, "description": "Invalid JSON or event: where and why; kept"},
    429: {"model": Problem, "description": "Over the key's rate", "headers": _RETRY_AFTER},
    503: {
        "model": KeptProblem,
        "description": "Temporal unreachable: the body is kept and delivered later",
        "headers": _RETRY_AFTER,
    },
}

_OPENAPI_EIDO_REQUEST: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "An EIDO incident document (NENA-STA-021 JSON).",
                    "additionalProperties": True,
                },
            }
        },
    }
}
