"""What a follow-up mail says: the agency, why the item is in the inbox (a low score, a
comment), its score, call-type group and time, and a link to it in the inbox.

Never the comment, the case number or anything of the caller's: a mail leaves the
deployment (forwarded, on a phone, kept in a mailbox for years) and a comment can hold a
name, an address or a phone number. The link asks for a staff sign-in.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from zoneinfo import ZoneInfo

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import FollowUpMail, SurveyComment, utcnow
from callerloop.survey.responses import LOW_SCORE

# Where an inbox item opens on the web app (web/comments_inbox.py serves it).
INBOX_PATH = "/dashboard/comments"


def inbox_item_path(item_id: int) -> str:
    return f"{INBOX_PATH}/{item_id}"


def inbox_item_url(public_base_url: str, item_id: int) -> str:
    return public_base_url.rstrip("/") + inbox_item_path(item_id)


def is_low(item: SurveyComment) -> bool:
    """In the inbox for a low score: any answer of LOW_SCORE or less (the score shown
    beside it may be higher: it is the overall answer, or the mean)."""
    return item.low_score


def has_comment(item: SurveyComment) -> bool:
    return item.comment != ""


def reason(item: SurveyComment) -> str:
    low = f"an answer of {LOW_SCORE} or less"
    if is_low(item) and has_comment(item):
        return f"{low} and a comment"
    return low if is_low(item) else "a comment"


def score_text(score: float | None) -> str:
    return "none (every question skipped)" if score is None else f"{score:g} of 5"


def received_text(agency: AgencyConfig, item: SurveyComment) -> str:
    local = item.created_at.astimezone(ZoneInfo(agency.agency.time_zone))
    return f"{local:%a %d %b %Y, %H:%M %Z}"


@dataclass(frozen=True)
class Composed:
    subject: str
    body: str


# Lines under 78 characters: the mail goes as plain 7-bit text, readable as it is.
_CLOSING = textwrap.fill(
    "The comment and the case number are not in this mail (they may hold personal "
    "details): read them in the inbox, and mark the item handled there once it is "
    "followed up.",
    width=72,
)


def one_item(agency: AgencyConfig, item: SurveyComment, public_base_url: str) -> Composed:
    assert item.id is not None
    subject = f"{agency.agency.name}: survey follow-up, {reason(item)}"
    body = "\n".join(
        [
            "A survey answer in the comments inbox asks for a supervisor's follow-up.",
            "",
            f"Agency:    {agency.agency.name}",
            f"Why:       {reason(item)}",
            f"Score:     {score_text(item.score)} (the overall answer, or the mean)",
            f"Call type: {item.call_type_group}",
            f"Received:  {received_text(agency, item)}",
            "",
            f"Open it (staff sign-in): {inbox_item_url(public_base_url, item.id)}",
            "",
            _CLOSING,
            "",
        ]
    )
    return Composed(subject, body)


def digest(agency: AgencyConfig, items: Sequence[SurveyComment], public_base_url: str) -> Composed:
    count = len(items)
    answers = "1 survey answer" if count == 1 else f"{count} survey answers"
    subject = f"{agency.agency.name}: {answers} to follow up"
    lines = [f"{answers.capitalize()} reached the comments inbox since the last digest.", ""]
    for item in items:
        assert item.id is not None
        lines += [
            f"- {received_text(agency, item)}: {reason(item)}",
            f"  score {score_text(item.score)}, call type {item.call_type_group}",
            f"  {inbox_item_url(public_base_url, item.id)}",
        ]
    lines += ["", _CLOSING, ""]
    return Composed(subject, "\n".join(lines))


def message(
    mail: FollowUpMail, agency: AgencyConfig, sender: str, recipients: Sequence[str]
) -> EmailMessage:
    """The mail as it goes out. Its Message-ID comes from the mail's row, so a mail sent
    again (see callerloop.staff.follow_up) is recognisably the same mail."""
    assert mail.id is not None
    sender_address = Address(addr_spec=sender.strip())
    out = EmailMessage()
    out["From"] = Address(f"{agency.agency.name} (callerloop)", addr_spec=sender_address.addr_spec)
    out["To"] = ", ".join(recipients)
    out["Subject"] = mail.subject
    out["Date"] = format_datetime(utcnow())
    out["Message-ID"] = f"<follow-up.{mail.agency}.{mail.id}@{sender_address.domain}>"
    out["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies
    out.set_content(mail.body)
    return out
