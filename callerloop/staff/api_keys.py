"""Keys for the CAD ingest API. A key is shown once when created; only its SHA-256 is
stored, so a leaked database does not leak working keys."""

from __future__ import annotations

import hashlib
import secrets

from sqlmodel import col, select

from callerloop.core.db import ApiKey, Database, utcnow

KEY_PREFIX = "clk_"


class UnknownApiKey(LookupError):
    """No key has this id."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(db: Database, agency: str, name: str) -> tuple[int, str]:
    """A new key for `agency`: returns its id and the key itself (never stored)."""
    key = KEY_PREFIX + secrets.token_urlsafe(24)
    row = ApiKey(agency=agency, name=name, key_hash=hash_key(key), created_at=utcnow())
    with db.session() as session:
        session.add(row)
        session.commit()
        assert row.id is not None
        return row.id, key


def revoke_key(db: Database, key_id: int) -> ApiKey:
    """Revoke a key (revoking twice keeps the first time)."""
    with db.session() as session:
        row = session.get(ApiKey, key_id)
        if row is None:
            raise UnknownApiKey(f"no API key with id {key_id}")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            session.add(row)
            session.commit()
        return row


def agency_for_key(db: Database, key: str) -> str | None:
    """The agency of a live key, None for an unknown or revoked one. The lookup is by
    hash, so its time says nothing about how close a guess was."""
    with db.session() as session:
        row = session.exec(
            select(ApiKey).where(
                col(ApiKey.key_hash) == hash_key(key), col(ApiKey.revoked_at).is_(None)
            )
        ).first()
        return row.agency if row is not None else None


def list_keys(db: Database) -> list[ApiKey]:
    with db.session() as session:
        return list(session.exec(select(ApiKey).order_by(col(ApiKey.id))))
