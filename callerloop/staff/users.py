"""Staff accounts for the dashboard: users with Argon2id password hashes, and sessions
kept as the SHA-256 of a random token (`callerloop users add` creates a user)."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import col, delete, select

from callerloop.core.db import Database, StaffSession, StaffUser, utcnow

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")
MIN_PASSWORD_LENGTH = 12
SESSION_LIFETIME = timedelta(hours=12)

# Argon2id with argon2-cffi's defaults (RFC 9106's low-memory profile: 64 MiB, 3 passes).
PASSWORD_HASHER = PasswordHasher()
_hasher = PASSWORD_HASHER


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Checked when the username is unknown, so both answers take as long."""
    return _hasher.hash(secrets.token_urlsafe(16))


class StaffUserError(ValueError):
    """A bad username or password; the message says which and why."""


def check_new_credentials(username: str, password: str) -> None:
    if not USERNAME.match(username):
        raise StaffUserError(
            f"username {username!r}: use 2-64 lower-case letters, digits and . _ @ -"
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StaffUserError(f"password: at least {MIN_PASSWORD_LENGTH} characters")


def add_user(db: Database, username: str, password: str) -> None:
    check_new_credentials(username, password)
    with db.session() as session:
        if session.get(StaffUser, username) is not None:
            raise StaffUserError(f"user {username!r} already exists")
        session.add(
            StaffUser(username=username, password_hash=_hasher.hash(password), created_at=utcnow())
        )
        session.commit()


def disable_user(db: Database, username: str) -> None:
    """The user can no longer sign in, and every session of theirs ends now."""
    with db.session() as session:
        user = session.get(StaffUser, username)
        if user is None:
            raise StaffUserError(f"no user {username!r}")
        user.disabled_at = utcnow()
        session.add(user)
        session.exec(delete(StaffSession).where(col(StaffSession.username) == username))
        session.commit()


def list_users(db: Database) -> list[StaffUser]:
    with db.session() as session:
        return list(session.exec(select(StaffUser).order_by(col(StaffUser.username))))


def verify_password(db: Database, username: str, password: str) -> bool:
    """True only for an enabled user with this password. Unknown users cost a hash check
    too, so the time taken does not tell which usernames exist."""
    with db.session() as session:
        user = session.get(StaffUser, username)
    stored = user.password_hash if user and user.disabled_at is None else _dummy_hash()
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False
    return user is not None and user.disabled_at is None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(db: Database, username: str, now: datetime | None = None) -> str:
    """A new session for `username`; returns the token for the cookie."""
    token = secrets.token_urlsafe(32)
    now = now or utcnow()
    with db.session() as session:
        # Sessions that have ended go when a new one starts: the table stays small.
        session.exec(delete(StaffSession).where(col(StaffSession.expires_at) < now))
        session.add(
            StaffSession(
                token_hash=_token_hash(token),
                username=username,
                created_at=now,
                expires_at=now + SESSION_LIFETIME,
            )
        )
        session.commit()
    return token


def session_user(db: Database, token: str | None, now: datetime | None = None) -> str | None:
    """The signed-in username for a cookie's token, or None (unknown, expired, disabled)."""
    if not token:
        return None
    with db.session() as session:
        found = session.get(StaffSession, _token_hash(token))
        if found is None or found.expires_at <= (now or utcnow()):
            return None
        user = session.get(StaffUser, found.username)
    if user is None or user.disabled_at is not None:
        return None
    return user.username


def end_session(db: Database, token: str | None) -> None:
    if not token:
        return
    with db.session() as session:
        session.exec(delete(StaffSession).where(col(StaffSession.token_hash) == _token_hash(token)))
        session.commit()


def session_id(token: str) -> str:
    """What a CSRF token is bound to: the session, never the token itself."""
    return _token_hash(token)
