"""The chaos driver's safety facts, acted out during the replay: a reclassification posted
through the ingest API as CAD would post it, a STOP or START posted to the web app's
inbound webhook, signed, as Twilio posts a resident's reply. Each is journalled with the
moment it was posted and the moment it was accepted."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from callerloop.cad.client import CallAlreadyFinished
from callerloop.cad.http_client import HttpCadClient, IngestRefused, Retrying
from chaos.facts import Fact, PlannedFact, Race, reclassification
from chaos.oracle import AgencyRules
from chaos.timeline import CadSent, Journal, Keyword, ReplySent, wall_clock
from devtools.twilio_standin import TwilioStandIn
from web.twilio_webhooks import INBOUND_PATH
from workflows.model import CadEvent

# How long a fact waits for Twilio to refuse one of its call's texts (then goes anyway).
REFUSAL_WAIT = 15.0
# A reply is posted until the webhook takes it, as Twilio retries a webhook; this long.
REPLY_PATIENCE = 180.0
TWILIO_CODES = {429: 20429, 500: 20500}


@dataclass
class FactsDone:
    planned: Counter[tuple[Fact, Race]] = field(default_factory=Counter)
    done: Counter[tuple[Fact, Race]] = field(default_factory=Counter)
    caught_in_retry: int = 0  # facts accepted while Twilio had refused a text of the call
    finished_first: list[str] = field(default_factory=list)  # its call had ended: not applied
    refused: list[str] = field(default_factory=list)
    reply_retries: int = 0


class FactDriver:
    """Hooks for the replay (`before_post`, `after_accepted`): a fact follows its trigger."""

    def __init__(
        self,
        planned: Sequence[PlannedFact],
        standin: TwilioStandIn,
        cad: HttpCadClient,
        web_url: str,
        agency_number: str,
        rules: AgencyRules,
        journal: Journal,
    ) -> None:
        self._by_trigger = {fact.trigger: fact for fact in planned}
        self._standin, self._cad, self._rules, self._journal = standin, cad, rules, journal
        self._web_url, self._agency_number = web_url, agency_number
        self._watch_from: dict[str, int] = {}  # incident -> first stand-in request to look at
        self._acting: list[asyncio.Task[None]] = []
        self.done = FactsDone(planned=Counter((f.fact, f.race) for f in planned))

    def before_post(self, event: CadEvent) -> None:
        """A fact in a retry: Twilio refuses the caller's texts from before the trigger."""
        fact = self._by_trigger.get(event.event_id)
        if fact is not None and fact.race == Race.IN_RETRY:
            code = TWILIO_CODES[fact.twilio_status]
            self._watch_from[fact.incident_id] = len(self._standin.requests)
            self._standin.set_error_for(fact.phone, code, fact.twilio_status)

    def after_accepted(self, event: CadEvent) -> None:
        fact = self._by_trigger.get(event.event_id)
        if fact is not None:
            self._acting.append(asyncio.create_task(self._act(fact, event)))

    def after_not_applied(self, event: CadEvent) -> None:
        fact = self._by_trigger.get(event.event_id)
        if fact is not None:
            self._standin.clear_error_for(fact.phone)
            self.done.finished_first.append(f"{fact.incident_id}: its trigger was not applied")

    async def finish(self) -> None:
        """Until every fact (and START) has been told."""
        await asyncio.gather(*self._acting)

    async def _act(self, fact: PlannedFact, trigger: CadEvent) -> None:
        caught = False
        try:
            if fact.race == Race.IN_RETRY:
                caught = await self._text_refused(fact)
            else:
                await asyncio.sleep(fact.delay)
            told = await self._tell(fact, trigger)
            if fact.race == Race.IN_RETRY:
                await asyncio.sleep(fact.hold)  # the retry after this finds Twilio well
        finally:
            self._standin.clear_error_for(fact.phone)
        if not told:
            return
        self.done.done[(fact.fact, fact.race)] += 1
        self.done.caught_in_retry += caught
        if fact.fact == Fact.STOP_THEN_START:
            await asyncio.sleep(fact.start_after)
            await self._reply(fact.phone, "START")

    async def _text_refused(self, fact: PlannedFact) -> bool:
        """Until Twilio has refused a text of the call (it now waits for its retry)."""
        deadline = time.monotonic() + REFUSAL_WAIT
        start = self._watch_from.get(fact.incident_id, 0)
        while time.monotonic() < deadline:
            for request in self._standin.requests[start:]:
                body, to = request.fields.get("Body", ""), request.fields.get("To")
                refused = request.status == fact.twilio_status
                if refused and to == fact.phone and fact.incident_id in body:
                    return True
            await asyncio.sleep(0.05)
        return False

    async def _tell(self, fact: PlannedFact, trigger: CadEvent) -> bool:
        if fact.fact == Fact.STOP_THEN_START:
            return await self._reply(fact.phone, "STOP")
        event = reclassification(fact, trigger, self._rules)
        unsafe = self._rules.unsafe_change(event.call_type, event.priority, event.do_not_text)
        posted = wall_clock()
        try:
            await self._cad.send(event)
        except CallAlreadyFinished:
            self.done.finished_first.append(f"{event.event_id}: the call had ended")
            return False
        except IngestRefused as error:
            self.done.refused.append(f"{event.event_id}: {error}")
            return False
        self._journal.cad.append(
            CadSent(event.incident_id, event.event_type.value, posted, wall_clock(), unsafe)
        )
        return True

    async def _reply(self, phone: str, keyword: Keyword) -> bool:
        """A resident's text through the inbound webhook, posted (the same signed request,
        as Twilio retries it) until the web app takes it."""
        url = f"{self._web_url}{INBOUND_PATH}"
        signed = self._standin.signed_inbound(url, phone, self._agency_number, keyword)
        headers = {"X-Twilio-Signature": signed.signature}
        pauses = Retrying(attempts=None, first_pause=0.2, max_pause=2.0)
        posted = wall_clock()
        deadline = time.monotonic() + REPLY_PATIENCE
        async with httpx.AsyncClient(timeout=15) as client:
            retry = 0
            while time.monotonic() < deadline:
                try:
                    answer = await client.post(url, data=signed.params, headers=headers)
                except httpx.TransportError:
                    answer = None
                if answer is not None and answer.status_code < 400:
                    self._journal.replies.append(ReplySent(phone, keyword, posted, wall_clock()))
                    return True
                if answer is not None and answer.status_code < 500:
                    self.done.refused.append(f"{keyword} from {phone}: HTTP {answer.status_code}")
                    return False
                retry += 1
                self.done.reply_retries += 1
                await asyncio.sleep(pauses.pause(retry, None))
        self.done.refused.append(f"{keyword} from {phone}: not taken in {REPLY_PATIENCE:.0f} s")
        return False
