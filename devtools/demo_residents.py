"""The residents of `make run`'s replayed day, simulated: they read the texts callerloop
sends them and some answer, through the product's real doors only.

- A share answer the survey: on its page (the link in the survey text, opened and posted
  like a browser: `devtools.survey_page`), or, where the agency asks the survey in the
  text thread, by replying to each question with a digit, SKIP or a comment
  (`thread_reply`). Most are satisfied; some are not, and give low scores; some comment.
- A few reply STOP (in their language's words) or HELP to their first text, and a few
  thank the agency once their call is closed; each through the signed inbound webhook.

Who does what is seeded by the resident's number (the same day and seed give the same
residents, whatever the timing), and each waits a while of CAD time, divided by the
stack's time scale, before acting. Everything they send and do is kept in the phone
simulator's log, marked as simulated. Only the replayed day's calls have residents: a
text for any other call (one a person sends with `callerloop cad send`) is left alone.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from collections.abc import Collection, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

import httpx
import structlog
from sqlmodel import col, select

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database, OutboxMessage
from callerloop.messaging.delivery_status import SENT_STATUSES, STATUS_ORDER
from callerloop.survey.responses import NOT_APPLICABLE
from devtools.conversation_log import ConversationLog, Entry, LoggedText, now
from devtools.inbound_texts import InboundTexts, logged_reply
from devtools.survey_page import ChooseAnswer, SurveyPageError, answer_survey_page
from workflows.model import TextKind

log = structlog.get_logger("devtools.demo_residents")

POLL_SECONDS = 1.0
# The replay gives callers 199 fictional numbers (555-0100…0199 in the agency's area
# codes): with this seed they split as `Shares` says (43 % answer, 12 % of them unhappy,
# 75 % of answers satisfied; 7 % STOP, 5 % HELP), where seed 7 made a sour town (66 %).
RESIDENTS_SEED = 24
SURVEY_LINK = re.compile(r"https?://\S+/survey/[A-Za-z0-9_-]+")
THREAD_TEXTS = frozenset({TextKind.SURVEY, TextKind.SURVEY_QUESTION})


@dataclass(frozen=True)
class Shares:
    """How many residents do what (of those texted)."""

    stop: float = 0.05
    help: float = 0.05
    thanks: float = 0.05  # a free-text "thank you" once the call is closed
    answer: float = 0.45  # of the surveyed, those who answer
    unhappy: float = 0.12  # of those who answer
    mixed: float = 0.25
    comment: float = 0.25
    comment_when_unhappy: float = 0.8
    no_officer: float = 0.1  # "no officer came"
    thread_when_both: float = 0.5  # where the agency offers the page and the thread


# When each acts after the text, in minutes of CAD time (divided by the time scale).
REPLY_MINUTES = (1, 30)
SURVEY_MINUTES = (10, 6 * 60)
THREAD_MINUTES = (1, 15)


class Mood(StrEnum):
    HAPPY = "happy"
    MIXED = "mixed"
    UNHAPPY = "unhappy"


SCORE_WEIGHTS = {
    Mood.HAPPY: {"5": 60, "4": 35, "3": 5},
    Mood.MIXED: {"5": 10, "4": 45, "3": 35, "2": 10},
    Mood.UNHAPPY: {"3": 15, "2": 40, "1": 45},
}

STOP_WORDS = {
    "en": ("STOP", "Stop", "stop texting me please"),
    "es": ("ALTO", "STOP", "Basta"),
    "fr": ("ARRÊT", "STOP", "Arrêtez de m'écrire"),
}
HELP_WORDS = {"en": "HELP", "es": "AYUDA", "fr": "AIDE"}
THANKS = {"en": "Thank you!", "es": "Gracias", "fr": "Merci beaucoup"}
SKIP_WORDS = {"en": "SKIP", "es": "SALTAR", "fr": "PASSER"}  # as the thread texts ask
COMMENTS: dict[str, dict[Mood, tuple[str, ...]]] = {
    "en": {
        Mood.HAPPY: (
            "The officer was kind and explained what would happen next.",
            "Quick response, thank you.",
            "The person who answered was calm and patient with me.",
        ),
        Mood.MIXED: (
            "It took a long time for someone to come, but the officer was polite.",
            "I would have liked to know roughly when an officer would arrive.",
            "Fine in the end, but I had to repeat my address three times.",
        ),
        Mood.UNHAPPY: (
            "I waited over two hours and nobody came.",
            "The person on the phone did not listen to me.",
            "Nobody followed up, and the noise went on all night.",
        ),
    },
    "es": {
        Mood.HAPPY: (
            "El agente fue muy amable y me explicó todo.",
            "Llegaron rápido, muchas gracias.",
        ),
        Mood.MIXED: (
            "Tardaron bastante, pero el agente fue respetuoso.",
            "Me hubiera gustado saber cuándo iban a llegar.",
        ),
        Mood.UNHAPPY: (
            "Esperé más de dos horas y nadie vino.",
            "No me tomaron en serio.",
        ),
    },
    "fr": {
        Mood.HAPPY: (
            "L'agent a été très aimable et m'a tout expliqué.",
            "Intervention rapide, merci.",
        ),
        Mood.MIXED: (
            "C'était long, mais l'agent a été poli.",
            "J'aurais aimé savoir à quelle heure quelqu'un viendrait.",
        ),
        Mood.UNHAPPY: (
            "J'ai attendu plus de deux heures et personne n'est venu.",
            "On ne m'a pas écouté.",
        ),
    },
}


class FirstReply(StrEnum):
    STOP = "stop"
    HELP = "help"
    THANKS = "thanks"


# The texts each first reply answers (once per resident, the first such text): STOP comes
# while the call is open (after its closing note it would race the survey), HELP to any
# news of the call, thanks to the closing note.
CALL_NEWS = frozenset({TextKind.CONFIRMATION, TextKind.ASSIGNED, TextKind.DELAYED})
FIRST_REPLY_TO = {
    FirstReply.STOP: CALL_NEWS,
    FirstReply.HELP: CALL_NEWS | {TextKind.CLEARED},
    FirstReply.THANKS: frozenset({TextKind.CLEARED}),
}


@dataclass(frozen=True)
class Resident:
    """What one resident does; everything follows from the seed and their number."""

    number: str
    seed: str
    first_reply: FirstReply | None
    answers_survey: bool
    mood: Mood
    comments: bool
    no_officer: bool
    prefers_thread: bool

    def rng(self, *about: object) -> random.Random:
        return random.Random(" ".join(map(str, (self.seed, *about))))

    def score(self, question: str) -> str:
        weights = SCORE_WEIGHTS[self.mood]
        return self.rng("score", question).choices(list(weights), list(weights.values()))[0]

    def comment(self, language: str) -> str:
        if not self.comments:
            return ""
        bank = COMMENTS.get(language, COMMENTS["en"])[self.mood]
        return self.rng("comment").choice(bank)

    def stop_word(self, language: str) -> str:
        return self.rng("stop").choice(STOP_WORDS.get(language, STOP_WORDS["en"]))

    def wait(self, minutes: tuple[int, int], time_scale: float, *about: object) -> float:
        """Seconds of wall time to wait, `minutes` of CAD time apart."""
        chosen = self.rng("wait", *about).uniform(*minutes)
        return timedelta(minutes=chosen).total_seconds() / time_scale


def resident(number: str, seed: int, shares: Shares = Shares()) -> Resident:
    rng = random.Random(f"callerloop demo resident {seed} {number}")
    roll = rng.random()
    first_reply = None
    for reply, share in (
        (FirstReply.STOP, shares.stop),
        (FirstReply.HELP, shares.help),
        (FirstReply.THANKS, shares.thanks),
    ):
        if roll < share:
            first_reply = reply
            break
        roll -= share
    mood_roll = rng.random()
    mood = (
        Mood.UNHAPPY
        if mood_roll < shares.unhappy
        else Mood.MIXED
        if mood_roll < shares.unhappy + shares.mixed
        else Mood.HAPPY
    )
    comment_share = shares.comment_when_unhappy if mood == Mood.UNHAPPY else shares.comment
    return Resident(
        number=number,
        seed=f"{seed} {number}",
        first_reply=first_reply,
        answers_survey=first_reply != FirstReply.STOP and rng.random() < shares.answer,
        mood=mood,
        comments=rng.random() < comment_share,
        no_officer=rng.random() < shares.no_officer,
        prefers_thread=rng.random() < shares.thread_when_both,
    )


def thread_reply(agency: AgencyConfig, person: Resident, language: str, body: str) -> str | None:
    """The resident's answer to the question a survey text ends with: a digit for a
    scale, a comment (or SKIP) for the comment question; None when the text asks none of
    the agency's questions (a text the thread does not ask with)."""
    for question in agency.survey.questions:
        try:
            asked = agency.thread_question_text(question.id, language)
        except KeyError:
            continue  # this language's templates ask no such question
        if not body.rstrip().endswith(asked.rstrip()):
            continue
        skip = SKIP_WORDS.get(language, SKIP_WORDS["en"])
        if question.kind == "comment":
            return person.comment(language) or skip
        if question.not_applicable and person.no_officer:
            return "0"  # "or 0 if no officer came"
        return person.score(question.id)
    return None


