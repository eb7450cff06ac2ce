"""The outbox rows a send attempt reads and writes.

Core statements built once per dialect and executed with each send's values: the ORM's
unit of work, expiry and refreshes, and building fresh statements for every send cost
the worker more CPU than the statements themselves (a py-spy profile of the throughput
benchmark put a third of the worker's time in them). Each step is a transaction of its
own, committed before the next, because the protocol (`activities.texts`) relies on what
is on disk when the provider is called; and no connection is held while the attempt
waits for its turn or for the provider, so slow sends cannot drain the pool.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, String, bindparam, case, exists, func, null, or_, select, update

from callerloop.core.column_types import UTCDateTime
from callerloop.core.db import (
    CadClosure,
    CallEventRecord,
    OptOut,
    OutboxMessage,
    SendRevocation,
    insert_or_skip,
)
from callerloop.messaging.links import NewLink, store_link

# Claimed by a send attempt that is calling the provider right now.
HANDING_OVER = "handing_over"
# Never handed to the provider: the workflow withdrew the send first.
WITHHELD = "withheld"


@dataclass(slots=True)
class OutboxRow:
    """The columns of an outbox row a send attempt works with."""

    id: int
    workflow_id: str
    agency: str
    kind: str
    to: str | None
    body: str | None
    segments: int
    status: str
    attempts: int
    provider_id: str | None
    created_at: datetime
    updated_at: datetime


class Outbox:
    """The outbox table as one send attempt uses it."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._statements = _statements(engine.dialect.name)

    def claim(self, values: dict[str, Any], link: NewLink | None) -> OutboxRow:
        """The send's row: inserted with its text's link in one transaction, or, when an
        earlier attempt wrote it, that row as it is now (and the link is not stored)."""
        with self._engine.connect() as connection:
            if link is not None:
                store_link(connection, link)
            row_id = connection.execute(self._statements.claim, values).scalar()
            if row_id is None:
                connection.rollback()
                found = connection.execute(
                    self._statements.find,
                    {
                        "workflow_id": values["workflow_id"],
                        "kind": values["kind"],
                        "attempt": values["attempt"],
                    },
                ).one()  # the conflict that skipped the insert was this row
                return OutboxRow(*found)
            connection.commit()
        return OutboxRow(
            id=int(row_id), **{name: values[name] for name in _COLUMNS if name != "id"}
        )

    def reread(self, row: OutboxRow) -> None:
        """Bring `row` up to date with what other attempts and receipts wrote."""
        with self._engine.connect() as connection:
            found = connection.execute(self._statements.get, {"row_id": row.id}).one()
        for name, value in zip(_COLUMNS, found, strict=True):
            setattr(row, name, value)

    def hand_over(
        self, row: OutboxRow, generation: int, now: datetime, *, phone_pseudonym: str
    ) -> bool:
        """Mark the row `handing_over`, only if no other attempt changed it since it was
        read (compare and set on status and attempts), the send has not been withdrawn
        (this generation of the call's sends by the workflow, or all of them at the CAD
        edge) and the number is not in the opt-out registry. False, with `row` re-read,
        otherwise. The registry and the edge's revocations are written the moment a STOP
        or a safety fact arrives, so they hold even while the workflow cannot see it yet
        (its worker restarting)."""
        with self._engine.begin() as connection:
            result = connection.execute(
                self._statements.hand_over,
                {
                    "row_id": row.id,
                    "read_status": row.status,
                    "read_attempts": row.attempts,
                    "generation": generation,
                    "opt_agency": row.agency,
                    "opt_pseudonym": phone_pseudonym,
                    "now": now,
                },
            )
        if result.rowcount != 1:
            self.reread(row)
            return False
        row.status, row.attempts, row.updated_at = HANDING_OVER, row.attempts + 1, now
        return True

    def withdrawn(
        self, workflow_id: str, generation: int, *, kind: str, agency: str, phone_pseudonym: str
    ) -> bool:
        """Whether the send may not be handed over: revoked (this generation or all of
        the call's sends), the number opted out, or a stage over that CAD closed."""
        with self._engine.connect() as connection:
            found = connection.execute(
                self._statements.withdrawn,
                {
                    "workflow_id": workflow_id,
                    "generation": generation,
                    "kind": kind,
                    "opt_agency": agency,
                    "opt_pseudonym": phone_pseudonym,
                },
            ).first()
        return found is not None

    def revoke(
        self,
        workflow_id: str,
        generation: int,
        reason: str,
        now: datetime,
        *,
        kind: str,
        attempt: int,
    ) -> str | None:
        """Withdraw every send of the call up to `generation`, and settle as `withheld`
        the rows no attempt has handed over yet. Returns the status of the send (`kind`,
        `attempt`) once that is done: `withheld` (or none yet) means it can never reach
        the provider; a hand-off that won the race shows as `handing_over` or the
        provider's status. Idempotent: a retried revocation changes nothing."""
        with self._engine.begin() as connection:
            connection.execute(
                self._statements.revoke,
                {
                    "workflow_id": workflow_id,
                    "generation": generation,
                    "reason": reason,
                    "revoked_at": now,
                },
            )
            connection.execute(self._statements.withhold_pending, {"call": workflow_id, "now": now})
            status: str | None = connection.execute(
                self._statements.status_of,
                {"workflow_id": workflow_id, "kind": kind, "attempt": attempt},
            ).scalar()
        return status

    def record_handoff(
        self, row: OutboxRow, provider_status: str, provider_id: str, now: datetime
    ) -> None:
        """The provider has the text: its id, and its status unless a delivery receipt
        that overtook the provider's answer already moved the row on (in one statement,
        so a receipt landing meanwhile is neither lost nor overwritten)."""
        with self._engine.begin() as connection:
            status, provider_id = connection.execute(
                self._statements.record_handoff,
                {
                    "row_id": row.id,
                    "provider_status": provider_status,
                    "found_id": provider_id,
                    "now": now,
                },
            ).one()
        row.status, row.provider_id = status, provider_id

    def settle(
        self,
        row: OutboxRow,
        status: str,
        now: datetime,
        *,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                self._statements.settle,
                {
                    "row_id": row.id,
                    "new_status": status,
                    "new_error_code": error_code,
                    "new_error_message": error_message,
                    "now": now,
                },
            )
        row.status, row.updated_at = status, now

    def latest_applied_event_at(self, workflow_id: str) -> datetime | None:
        """When the worker recorded the call's latest applied CAD event."""
        with self._engine.connect() as connection:
            at: datetime | None = connection.execute(
                self._statements.latest_applied_event_at, {"workflow_id": workflow_id}
            ).scalar()
        return at


