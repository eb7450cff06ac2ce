"""Telling the calls what rows say: for a source that shows calls as rows (the CAD's
database, a watched export folder), each row read is compared with what was told of its
incident (`cad_snapshots`), its new events delivered, and the snapshot saved after them.

Delivery is at least once and applied once: a row's events are delivered before its
snapshot is saved, so a read that stops midway tells that row again next time, under the
same event ids, which the call's workflow ignores. A row that cannot be read is a dead
letter naming the incident and the column, kept once however often it is read.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime

from sqlmodel import col, select

from callerloop.cad import dead_letters
from callerloop.cad.export_rows import CallRow, ExportRow, RowReading, read_call
from callerloop.cad.replay import row_caller
from callerloop.cad.row_changes import Told, changes, digest
from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import CadSnapshot, Database, DeadLetter, utcnow
from workflows.model import CadEvent

__all__ = ["Deliver", "RowTeller", "Tally"]

# Delivers one event; False when its call, already over, did not apply it.
Deliver = Callable[[CadEvent], Awaitable[bool]]
_READ_BATCH = 500


@dataclass
class Tally:
    rows: int = 0  # rows read
    changed: int = 0  # rows whose read told something
    events: int = 0
    for_finished_calls: int = 0  # events for calls already over: not applied
    dead_letters: int = 0  # rows that could not be read, kept as dead letters

    def add(self, other: Tally) -> None:
        for count in fields(Tally):
            setattr(self, count.name, getattr(self, count.name) + getattr(other, count.name))


class RowTeller:
    """Rows of one source of one agency, told to the calls."""

    def __init__(
        self,
        agency: AgencyConfig,
        db: Database,
        reading: RowReading,
        source: str,
        dead_letter_endpoint: str,
    ) -> None:
        self.agency = agency
        self.db = db
        self.reading = reading
        self.source = source
        self.dead_letter_endpoint = dead_letter_endpoint

    async def tell(
        self,
        rows: Sequence[Mapping[str | None, object]],
        changed_at: Callable[[int, CallRow], datetime],
        deliver: Deliver,
        tally: Tally,
        *,
        calls_from: datetime | None = None,
        first_line: int = 1,
        lines: Sequence[int] | None = None,
        place: str | None = None,
        width: int | None = None,
    ) -> None:
        """Tell each row, in order. `changed_at(index, call)` says when the CAD changed
        row `index`; calls created before `calls_from` are never told. A row's line is
        `lines[index]` (a CSV's record can span lines), else `first_line + index`. The database work
        runs in threads: the event loop is the worker's. `place` names where the rows
        come from (a file) in a dead letter's reason, with the row's line; `width` is the
        header's (a CSV row with more or fewer fields is a dead letter)."""
        told = await asyncio.to_thread(self._told, rows)
        for index, record in enumerate(rows):
            tally.rows += 1
            row = _record_text(record)
            line = lines[index] if lines is not None else first_line + index
            export_row = ExportRow(record, line, width or len(record), self.reading)
            call = read_call(export_row)
            if call is None:
                kept = await asyncio.to_thread(self._dead_letter, export_row, row, place)
                tally.dead_letters += kept
                continue
            if calls_from is not None and call.created <= calls_from:
                continue  # taken by the time the source went live: never told
            previous = told.get(call.incident_id)
            found = changes(
                call,
                self.reading,
                previous,
                changed_at=changed_at(index, call),
                caller=row_caller(call, self.reading),
                row_digest=digest(row),
            )
            if found.told is previous:
                continue
            for event in found.events:
                if await deliver(event):
                    tally.events += 1
                else:
                    tally.for_finished_calls += 1
            await asyncio.to_thread(self._save, call.incident_id, found.told)
            told[call.incident_id] = found.told  # the same incident again later in rows
            tally.changed += 1 if found.events else 0

    # --- snapshots and dead letters ---------------------------------------------------

    def _told(self, rows: Sequence[Mapping[str | None, object]]) -> dict[str, Told]:
        column = self.reading.columns["incident_id"]
        named = (row.get(column) for row in rows)
        incidents = sorted({v.strip() for v in named if isinstance(v, str) and v.strip()})
        found: dict[str, Told] = {}
        with self.db.session() as session:
            for start in range(0, len(incidents), _READ_BATCH):
                statement = select(CadSnapshot).where(
                    col(CadSnapshot.source) == self.source,
                    col(CadSnapshot.incident_id).in_(incidents[start : start + _READ_BATCH]),
                )
                for snapshot in session.exec(statement):
                    found[snapshot.incident_id] = Told(
                        row_digest=snapshot.row_digest,
                        sent=frozenset(json.loads(snapshot.sent)),
                        call_type_digest=snapshot.call_type_digest,
                        priority=snapshot.priority,
                    )
        return found

    def _save(self, incident_id: str, told: Told) -> None:
        with self.db.session() as session:
            snapshot = session.get(CadSnapshot, (self.source, incident_id)) or CadSnapshot(
                source=self.source,
                incident_id=incident_id,
                row_digest="",
                sent="[]",
                call_type_digest="",
                updated_at=utcnow(),
            )
            snapshot.row_digest = told.row_digest
            snapshot.sent = json.dumps(sorted(told.sent))
            snapshot.call_type_digest = told.call_type_digest
            snapshot.priority = told.priority
            snapshot.updated_at = utcnow()
            session.add(snapshot)
            session.commit()

    def _dead_letter(self, row: ExportRow, text: Mapping[str, str], place: str | None) -> int:
        """Keeps a row that cannot be read, once (read again, it is not kept again);
        returns how many were kept."""
        body = json.dumps(dict(text), sort_keys=True)
        with self.db.session() as session:
            kept = session.exec(
                select(DeadLetter.id).where(
                    col(DeadLetter.endpoint) == self.dead_letter_endpoint,
                    col(DeadLetter.agency) == self.agency.id,
                    col(DeadLetter.body) == body,
                )
            ).first()
        if kept is not None:
            return 0
        incident = text.get(self.reading.columns["incident_id"]) or "no incident id"
        where = (
            f"row of incident {incident}"
            if place is None
            else f"{place}, line {row.line} (incident {incident})"
        )
        problems = (str(error).removeprefix(f"line {row.line}, ") for error in row.errors)
        reason = f"{where}: " + "; ".join(problems)
        dead_letters.keep(self.db, self.dead_letter_endpoint, self.agency.id, reason, body)
        return 1


def _record_text(record: Mapping[str | None, object]) -> dict[str, str]:
    """The record as text by column name, as a dead letter keeps it: the fields past the
    header (a CSV row too long) under "", a missing field as ""."""
    text: dict[str, str] = {}
    for name, value in record.items():
        if isinstance(value, list):
            text[name or ""] = ",".join(str(v) for v in value)
        else:
            text[name or ""] = "" if value is None else str(value)
    return text
