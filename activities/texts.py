"""Sending one text: the outbox protocol that makes a retried send never send twice.

1. Claim: in one transaction, insert the outbox row for (workflow id, kind, attempt) with
   its text's link, or, when an earlier attempt wrote it, read that row. A row already
   settled (sent, failed for good, unknown) is returned as it is.
2. Wait for the sender's turn (pacing), then mark the row `handing_over` and commit, in
   one compare-and-set that also refuses a send that was withdrawn (by the workflow,
   `revoke_sends`, or at the CAD edge for a safety fact) or whose number is in the opt-out
   registry; a refused row is settled `withheld`.
3. Call the provider.
4. Record the provider's id and `sent`/`queued`, or the failure.

A worker that dies between 2 and 4 (or a provider answer that never comes) leaves the row
`handing_over`: the provider may or may not have the message. The next attempt does not
guess. It reconciles with the provider's own records (`MessageRecords`, e.g. Twilio's
Messages list): found, the row takes the provider's id and status and nothing is sent;
certainly absent (looked up once the cut-off request can no longer arrive), it is sent.
When the provider keeps no records or cannot answer yet, the attempt retries later or,
without records, marks the row `unknown` and does not resend: for texts to a caller, at
most once is the safe side (a duplicate confirmation erodes trust, a missing one does not
put anyone at risk). The crash points are tested in tests/activities/test_send_crashes.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from sqlmodel import col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.outbox import HANDING_OVER, WITHHELD, Outbox, OutboxRow
from activities.pacing import Pacer
from activities.sms_providers.base import (
    MessageRecords,
    OutgoingText,
    PermanentProviderError,
    ProviderReceipt,
    SmsProvider,
    TransientProviderError,
)
from callerloop.core import metrics
from callerloop.core.agency_config import AgencyConfig
from callerloop.core.db import Database, OutboxMessage, utcnow
from callerloop.core.sms_encoding import measure
from callerloop.messaging.delivery_status import STATUS_ORDER
from callerloop.messaging.links import STATUS, SURVEY, NewLink, new_link
from callerloop.messaging.messages import MessageContext, UnknownQuestion, render_text
from workflows import activity_names
from workflows.activity_errors import PERMANENT_SMS_ERROR, UNKNOWN_AGENCY, SmsFailure
from workflows.model import (
    OutboxReport,
    OutboxReportInput,
    RevokeSendsInput,
    RevokeSendsResult,
    SendTextInput,
    SendTextResult,
    TextKind,
)

UNKNOWN_QUESTION = "UnknownSurveyQuestion"
# Outbox statuses after which a send attempt must not call the provider again.
SETTLED = frozenset(STATUS_ORDER) - {"pending", HANDING_OVER}
# Texts that answer a CAD event (the others follow a timer): their latency is measured.
ANSWERS_CAD_EVENT = frozenset({TextKind.CONFIRMATION, TextKind.ASSIGNED, TextKind.CLEARED})
# Provider statuses a row takes as they are; any earlier one (accepted, scheduled) is queued.
PROVIDER_OUTCOMES = frozenset({"sent", "delivered", "undelivered", "failed", "canceled"})
# Provider records are searched from this long before the row was first claimed (clocks
# of the worker and the provider differ a little).
CLOCK_SKEW = timedelta(minutes=5)


# How long a hand-over to a provider without message records may still be in progress:
# an attempt's provider call and recording its outcome fit well inside.
IN_FLIGHT_WITHOUT_RECORDS_SECONDS = 15.0


class OutcomeNotKnownYet(TransientProviderError):
    """A cut-off send may still reach the provider: look again later (Temporal retries)."""


class TextActivities:
    def __init__(
        self,
        db: Database,
        agencies: Mapping[str, AgencyConfig],
        provider: SmsProvider,
        public_base_url: str,
        time_scale: float = 1.0,
    ) -> None:
        self._db = db
        self._outbox = Outbox(db.engine)
        self._agencies = agencies
        self._provider = provider
        self._base_url = public_base_url
        self._time_scale = time_scale
        self._pacers = {a.id: Pacer(sender_rate(a, time_scale)) for a in agencies.values()}

    @activity.defn(name=activity_names.OUTBOX_REPORT)
    def outbox_report(self, input: OutboxReportInput) -> OutboxReport:
        """What the outbox (with the provider's delivery receipts) knows of a call's texts."""
        with self._db.session() as session:
            rows = session.exec(
                select(OutboxMessage)
                .where(col(OutboxMessage.workflow_id) == input.workflow_id)
                .order_by(col(OutboxMessage.id))
            ).all()
        return OutboxReport(
            statuses=[f"{row.kind}#{row.attempt}: {row.status}" for row in rows],
            delivered=any(row.status == "delivered" for row in rows),
        )

    @activity.defn(name=activity_names.REVOKE_SENDS)
    def revoke_sends(self, input: RevokeSendsInput) -> RevokeSendsResult:
        """Withdraw the call's sends up to `generation` before the workflow lets go of
        the one on its way: any attempt of it, now or later, is refused at its hand-off."""
        status = self._outbox.revoke(
            input.workflow_id,
            input.generation,
            input.reason,
            utcnow(),
            kind=input.kind.value,
            attempt=input.attempt,
        )
        return RevokeSendsResult(handed_over=status not in (None, "pending", WITHHELD))

    @activity.defn(name=activity_names.SEND_TEXT)
    def send_text(self, input: SendTextInput) -> SendTextResult:
        agency = self._agency(input.agency)
        row = self._claim(agency, input)
        if row.status in SETTLED:
            _count(input, "duplicate")
            return _result(row, already_sent=True)
        if row.status == HANDING_OVER and not self._reconcile(agency, row):
            return _result(row, already_sent=True)
        # Paced before the hand-over is recorded, so the time between `handing_over` and
        # the request reaching the provider is as short as it can be.
        self._pacers[agency.id].wait_turn()
        read_attempts = row.attempts
        pseudonym = self._db.pseudonym(input.to)
        if not self._outbox.hand_over(row, input.generation, utcnow(), phone_pseudonym=pseudonym):
            untouched = row.attempts == read_attempts  # no other attempt took it over
            if untouched and self._outbox.withdrawn(
                input.workflow_id,
                input.generation,
                kind=row.kind,
                agency=row.agency,
                phone_pseudonym=pseudonym,
            ):
                return self._withhold(row)
            # An attempt given up on by Temporal while it waited (start-to-close) lives on
            # in its thread; the retry that took over sends, this one must not.
            activity.logger.warning("another attempt took this send over", extra=_ids(row))
            return _result(row, already_sent=True)
        self._deliver(agency, row, self._pacers[agency.id])
        return _result(row, already_sent=False)

    def _withhold(self, row: OutboxRow) -> SendTextResult:
        """The workflow withdrew this send: it never reaches the provider."""
        self._outbox.settle(row, WITHHELD, utcnow())
        activity.logger.info("send withdrawn by the call before its hand-off", extra=_ids(row))
        metrics.TEXTS.labels(row.agency, row.kind, WITHHELD).inc()
        return _result(row, already_sent=True)

    def _reconcile(self, agency: AgencyConfig, row: OutboxRow) -> bool:
        """An earlier attempt handed this text over and never recorded the outcome. True
        when the provider certainly does not have it (send it); False when the row is now
        settled from the provider's records, or `unknown` for a provider without records."""
        provider = self._provider
        # Too soon after the hand-over, the attempt that made it may still be at work: its
        # request on its way, or it is this attempt's own retry (Temporal gave up on this
        # one while it was held up). Settling now would call a text that is being sent
        # `unknown`, or resend one the provider is about to receive.
        in_flight = (
            provider.in_flight_seconds
            if isinstance(provider, MessageRecords)
            else IN_FLIGHT_WITHOUT_RECORDS_SECONDS
        )
        handed_over_at = row.updated_at.astimezone(UTC)
        if utcnow() - handed_over_at < timedelta(seconds=in_flight):
            raise OutcomeNotKnownYet(
                "in_flight", "the last attempt's request may still reach the provider"
            )
        if not isinstance(provider, MessageRecords):
            self._outbox.settle(row, "unknown", utcnow())
            activity.logger.warning("send outcome unknown; not resending", extra=_ids(row))
            metrics.TEXTS.labels(row.agency, row.kind, "unknown").inc()
            return False
        found = provider.find_sent(
            _outgoing(agency, row, self._base_url), row.created_at - CLOCK_SKEW
        )
        if found is None:
            activity.logger.info("provider has no record of the cut-off send", extra=_ids(row))
            return True
        self._outbox.record_handoff(row, _provider_status(found), found.provider_id, utcnow())
        activity.logger.info("cut-off send found at the provider", extra=_ids(row))
        metrics.TEXTS.labels(row.agency, row.kind, "reconciled").inc()
        return False

    def _agency(self, agency_id: str) -> AgencyConfig:
        agency = self._agencies.get(agency_id)
        if agency is None:
            raise ApplicationError(
                f"unknown agency {agency_id!r}", type=UNKNOWN_AGENCY, non_retryable=True
            )
        return agency

    def _claim(self, agency: AgencyConfig, input: SendTextInput) -> OutboxRow:
        """The send's outbox row: written (with its link) before the provider is called,
        or the one an earlier attempt wrote, as it is now. Inserted without a look first:
        a first attempt (nearly every one) needs no read, and a retry's insert does
        nothing."""
        body, link = self._render(agency, input)
        size = measure(body)
        now = utcnow()
        values = {
            "workflow_id": input.workflow_id,
            "agency": input.agency,
            "incident_id": input.incident_id,
            "kind": input.kind.value,
            "attempt": input.attempt,
            "language": input.language,
            "to": input.to,
            "body": body,
            "encoding": size.encoding,
            "segments": size.segments,
            "provider": self._provider.name,
            "status": "pending",
            "attempts": 0,
            "provider_id": None,
            "created_at": now,
            "updated_at": now,
        }
        return self._outbox.claim(values, link)

    def _render(self, agency: AgencyConfig, input: SendTextInput) -> tuple[str, NewLink | None]:
        """The text, and the link it carries (stored with the outbox row)."""
        link = None
        if input.kind == TextKind.CONFIRMATION:
            link = new_link(
                base_url=self._base_url,
                workflow_id=input.workflow_id,
                purpose=STATUS,
                expires_at=input.link_expires_at or status_link_expiry(agency, utcnow()),
            )
            context = MessageContext(case_number=input.case_number, status_url=link.url)
        elif input.kind == TextKind.SURVEY and input.survey_link:
            link = new_link(
                base_url=self._base_url,
                workflow_id=input.workflow_id,
                purpose=SURVEY,
                expires_at=input.link_expires_at
                or survey_link_expiry(agency, utcnow(), self._time_scale),
            )
            context = MessageContext(case_number=input.case_number, survey_url=link.url)
        else:
            context = MessageContext(case_number=input.case_number, officer=input.officer)
        try:
            return render_text(agency, input, context), link
        except UnknownQuestion as error:  # the agency's file changed since the survey began
            raise ApplicationError(str(error), type=UNKNOWN_QUESTION, non_retryable=True) from error

    def _deliver(self, agency: AgencyConfig, row: OutboxRow, pacer: Pacer) -> None:
        text = _outgoing(agency, row, self._base_url)
        pacer.space_requests()
        try:
            receipt = self._provider.send(text)
        except TransientProviderError as error:
            self._outbox.settle(
                row, "pending", utcnow(), error_code=error.code, error_message=error.message
            )
            metrics.TEXTS.labels(row.agency, row.kind, "retrying").inc()
            raise  # the provider has nothing: Temporal retries with backoff
        except PermanentProviderError as error:
            self._outbox.settle(
                row, "failed", utcnow(), error_code=error.code, error_message=error.message
            )
            metrics.TEXTS.labels(row.agency, row.kind, "failed").inc()
            raise ApplicationError(
                str(error), error.failure.value, type=PERMANENT_SMS_ERROR, non_retryable=True
            ) from error
        sent_at = utcnow()
        self._outbox.record_handoff(row, _provider_status(receipt), receipt.provider_id, sent_at)
        activity.logger.info("text sent", extra=_ids(row))
        metrics.TEXTS.labels(row.agency, row.kind, row.status).inc()
        _observe_handoff(self._outbox, row, sent_at)


def _count(input: SendTextInput, status: str) -> None:
    metrics.TEXTS.labels(input.agency, input.kind.value, status).inc()


def _observe_handoff(outbox: Outbox, row: OutboxRow, sent_at: datetime) -> None:
    """CAD event → provider hand-off: from when the worker recorded the call's latest
    applied event (the one this text answers) to the provider's acceptance just now."""
    if TextKind(row.kind) not in ANSWERS_CAD_EVENT:
        return
    recorded_at = outbox.latest_applied_event_at(row.workflow_id)
    if recorded_at is not None:
        seconds = max((sent_at - recorded_at).total_seconds(), 0.0)
        metrics.EVENT_TO_HANDOFF.labels(row.agency, row.kind).observe(seconds)


def _outgoing(agency: AgencyConfig, row: OutboxRow, base_url: str) -> OutgoingText:
    assert row.to is not None and row.body is not None  # purged only when the call ends
    return OutgoingText(
        to=row.to,
        body=row.body,
        sender_number=agency.agency.sender_number,
        messaging_service_sid=agency.agency.messaging_service_sid,
        validity_seconds=int(agency.texts.validity_period / timedelta(seconds=1)),
        reference=f"{row.workflow_id}/{row.kind}",
        # The outbox id lets a receipt that overtakes the provider's answer find its row.
        status_callback=f"{base_url.rstrip('/')}/twilio/status?outbox={row.id}",
    )


def _provider_status(receipt: ProviderReceipt) -> str:
    """The row's status once the provider has the text, unless a receipt already moved it
    on: the provider's own (`sent`, `delivered`, a failure) or `queued`."""
    return receipt.status if receipt.status in PROVIDER_OUTCOMES else "queued"


def sender_rate(agency: AgencyConfig, time_scale: float) -> float:
    """Messages per second for this agency's sender. The gap between two texts is a policy
    duration like any other, so the time scale divides it too (a demo day in minutes)."""
    return agency.texts.messages_per_second * time_scale


def status_link_expiry(agency: AgencyConfig, issued_at: datetime) -> datetime:
    """The status page answers for the agency's retention period: the case number and
    status are worth looking up again after the call, and are not personal data."""
    return issued_at + timedelta(days=agency.retention.outbox_days)


def survey_link_expiry(agency: AgencyConfig, issued_at: datetime, time_scale: float) -> datetime:
    """The survey is open for its window, scaled like the workflow's wait for it, after
    which the call ends (the purge also closes it, whichever comes first)."""
    return issued_at + agency.timing.survey_window / time_scale


def _result(row: OutboxRow, *, already_sent: bool) -> SendTextResult:
    return SendTextResult(
        status=row.status,
        provider_id=row.provider_id,
        segments=row.segments,
        already_sent=already_sent,
    )


def _ids(row: OutboxRow) -> dict[str, object]:
    return {"kind": row.kind, "segments": row.segments, "provider_id": row.provider_id}


__all__ = ["HANDING_OVER", "SETTLED", "SmsFailure", "TextActivities"]