_COLUMNS = tuple(field.name for field in fields(OutboxRow))


@dataclass(frozen=True)
class _Statements:
    claim: Any  # returns the new row's id, nothing when the send has its row
    find: Any
    get: Any
    hand_over: Any
    record_handoff: Any  # returns the row's status and provider id
    settle: Any
    latest_applied_event_at: Any
    withdrawn: Any
    revoke: Any
    withhold_pending: Any
    status_of: Any


# The texts of the stages before a call's close: none goes once CAD has closed the call.
BEFORE_CLOSE = ("confirmation", "delayed", "assigned")


def _closed(closures: Any, workflow_id: Any) -> Any:
    """CAD closed the call after its latest reopen (by CAD's times, `edge_stops`)."""
    return exists().where(
        closures.c.workflow_id == workflow_id,
        closures.c.closed_at.is_not(None),
        or_(closures.c.reopened_at.is_(None), closures.c.reopened_at < closures.c.closed_at),
    )


@functools.cache
def _statements(dialect: str) -> _Statements:
    outbox = OutboxMessage.__table__  # type: ignore[attr-defined]
    events = CallEventRecord.__table__  # type: ignore[attr-defined]
    revocations = SendRevocation.__table__  # type: ignore[attr-defined]
    opt_outs = OptOut.__table__  # type: ignore[attr-defined]
    closures = CadClosure.__table__  # type: ignore[attr-defined]
    opted_out = exists().where(
        opt_outs.c.agency == bindparam("opt_agency"),
        opt_outs.c.phone_pseudonym == bindparam("opt_pseudonym"),
        opt_outs.c.opted_out,
    )
    columns = [outbox.c[name] for name in _COLUMNS]
    this_row = outbox.c.id == bindparam("row_id")
    now = bindparam("now", type_=UTCDateTime())
    still_handing_over = outbox.c.status == HANDING_OVER
    return _Statements(
        claim=insert_or_skip(dialect, OutboxMessage)
        .on_conflict_do_nothing()
        .returning(outbox.c.id),
        find=select(*columns).where(
            outbox.c.workflow_id == bindparam("workflow_id"),
            outbox.c.kind == bindparam("kind"),
            outbox.c.attempt == bindparam("attempt"),
        ),
        get=select(*columns).where(this_row),
        hand_over=update(outbox)
        .where(
            this_row,
            outbox.c.status == bindparam("read_status"),
            outbox.c.attempts == bindparam("read_attempts"),
            ~exists().where(
                revocations.c.workflow_id == outbox.c.workflow_id,
                revocations.c.generation >= bindparam("generation"),
            ),
            ~opted_out,
            ~(outbox.c.kind.in_(BEFORE_CLOSE) & _closed(closures, outbox.c.workflow_id)),
        )
        .values(status=HANDING_OVER, attempts=outbox.c.attempts + 1, updated_at=now),
        record_handoff=update(outbox)
        .where(this_row)
        .values(
            status=case(
                (still_handing_over, bindparam("provider_status", type_=String())),
                else_=outbox.c.status,
            ),
            error_code=case((still_handing_over, null()), else_=outbox.c.error_code),
            error_message=case((still_handing_over, null()), else_=outbox.c.error_message),
            provider_id=func.coalesce(outbox.c.provider_id, bindparam("found_id", type_=String())),
            sent_at=func.coalesce(outbox.c.sent_at, now),
            updated_at=now,
        )
        .returning(outbox.c.status, outbox.c.provider_id),
        settle=update(outbox)
        .where(this_row)
        .values(
            status=bindparam("new_status", type_=String()),
            error_code=bindparam("new_error_code", type_=String()),
            error_message=bindparam("new_error_message", type_=String()),
            updated_at=now,
        ),
        latest_applied_event_at=select(events.c.recorded_at)
        .where(events.c.workflow_id == bindparam("workflow_id"), events.c.applied)
        .order_by(events.c.recorded_at.desc())
        .limit(1),
        withdrawn=select(null()).where(
            exists().where(
                revocations.c.workflow_id == bindparam("workflow_id"),
                revocations.c.generation >= bindparam("generation"),
            )
            | opted_out
            | (
                bindparam("kind", type_=String()).in_(BEFORE_CLOSE)
                & _closed(closures, bindparam("workflow_id"))
            )
        ),
        revoke=insert_or_skip(dialect, SendRevocation).on_conflict_do_nothing(),
        withhold_pending=update(outbox)
        .where(outbox.c.workflow_id == bindparam("call"), outbox.c.status == "pending")
        .values(status=WITHHELD, updated_at=now),
        status_of=select(outbox.c.status).where(
            outbox.c.workflow_id == bindparam("workflow_id"),
            outbox.c.kind == bindparam("kind"),
            outbox.c.attempt == bindparam("attempt"),
        ),
    )
