"""Guessing a resident-page token: no timing or response oracle.

A guesser who holds one real token (their own) and tries tokens near it learns nothing:

- The lookup goes by the SHA-256 of the presented token: the raw token never reaches the
  database, in a statement or a parameter, only its digest. A token sharing 21 of 22
  characters with a real one has a digest as far from the real digest as any other, so no
  comparison (an index walk, a string compare) runs longer for it: the database is never
  asked anything about the token's characters.
- Unknown, one-character-off, expired and other-purpose tokens issue the same
  statements; they and the token of a call stopped for safety get the same answer:
  status, headers (but the date) and body. (A malformed token is refused before any
  lookup: its shape, not a real token's nearness, is what that tells.)

Rate limiting (the other half of brute-force resistance) is tested in
test_resident_pages.py. No wall-clock assertions here: they would be flaky and prove
less than the structure does."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import event

from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database, utcnow
from callerloop.messaging.links import hash_token
from tests.factories import cad_event, eligible_call, issue_link, new_incident_id
from tests.harness import Harness
from tests.web.pages import link_in_text, pages_app
from web.page_security import GuessLimiter
from workflows.model import CadEventType

BASE = "https://callerloop.test"
PHONE = "+17035550142"
VOLATILE_HEADERS = frozenset({"date"})


def client_for(database: Database, agency: AgencyConfig) -> httpx.AsyncClient:
    # A limiter that never refuses: these tests compare misses, not the 429.
    limiter = GuessLimiter(max_misses=1_000_000)
    app = pages_app(database, {agency.id: agency}, BASE, guess_limiter=limiter)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
    return httpx.AsyncClient(transport=transport, base_url=BASE)


@contextmanager
def statements(database: Database) -> Iterator[list[tuple[str, str]]]:
    """Every SQL statement the app sends while inside, with its parameters as text."""
    seen: list[tuple[str, str]] = []

    def record(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        seen.append((statement, repr(parameters)))

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(database.engine, "before_cursor_execute", record)


def near(token: str) -> list[str]:
    """Tokens as close to `token` as tokens get: one character off at the end, at the
    start, and in the middle."""

    def other(char: str) -> str:
        return "B" if char == "A" else "A"

    middle = len(token) // 2
    return [
        token[:-1] + other(token[-1]),
        other(token[0]) + token[1:],
        token[:middle] + other(token[middle]) + token[middle + 1 :],
    ]


def comparable(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = sorted((k, v) for k, v in response.headers.items() if k not in VOLATILE_HEADERS)
    return response.status_code, headers, response.content


async def tokens_of_a_call(harness: Harness, database: Database) -> tuple[str, str, str, str, str]:
    """A texted call's status token, a survey token for it, and expired variants of each,
    plus the call's workflow id."""
    incident = new_incident_id()
    await harness.send(
        eligible_call(incident, call_type="NOISE COMPLAINT DELAY", caller_phone=PHONE)
    )
    status_token = link_in_text(harness, incident, "confirmation").rsplit("/", 1)[1]
    workflow_id = harness.outbox(incident)[0].workflow_id
    with database.session() as session:
        links = [
            issue_link(session, base_url=BASE, workflow_id=workflow_id, purpose=purpose, **when)
            for purpose, when in [
                ("survey", {}),
                ("status", {"expires_at": utcnow() - timedelta(seconds=1)}),
                ("survey", {"expires_at": utcnow() - timedelta(seconds=1)}),
            ]
        ]
        session.commit()
    survey, expired_status, expired_survey = (link.rsplit("/", 1)[1] for link in links)
    return status_token, survey, expired_status, expired_survey, incident


async def test_the_lookup_goes_by_digest_never_by_the_token(
    harness: Harness, database: Database, agency: AgencyConfig
) -> None:
    status, survey, expired_status, expired_survey, _ = await tokens_of_a_call(harness, database)
    never_issued = "A" * 22
    misses = {
        "never issued": ("/s/", never_issued),
        "expired": ("/s/", expired_status),
        "a survey token on the status page": ("/s/", survey),
        "an expired survey token": ("/survey/", expired_survey),
        **{f"one character off ({n})": ("/s/", t) for n, t in enumerate(near(status))},
        **{
            f"one character off a survey token ({n})": ("/survey/", t)
            for n, t in enumerate(near(survey))
        },
    }
    queries: dict[str, list[str]] = {}
    async with client_for(database, agency) as client:
        for name, (path, token) in {"real": ("/s/", status), **misses}.items():
            with statements(database) as seen:
                answer = await client.get(path + token)
            assert answer.status_code == (200 if name == "real" else 404), name
            sent = " ".join(f"{sql} {params}" for sql, params in seen)
            assert token not in sent, f"{name}: the raw token reached the database"
            assert hash_token(token) in sent, f"{name}: not looked up by its digest"
            queries[name] = [sql for sql, _ in seen]
    # Every miss asks the database the same thing, the same number of times: nothing
    # about how near a token came changes what the lookup does.
    shapes = {name: tuple(sqls) for name, sqls in queries.items() if name != "real"}
    assert len(set(shapes.values())) == 1, shapes


async def test_near_misses_get_the_same_answer_as_a_token_that_never_existed(
    harness: Harness, database: Database, agency: AgencyConfig
) -> None:
    status, survey, expired_status, expired_survey, incident = await tokens_of_a_call(
        harness, database
    )
    async with client_for(database, agency) as client:
        assert (await client.get(f"/s/{status}")).status_code == 200
        assert (await client.get(f"/survey/{survey}")).status_code == 200
        status_misses = [f"/s/{t}" for t in ["A" * 22, expired_status, survey, *near(status)]]
        survey_misses = [
            f"/survey/{t}" for t in ["A" * 22, expired_survey, status, *near(survey)]
        ] + [f"/survey/{t}/thanks" for t in ["A" * 22, expired_survey, *near(survey)]]
        answers = {
            path: comparable(await client.get(path)) for path in status_misses + survey_misses
        }
        posted = {
            path: comparable(await client.post(path, data={"q_overall": "5"}))
            for path in [f"/survey/{t}" for t in ["A" * 22, expired_survey, *near(survey)]]
        }
        # Stopped for safety: the call's own real token now answers as a stranger's does.
        await harness.send(
            cad_event(incident, CadEventType.UPDATED, minutes=3, call_type="DOMESTIC VIOL NO INJ")
        )
        answers[f"/s/{status} (stopped for safety)"] = comparable(await client.get(f"/s/{status}"))
        answers[f"/survey/{survey} (stopped for safety)"] = comparable(
            await client.get(f"/survey/{survey}")
        )
    every = {**answers, **{f"POST {p}": a for p, a in posted.items()}}
    reference = every.pop("/s/" + "A" * 22)
    assert reference[0] == 404
    different = {path: answer for path, answer in every.items() if answer != reference}
    assert not different, f"answers differing from a never-issued token's: {different}"
