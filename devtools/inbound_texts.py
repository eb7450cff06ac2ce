"""A resident texting an agency's number on the local stack, delivered as Twilio delivers
it: a form posted to the web app's inbound webhook, signed with the account's auth token
for the public URL (so the real signature check runs), and the TwiML reply read back.

The phone simulator's reply box and the demo residents both text through here.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

import httpx

from callerloop.core.agency_config import AgencyConfig
from devtools.conversation_log import Entry, LoggedText, now
from devtools.twilio_standin import signed_inbound
from web.twilio_webhooks import INBOUND_PATH

TIMEOUT_SECONDS = 15.0


class InboundRefused(Exception):
    """The webhook did not take the text; the message says what it answered."""


@dataclass(frozen=True)
class InboundTexts:
    public_base_url: str  # as configured at Twilio: the webhook's URL is signed with it
    account_sid: str
    auth_token: str

    @property
    def webhook_url(self) -> str:
        return f"{self.public_base_url.rstrip('/')}{INBOUND_PATH}"

    async def send(
        self, client: httpx.AsyncClient, agency: AgencyConfig, from_number: str, body: str
    ) -> str | None:
        """Text `body` from `from_number` to the agency's number; the agency's answer (the
        TwiML reply's message), None when it answers with silence."""
        identity = agency.agency
        signed = signed_inbound(
            self.webhook_url,
            self.account_sid,
            self.auth_token,
            from_number,
            identity.sender_number or "",
            body,
            identity.messaging_service_sid,
        )
        try:
            response = await client.post(
                signed.url,
                data=signed.params,
                headers={"X-Twilio-Signature": signed.signature},
                timeout=TIMEOUT_SECONDS,
            )
        except httpx.HTTPError as error:
            raise InboundRefused(f"{signed.url} could not be reached: {error}") from error
        if response.status_code != 200:
            detail = response.text.strip()[:200]
            raise InboundRefused(f"{signed.url} answered HTTP {response.status_code}: {detail}")
        return twiml_message(response.text)


async def logged_reply(
    client: httpx.AsyncClient,
    texts: InboundTexts,
    agency: AgencyConfig,
    number: str,
    body: str,
    *,
    simulated: bool = False,
) -> LoggedText:
    """Text the agency as the resident at `number`; the text as the conversation log keeps
    it, with the agency's answer or why the webhook refused it."""
    at = now()
    try:
        answer = await texts.send(client, agency, number, body)
    except InboundRefused as refused:
        return LoggedText(
            number, agency.id, at, Entry.REPLY, body, error=str(refused), simulated=simulated
        )
    return LoggedText(number, agency.id, at, Entry.REPLY, body, answer, simulated=simulated)


def twiml_message(twiml: str) -> str | None:
    """The text of a TwiML `<Response><Message>…</Message></Response>`, or None."""
    try:
        root = ET.fromstring(twiml)
    except ET.ParseError as error:
        detail = f"the webhook's answer is not TwiML ({error}): {twiml[:200]!r}"
        raise InboundRefused(detail) from error
    texts = [message.text or "" for message in root.iter("Message")]
    return "\n".join(texts) if texts else None
