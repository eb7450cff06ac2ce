"""Twilio's two webhooks. Thin on purpose: check the signature, read the fields, hand the
work to `callerloop.delivery_status` and `callerloop.inbound` (which tells calls through
`temporal_signaller`: signals, and an update for a language), answer in Twilio's terms.

Twilio sends form fields it may add to at any time: unknown ones are ignored.
"""

# No `from __future__ import annotations` here: FastAPI must evaluate the endpoints'
# annotations where they are defined, since `SignedForm` is local to `twilio_router`.

from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, HTTPException, Response, status
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client
from twilio.twiml.messaging_response import MessagingResponse

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database
from callerloop.messaging.delivery_status import apply_delivery_status
from callerloop.messaging.inbound import (
    CallSignal,
    SignalCall,
    find_agency,
    handle_inbound,
    mark_handled,
    was_handled,
)
from web.twilio_signature import TwilioForm, TwilioSignatureCheck
from workflows.call_for_service import CallForServiceWorkflow
from workflows.model import OptInSignal, OptOutSignal, SurveyReplySignal

log = structlog.get_logger("web.twilio_webhooks")

STATUS_PATH = "/twilio/status"
INBOUND_PATH = "/twilio/inbound"
UPDATE_TIMEOUT = timedelta(seconds=8)


def twilio_router(
    signature_check: TwilioSignatureCheck,
    db: Database,
    agencies: Mapping[str, AgencyConfig],
    signal_call: SignalCall,
) -> APIRouter:
    router = APIRouter()
    SignedForm = Annotated[TwilioForm, Depends(signature_check)]

    @router.post(STATUS_PATH, status_code=status.HTTP_204_NO_CONTENT)
    async def delivery_status(form: SignedForm, outbox: str | None = None) -> Response:
        """A status callback for a text callerloop sent."""
        _refuse_nul(form)
        provider_id = _required(form, "MessageSid", "SmsSid")
        message_status = _required(form, "MessageStatus", "SmsStatus")
        await run_in_threadpool(
            apply_delivery_status,
            db,
            provider_id,
            message_status,
            form.get("ErrorCode"),
            _outbox_id(outbox),
        )
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post(INBOUND_PATH)
    async def inbound_message(form: SignedForm) -> Response:
        """A text a resident sent to an agency's number; the reply goes back as TwiML."""
        _refuse_nul(form)
        to_number = _required(form, "To")
        provider_id = _required(form, "MessageSid", "SmsMessageSid", "SmsSid")
        agency = find_agency(agencies, to_number, form.get("MessagingServiceSid"))
        if agency is None:
            # 200, not an error: Twilio would only retry, and no agency can answer it.
            log.warning("inbound text to a number no agency uses", to=to_number)
            return twiml(None)
        if await run_in_threadpool(was_handled, db, provider_id):
            # A retry of a webhook we did answer, or a captured request played again.
            log.warning("inbound text already handled: ignored", message_sid=provider_id)
            return twiml(None)
        reply = await handle_inbound(
            db,
            agency,
            _required(form, "From"),
            form.get("Body", ""),
            signal_call,
            provider_keyword_type=form.get("OptOutType"),
            message_id=provider_id,
        )
        await run_in_threadpool(mark_handled, db, provider_id, agency.id)
        return twiml(reply.text)

    return router


def twiml(text: str | None) -> Response:
    """`<Response><Message>text</Message></Response>`, or an empty `<Response/>`."""
    response = MessagingResponse()
    if text:
        response.message(text)
    return Response(content=str(response), media_type="text/xml")


def _outbox_id(value: str | None) -> int | None:
    """The outbox row callerloop named in the callback URL (signed with it)."""
    return int(value) if value is not None and value.isdigit() else None


def _refuse_nul(form: TwilioForm) -> None:
    """No text field holds a NUL character (PostgreSQL cannot store one): a clear 400
    instead of a database error."""
    for name, value in form.items():
        if "\x00" in name or "\x00" in value:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST, f"form field {name!r} contains a NUL character"
            )


def _required(form: TwilioForm, *names: str) -> str:
    """The first of `names` present (Twilio still sends the older Sms* names too)."""
    for name in names:
        value = form.get(name, "").strip()
        if value:
            return value
    raise HTTPException(status.HTTP_400_BAD_REQUEST, f"form field {names[0]} is missing")


def temporal_signaller(client: Client | Callable[[], Awaitable[Client]]) -> SignalCall:
    """Signals calls through Temporal; `client` may be a factory awaited on first use. A
    language is the `mark_language` update, waited for at most `UPDATE_TIMEOUT` (it needs
    the worker; Twilio gives a webhook 15 s, and retries one that failed)."""

    async def signal_call(workflow_id: str, signal: CallSignal) -> None:
        connected = client if isinstance(client, Client) else await client()
        handle = connected.get_workflow_handle_for(CallForServiceWorkflow.run, workflow_id)
        if isinstance(signal, OptOutSignal):
            await handle.signal(CallForServiceWorkflow.opt_out, signal)
        elif isinstance(signal, OptInSignal):
            await handle.signal(CallForServiceWorkflow.opt_in, signal)
        elif isinstance(signal, SurveyReplySignal):
            await handle.signal(CallForServiceWorkflow.survey_reply, signal)
        else:
            await handle.execute_update(
                CallForServiceWorkflow.mark_language, signal, rpc_timeout=UPDATE_TIMEOUT
            )

    return signal_call
