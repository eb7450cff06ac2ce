"""What the bench replays and how: CAD events from the real export (or synthetic ones),
sent through the Python client or the HTTP ingest API with a timestamp per event, and the
texts they caused matched back to them."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path

import httpx
from sqlmodel import select
from temporalio.client import Client

from callerloop.cad.client import CadClient
from callerloop.cad.http_client import EVENTS_PATH, IngestRefused, event_json
from callerloop.cad.replay import (
    ParsedExport,
    ReplayCall,
    ReplayReport,
    parse_cad_export,
    replay,
    timeline,
)
from callerloop.cad.synthetic_day import synthetic_day, to_csv_lines
from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database, OutboxMessage
from callerloop.core.settings import SHARED_CAD_EXPORT
from devtools.devstack import DEMO_SEED, busiest_day
from workflows.model import CadEvent, CadEventType, CallSource, LineType

# The event whose arrival makes each text due (delay notices and surveys are timers).
_UNIT_EVENTS = frozenset({CadEventType.ASSIGNED, CadEventType.ENROUTE, CadEventType.ON_SCENE})
EVENT_DRIVEN_KINDS = ("confirmation", "assigned", "cleared")


@dataclass
class Calls:
    description: str
    calls: list[ReplayCall]
    real: bool


def export_path() -> Path | None:
    return SHARED_CAD_EXPORT if SHARED_CAD_EXPORT.exists() else None


def busiest_day_calls(agency: AgencyConfig, limit: int | None = None) -> Calls:
    """The busiest day of the real export beside the checkout, else a seeded synthetic
    day of the same size (246 calls)."""
    path = export_path()
    if path is None:
        day = date(2025, 10, 16)
        rows = synthetic_day(agency, day, seed=DEMO_SEED, calls=246)
        export = parse_cad_export(to_csv_lines(rows), agency, seed=DEMO_SEED)
        description = (
            f"a synthetic day of 246 calls (seed {DEMO_SEED}): no export at {SHARED_CAD_EXPORT}"
        )
        calls, real = export.calls, False
    else:
        day, count = busiest_day(path, agency)
        start = datetime.combine(day, clock_time())
        with path.open(encoding="utf-8-sig", newline="") as handle:
            export = parse_cad_export(
                handle, agency, seed=DEMO_SEED, since=start, until=start + timedelta(days=1)
            )
        description = f"{day}, the busiest day of the real export ({count} calls)"
        calls, real = export.calls, True
    if limit is not None:
        calls = calls[:limit]
        description += f", its first {len(calls)} calls"
    return Calls(description, calls, real)


def all_calls(agency: AgencyConfig, days: int | None = None) -> Calls:
    """The whole real export (or its first `days` days); else 98 synthetic days."""
    export, description, real = whole_export(agency, days)
    calls = export.calls
    if real and days is not None:
        first_day = min(call.created_at for call in calls).date()
        calls = [c for c in calls if (c.created_at.date() - first_day).days < days]
        description = f"the first {days} days of the real export ({len(calls)} calls)"
    return Calls(description, calls, real)


def whole_export(agency: AgencyConfig, days: int | None = None) -> tuple[ParsedExport, str, bool]:
    """The real export parsed, else `days` (98) synthetic days: the export, what it is,
    and whether it is real."""
    path = export_path()
    if path is None:
        first = date(2025, 8, 24)
        count = days or 98
        lines: list[str] = []
        for n in range(count):
            day_lines = to_csv_lines(
                synthetic_day(agency, first + timedelta(days=n), seed=DEMO_SEED)
            )
            lines.extend(day_lines if not lines else day_lines[1:])
        export = parse_cad_export(lines, agency, seed=DEMO_SEED)
        return export, f"{count} synthetic days (seed {DEMO_SEED})", False
    with path.open(encoding="utf-8-sig", newline="") as handle:
        export = parse_cad_export(handle, agency, seed=DEMO_SEED)
    return export, f"the whole real export ({len(export.calls)} calls)", True


def trim_tail(events: list[CadEvent], hours: float) -> tuple[list[CadEvent], int]:
    """Drop events more than `hours` of CAD time after the first (calls reopened days
    later would stretch a day's replay): the kept events and how many were dropped."""
    if not events:
        return events, 0
    end = events[0].occurred_at + timedelta(hours=hours)
    kept = [e for e in events if e.occurred_at <= end]
    return kept, len(events) - len(kept)


def eligible_call(agency: str, incident_id: str, number: int) -> list[CadEvent]:
    """A synthetic call that is texted: created (priority 3, a mobile caller), assigned,
    cleared, a second apart in CAD time."""
    now = datetime.now(UTC)

    def event(kind: CadEventType, offset: int, **fields: object) -> CadEvent:
        return CadEvent(
            agency=agency,
            incident_id=incident_id,
            event_type=kind,
            occurred_at=now + timedelta(seconds=offset),
            event_id=f"{incident_id}:{kind.value}",
            **fields,  # type: ignore[arg-type]
        )

    return [
        event(
            CadEventType.CREATED,
            0,
            priority=3,
            call_type="NOISE COMPLAINT",
            source=CallSource.PHONE,
            caller_phone=f"+1703555{100 + number % 100:04d}",
            caller_line_type=LineType.MOBILE,
            caller_language="en",
        ),
        event(CadEventType.ASSIGNED, 1),
        event(CadEventType.CLEARED, 2, disposition="REPORT TAKEN"),
    ]


# --- sending, with a timestamp per event --------------------------------------------------


@dataclass
class Sent:
    event: CadEvent
    submitted: float  # epoch seconds, just before the client sends it
    accepted: float | None = None  # when the client had the answer
    error: str | None = None


SendEvent = Callable[[CadEvent], Awaitable[object]]


def python_sender(client: Client, task_queue: str) -> SendEvent:
    cad = CadClient(client, task_queue)
    return cad.send


def http_sender(base_url: str, keys: Sequence[str]) -> SendEvent:
    """A CAD adapter posting each event to `POST /v1/cad/events` over one kept-alive
    connection pool, round-robin over several API keys (each key is rate-limited like one
    CAD; the bench measures the pipeline, not the limiter); a 429 is retried after a pause.
    (`HttpCadClient.publish` outside `async with` builds an httpx client per post, ~150 ms
    of CPU each here for its TLS context: a CAD side that posts often must keep one.)"""
    client = httpx.AsyncClient(base_url=base_url, timeout=30.0)
    headers = itertools.cycle(
        [{"Authorization": f"Bearer {key}", "Content-Type": "application/json"} for key in keys]
    )

    async def send(event: CadEvent) -> object:
        for _ in range(50):
            response = await client.post(
                EVENTS_PATH, content=json.dumps(event_json(event)), headers=next(headers)
            )
            if response.status_code == 429:
                await asyncio.sleep(0.05)
                continue
            if response.is_error:
                raise IngestRefused(response.status_code, response.text)
            return response.json()
        raise RuntimeError("rate-limited 50 times in a row")

    return send


class Recorder:
    """Wraps a sender: records when each event went and when it was accepted."""

    def __init__(self, send: SendEvent) -> None:
        self._send = send
        self.sent: dict[str, Sent] = {}

    async def __call__(self, event: CadEvent) -> None:
        record = Sent(event, time.time())
        self.sent[event.event_id] = record
        try:
            await self._send(event)
        except Exception as error:
            record.error = str(error) or type(error).__name__
            raise
        finally:
            record.accepted = time.time()


async def timed_replay(
    events: Sequence[CadEvent], send: SendEvent, speed: float, max_in_flight: int = 64
) -> tuple[ReplayReport, Recorder]:
    recorder = Recorder(send)
    report = await replay(events, recorder, speed=speed, max_in_flight=max_in_flight)
    return report, recorder


def events_of(calls: Iterable[ReplayCall]) -> list[CadEvent]:
    return timeline(calls)


# --- texts back to the events that caused them ---------------------------------------------


@dataclass
class Text:
    workflow_id: str
    incident_id: str
    kind: str
    status: str
    created_at: float
    sent_at: float | None


def read_texts(db: Database) -> list[Text]:
    with db.session() as session:
        rows = session.exec(select(OutboxMessage)).all()
    return [
        Text(
            workflow_id=row.workflow_id,
            incident_id=row.incident_id,
            kind=row.kind,
            status=row.status,
            created_at=row.created_at.timestamp(),
            sent_at=row.sent_at.timestamp() if row.sent_at else None,
        )
        for row in rows
    ]


@dataclass
class TextLatency:
    text: Text
    trigger: Sent

    @property
    def seconds(self) -> float:
        assert self.text.sent_at is not None
        return self.text.sent_at - self.trigger.submitted


def trigger_of(kind: str, events: Sequence[Sent]) -> Sent | None:
    """The event (of one call, in order) whose arrival made a text of `kind` due."""
    for record in events:
        event_type = record.event.event_type
        if (
            (kind == "confirmation" and event_type == CadEventType.CREATED)
            or (kind == "assigned" and event_type in _UNIT_EVENTS)
            or (kind == "cleared" and event_type == CadEventType.CLEARED)
        ):
            return record
    return None


def match_texts(texts: Iterable[Text], sent: Iterable[Sent]) -> list[TextLatency]:
    """Each event-driven text that reached the provider, with the event that caused it."""
    by_incident: dict[str, list[Sent]] = defaultdict(list)
    for record in sorted(sent, key=lambda r: r.submitted):
        if record.error is None:
            by_incident[record.event.incident_id].append(record)
    matched = []
    for text in texts:
        if text.kind not in EVENT_DRIVEN_KINDS or text.sent_at is None:
            continue
        trigger = trigger_of(text.kind, by_incident.get(text.incident_id, []))
        if trigger is not None:
            matched.append(TextLatency(text, trigger))
    return matched
