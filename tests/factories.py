"""Factories for test records: agencies, CAD events, and a provider that records sends."""

from __future__ import annotations

import csv
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

from sqlalchemy import Connection
from sqlmodel import Session, col, select

from activities.sms_providers.base import OutgoingText, ProviderReceipt
from activities.texts import HANDING_OVER, IN_FLIGHT_WITHOUT_RECORDS_SECONDS
from callerloop.cad.replay import ParsedExport, parse_cad_export
from callerloop.core.agency_config import AgencyConfig, parse_agency_config
from callerloop.core.db import (
    CallRecord,
    Database,
    OutboxMessage,
    SurveyAnswer,
    SurveyComment,
    SurveyResponse,
    utcnow,
)
from callerloop.messaging.links import new_link, store_link
from callerloop.survey.responses import StoreOutcome, store_answers
from workflows.model import CadEvent, CadEventType, CallSource, LineType

_ids = itertools.count(1)
T0 = datetime(2025, 9, 1, 14, 0, tzinfo=UTC)


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


AGENCY_DATA: dict[str, Any] = {
    "agency": {
        "name": "Testville PD",
        "time_zone": "America/New_York",
        "non_emergency_phone": "703-555-0100",
        "sender_number": "+17035550100",
        "languages": ["en", "es", "fr"],
    },
    "eligibility": {
        "priorities": [3, 4],
        "excluded_call_types": [r"\bWEAPON"],
        "in_progress_patterns": [r"\bIN PROG"],
    },
    "timing": {
        "delay_thresholds": {"3": "PT1H", "4": "PT2H"},
        "survey_delay": "PT24H",
        "survey_window": "P7D",
    },
    # Fast enough that pacing never shapes a test, except the tests of pacing.
    "texts": {"messages_per_second": 50},
}


def make_agency(agency_id: str = "testville", **overrides: Any) -> AgencyConfig:
    """The test agency; keyword arguments override sections, e.g. texts={"max_per_call": 2}."""
    return parse_agency_config(_merge(AGENCY_DATA, overrides), agency_id, "tests.factories")


def new_incident_id() -> str:
    return f"T-{next(_ids):06d}"


def cad_event(
    incident_id: str,
    event_type: CadEventType = CadEventType.CREATED,
    *,
    at: datetime | None = None,
    minutes: float = 0,
    agency: str = "testville",
    event_id: str | None = None,
    **fields: Any,
) -> CadEvent:
    """An event `minutes` after T0; unique event id unless one is given."""
    return CadEvent(
        agency=agency,
        incident_id=incident_id,
        event_type=event_type,
        occurred_at=at or T0 + timedelta(minutes=minutes),
        event_id=event_id or f"{incident_id}:{event_type}:{next(_ids)}",
        **fields,
    )


def eligible_call(incident_id: str, **fields: Any) -> CadEvent:
    """A created event every rule says yes to: a non-emergency caller on a mobile."""
    details: dict[str, Any] = {
        "priority": 4,
        "call_type": "NOISE COMPLAINT DELAY",
        "source": CallSource.PHONE,
        "caller_phone": "+17035550142",
        "caller_line_type": LineType.MOBILE,
        "caller_language": "en",
        "case_number": f"C{incident_id}",
    }
    details.update(fields)
    return cad_event(incident_id, CadEventType.CREATED, **details)


_provider_ids = itertools.count(1)


def outbox_row(
    db: Database,
    status: str = "queued",
    to: str = "+17035550142",
    at: datetime | None = None,
    agency: str = "testville",
) -> str:
    """An outbox row the provider has accepted; returns its provider id."""
    provider_id = f"SM{next(_provider_ids):032x}"
    now = at or utcnow()
    with db.session() as session:
        session.add(
            OutboxMessage(
                workflow_id=f"call/{agency}/{provider_id}",
                agency=agency,
                incident_id=provider_id,
                kind="confirmation",
                language="en",
                to=to,
                body="hello",
                encoding="GSM-7",
                segments=1,
                provider="twilio",
                status=status,
                provider_id=provider_id,
                created_at=now,
                updated_at=now,
            )
        )
        session.commit()
    return provider_id