def page_choice(person: Resident) -> ChooseAnswer:
    """The resident's answer to each choice the survey page offers."""

    def choose(field: str, offered: list[str]) -> str:
        if NOT_APPLICABLE in offered and person.no_officer:
            return NOT_APPLICABLE
        wanted = person.score(field.removeprefix("q_"))
        return wanted if wanted in offered else offered[0]

    return choose


@dataclass(frozen=True)
class Text:
    """A text a resident received."""

    id: int
    workflow_id: str
    number: str
    kind: TextKind
    language: str
    body: str


class DemoResidents:
    def __init__(
        self,
        db: Database,
        agency: AgencyConfig,
        incidents: Collection[str],
        texts: InboundTexts,
        conversation_log: ConversationLog,
        *,
        time_scale: float,
        seed: int,
        shares: Shares = Shares(),
    ) -> None:
        self.db = db
        self.agency = agency
        self.incidents = frozenset(incidents)
        self.texts = texts
        self.log = conversation_log
        self.time_scale = time_scale
        self.seed = seed
        self.shares = shares
        self.done: Counter[str] = Counter()
        self._floor = 0  # every outbox row up to this id has been looked at for good
        self._seen: set[int] = set()
        self._replied_first: set[str] = set()
        self._stopped: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    # --- following the outbox -----------------------------------------------------

    async def run(self) -> None:
        """Until cancelled: read the new texts, and have their residents act on them."""
        async with httpx.AsyncClient() as client:
            self._client = client
            await self._wait_for_web_app(client)
            try:
                while True:
                    for text in await asyncio.to_thread(self._new_texts):
                        self._react(text)
                    await asyncio.sleep(POLL_SECONDS)
            finally:
                for task in self._tasks:
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
                self._client = None

    async def _wait_for_web_app(self, client: httpx.AsyncClient) -> None:
        """The residents' first replies may come before the web app is up: wait for it."""
        health = f"{self.texts.public_base_url.rstrip('/')}/healthz"
        while True:
            try:
                if (await client.get(health, timeout=2)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(POLL_SECONDS / 4)

    async def settle(self) -> None:
        """Until every resident has done what they set out to after the texts sent so
        far (bound it with `asyncio.timeout`)."""
        await asyncio.sleep(POLL_SECONDS * 2)  # the latest texts are picked up
        while self._tasks:
            await asyncio.wait(set(self._tasks), timeout=POLL_SECONDS)

    def short(self) -> str:
        counts = self.done
        thread = f", {counts['thread answer']} answers by text" * bool(counts["thread answer"])
        return (
            f"simulated residents: {counts['survey page']} surveys answered{thread}, "
            f"{counts['stop']} STOP, {counts['help']} HELP"
        )

    def summary(self) -> str:
        counts = self.done
        parts = [
            f"{counts['survey page']} answered the survey page"
            + (f" ({counts['comment']} with a comment, {counts['low score']} with a low score)"),
            *(
                [f"{counts['thread answer']} answers in the text thread"]
                * bool(counts["thread answer"])
            ),
            f"{counts['stop']} replied STOP",
            f"{counts['help']} HELP",
            f"{counts['thanks']} thanked the agency",
            *([f"{counts['failed']} could not (see the phone simulator)"] * bool(counts["failed"])),
        ]
        return f"simulated residents (seed {self.seed}): " + ", ".join(parts)

    def _new_texts(self) -> list[Text]:
        with self.db.session() as session:
            rows = list(
                session.exec(
                    select(OutboxMessage)
                    .where(col(OutboxMessage.id) > self._floor)
                    .order_by(col(OutboxMessage.id))
                )
            )
        texts: list[Text] = []
        unsettled: list[int] = []
        for row in rows:
            assert row.id is not None
            if STATUS_ORDER.get(row.status, STATUS_ORDER["pending"]).rank == 0:
                unsettled.append(row.id)  # not sent (or withheld) yet: look again
                continue
            if row.id in self._seen:
                continue
            self._seen.add(row.id)
            if (
                row.status in SENT_STATUSES
                and row.incident_id in self.incidents
                and row.agency == self.agency.id
                and row.to is not None
                and row.body is not None
            ):
                texts.append(
                    Text(
                        row.id, row.workflow_id, row.to, TextKind(row.kind), row.language, row.body
                    )
                )
        if rows:
            self._floor = (min(unsettled) - 1) if unsettled else max(r.id or 0 for r in rows)
        return texts

    def _react(self, text: Text) -> None:
        person = resident(text.number, self.seed, self.shares)
        if text.number in self._stopped:
            return
        first = person.first_reply
        if first is not None and text.kind in FIRST_REPLY_TO[first]:
            if text.number not in self._replied_first:  # once per resident
                self._replied_first.add(text.number)
                if first == FirstReply.STOP:
                    self._stopped.add(text.number)  # does nothing more
                word = self._first_words(person, first, text.language)
                wait = person.wait(REPLY_MINUTES, self.time_scale, first, text.workflow_id)
                self._later(wait, self._reply(text, first.value, word))
            return
        if not person.answers_survey or text.kind not in THREAD_TEXTS:
            return
        if self._in_thread(person, text):
            answer = thread_reply(self.agency, person, text.language, text.body)
            if answer is not None:
                wait = person.wait(THREAD_MINUTES, self.time_scale, "thread", text.id)
                self._later(wait, self._reply(text, "thread answer", answer))
        elif text.kind == TextKind.SURVEY and (link := SURVEY_LINK.search(text.body)):
            wait = person.wait(SURVEY_MINUTES, self.time_scale, "survey", text.workflow_id)
            self._later(wait, self._answer_page(text, person, link.group()))

    @staticmethod
    def _first_words(person: Resident, first: FirstReply, language: str) -> str:
        if first == FirstReply.STOP:
            return person.stop_word(language)
        words = HELP_WORDS if first == FirstReply.HELP else THANKS
        return words.get(language, words["en"])

    def _in_thread(self, person: Resident, text: Text) -> bool:
        """Whether the resident answers this survey by text (where it is asked there)."""
        delivery = self.agency.survey.delivery_for(text.language)
        return delivery == "thread" or (delivery == "both" and person.prefers_thread)

    def _later(self, seconds: float, action: Coroutine[Any, Any, None]) -> None:
        async def after() -> None:
            try:
                await asyncio.sleep(seconds)
            except asyncio.CancelledError:
                action.close()  # never started: no "never awaited" warning
                raise
            await action

        task = asyncio.create_task(after())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- acting -------------------------------------------------------------------

    async def _reply(self, text: Text, what: str, body: str) -> None:
        assert self._client is not None
        entry = await logged_reply(
            self._client, self.texts, self.agency, text.number, body, simulated=True
        )
        await asyncio.to_thread(self.log.add, entry)
        self.done["failed" if entry.error else what] += 1
        if entry.error:
            log.warning("a simulated reply was refused", error=entry.error)

    async def _answer_page(self, text: Text, person: Resident, link: str) -> None:
        # Each resident is a browser of their own: its own cookies.
        async with httpx.AsyncClient() as browser:
            try:
                answered = await answer_survey_page(
                    browser,
                    link,
                    page_choice(person),
                    lambda _field: person.comment(text.language),
                )
            except (SurveyPageError, httpx.HTTPError) as error:
                self.done["failed"] += 1
                note = f"Could not answer the survey page: {error}"
                log.warning("a simulated resident could not answer the survey", error=str(error))
            else:
                self.done["survey page"] += 1
                scores = [v for k, v in answered.answered.items() if v.isdigit()]
                self.done["low score"] += any(int(score) <= 2 for score in scores)
                comment = next(
                    (
                        v
                        for v in answered.answered.values()
                        if not v.isdigit() and v != NOT_APPLICABLE
                    ),
                    "",
                )
                self.done["comment"] += bool(comment)
                note = (
                    "Answered the survey page: "
                    + ", ".join(
                        f"{k.removeprefix('q_')} {v}"
                        for k, v in answered.answered.items()
                        if v != comment
                    )
                    + (f"; comment: “{comment}”" if comment else "")
                )
        entry = LoggedText(text.number, self.agency.id, now(), Entry.NOTE, note, simulated=True)
        await asyncio.to_thread(self.log.add, entry)
