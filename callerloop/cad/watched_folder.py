"""A watched export folder (`[cad.folder]`): the CSV exports a CAD drops on a schedule,
each read once and told to the calls (callerloop.cad.telling).

Exports overlap (each covers the last few hours) and may be rewritten in place: a file is
known by its content's digest, so a file read before is not read again, a rewritten one is,
and in either case a row told before tells nothing new. A file that cannot be read (not
UTF-8, not CSV, a header without the required columns) is moved to `rejected/` beside a
report saying why; a bad row in a good file is a dead letter naming the file and line.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from sqlmodel import col, select

from callerloop.cad.delivery import FOLDER_ROW as DEAD_LETTER_ENDPOINT
from callerloop.cad.export_rows import (
    CallRow,
    RowReading,
    check_header,
    clean_header,
    row_reading,
)
from callerloop.cad.telling import Deliver, RowTeller, Tally
from callerloop.core.agency_config import AgencyConfig, CadFolder
from callerloop.core.db import CadFolderFile, Database, utcnow

__all__ = ["DEAD_LETTER_ENDPOINT", "REJECTED", "FolderOutcome", "WatchedFolder"]

REJECTED = "rejected"  # the subfolder unreadable files are moved to
READ, MOVED_ASIDE = "read", "rejected"


def source_name(agency_id: str) -> str:
    return f"folder:{agency_id}"


@dataclass
class FolderOutcome(Tally):
    files: int = 0  # files read this time
    rejected: int = 0  # files moved aside
    newest_file: str | None = None  # the last file read, by name


class UnreadableExport(ValueError):
    """The file is not an export callerloop can read; says why."""


class WatchedFolder:
    def __init__(self, agency: AgencyConfig, db: Database) -> None:
        if agency.cad.folder is None:
            raise ValueError(f"agency {agency.id!r} has no [cad.folder]")
        self.agency = agency
        self.config: CadFolder = agency.cad.folder
        self.db = db
        self.reading: RowReading = row_reading(agency)
        self.source = source_name(agency.id)
        self.teller = RowTeller(agency, db, self.reading, self.source, DEAD_LETTER_ENDPOINT)

    async def run(self, deliver: Deliver) -> FolderOutcome:
        """Read every new file, oldest first, and tell its rows."""
        outcome = FolderOutcome()
        for path in await asyncio.to_thread(self._candidates):
            content = await asyncio.to_thread(path.read_bytes)
            digest = hashlib.sha256(content).hexdigest()
            if await asyncio.to_thread(self._known, digest):
                continue
            try:
                header, lines, records = _records(content, self.reading)
            except UnreadableExport as problem:
                await asyncio.to_thread(self._move_aside, path, digest, str(problem))
                outcome.rejected += 1
                continue
            changed_at = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            tally = Tally()
            await self.teller.tell(
                records,
                partial(_not_before, changed_at),
                deliver,
                tally,
                lines=lines,
                place=path.name,
                width=len(header),
            )
            outcome.add(tally)
            await asyncio.to_thread(self._record, path, digest, tally)
            outcome.files += 1
            outcome.newest_file = path.name
        return outcome

    def _candidates(self) -> list[Path]:
        folder = Path(self.config.path)
        if not folder.is_dir():
            raise FileNotFoundError(f"[cad.folder] path {folder} is not a folder")
        files = [p for p in folder.glob(self.config.pattern) if p.is_file()]
        return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))

    def _known(self, digest: str) -> bool:
        """Read before (a file moved aside and dropped again is moved aside again)."""
        with self.db.session() as session:
            found = session.exec(
                select(CadFolderFile.digest).where(
                    col(CadFolderFile.source) == self.source,
                    col(CadFolderFile.digest) == digest,
                    col(CadFolderFile.status) == READ,
                )
            ).first()
            return found is not None

    def _record(self, path: Path, digest: str, tally: Tally, problem: str = "") -> None:
        with self.db.session() as session:
            session.merge(
                CadFolderFile(
                    source=self.source,
                    digest=digest,
                    name=path.name,
                    read_at=utcnow(),
                    rows=tally.rows,
                    events=tally.events,
                    dead_letters=tally.dead_letters,
                    status=MOVED_ASIDE if problem else READ,
                    problem=problem,
                )
            )
            session.commit()

    def _move_aside(self, path: Path, digest: str, problem: str) -> None:
        """Into `rejected/`, beside a report; recorded, so the same content dropped again
        is not moved twice (a fixed file has other content, and is read)."""
        rejected = path.parent / REJECTED
        rejected.mkdir(exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = rejected / f"{stamp}-{path.name}"
        path.replace(target)
        target.with_name(target.name + ".report.txt").write_text(
            f"{path.name}: not read: {problem}\n"
            f"Fix the export and drop it again; callerloop reads any file it has not read.\n",
            encoding="utf-8",
        )
        self._record(path, digest, Tally(), problem)


def _not_before(moment: datetime, _index: int, call: CallRow) -> datetime:
    """A row's change time: the export's, never before the call was created."""
    return max(moment, call.created)


def _records(
    content: bytes, reading: RowReading
) -> tuple[list[str], list[int], list[dict[str | None, object]]]:
    """The file's header, each record's line and the records, or UnreadableExport saying
    what is wrong and where."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UnreadableExport(f"not UTF-8 text (byte {error.start})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        fieldnames = reader.fieldnames
    except csv.Error as error:
        raise UnreadableExport(f"line 1: the CSV header cannot be read: {error}") from None
    try:
        header = clean_header(fieldnames)
        check_header(header, reading.columns)
    except ValueError as problem:
        raise UnreadableExport(str(problem)) from None
    reader.fieldnames = header
    lines: list[int] = []
    records: list[dict[str | None, object]] = []
    try:
        for record in reader:
            lines.append(reader.line_num)
            records.append(dict(record))
    except csv.Error as error:
        raise UnreadableExport(f"line {reader.line_num + 1}: cannot be read: {error}") from None
    return header, lines, records