def outbox_row_for_call(
    db: Database,
    workflow_id: str,
    kind: str,
    *,
    status: str = "delivered",
    at: datetime | None = None,
    language: str = "en",
) -> None:
    """The text of `kind` a call was sent, as the send activity records it."""
    now = at or utcnow()
    incident_id = workflow_id.rsplit("/", 1)[-1]
    with db.session() as session:
        session.add(
            OutboxMessage(
                workflow_id=workflow_id,
                agency=workflow_id.split("/")[1],
                incident_id=incident_id,
                kind=kind,
                language=language,
                to="+17035550142",
                body=f"{kind} for {incident_id}",
                encoding="GSM-7",
                segments=1,
                provider="twilio",
                status=status,
                provider_id=f"SM{next(_provider_ids):032x}",
                created_at=now,
                sent_at=now,
                updated_at=now,
            )
        )
        session.commit()


class RecordingProvider:
    """Stands in for the carrier network, the one boundary that cannot run here: it
    records what it was handed and can be told to fail."""

    name = "recording"

    def __init__(self) -> None:
        self.accepted: list[OutgoingText] = []
        self.accepted_at: list[float] = []  # time.monotonic() of each accepted text
        self.calls = 0
        self.failures: list[Callable[[OutgoingText], None]] = []  # consumed one per call
        self.line_types: dict[str, LineType] = {}  # what a lookup answers; UNKNOWN if absent
        self.lookups: list[str] = []
        self._lock = threading.Lock()

    def kinds(self) -> list[str]:
        """The kind of each text it accepted, in order (from the outbox reference)."""
        with self._lock:
            return [text.reference.rsplit("/", 1)[1] for text in self.accepted]

    def lookup_line_type(self, phone: str) -> LineType:
        with self._lock:
            self.lookups.append(phone)
        return self.line_types.get(phone, LineType.UNKNOWN)

    def send(self, text: OutgoingText) -> ProviderReceipt:
        with self._lock:
            self.calls += 1
            failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            failure(text)
        with self._lock:
            self.accepted.append(text)
            self.accepted_at.append(time.monotonic())
            return ProviderReceipt(provider_id=f"SM{len(self.accepted):032d}", status="queued")


def call_record(
    db: Database,
    incident_id: str,
    at: datetime,
    caller_phone: str | None = "+17035550142",
    **fields: Any,
) -> str:
    """A call's record as the worker keeps it; returns its workflow id. `fields` set any
    other column (priority, call_type, language, texting_state, reason, texts_sent, …)."""
    workflow_id = f"call/testville/{incident_id}"
    columns: dict[str, Any] = {"texting_state": "active", "updated_at": at, **fields}
    with db.session() as session:
        session.add(
            CallRecord(
                workflow_id=workflow_id,
                agency="testville",
                incident_id=incident_id,
                case_number=f"C{incident_id}",
                caller_phone=caller_phone,
                received_at=at,
                **columns,
            )
        )
        session.commit()
    return workflow_id


def survey_response(
    db: Database,
    scores: dict[str, int | None],
    *,
    agency: str = "testville",
    month: str = "2025-09",
    priority: int | None = 4,
    call_type_group: str = "disorder",
    language: str = "en",
) -> int:
    """One answered survey as the survey page stores it: a score per question (None: "does
    not apply"); scale kinds from the built-in questions. Returns the response id."""
    kinds = {"respect": "agreement"}
    with db.session() as session:
        response = SurveyResponse(
            agency=agency,
            month=month,
            priority=priority,
            call_type_group=call_type_group,
            language=language,
            page_language=language,
        )
        session.add(response)
        session.flush()
        assert response.id is not None
        for question, score in scores.items():
            session.add(
                SurveyAnswer(
                    response_id=response.id,
                    question=question,
                    kind=kinds.get(question, "satisfaction"),
                    score=score,
                    not_applicable=score is None,
                )
            )
        session.commit()
        return response.id


