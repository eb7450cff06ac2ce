"""The audit log: every operator action, view of personal data and data export, with who,
what and when. Append-only (see `AuditEntry`); `callerloop audit list` shows it."""

from __future__ import annotations

import getpass
import os

from sqlmodel import col, select

from callerloop.core.db import AuditEntry, Database, utcnow


def local_actor() -> str:
    """Who runs this command: CALLERLOOP_OPERATOR if set (a shared service account should
    set it per person), else the operating-system user."""
    return os.environ.get("CALLERLOOP_OPERATOR") or getpass.getuser()


def record(
    db: Database, action: str, target: str, detail: str = "", *, actor: str, source: str
) -> None:
    with db.session() as session:
        session.add(
            AuditEntry(
                at=utcnow(), actor=actor, action=action, target=target, detail=detail, source=source
            )
        )
        session.commit()


def latest(db: Database, limit: int = 100) -> list[AuditEntry]:
    with db.session() as session:
        statement = select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(limit)
        return list(reversed(session.exec(statement).all()))
