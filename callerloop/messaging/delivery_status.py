"""Delivery receipts: a provider's status callbacks move an outbox row forward, never back.

Callbacks arrive out of order (a `sent` can land after `delivered`), so each status has a
rank and a row only takes a status of a higher rank. A final status (a failure) never
changes again. `delivered` is an end too, except that WhatsApp may add `read` after it;
it shares its rank with the failures, so whichever outcome arrives first stands.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import structlog
from sqlalchemy import and_, or_
from sqlmodel import col, select, update

from callerloop.core.db import Database, OutboxMessage, utcnow

log = structlog.get_logger("callerloop.delivery_status")


class StatusStep(NamedTuple):
    rank: int
    final: bool = False


# Twilio's message statuses (`message_enum_status` in its API spec), plus the outbox's own
# states before the provider's first callback (`pending`, `handing_over`, `unknown`;
# `queued` and `sent` mean the same on both sides).
STATUS_ORDER: Mapping[str, StatusStep] = {
    "pending": StatusStep(0),
    "handing_over": StatusStep(0),  # the send activity is calling the provider
    "unknown": StatusStep(0),  # a send died mid-flight: a callback tells what happened
    "accepted": StatusStep(1),
    "scheduled": StatusStep(1),
    "queued": StatusStep(2),
    "sending": StatusStep(3),
    "sent": StatusStep(4),
    "partially_delivered": StatusStep(5),
    "delivered": StatusStep(6),
    "undelivered": StatusStep(6, final=True),
    "failed": StatusStep(6, final=True),
    "canceled": StatusStep(6, final=True),
    "read": StatusStep(7, final=True),
    # callerloop's own end: the send was withdrawn before the provider was called.
    "withheld": StatusStep(6, final=True),
}
# Statuses of messages *to* us: they never describe an outbox row.
INBOUND_STATUSES = frozenset({"receiving", "received"})


def moves_forward(current: str, new: str) -> bool:
    """Whether a row at `current` takes `new`: only from a status that is not final, only
    to a higher rank. Statuses not in the table never move and are never moved to."""
    if current not in STATUS_ORDER or new not in STATUS_ORDER:
        return False
    was, becomes = STATUS_ORDER[current], STATUS_ORDER[new]
    return not was.final and becomes.rank > was.rank


def replaceable_by(status: str) -> frozenset[str]:
    """The statuses a row may have for `status` to replace it."""
    return frozenset(current for current in STATUS_ORDER if moves_forward(current, status))


def apply_delivery_status(
    db: Database,
    provider_id: str,
    status: str,
    error_code: str | None = None,
    outbox_id: int | None = None,
) -> bool:
    """Move the outbox row the provider knows as `provider_id` to `status` if that is a
    step forward. True when the row changed; False for a stale or repeated status, an
    unknown status or an unknown message (each logged)."""
    status = status.strip().lower()
    if status not in STATUS_ORDER:
        # `receiving`/`received` describe texts to us; anything else is new to callerloop.
        reason = "inbound status" if status in INBOUND_STATUSES else "unknown status"
        log.warning(
            "delivery status ignored", reason=reason, provider_id=provider_id, status=status
        )
        return False
    # One conditional UPDATE: two callbacks racing cannot both win against a stale read.
    changes: dict[str, object] = {
        "status": status,
        "updated_at": utcnow(),
        "provider_id": provider_id,
    }
    if error_code:
        changes["error_code"] = error_code
    # The row is the provider's message, or (the receipt overtook the send activity's
    # record of the id) the outbox row named in the callback URL that has no id yet.
    this_message = col(OutboxMessage.provider_id) == provider_id
    if outbox_id is not None:
        this_message = or_(
            this_message,
            and_(col(OutboxMessage.id) == outbox_id, col(OutboxMessage.provider_id).is_(None)),
        )
    with db.session() as session:
        result = session.exec(
            update(OutboxMessage)
            .where(this_message)
            .where(col(OutboxMessage.status).in_(replaceable_by(status)))
            .values(changes)
        )
        session.commit()
        if result.rowcount:
            return True
        current = session.exec(
            select(OutboxMessage.status).where(col(OutboxMessage.provider_id) == provider_id)
        ).first()
    _log_not_applied(current, provider_id, status)
    return False


def _log_not_applied(current: str | None, provider_id: str, status: str) -> None:
    if current is None:
        log.warning(
            "delivery status for an unknown message", provider_id=provider_id, status=status
        )
    else:
        log.info(
            "stale delivery status ignored", provider_id=provider_id, status=status, current=current
        )


# Handed to the carrier (whatever happened next), and known to have reached the phone.
SENT_STATUSES = frozenset(
    status
    for status, step in STATUS_ORDER.items()
    if step.rank >= 1 and status not in ("failed", "canceled", "withheld")
)
DELIVERED_STATUSES = frozenset({"delivered", "partially_delivered", "read"})
