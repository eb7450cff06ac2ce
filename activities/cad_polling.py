"""The CAD poller's one activity: a poll of an agency's CAD database (callerloop.cad.poller)
or of its watched export folder (callerloop.cad.watched_folder), the events delivered to
the calls' workflows as every other entry path delivers them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from callerloop.cad.client import CadClient, CallAlreadyFinished
from callerloop.cad.poller import Poll
from callerloop.cad.telling import Tally
from callerloop.cad.watched_folder import WatchedFolder
from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database
from callerloop.core.settings import Settings
from workflows import activity_names
from workflows.activity_errors import UNKNOWN_AGENCY
from workflows.model import FOLDER_SOURCE, CadEvent, PollInput, PollResult

log = structlog.get_logger("callerloop.cad.poll")
_ERROR_LENGTH = 300  # of a database error, in the poller's status


class CadPollActivities:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        agencies: Mapping[str, AgencyConfig],
        cad: CadClient,
    ) -> None:
        self._settings = settings
        self._db = db
        self._agencies = agencies
        self._cad = cad
        self._engines: dict[str, Engine] = {}

    @activity.defn(name=activity_names.POLL_CAD)
    async def poll_cad(self, input: PollInput) -> PollResult:
        if input.source == FOLDER_SOURCE:
            return await self._read_folder(input)
        agency = self._agency(input, "poll")
        assert agency.cad.poll is not None  # _agency checked it
        interval = agency.cad.poll.interval.total_seconds()
        url = self._settings.cad_poll_urls.get(agency.id)
        if url is None:
            error = f"no CALLERLOOP_CAD_POLL_URLS entry for agency {agency.id!r}"
            return _failed(input, interval, error)
        poll = Poll(agency, self._engine(agency.id, url.get_secret_value()), self._db)
        try:
            outcome = await poll.run(
                input.watermark, input.calls_from, self._deliver, started=input.started
            )
        except SQLAlchemyError as error:
            # Reported and tried again at the next interval, from the same watermark: the
            # rows whose events went out already have their snapshots.
            problem = _database_error(error)
            log.warning("CAD poll failed", agency=agency.id, error=problem)
            return _failed(input, interval, problem)
        if outcome.events or outcome.dead_letters or outcome.notes:
            log.info(
                "CAD polled",
                agency=agency.id,
                rows=outcome.rows,
                events=outcome.events,
                dead_letters=outcome.dead_letters,
                notes=outcome.notes,
            )
        return _result(
            outcome,
            interval,
            watermark=outcome.watermark,
            newest_change=outcome.newest_change,
            calls_from=outcome.calls_from,
            notes=outcome.notes,
        )

    async def _read_folder(self, input: PollInput) -> PollResult:
        agency = self._agency(input, "folder")
        assert agency.cad.folder is not None  # _agency checked it
        interval = agency.cad.folder.interval.total_seconds()
        try:
            outcome = await WatchedFolder(agency, self._db).run(self._deliver)
        except OSError as error:  # the folder unmounted, unreadable, …
            problem = f"{type(error).__name__}: {error}"[:_ERROR_LENGTH]
            log.warning("CAD folder not read", agency=agency.id, error=problem)
            return _failed(input, interval, problem)
        if outcome.files or outcome.rejected:
            log.info(
                "CAD folder read",
                agency=agency.id,
                files=outcome.files,
                rejected=outcome.rejected,
                events=outcome.events,
                dead_letters=outcome.dead_letters,
            )
        moved = [f"moved {outcome.rejected} unreadable file(s) to rejected/"]
        return _result(
            outcome,
            interval,
            watermark=outcome.newest_file or input.watermark,
            files=outcome.files,
            rejected_files=outcome.rejected,
            notes=moved if outcome.rejected else [],
        )

    def _agency(self, input: PollInput, section: str) -> AgencyConfig:
        """The agency polled, with its `[cad.<section>]`; else a non-retryable error."""
        agency = self._agencies.get(input.agency)
        if agency is None or getattr(agency.cad, section) is None:
            raise ApplicationError(
                f"agency {input.agency!r} has no [cad.{section}] on this worker",
                type=UNKNOWN_AGENCY,
                non_retryable=True,
            )
        return agency

    async def _deliver(self, event: CadEvent) -> bool:
        activity.heartbeat()
        try:
            await self._cad.send(event)
        except CallAlreadyFinished:
            return False
        return True

    def _engine(self, agency_id: str, url: str) -> Engine:
        engine = self._engines.get(agency_id)
        if engine is None:
            engine = self._engines[agency_id] = sa.create_engine(url, pool_pre_ping=True)
        return engine

    def close(self) -> None:
        for engine in self._engines.values():
            engine.dispose()


def _result(tally: Tally, interval: float, **details: Any) -> PollResult:
    """A poll that went through: its counts, and what else its source tells."""
    return PollResult(
        rows=tally.rows,
        changed=tally.changed,
        events=tally.events,
        for_finished_calls=tally.for_finished_calls,
        dead_letters=tally.dead_letters,
        interval_seconds=interval,
        **details,
    )


def _failed(input: PollInput, interval: float, error: str) -> PollResult:
    """A poll that did not go through: nothing counted, the watermark kept."""
    return PollResult(input.watermark, 0, 0, 0, 0, 0, interval, error=error)


def _database_error(error: SQLAlchemyError) -> str:
    """The driver's own words, first line, without the SQL statement and its parameters."""
    cause = getattr(error, "orig", None) or error
    first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return f"{type(cause).__name__}: {first}"[:_ERROR_LENGTH]
