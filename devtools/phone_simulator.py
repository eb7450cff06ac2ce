"""`/dev/phone`: the outbox as the residents' phones would show it, one conversation per
number, links clickable, and a reply box under each. Only mounted while no text can leave
the machine (the `local` provider, or the local Twilio stand-in), so a person running
`make run` can follow a call as the resident would, and answer as the resident.

A reply goes to the web app's own inbound webhook exactly as Twilio would deliver it
(`devtools.inbound_texts`: signed with the stack's auth token), so STOP, START, HELP and
free text get the answer a real resident would; the thread shows the resident's text and
that answer (`devtools.conversation_log`). Plain HTML forms with post/redirect/get: the
page keeps the resident pages' security headers, scripts forbidden.

It shows numbers and live links and texts as any resident: it answers only on the machine
itself (loopback clients), and takes a reply only from its own page (same origin)."""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations.

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import col, select

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database, OutboxMessage
from devtools.conversation_log import ConversationLog, Entry, LoggedText
from devtools.inbound_texts import InboundTexts, logged_reply
from web.i18n import PageRenderer
from web.page_security import PAGE_HEADERS

PHONE_PATH = "/dev/phone"
REPLY_PATH = f"{PHONE_PATH}/reply"
URL = re.compile(r"https?://[^\s<>\"]+")
E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
MAX_MESSAGES = 2000  # the newest: enough for a demo day
MAX_REPLY_CHARACTERS = 1600  # Twilio's limit for one message
QUICK_REPLIES = ("STOP", "START", "HELP")


@dataclass(frozen=True)
class Piece:
    text: str
    is_link: bool


@dataclass
class Bubble:
    kind: str  # the outbox kind; "reply" (the resident's), "answer", "note"
    status: str
    at: datetime
    pieces: list[Piece]
    from_resident: bool = False
    simulated: bool = False  # a demo resident's, not typed here


@dataclass
class Conversation:
    number: str
    agency: str = ""  # whose texts these are: the latest text's agency
    messages: list[Bubble] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return "phone-" + re.sub(r"\D", "", self.number)


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


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def reply_bubbles(entry: LoggedText) -> list[Bubble]:
    """A logged reply as the resident's bubble, then the agency's answer (or what became
    of the text); a note as one line."""
    at = aware(entry.at)
    if entry.kind == Entry.NOTE:
        return [Bubble("note", "", at, [Piece(entry.text, False)], simulated=entry.simulated)]
    sent = Bubble(
        "reply",
        "refused" if entry.error else "received",
        at,
        [Piece(entry.text, False)],
        from_resident=True,
        simulated=entry.simulated,
    )
    after = at + timedelta(microseconds=1)  # the answer comes after its text
    if entry.error:
        return [sent, Bubble("note", "", after, [Piece(f"Not delivered: {entry.error}", False)])]
    if entry.answer is None:
        return [
            sent,
            Bubble("note", "", after, [Piece("No answer (the agency stays silent).", False)]),
        ]
    return [sent, Bubble("answer", "TwiML reply", after, linkify(entry.answer))]


def conversations(
    db: Database, replies: Iterable[LoggedText] = ()
) -> tuple[list[Conversation], int]:
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
        conversation.agency = row.agency
        conversation.messages.append(
            Bubble(row.kind, row.status, aware(row.created_at), linkify(row.body))
        )
    for entry in replies:
        conversation = by_number.setdefault(entry.number, Conversation(entry.number, entry.agency))
        conversation.agency = conversation.agency or entry.agency
        conversation.messages.extend(reply_bubbles(entry))
    for conversation in by_number.values():
        conversation.messages.sort(key=lambda bubble: bubble.at)
    latest_first = sorted(by_number.values(), key=lambda c: c.messages[-1].at, reverse=True)
    return latest_first, purged


def is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def same_origin(request: Request, public_base_url: str) -> bool:
    """A form posted from this page, not from a site open in the same browser (browsers
    send Origin with every POST; a client without a browser sends none)."""
    origin = request.headers.get("origin")
    if origin is None:
        return request.headers.get("sec-fetch-site") in (None, "same-origin", "none")
    own = f"{request.url.scheme}://{request.url.netloc}"
    return origin in (own, public_base_url.rstrip("/"))


def phone_simulator_router(
    db: Database,
    renderer: PageRenderer,
    agencies: Mapping[str, AgencyConfig],
    texts: InboundTexts,
    log: ConversationLog,
) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def only_this_machine(request: Request) -> None:
        if not is_loopback(request.client.host if request.client else None):
            raise HTTPException(status.HTTP_404_NOT_FOUND)

    @router.get(PHONE_PATH, response_class=HTMLResponse)
    def phone(request: Request) -> HTMLResponse:
        only_this_machine(request)
        found, purged = conversations(db, log.entries())
        html = renderer.render(
            "phone.html",
            "en",
            conversations=found,
            purged=purged,
            quick_replies=QUICK_REPLIES,
            max_reply=MAX_REPLY_CHARACTERS,
        )
        return HTMLResponse(html, headers=PAGE_HEADERS)

    @router.post(REPLY_PATH)
    async def reply(request: Request) -> Response:
        """Text the agency as the resident; back to the conversation (post/redirect/get)."""
        only_this_machine(request)
        if not same_origin(request, texts.public_base_url):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "a reply is sent from /dev/phone only")
        form = await request.form()
        fields = {key: value for key, value in form.items() if isinstance(value, str)}
        number = fields.get("number", "").strip()
        body = (fields.get("quick") or fields.get("body") or "").strip()
        agency = agencies.get(fields.get("agency", ""))
        if not E164.match(number):
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"number {number!r} is not E.164")
        if agency is None:
            known = ", ".join(sorted(agencies))
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                f"agency {fields.get('agency')!r} is not configured (agencies: {known})",
            )
        if len(body) > MAX_REPLY_CHARACTERS:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST, f"a text has at most {MAX_REPLY_CHARACTERS} characters"
            )
        if body:
            async with httpx.AsyncClient() as client:
                entry = await logged_reply(client, texts, agency, number, body)
            log.add(entry)
        anchor = Conversation(number).anchor
        return RedirectResponse(
            f"{PHONE_PATH}#{anchor}", status_code=status.HTTP_303_SEE_OTHER, headers=PAGE_HEADERS
        )

    return router
