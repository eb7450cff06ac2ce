"""`/dev/phone`: the outbox as the residents' phones would show it, one conversation per
number, links clickable. Only mounted with the `local` SMS provider (texts never leave the
outbox), so a person running `make run` can follow a call as the resident would. It shows
numbers and live links, so it answers only on the machine itself (loopback clients)."""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations.

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse
from sqlmodel import col, select

from callerloop.core.db import Database, OutboxMessage
from web.i18n import PageRenderer

PHONE_PATH = "/dev/phone"
URL = re.compile(r"https?://[^\s<>\"]+")
MAX_MESSAGES = 2000  # the newest: enough for a demo day


@dataclass(frozen=True)
class Piece:
    text: str
    is_link: bool


@dataclass
class Bubble:
    kind: str
    status: str
    at: datetime
    pieces: list[Piece]


@dataclass
class Conversation:
    number: str
    messages: list[Bubble] = field(default_factory=list)


def linkify(body: str) -> list[Piece]:
    """The body split into text and links; the template escapes both."""
    pieces: list[Piece] = []
    position = 0
    for match in URL.finditer(body):
        if match.start() > position:
            pieces.append(Piece(body[position : match.start()], False))
        pieces.append(Piece(match.group(), True))
        position = match.end()
    if position < len(body):
        pieces.append(Piece(body[position:], False))
    return pieces


def conversations(db: Database) -> tuple[list[Conversation], int]:
    """Conversations, latest first, and how many texts were purged (no number, no body)."""
    with db.session() as session:
        rows = list(
            session.exec(
                select(OutboxMessage).order_by(col(OutboxMessage.id).desc()).limit(MAX_MESSAGES)
            )
        )
    by_number: dict[str, Conversation] = {}
    purged = 0
    for row in reversed(rows):  # oldest first within a conversation
        if row.to is None or row.body is None:
            purged += 1
            continue
        conversation = by_number.setdefault(row.to, Conversation(row.to))
        conversation.messages.append(
            Bubble(row.kind, row.status, row.created_at, linkify(row.body))
        )
    latest_first = sorted(by_number.values(), key=lambda c: c.messages[-1].at, reverse=True)
    return latest_first, purged


def is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def phone_simulator_router(db: Database, renderer: PageRenderer) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get(PHONE_PATH, response_class=HTMLResponse)
    def phone(request: Request) -> HTMLResponse:
        if not is_loopback(request.client.host if request.client else None):
            raise HTTPException(status.HTTP_404_NOT_FOUND)
        found, purged = conversations(db)
        html = renderer.render("phone.html", "en", conversations=found, purged=purged)
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    return router