def survey_comment(
    db: Database,
    comment: str,
    *,
    score: float | None = 4.0,
    at: datetime | None = None,
    agency: str = "testville",
    case_number: str = "C-000001",
    call_type_group: str = "disorder",
    language: str = "en",
    low_score: bool | None = None,
) -> None:
    """A comment as the survey page keeps it for supervisors (`low_score`: by default,
    whether the score shown is that low, as when a survey has one question)."""
    with db.session() as session:
        session.add(
            SurveyComment(
                agency=agency,
                case_number=case_number,
                score=score,
                call_type_group=call_type_group,
                language=language,
                comment=comment,
                created_at=at or utcnow(),
                low_score=(score is not None and score <= 2) if low_score is None else low_score,
            )
        )
        session.commit()


def program_history(db: Database, *, days: int = 21, seed: int = 7) -> None:
    """A few weeks of a texting programme, seeded: calls texted or not (with the reason),
    texts of each kind with delivery receipts, opt-outs, survey answers and comments."""
    import random

    rng = random.Random(seed)
    groups = {"NOISE COMPLAINT DELAY": "disorder", "LARCENY FROM AUTO": "property",
              "MVC PROPERTY DAMAGE": "traffic", "ANIMAL COMPLAINT": "other"}  # fmt: skip
    not_texted = ["call_type_excluded", "officer_initiated", "priority_not_eligible",
                  "phone_landline", "in_progress", "call_type_sensitive"]  # fmt: skip
    start = datetime(2025, 8, 18, 12, tzinfo=UTC)
    number = 0
    for day in range(days):
        for _ in range(rng.randint(14, 26)):
            number += 1
            received = start + timedelta(days=day, minutes=rng.randint(0, 10 * 60))
            call_type = rng.choice(list(groups))
            priority = rng.choice([3, 4, 4])
            language = rng.choices(["en", "es", "fr"], weights=[80, 15, 5])[0]
            if rng.random() < 0.35:
                call_record(db, f"H-{number:05d}", received, None, priority=priority,
                            call_type=call_type, language=language, texts_sent=0,
                            reason=rng.choice(not_texted), texting_state="ineligible")  # fmt: skip
                continue
            opted_out = rng.random() < 0.04
            kinds = ["confirmation", "assigned", "cleared"]
            if rng.random() < 0.2:
                kinds.insert(1, "delayed")
            if not opted_out:
                kinds.append("survey")
            workflow_id = call_record(db, f"H-{number:05d}", received, priority=priority,
                                      call_type=call_type, language=language,
                                      texts_sent=len(kinds),
                                      reason="opted_out" if opted_out else "eligible")  # fmt: skip
            at = received + timedelta(seconds=rng.choice([20, 40, 70, 150, 400, 1200]))
            for kind in kinds:
                status = rng.choices(["delivered", "sent", "undelivered"], weights=[92, 5, 3])[0]
                outbox_row_for_call(db, workflow_id, kind, status=status, at=at, language=language)
                at += timedelta(hours=rng.choice([1, 2, 24]))
            if "survey" in kinds and rng.random() < 0.45:
                overall = rng.choices([5, 4, 3, 2, 1], weights=[38 + day, 30, 12, 10, 8])[0]
                survey_response(
                    db,
                    {"call_taker": rng.choice([5, 5, 4, 3]), "officer": rng.choice([None, 5, 4, 2]),
                     "overall": overall, "respect": rng.choice([5, 4, 4, 2])},
                    month=f"{received:%Y-%m}", priority=priority,
                    call_type_group=groups[call_type], language=language,
                )  # fmt: skip
                if rng.random() < 0.3:
                    survey_comment(
                        db,
                        rng.choice(["Thank you, the officer was kind and explained everything.",
                                    "Nobody came for three hours and nobody told me why.",
                                    "The text updates were really helpful.",
                                    "I had to call back twice to get an answer."]),
                        score=float(overall), at=at, case_number=f"CH-{number:05d}",
                        call_type_group=groups[call_type], language=language,
                    )  # fmt: skip


def hand_over_long_ago(db: Database, seconds: float = IN_FLIGHT_WITHOUT_RECORDS_SECONDS) -> None:
    """Every send left `handing_over`, as if handed over `seconds` earlier: by default long
    enough ago that no attempt is still at it (the wait for a provider without records)."""
    with db.session() as session:
        rows = session.exec(select(OutboxMessage).where(col(OutboxMessage.status) == HANDING_OVER))
        for row in rows:
            row.updated_at -= timedelta(seconds=seconds)
            session.add(row)
        session.commit()


