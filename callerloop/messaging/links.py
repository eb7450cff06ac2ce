"""Links in texts: unguessable tokens, stored only as their SHA-256."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, insert
from sqlmodel import Session, col, update

from callerloop.core.column_types import UTCDateTime
from callerloop.core.db import LinkToken, utcnow

TOKEN_BYTES = 16  # 128 bits
STATUS, SURVEY = "status", "survey"
# What secrets.token_urlsafe(TOKEN_BYTES) produces: anything else is not worth a lookup.
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{22}")
# Built once: the send activity issues a link with most of its texts, the purge expires
# them.
_INSERT_LINK = insert(LinkToken.__table__)  # type: ignore[attr-defined]
_EXPIRE_LINKS = (
    update(LinkToken)
    .where(
        col(LinkToken.workflow_id) == bindparam("call"),
        col(LinkToken.purpose) == bindparam("link_purpose"),
        (col(LinkToken.expires_at).is_(None))
        | (col(LinkToken.expires_at) > bindparam("now", type_=UTCDateTime())),
    )
    .values(expires_at=bindparam("now", type_=UTCDateTime()))
)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class NewLink:
    """A link about to be issued: its URL for the text, its row for `link_tokens`."""

    url: str
    row: dict[str, object]


def new_link(
    *, base_url: str, workflow_id: str, purpose: str, expires_at: datetime | None = None
) -> NewLink:
    """A fresh token for one call and one purpose, not yet stored (`store_link`)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    row = {
        "token_hash": hash_token(token),
        "workflow_id": workflow_id,
        "purpose": purpose,
        "created_at": utcnow(),
        "expires_at": expires_at,
    }
    return NewLink(url=link_url(base_url, purpose, token), row=row)


def link_url(base_url: str, purpose: str, token: str) -> str:
    """The link a text carries: the status page or the survey, by its token."""
    path = "s" if purpose == STATUS else "survey"
    return f"{base_url.rstrip('/')}/{path}/{token}"


def store_link(executor: Connection | Session, link: NewLink) -> None:
    """Write the link's row; the caller commits."""
    executor.execute(_INSERT_LINK, link.row)


def find_link(session: Session, token: str, purpose: str, now: datetime) -> LinkToken | None:
    """The link behind `token` if it was issued for `purpose` and has not expired."""
    if not TOKEN_SHAPE.fullmatch(token):
        return None
    link = session.get(LinkToken, hash_token(token))
    if link is None or link.purpose != purpose:
        return None
    if link.expires_at is not None and link.expires_at <= now:
        return None
    return link


def expire_links(
    executor: Connection | Session, workflow_id: str, purpose: str, now: datetime
) -> None:
    """End a call's links of one purpose now (those not already over); the caller commits."""
    executor.execute(_EXPIRE_LINKS, {"call": workflow_id, "link_purpose": purpose, "now": now})
