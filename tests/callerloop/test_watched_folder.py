"""A watched export folder: scheduled exports that overlap and are rewritten tell each
change once; an unreadable file is moved aside with a report and stops nothing."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pytest
from sqlmodel import select

from callerloop.cad.watched_folder import REJECTED, WatchedFolder
from callerloop.core.db import Database, DeadLetter
from tests.cad_database import COLUMNS, MINUTE, call_row, export_file, folder_agency
from workflows.model import CadEvent, CadEventType

pytestmark = pytest.mark.databases("sqlite")

T = datetime(2025, 9, 1, 10, 0)


class Folder:
    """Reads of the folder as the poller runs them, collecting what they deliver."""

    def __init__(self, path: Path, db: Database) -> None:
        self.path = path
        self.watch = WatchedFolder(folder_agency(path), db)
        self.files = 0
        self.rejected = 0

    async def read(self) -> list[tuple[str, CadEventType]]:
        delivered: list[CadEvent] = []

        async def deliver(event: CadEvent) -> bool:
            delivered.append(event)
            return True

        outcome = await self.watch.run(deliver)
        self.files += outcome.files
        self.rejected += outcome.rejected
        return [(event.incident_id, event.event_type) for event in delivered]


def dropped(path: Path, rows: list[dict[str, object]], at: float) -> Path:
    """An export written at `at` (its modification time orders the folder's reads)."""
    export_file(path, rows)
    os.utime(path, (at, at))
    return path


async def test_overlapping_and_rewritten_exports_tell_each_change_once(
    tmp_path: Path, database: Database
) -> None:
    folder = Folder(tmp_path / "exports", database)
    first = call_row("25-000101", T)
    second = call_row("25-000102", T + MINUTE)
    dropped(folder.path / "0900-1000.csv", [first, second], at=1_000)
    assert await folder.read() == [
        ("25-000101", CadEventType.CREATED),
        ("25-000102", CadEventType.CREATED),
    ]

    # The next export overlaps: the same second call, the first one dispatched and
    # closed, and a new one.
    first_closed = {**first, "dispatched": T + 5 * MINUTE, "first_closed": T + 30 * MINUTE}
    third = call_row("25-000103", T + 40 * MINUTE)
    dropped(folder.path / "0930-1030.csv", [first_closed, second, third], at=2_000)
    assert await folder.read() == [
        ("25-000101", CadEventType.ASSIGNED),
        ("25-000101", CadEventType.CLEARED),
        ("25-000103", CadEventType.CREATED),
    ]
    assert await folder.read() == []  # nothing new in the folder: nothing read

    # The last export is rewritten in place with the third call closed: read again, and
    # only the change is told.
    third_closed = {**third, "first_closed": T + 50 * MINUTE}
    dropped(folder.path / "0930-1030.csv", [first_closed, second, third_closed], at=3_000)
    assert await folder.read() == [("25-000103", CadEventType.CLEARED)]
    # Rewritten with the same content (an export job run twice): not read again.
    dropped(folder.path / "0930-1030.csv", [first_closed, second, third_closed], at=4_000)
    assert await folder.read() == []
    assert folder.files == 3


async def test_an_unreadable_file_is_moved_aside_with_a_report_and_stops_nothing(
    tmp_path: Path, database: Database
) -> None:
    folder = Folder(tmp_path / "exports", database)
    broken = folder.path / "1000-1100.csv"
    folder.path.mkdir()
    broken.write_text("Incident,Kind\n25-1,THEFT\n", encoding="utf-8")  # not this CAD's shape
    os.utime(broken, (1_000, 1_000))
    dropped(folder.path / "1100-1200.csv", [call_row("25-000201", T)], at=2_000)

    assert await folder.read() == [("25-000201", CadEventType.CREATED)]
    assert folder.rejected == 1 and not broken.exists()
    [moved] = (folder.path / REJECTED).glob("*-1000-1100.csv")
    report = moved.with_name(moved.name + ".report.txt").read_text(encoding="utf-8")
    assert "1000-1100.csv: not read" in report
    assert COLUMNS["incident_id"] in report and "required column" in report

    # Dropped again unchanged: moved aside again; fixed: read.
    broken.write_text("Incident,Kind\n25-1,THEFT\n", encoding="utf-8")
    assert await folder.read() == [] and folder.rejected == 2
    dropped(broken, [call_row("25-000202", T + MINUTE)], at=3_000)
    assert await folder.read() == [("25-000202", CadEventType.CREATED)]


async def test_a_bad_row_is_a_dead_letter_naming_the_file_and_line(
    tmp_path: Path, database: Database
) -> None:
    folder = Folder(tmp_path / "exports", database)
    rows = [call_row("25-000301", T), call_row("25-000302", T, priority="urgent")]
    dropped(folder.path / "1200-1300.csv", rows, at=1_000)
    assert await folder.read() == [("25-000301", CadEventType.CREATED)]
    with database.session() as session:
        [letter] = session.exec(select(DeadLetter)).all()
    assert letter.endpoint == "cad-folder"
    assert letter.reason.startswith("1200-1300.csv, line 3 (incident 25-000302)")
    assert COLUMNS["priority"] in letter.reason and "'urgent' is not an integer" in letter.reason
    assert json.loads(letter.body)[COLUMNS["incident_id"]] == "25-000302"


async def test_a_folder_that_is_not_there_is_an_error_the_poller_reports(
    tmp_path: Path, database: Database
) -> None:
    folder = Folder(tmp_path / "not-mounted", database)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        await folder.read()
