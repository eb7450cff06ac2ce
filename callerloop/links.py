"""Links in texts: unguessable tokens, stored only as their SHA-256."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlmodel import Session

from callerloop.db import LinkToken, utcnow

TOKEN_BYTES = 16  # 128 bits


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_link(
    session: Session,
    *,
    base_url: str,
    workflow_id: str,
    purpose: str,
    expires_at: datetime | None = None,
) -> str:
    """A new link for one call and one purpose; the caller commits the session."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    session.add(
        LinkToken(
            token_hash=hash_token(token),
            workflow_id=workflow_id,
            purpose=purpose,
            created_at=utcnow(),
            expires_at=expires_at,
        )
    )
    path = "s" if purpose == "status" else "survey"
    return f"{base_url.rstrip('/')}/{path}/{token}"
