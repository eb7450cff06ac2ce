"""Delivering CAD events to their calls' workflows: the edge's parsers for a body (JSON
events, an EIDO document) and the signal-with-start of each event, shared by the ingest
API (`web.cad_ingest`) and the CLI (`callerloop cad send`, `callerloop deadletter retry`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio.client import Client
from temporalio.service import RPCError

from callerloop.cad import dead_letters
from callerloop.cad.client import CadClient, CallAlreadyFinished
from callerloop.cad.eido import InvalidEido, eido_mapping_for, eido_to_events
from callerloop.cad.events import InvalidCadEvent, UnknownAgency, decode_json, parse_cad_json
from callerloop.core import metrics
from callerloop.core.agency_config import AgencyConfig
from workflows.model import CadEvent

EVENTS_PATH = "/v1/cad/events"
EIDO_PATH = "/v1/cad/eido"

# Starts or signals the event's call workflow; returns its workflow id.
SignalWithStart = Callable[[CadEvent], Awaitable[str]]


# How long one delivery may wait for Temporal before the request is answered 503 (and
# kept): a CAD adapter should hear back well within its own timeout.
DELIVERY_TIMEOUT = timedelta(seconds=5)


def temporal_signal_with_start(
    client_factory: Callable[[], Awaitable[Client]], task_queue: str
) -> SignalWithStart:
    """A SignalWithStart over a (lazily connected) Temporal client."""

    async def signal_with_start(event: CadEvent) -> str:
        cad = CadClient(await client_factory(), task_queue, rpc_timeout=DELIVERY_TIMEOUT)
        return (await cad.send(event)).workflow_id

    return signal_with_start


class TemporalUnavailable(Exception):
    """Temporal could not be reached; the events can be delivered again later."""


@dataclass
class Delivery:
    workflow_ids: list[str] = field(default_factory=list)
    finished: list[dict[str, str]] = field(default_factory=list)


def _is_unreachable(error: Exception) -> bool:
    # Client.connect reports a refused connection as RuntimeError("Failed client connect: …").
    return isinstance(error, RPCError | OSError) or (
        isinstance(error, RuntimeError) and str(error).startswith("Failed client connect")
    )


async def deliver_events(
    events: Sequence[CadEvent], signal_with_start: SignalWithStart
) -> Delivery:
    """Deliver in order. A finished call refuses its event and the others still go;
    Temporal being unreachable stops the whole batch (resending it is safe: event ids
    make every event idempotent)."""
    delivery = Delivery()
    for event in events:
        try:
            delivery.workflow_ids.append(await signal_with_start(event))
            metrics.CAD_EVENTS_ACCEPTED.labels(event.agency, event.event_type.value).inc()
        except CallAlreadyFinished as error:
            delivery.finished.append(
                {"event_id": event.event_id, "incident_id": event.incident_id, "detail": str(error)}
            )
        except Exception as error:
            if not _is_unreachable(error):
                raise
            raise TemporalUnavailable(f"temporal unavailable: {error}") from error
    return delivery


class NotTheKeysAgency(InvalidCadEvent):
    """An event for another agency than the key's (403): the message names the key's
    agency and the one the event gave, never the agencies configured."""


# Turns a request body from the key's agency into CAD events, or raises InvalidCadEvent.
# No agency (None): a local operator's retry of a body kept without one, for any agency.
BodyParser = Callable[[str, str | None], list[CadEvent]]


def events_parser(agencies: Mapping[str, AgencyConfig]) -> BodyParser:
    def parse(body: str, agency_id: str | None) -> list[CadEvent]:
        if agency_id is None:
            return parse_cad_json(body, agencies, "body")
        own = {agency_id: _configured(agencies, agency_id)}
        try:
            return parse_cad_json(body, own, "body")
        except UnknownAgency as error:
            raise NotTheKeysAgency(
                f"{error.where}.agency: this API key belongs to agency {agency_id!r}, "
                f"not to {error.agency!r}"
            ) from None

    return parse


def _configured(agencies: Mapping[str, AgencyConfig], agency_id: str) -> AgencyConfig:
    """The key's agency, or an error when its file is gone (the key outlived it)."""
    agency = agencies.get(agency_id)
    if agency is None:
        raise InvalidCadEvent(f"body: agency {agency_id!r} is not configured")
    return agency


def eido_parser(agencies: Mapping[str, AgencyConfig]) -> BodyParser:
    """An EIDO document names no callerloop agency: it is the key's."""

    def parse(body: str, agency_id: str | None) -> list[CadEvent]:
        if agency_id is None:
            raise InvalidCadEvent("body: an EIDO document is for the agency of its API key")
        agency = _configured(agencies, agency_id)
        document = decode_json(body, "body")
        if not isinstance(document, dict):
            raise InvalidCadEvent("body: expected an EIDO JSON object")
        try:
            return eido_to_events(document, agency, eido_mapping_for(agency), "body")
        except InvalidEido as error:
            raise InvalidCadEvent(str(error)) from None

    return parse


# The dead letters of the CAD poller and the watched folder: rows, not request bodies.
POLLED_ROW = "cad-poll"
FOLDER_ROW = "cad-folder"


def body_delivery(
    agencies: Mapping[str, AgencyConfig],
    signal_with_start: SignalWithStart,
    endpoint: str = EVENTS_PATH,
    agency: str | None = None,
) -> dead_letters.Deliver:
    """Validate a kept body again, as the endpoint it came to would for the key's
    `agency`, and deliver it: what `deadletter retry` runs."""
    parse = eido_parser(agencies) if endpoint == EIDO_PATH else events_parser(agencies)

    async def deliver(body: str) -> Delivery:
        if endpoint in (POLLED_ROW, FOLDER_ROW):
            raise InvalidCadEvent(
                "a row the CAD poller could not read: correct it in the CAD, and the poller "
                "reads it again when it changes (discard this dead letter then)"
            )
        return await deliver_events(parse(body, agency), signal_with_start)

    return deliver