def issue_link(
    executor: Connection | Session,
    *,
    base_url: str,
    workflow_id: str,
    purpose: str,
    expires_at: datetime | None = None,
) -> str:
    """A stored link for one call and one purpose, as the send activity issues them; the
    caller commits."""
    link = new_link(
        base_url=base_url, workflow_id=workflow_id, purpose=purpose, expires_at=expires_at
    )
    store_link(executor, link)
    return link.url


# --- CAD exports ----------------------------------------------------------------------


def county_row(incident: str, **cells: str) -> dict[str, str]:
    """One row of agencies/example-county.toml's export, by its column names: a noise
    complaint a resident called in, dispatched, attended and closed; cells override."""
    row = {
        "IncidentNumber": incident,
        "InitialCallType": "NOISE COMPLAINT",
        "FinalCallType": "NOISE COMPLAINT",
        "InitialPriority": "2D",
        "FinalPriority": "2D",
        "SelfInitiated": "N",
        "CallReceived": "8/24/2025 0:07",
        "FirstDispatched": "8/24/2025 0:31",
        "FirstArrived": "8/24/2025 0:45",
        "Closed": "8/24/2025 1:10",
        "Disposition": "RE-Report",
    }
    row.update(cells)
    return row


def export_lines(rows: Iterable[Mapping[str, str]]) -> list[str]:
    """Rows as the lines of a CSV export, header first (the first row's keys)."""
    rows = list(rows)
    buffer = StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().splitlines(keepends=True)


def parse_rows(agency: AgencyConfig, rows: Iterable[Mapping[str, str]]) -> ParsedExport:
    return parse_cad_export(export_lines(rows), agency)


def surveyed_calls(
    db: Database,
    prefix: str,
    texted: int,
    answered: int,
    *,
    status: str = "delivered",
    provider: str = "twilio",
    at: datetime = datetime(2025, 9, 3, 15, tzinfo=UTC),
    language: str = "en",
    priority: int = 4,
    call_type: str = "NOISE COMPLAINT DELAY",
    call_type_group: str = "disorder",
    scores: Iterable[int] = (),
) -> None:
    """`texted` calls sent a survey, its status as the receipts left it (`provider`: the
    one that sent it), and `answered` responses from their group; the n-th response
    answers "overall" with the n-th of `scores` (none left: the question skipped)."""
    for index in range(texted):
        workflow_id = call_record(db, f"{prefix}-{index:03d}", at, priority=priority,
                                  call_type=call_type, language=language)  # fmt: skip
        outbox_row_for_call(db, workflow_id, "survey", status=status, at=at, language=language)
    if provider != "twilio":
        with db.session() as session:
            for row in session.exec(
                select(OutboxMessage).where(col(OutboxMessage.incident_id).startswith(f"{prefix}-"))
            ):
                row.provider = provider
                session.add(row)
            session.commit()
    answers = list(scores)
    for index in range(answered):
        survey_response(
            db,
            {"overall": answers[index]} if index < len(answers) else {},
            month=f"{at:%Y-%m}",
            priority=priority,
            call_type_group=call_type_group,
            language=language,
        )


def answered_survey(
    db: Database,
    agency: AgencyConfig,
    incident_id: str,
    values: Mapping[str, str],
    call_type: str = "NOISE COMPLAINT DELAY",
) -> SurveyComment | None:
    """A call of record whose survey is answered as the survey page stores it
    (`store_answers`); returns the inbox item the answers made, if they made one."""
    workflow_id = call_record(db, incident_id, utcnow(), call_type=call_type, priority=4)
    with db.session() as session:
        call = session.get(CallRecord, workflow_id)
        assert call is not None
        outcome = store_answers(
            session,
            agency=agency,
            call=call,
            token_hash=f"token-{incident_id}",
            submission=f"form-{incident_id}",
            values=values,
            page_language="en",
        )
        assert outcome is StoreOutcome.STORED
        return session.exec(
            select(SurveyComment).where(col(SurveyComment.case_number) == call.case_number)
        ).first()
