"""What to do with a text a resident sends to an agency's number, and what to reply.

- Opt-out: recorded in the registry at once (it blocks every later call from the number
  until START), signalled to every open call of the number, confirmed by one text at most:
  nothing when the number had already opted out or the provider replied itself.
- Opt-in: recorded, signalled to open calls, confirmed.
- Help: the agency's help text.
- Another language ("ESPAÑOL", "LANG fr"): every open call of the number is switched to
  it (the `mark_language` update, by "resident") and its record at once, so the texts and
  the pages that follow are in it; confirmed in the new language. A language the agency
  does not offer gets the list of those it does, with the word that asks for each.
- Anything else: one "this number is not monitored" reply per open call (callerloop
  cannot answer a conversation, and someone in danger must learn to call 911).

Replies are in the caller's language: that of their latest call, else the one their
words were in, else the agency's default. In the languages GSM-7 covers they are GSM-7
(one segment each when the agency's name is short): no á/í/ó/ú/ê, which would force
UCS-2 (`callerloop languages check` says so of any text).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select, update
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import AutoReply, CallRecord, Database, HandledInbound, utcnow
from callerloop.languages import shipped_languages
from callerloop.messaging.messages import MessageContext, render_message
from callerloop.messaging.opt_outs import is_opted_out, record_opt_out
from callerloop.messaging.sms_keywords import (
    InboundIntent,
    InboundKeyword,
    classify_inbound,
    reply_word,
)
from callerloop.messaging.survey_replies import asking_call, read_survey_reply
from workflows.model import MarkLanguageRequest, OptInSignal, OptOutSignal, SurveyReplySignal

log = structlog.get_logger("callerloop.inbound")

# What a resident's text tells a call: signals, and the `mark_language` update (an update,
# so a call that cannot take it, having finished, says so).
CallSignal = OptOutSignal | OptInSignal | MarkLanguageRequest | SurveyReplySignal
# Delivers it to one call's workflow, by workflow id.
SignalCall = Callable[[str, CallSignal], Awaitable[None]]

# The provider's own keyword handling (Twilio's `OptOutType` with Advanced Opt-Out): it
# has acted on the number and sent its reply, so callerloop records and stays silent.
PROVIDER_KEYWORD_TYPES: Mapping[str, InboundIntent] = {
    "STOP": InboundIntent.OPT_OUT,
    "START": InboundIntent.OPT_IN,
    "HELP": InboundIntent.HELP,
}
# Texts from a number with no open call: one reply per period, so two auto-responders
# cannot ping-pong. The AutoReply row for such texts has this workflow id.
NO_CALL = ""
NO_CALL_REPLY_INTERVAL = timedelta(hours=24)
# Who changed a call's language, in its operator actions and the audit trail.
RESIDENT = "resident"


class SignalDeliveryFailed(RuntimeError):
    """An open call could not be told; the registry has the change and the caller's
    provider may retry the webhook (a retried STOP finds the number opted out)."""


@dataclass(frozen=True)
class OpenCall:
    workflow_id: str
    language: str | None
    case_number: str | None


@dataclass(frozen=True)
class InboundReply:
    intent: InboundIntent
    keyword: str
    text: str | None  # the one reply to send, None for none


def was_handled(db: Database, provider_id: str) -> bool:
    """Whether this inbound text (by the provider's message id) was already acted on."""
    with db.session() as session:
        return session.get(HandledInbound, provider_id) is not None


def mark_handled(db: Database, provider_id: str, agency_id: str) -> None:
    """Remember a fully handled inbound text; a concurrent duplicate got there first."""
    with db.session() as session:
        session.add(HandledInbound(provider_id=provider_id, agency=agency_id, handled_at=utcnow()))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()


def find_agency(
    agencies: Mapping[str, AgencyConfig], to_number: str, messaging_service_sid: str | None
) -> AgencyConfig | None:
    """The agency whose sender received the text: its number, or its Messaging Service
    (whose pool may hold numbers other than `sender_number`)."""
    for agency in agencies.values():
        identity = agency.agency
        if messaging_service_sid and identity.messaging_service_sid == messaging_service_sid:
            return agency
        if identity.sender_number and identity.sender_number == to_number:
            return agency
    return None


async def handle_inbound(
    db: Database,
    agency: AgencyConfig,
    phone: str,
    body: str,
    signal_call: SignalCall,
    *,
    provider_keyword_type: str | None = None,
    message_id: str = "",
) -> InboundReply:
    """Act on one inbound text from `phone` (E.164) and return the reply to send. A text
    that is no keyword answers the question a call's survey is asking in the thread, if
    one is; the call texts the next question itself."""
    keyword = _classify(body, provider_keyword_type)
    provider_replied = (provider_keyword_type or "").upper() in PROVIDER_KEYWORD_TYPES
    calls = await asyncio.to_thread(open_calls, db, agency.id, phone)
    language = reply_language(agency, calls, keyword.language)
    log.info("inbound text", agency=agency.id, intent=keyword.intent.value, keyword=keyword.keyword)
    match keyword.intent:
        case InboundIntent.OPT_OUT:
            text = await _opt_out(db, agency, phone, keyword, signal_call, language)
        case InboundIntent.OPT_IN:
            text = await _opt_in(db, agency, phone, keyword, calls, signal_call, language)
        case InboundIntent.HELP:
            text = _help_text(agency, calls, language)
        case InboundIntent.LANGUAGE:
            text = await _switch_language(db, agency, phone, keyword, calls, signal_call, language)
        case _:
            asking = await asyncio.to_thread(asking_call, db, agency.id, phone)
            if asking is not None:
                await _answer_survey(asking, body, message_id, signal_call)
                text = None
            else:
                text = await asyncio.to_thread(_not_monitored, db, agency, phone, calls, language)
    return InboundReply(keyword.intent, keyword.keyword, None if provider_replied else text)


async def _answer_survey(
    workflow_id: str, body: str, message_id: str, signal_call: SignalCall
) -> None:
    """The text is an answer: read it and hand it to the call. A call that ended
    meanwhile (its survey with it) is no failure; any other is raised for a retry."""
    try:
        await signal_call(workflow_id, read_survey_reply(body, message_id))
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise SignalDeliveryFailed(
                f"could not hand the survey answer to {workflow_id}"
            ) from error
        log.info("call ended before the survey answer", workflow_id=workflow_id)


def _classify(body: str, provider_keyword_type: str | None) -> InboundKeyword:
    """The provider's verdict wins when it gives one: it has already acted on it (an
    agency may configure keywords at Twilio that callerloop's tables lack)."""
    ours = classify_inbound(body)
    provider_intent = PROVIDER_KEYWORD_TYPES.get((provider_keyword_type or "").upper())
    if provider_intent is None or provider_intent == ours.intent:
        return ours
    return InboundKeyword(provider_intent, body.strip().upper()[:40], ours.language)


async def _opt_out(
    db: Database,
    agency: AgencyConfig,
    phone: str,
    keyword: InboundKeyword,
    signal_call: SignalCall,
    language: str,
) -> str | None:
    already = await asyncio.to_thread(is_opted_out, db, agency.id, phone)
    await asyncio.to_thread(record_opt_out, db, agency.id, phone, keyword.keyword, True)
    # Look for the calls to signal only now that the STOP is committed: a call recorded
    # meanwhile reads the registry after its record (`record_call_then_check_opt_out`),
    # so every call either is found here or finds the STOP itself.
    calls = await asyncio.to_thread(open_calls, db, agency.id, phone)
    signal = OptOutSignal(phone=phone, keyword=keyword.keyword, received_at=utcnow())
    await signal_open_calls(calls, signal, signal_call)
    # The FCC allows one confirmation: a repeated STOP gets silence.
    return None if already else _reply(agency, "opt_out", language)


async def _opt_in(
    db: Database,
    agency: AgencyConfig,
    phone: str,
    keyword: InboundKeyword,
    calls: Sequence[OpenCall],
    signal_call: SignalCall,
    language: str,
) -> str:
    await asyncio.to_thread(record_opt_out, db, agency.id, phone, keyword.keyword, False)
    await signal_open_calls(calls, OptInSignal(phone=phone, keyword=keyword.keyword), signal_call)
    return _reply(agency, "opt_in", language)


def _help_text(agency: AgencyConfig, calls: Sequence[OpenCall], language: str) -> str:
    case_number = next((c.case_number for c in calls if c.case_number), "")
    text = render_message(agency, "help", language, MessageContext(case_number=case_number))
    return text or _reply(agency, "not_monitored", language)


def _not_monitored(
    db: Database, agency: AgencyConfig, phone: str, calls: Sequence[OpenCall], language: str
) -> str | None:
    """One reply per open call; none to a number that opted out (it asked for silence)."""
    if is_opted_out(db, agency.id, phone):
        return None
    first_for_a_call = (
        claim_auto_replies(db, agency.id, phone, [c.workflow_id for c in calls])
        if calls
        else claim_no_call_reply(db, agency.id, phone)
    )
    return _reply(agency, "not_monitored", language) if first_for_a_call else None


async def _switch_language(
    db: Database,
    agency: AgencyConfig,
    phone: str,
    keyword: InboundKeyword,
    calls: Sequence[OpenCall],
    signal_call: SignalCall,
    language: str,
) -> str | None:
    """The number's open calls texted in the language asked for from now on, if the agency
    offers it; else the languages it offers, in the caller's language. Silence to a
    number that opted out, as for any reply."""
    asked = keyword.language
    offered = agency.agency.languages
    told: list[str] = []
    if asked is not None and asked in offered and calls:
        request = MarkLanguageRequest(RESIDENT, f"replied {keyword.keyword}", asked)
        told = await signal_open_calls(calls, request, signal_call)
        await asyncio.to_thread(record_call_language, db, told, asked)
    if await asyncio.to_thread(is_opted_out, db, agency.id, phone):
        return None
    if asked is None or asked not in offered:
        words = ", ".join(reply_word(shipped_languages()[code]) for code in offered)
        return f"{_reply(agency, 'languages_offered', language)} {words}"
    if not told:  # no call took it (none open, or each ending): a text outside any call
        return await asyncio.to_thread(_not_monitored, db, agency, phone, calls, asked)
    return _reply(agency, "language_changed", asked)


async def signal_open_calls(
    calls: Sequence[OpenCall], signal: CallSignal, signal_call: SignalCall
) -> list[str]:
    """Tell every open call; the ids of those told. A call that ended meanwhile, or that
    turned an update down (it is finishing), is skipped; any other failure is raised once
    every call has been tried."""
    failed: list[str] = []
    told: list[str] = []
    for call in calls:
        try:
            await signal_call(call.workflow_id, signal)
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                log.info("call ended before the signal", workflow_id=call.workflow_id)
                continue
            log.error("signal failed", workflow_id=call.workflow_id, error=str(error))
            failed.append(call.workflow_id)
        except WorkflowUpdateFailedError as error:
            log.info(
                "call turned the update down", workflow_id=call.workflow_id, why=str(error.cause)
            )
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            log.error("update timed out", workflow_id=call.workflow_id)
            failed.append(call.workflow_id)
        else:
            told.append(call.workflow_id)
    if failed:
        raise SignalDeliveryFailed(f"could not signal {type(signal).__name__} to {failed}")
    return told


# --- the database ------------------------------------------------------------------------


def open_calls(db: Database, agency_id: str, phone: str) -> list[OpenCall]:
    """The number's calls whose personal data is not purged yet, latest first."""
    with db.session() as session:
        rows = session.exec(
            select(CallRecord)
            .where(col(CallRecord.agency) == agency_id)
            .where(col(CallRecord.caller_phone) == phone)
            .where(col(CallRecord.purged_at).is_(None))
            .order_by(col(CallRecord.received_at).desc(), col(CallRecord.updated_at).desc())
        )
        return [OpenCall(r.workflow_id, r.language, r.case_number) for r in rows]


def record_call_language(db: Database, workflow_ids: Sequence[str], language: str) -> None:
    """The calls' records in the new language at once, so their pages follow before the
    workflows record it themselves."""
    if not workflow_ids:
        return
    with db.session() as session:
        session.exec(
            update(CallRecord)
            .where(col(CallRecord.workflow_id).in_(workflow_ids))
            .values(language=language)
        )
        session.commit()


def claim_auto_replies(db: Database, agency_id: str, phone: str, workflow_ids: list[str]) -> bool:
    """Mark each call as auto-replied; True if any had not been (so one reply is due).
    The primary key makes two texts racing for the same call reply once."""
    claimed = False
    now = utcnow()
    with db.session() as session:
        for workflow_id in workflow_ids:
            try:
                with session.begin_nested():
                    session.add(
                        AutoReply(
                            agency=agency_id, phone=phone, workflow_id=workflow_id, sent_at=now
                        )
                    )
                claimed = True
            except IntegrityError:
                pass
        session.commit()
    return claimed


def claim_no_call_reply(
    db: Database, agency_id: str, phone: str, now: datetime | None = None
) -> bool:
    now = now or utcnow()
    with db.session() as session:
        row = session.get(AutoReply, (agency_id, phone, NO_CALL))
        if row is not None and now - row.sent_at < NO_CALL_REPLY_INTERVAL:
            return False
        row = row or AutoReply(agency=agency_id, phone=phone, workflow_id=NO_CALL)
        row.sent_at = now
        session.add(row)
        session.commit()
    return True


# --- texts ---------------------------------------------------------------------------------


def reply_language(
    agency: AgencyConfig, calls: Sequence[OpenCall], keyword_language: str | None
) -> str:
    """The latest call's language, else the keyword's, else the agency's default; only a
    language the agency offers (its staff answer the calls that follow)."""
    offered = agency.agency.languages
    candidates = [*(c.language for c in calls[:1]), keyword_language]
    return next((lang for lang in candidates if lang in offered), agency.agency.default_language)


def _reply(agency: AgencyConfig, kind: str, language: str) -> str:
    """A reply from the agency's templates (callerloop's defaults unless it overrides them)."""
    return render_message(agency, kind, language, MessageContext(case_number=""))
