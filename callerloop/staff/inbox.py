"""The supervisors' comments inbox (`survey_comments`): marking an item handled."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import update
from sqlmodel import col

from callerloop.core.db import AuditEntry, Database, SurveyComment, utcnow

HANDLED = "comment handled"  # the audit log's action


def item_target(item_id: int) -> str:
    """How the audit log names an inbox item: by its id, never its case number (the log
    outlives the item's retention)."""
    return f"survey comment {item_id}"


@dataclass(frozen=True)
class Handled:
    item: SurveyComment
    changed: bool  # False: it was marked handled already (by `item.handled_by`)


def mark_handled(db: Database, item_id: int, username: str, source: str = "web") -> Handled | None:
    """Mark the item handled by `username`, now, with its audit entry in the same
    transaction. The first to mark it keeps the mark. None: no such item (deleted
    after the retention period)."""
    now = utcnow()
    with db.session() as session:
        marked = session.execute(
            update(SurveyComment)
            .where(col(SurveyComment.id) == item_id)
            .where(col(SurveyComment.handled_at).is_(None))
            .values(handled_at=now, handled_by=username)
        )
        changed = int(marked.rowcount or 0) == 1  # type: ignore[attr-defined]
        item = session.get(SurveyComment, item_id)
        if item is None:
            session.rollback()
            return None
        if changed:
            session.add(
                AuditEntry(
                    at=now,
                    actor=username,
                    action=HANDLED,
                    target=item_target(item_id),
                    detail=item.agency,
                    source=source,
                )
            )
        session.commit()
        return Handled(item, changed)
