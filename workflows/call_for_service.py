"""CallForServiceWorkflow: one durable workflow per call for service.

Id `call/{agency}/{incident_id}`, started by signal-with-start so the first CAD event of
any kind starts it. Signal handlers only apply facts to the call's state; the main loop
decides (pure `policy.decide` and `lifecycle.plan`) and does the I/O through activities,
re-deciding after every await so a call that turns sensitive stops texting at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.workflow import ActivityCancellationType, ActivityHandle

from workflows import activity_names as activities
from workflows import call_state, thread_survey, versions
from workflows import search_attributes as sa
from workflows.activity_errors import PERMANENT_SMS_ERROR, UNKNOWN_AGENCY, SmsFailure
from workflows.call_state import apply_event
from workflows.details import current_details
from workflows.event_identity import with_event_id
from workflows.lifecycle import (
    Plan,
    current_texting_state,
    next_step,
    overtaken,
    plan,
    refresh_decision,
)
from workflows.model import (
    NOT_SENT,
    AgencyPolicy,
    CadEvent,
    CallInput,
    CallOutcome,
    CallSnapshot,
    CallState,
    CheckOptOutInput,
    CheckOptOutResult,
    Decision,
    EventRecord,
    LineType,
    LoadPolicyInput,
    LookupLineTypeInput,
    LookupLineTypeResult,
    MarkLanguageRequest,
    OperatorAction,
    OperatorResult,
    OptInSignal,
    OptOutSignal,
    OutboxReport,
    OutboxReportInput,
    PurgeInput,
    RecordCallInput,
    ResendConfirmationRequest,
    RevokeSendsInput,
    RevokeSendsResult,
    SendTextInput,
    SendTextResult,
    SentText,
    StoreThreadSurveyInput,
    SuppressRequest,
    SuppressSignal,
    SurveyReplySignal,
    TextingState,
    TextKind,
    ThreadAnswer,
    thread_survey_open,
)
from workflows.policy import EligibilityReason

# The status a withdrawn text takes in the outbox and in the call's texts.
WITHHELD = "withheld"

LOCAL_ACTIVITY_TIMEOUT = timedelta(seconds=30)
# A text that cannot reach the provider within this is no longer news to the caller.
SEND_TIMEOUT = timedelta(minutes=15)
# One attempt: the provider client's timeout (10 s) and the pacer's wait fit well inside.
# Without it an attempt lost with its worker (killed mid-send) is only noticed when the
# whole SEND_TIMEOUT has passed, and then the text is given up instead of retried.
SEND_ATTEMPT_TIMEOUT = timedelta(seconds=30)
LOOKUP_TIMEOUT = timedelta(minutes=2)
SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=[PERMANENT_SMS_ERROR],
)


def workflow_id_for(agency: str, incident_id: str) -> str:
    return f"call/{agency}/{incident_id}"


def _require_who_and_why(by: str, reason: str) -> None:
    if not by.strip():
        raise ValueError("say who is asking (by)")
    if not reason.strip():
        raise ValueError("say why (reason): it is kept with the call")


@workflow.defn
class CallForServiceWorkflow:
    @workflow.init
    def __init__(self, input: CallInput) -> None:
        self._state = input.carried_state or CallState(
            agency=input.agency, incident_id=input.incident_id
        )
        self._unrecorded_events: list[EventRecord] = []
        self._recorded_decision: Decision | None = self._state.decision
        self._recorded_actions = len(self._state.operator_actions)
        self._recorded_thread_open = thread_survey_open(self._state)
        self._changed = False
        self._indexed: tuple[object, ...] = ()
        self._details = ""
        self._registry_fresh = False
        # The number whose record was committed before a look at the registry: from then
        # on a STOP from it is signalled to this call (see `_stop_would_be_signalled`).
        self._on_record_for: str | None = None
        self._policy: AgencyPolicy | None = input.carried_policy
        self._deadline_reached: datetime | None = None
        self._purge_locally = False
        # Decided in the first workflow task: the call has every patch (see the ids above).
        self._has_every_patch = False
        self._safe: bool | None = None  # versions.SAFE_SENDS, decided at its first use
        self._every_fact: bool | None = None  # versions.EVERY_FACT_KEPT, likewise
        self._send_in_flight: TextKind | None = None
        self._finishing = False  # the lifecycle is over: purging, then done

    def _safe_sends(self) -> bool:
        """Whether this call runs under versions.SAFE_SENDS. Asked first by the start signal's
        handler, in the call's first workflow task, so a call decides it once."""
        if self._safe is None:
            self._safe = self._keeps_every_fact() or workflow.patched(versions.SAFE_SENDS.id)
        return self._safe

    def _keeps_every_fact(self) -> bool:
        """Whether this call runs under versions.EVERY_FACT_KEPT (which implies SAFE_SENDS)."""
        if self._every_fact is None:
            self._every_fact = workflow.patched(versions.EVERY_FACT_KEPT.id)
        return self._every_fact

    # --- signals and queries: facts in, state out; no I/O here ---------------------

    @workflow.signal
    def cad_event(self, event: CadEvent) -> None:
        if (event.agency, event.incident_id) != (self._state.agency, self._state.incident_id):
            workflow.logger.warning(
                "CAD event for another call ignored",
                extra={"event_agency": event.agency, "event_incident": event.incident_id},
            )
            return
        safe = self._safe_sends()
        if safe:
            event = with_event_id(event)
        result = apply_event(
            self._state,
            event,
            workflow.now(),
            safe_rules=safe,
            keep_superseded=self._keeps_every_fact(),
        )
        self._unrecorded_events.append(
            EventRecord(
                event_id=event.event_id,
                event_type=event.event_type,
                occurred_at=event.occurred_at,
                applied=result.applied,
                note=result.note,
            )
        )
        self._changed = True

    @workflow.signal
    def opt_out(self, signal: OptOutSignal) -> None:
        call_state.opt_out(self._state)
        self._changed = True

    @workflow.signal
    def opt_in(self, signal: OptInSignal) -> None:
        call_state.opt_in(self._state, workflow.now())
        self._changed = True

    @workflow.signal
    def survey_reply(self, reply: SurveyReplySignal) -> None:
        """The caller answered the question their survey asked in the text thread."""
        survey = self._state.thread_survey
        if survey is not None and thread_survey.apply_reply(survey, reply):
            self._changed = True

    @workflow.signal
    def suppress(self, signal: SuppressSignal) -> None:
        if call_state.suppress(self._state, f"{signal.reason} (by {signal.by})"):
            self._changed = True

    @workflow.query
    def state(self) -> CallState:
        return self._state

    # --- operator updates: validated before they reach history, answered in words -------
    # Validators and handlers judge the call by `_texting_state_now`, never by the state
    # the main loop last stored: a signal may have changed the facts since.

    @workflow.update(name="suppress")
    async def suppress_texts(self, request: SuppressRequest) -> OperatorResult:
        """Stop every text of this call, for good (the operator's safety stop)."""
        call = self._state
        call.suppressed_reason = f"{request.reason} (by {request.by})"
        call.operator_actions.append(
            OperatorAction("suppress", request.by, request.reason, workflow.now())
        )
        self._changed = True
        if self._safe_sends():
            # Answered once no text of the call can still reach the provider.
            await workflow.wait_condition(
                lambda: (
                    self._texting_state_now() in (TextingState.BLOCKED, TextingState.FINISHED)
                    and self._send_in_flight is None
                )
            )
        else:
            await workflow.wait_condition(
                lambda: call.texting_state in (TextingState.BLOCKED, TextingState.FINISHED)
            )
        return OperatorResult("no more texts will be sent for this call", self._texting_state_now())

    @suppress_texts.validator
    def _validate_suppress(self, request: SuppressRequest) -> None:
        _require_who_and_why(request.by, request.reason)
        if self._state.purged or self._finishing:
            raise ValueError("the call has finished: there is nothing left to suppress")
        if self._state.suppressed_reason is not None:
            raise ValueError(f"already suppressed: {self._state.suppressed_reason}")

    @workflow.update
    async def resend_confirmation(self, request: ResendConfirmationRequest) -> OperatorResult:
        """Send the confirmation again, once the outbox confirms nothing of this call
        reached the caller (the check reads delivery receipts: no I/O in a validator).
        Re-checked after every wait: a call that can no longer take it is answered
        "not resent: <reason>" instead of waiting for a send that will not come."""
        call = self._state
        report: OutboxReport = await workflow.execute_local_activity(
            activities.OUTBOX_REPORT,
            OutboxReportInput(workflow_id=workflow.info().workflow_id),
            result_type=OutboxReport,
            start_to_close_timeout=LOCAL_ACTIVITY_TIMEOUT,
        )
        safe = self._safe_sends()
        if safe and (refusal := self._why_not_resend()) is not None:
            raise _resend_refused(refusal)
        if report.delivered:
            raise _resend_refused(
                f"a text of this call reached the caller ({', '.join(report.statuses)})"
            )
        call.operator_actions.append(
            OperatorAction("resend_confirmation", request.by, request.reason, workflow.now())
        )
        call.confirmation_resend_requested = True
        self._changed = True
        if not safe:
            await workflow.wait_condition(lambda: not call.confirmation_resend_requested)
        else:
            # Answered once the resend has gone (or been withdrawn), or when the call can
            # no longer take one that is not on its way yet.
            await workflow.wait_condition(
                lambda: (
                    not call.confirmation_resend_requested
                    or (
                        self._why_not_resend() is not None
                        and self._send_in_flight != TextKind.CONFIRMATION
                    )
                )
            )
            if call.confirmation_resend_requested:  # the call can no longer take it
                call.confirmation_resend_requested = False
                raise _resend_refused(self._why_not_resend() or "the call changed")
        last = [t for t in call.texts if t.kind == TextKind.CONFIRMATION][-1]
        if last.status == WITHHELD:
            raise _resend_refused("withdrawn on its way: the call changed meanwhile")
        return OperatorResult(f"confirmation sent again ({last.status})", self._texting_state_now())

    @resend_confirmation.validator
    def _validate_resend(self, request: ResendConfirmationRequest) -> None:
        _require_who_and_why(request.by, request.reason)
        if (refusal := self._why_not_resend()) is not None:
            raise ValueError(refusal)
        if self._state.confirmation_resend_requested:
            raise ValueError("a resend is already on its way")

    def _why_not_resend(self) -> str | None:
        """Why the confirmation cannot be sent again now (None: it can)."""
        call = self._state
        if call.purged or self._finishing:
            return "the call has finished: there is no one to confirm to"
        state = self._texting_state_now()
        if state != TextingState.ACTIVE:
            return f"the call is not being texted ({state})"
        if not call.sent(TextKind.CONFIRMATION):
            return "no confirmation was sent yet: it will go on its own"
        if call.status is not None and call.status.is_closed:
            return "the call is closed: its closing note is the news now"
        if overtaken(call, TextKind.CONFIRMATION):
            return "a later text has told the caller more since"
        return None

    @workflow.update
    def mark_language(self, request: MarkLanguageRequest) -> OperatorResult:
        """The caller's language, as the operator learnt it: used for the texts to come."""
        call = self._state
        call.caller_language = request.language
        call.language_chosen = True
        if call.thread_survey is not None and call.thread_survey.open:
            call.thread_survey.language = request.language  # its next question too
        call.operator_actions.append(
            OperatorAction(
                "mark_language", request.by, request.reason, workflow.now(), request.language
            )
        )
        self._changed = True
        return OperatorResult(
            f"texts to come will be in {request.language!r}", self._texting_state_now()
        )

    @mark_language.validator
    def _validate_mark_language(self, request: MarkLanguageRequest) -> None:
        _require_who_and_why(request.by, request.reason)
        if self._state.purged or self._finishing:
            raise ValueError("the call has finished: no texts are to come")
        if self._policy is None:
            raise ValueError("the call is still starting: try again in a moment")
        if request.language not in self._policy.languages:
            offered = ", ".join(self._policy.languages)
            raise ValueError(f"language {request.language!r} is not offered; use one of {offered}")

    def _texting_state_now(self) -> TextingState:
        """The texting state the call's facts give right now (pure: no state changes)."""
        if self._policy is None:
            return self._state.texting_state
        return current_texting_state(self._state, self._policy)

    # --- the lifecycle ---------------------------------------------------------------

    @workflow.run
    async def run(self, input: CallInput) -> CallOutcome:
        self._has_every_patch = self._safe_sends() or workflow.patched(
            versions.SURVEY_WINDOW_AFTER_DEFERRAL.id
        )
        self._purge_locally = self._has_every_patch or workflow.patched(versions.PURGE_LOCALLY.id)
        # The policy is recorded in history once, so a call keeps the rules it started
        # with (across continue-as-new too) even if the agency file changes.
        policy = input.carried_policy or await self._load_policy()
        self._policy = policy
        call = self._state
        while True:
            await self._check_opt_out_registry()
            self._decide(policy)
            if self._needs_line_type():
                await self._look_up_line_type()
                continue  # decide again with what the lookup said
            may_text = call.decision is not None and call.decision.eligible
            thread_survey.settle(call, policy, self._now(), may_text=may_text)
            if (
                self._unrecorded_events
                or call.decision != self._recorded_decision
                or len(call.operator_actions) != self._recorded_actions
                or thread_survey_open(call) != self._recorded_thread_open
            ):
                await self._record()
                continue  # signals may have arrived meanwhile: decide again before acting
            answers = thread_survey.to_store(call)
            if answers is not None:
                await self._store_thread_survey(answers)
                continue
            step = next_step(
                call,
                policy,
                self._now(),
                window_after_deferral=self._has_every_patch,
                stages_in_order=self._safe_sends(),
            )
            if step.finished:
                break
            if step.send is not None:
                if not self._registry_fresh and not self._stop_would_be_signalled():
                    # A STOP may have reached the registry before this call was on record
                    # to be signalled: look again before the text, then decide again.
                    await self._check_opt_out_registry(force=True)
                    self._registry_fresh = True
                    continue
                self._registry_fresh = False
                await self._send(step.send, policy)
                continue
            can_suggested = workflow.info().is_continue_as_new_suggested()
            if can_suggested and (workflow.all_handlers_finished() or not self._safe_sends()):
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(CallInput(call.agency, call.incident_id, call, policy))
            # An update still running (a resend on its way) is let finish first: waiting
            # for it here would wait for the send this loop has yet to make.
            await self._wait_for_change(step.wake_at, until_handlers_finish=can_suggested)

        self._finishing = True
        thread_survey.end(call)
        answers = thread_survey.to_store(call)
        if answers is not None:
            await self._store_thread_survey(answers)
        await self._purge()
        call.texting_state = TextingState.FINISHED  # the last decision stays as the reason
        self._index()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return CallOutcome(
            workflow_id=workflow.info().workflow_id,
            status=call.status,
            texting_state=call.texting_state,
            reason=call.decision.reason if call.decision else "",
            texts=[t.kind for t in call.texts],
        )

    def _plan(self, policy: AgencyPolicy, *, resend: bool = True) -> Plan:
        return plan(
            self._state,
            policy,
            self._now(),
            window_after_deferral=self._has_every_patch,
            stages_in_order=self._safe_sends(),
            resend=resend,
        )

    async def _load_policy(self) -> AgencyPolicy:
        try:
            policy: AgencyPolicy = await workflow.execute_local_activity(
                activities.LOAD_AGENCY_POLICY,
                LoadPolicyInput(agency=self._state.agency),
                result_type=AgencyPolicy,
                start_to_close_timeout=LOCAL_ACTIVITY_TIMEOUT,
                retry_policy=RetryPolicy(non_retryable_error_types=[UNKNOWN_AGENCY]),
            )
        except ActivityError as error:
            raise ApplicationError(
                f"cannot load the policy of agency {self._state.agency!r}", non_retryable=True
            ) from error
        return policy

    async def _check_opt_out_registry(self, force: bool = False) -> None:
        """Look the number up in the opt-out registry: when the call learns a number, and
        (forced) right before a text while a STOP might not be signalled here. Calls with
        every patch leave the first to their record, which comes before any text and looks
        right after committing."""
        call = self._state
        phone = call.caller_phone
        if phone is None:
            return
        if not force and (self._has_every_patch or phone == call.opt_out_checked_for):
            return
        result = await workflow.execute_local_activity(
            activities.CHECK_OPT_OUT,
            CheckOptOutInput(agency=call.agency, phone=phone),
            result_type=CheckOptOutResult,
            start_to_close_timeout=LOCAL_ACTIVITY_TIMEOUT,
        )
        call.opt_out_checked_for = phone
        call.opted_out = call.opted_out or result.opted_out

    def _stop_would_be_signalled(self) -> bool:
        """Whether the number was on record before the registry was last read, so that
        any later STOP from it is signalled here (calls recorded the older way, and calls
        just continued-as-new, look before each text instead)."""
        return self._on_record_for is not None and self._on_record_for == self._state.caller_phone

    def _needs_line_type(self) -> bool:
        """Only a call that would otherwise be texted is worth a (paid) lookup."""
        call = self._state
        return (
            call.decision is not None
            and call.decision.reason == EligibilityReason.PHONE_NOT_MOBILE
            and call.caller_line_type in (None, LineType.UNKNOWN)
            and call.caller_phone is not None
            and call.caller_phone != call.line_type_looked_up_for
        )

    async def _look_up_line_type(self) -> None:
        call = self._state
        phone = call.caller_phone
        assert phone is not None
        try:
            result = await workflow.execute_activity(
                activities.LOOKUP_LINE_TYPE,
                LookupLineTypeInput(phone=phone),
                result_type=LookupLineTypeResult,
                schedule_to_close_timeout=LOOKUP_TIMEOUT,
                retry_policy=SEND_RETRY,
            )
        except ActivityError:
            workflow.logger.warning("line type lookup failed; the number stays unknown")
        else:
            if call.caller_phone == phone and call.caller_line_type in (None, LineType.UNKNOWN):
                call.caller_line_type = result.line_type
        call.line_type_looked_up_for = phone

    def _decide(self, policy: AgencyPolicy) -> None:
        """Re-decide eligibility from the current facts. Synchronous on purpose: nothing
        can change between this decision and the plan that acts on it."""
        was_blocked = self._state.blocked is not None
        decision = refresh_decision(self._state, policy)
        if self._state.blocked is not None and not was_blocked:
            workflow.logger.info("texting blocked for safety", extra={"reason": decision.reason})
        self._index()

    def _index(self) -> None:
        """Keep what operators see current: the search attributes they filter on (written
        only when changed) and the call's details on its page in the UI."""
        call = self._state
        details = current_details(call)
        if details != self._details:
            self._details = details
            workflow.set_current_details(details)
        indexed = (call.status, call.priority, call.texting_state)
        if indexed == self._indexed:
            return
        self._indexed = indexed
        updates: list[SearchAttributeUpdate[Any]] = [
            sa.TEXTING_STATE.value_set(call.texting_state.value)
        ]
        if call.status is not None:
            updates.append(sa.CALL_STATUS.value_set(call.status.value))
        if call.priority is not None:
            updates.append(sa.CALL_PRIORITY.value_set(call.priority))
        workflow.upsert_search_attributes(updates)

    async def _record(self) -> None:
        events, self._unrecorded_events = self._unrecorded_events, []
        decision = self._state.decision
        new_decision = decision if decision != self._recorded_decision else None
        self._recorded_decision = decision
        self._recorded_actions = len(self._state.operator_actions)
        self._recorded_thread_open = thread_survey_open(self._state)
        record = RecordCallInput(
            workflow_id=workflow.info().workflow_id,
            snapshot=CallSnapshot.of(self._state),
            events=events,
            decision=new_decision,
            decided_at=workflow.now() if new_decision else None,
        )
        if not (self._has_every_patch or workflow.patched(versions.RECORD_THEN_CHECK_OPT_OUT.id)):
            await workflow.execute_local_activity(
                activities.RECORD_CALL,
                record,
                start_to_close_timeout=LOCAL_ACTIVITY_TIMEOUT,
            )
            return
        phone = self._state.caller_phone
        result = await workflow.execute_local_activity(
            activities.RECORD_CALL_THEN_CHECK_OPT_OUT,
            record,
            result_type=CheckOptOutResult,
            start_to_close_timeout=LOCAL_ACTIVITY_TIMEOUT,
        )
        if phone is not None:
            self._state.opted_out = self._state.opted_out or result.opted_out
            self._on_record_for = phone

    async def _send(self, kind: TextKind, policy: AgencyPolicy) -> None:
        """One text: started as a cancellable activity and, while it is on its way (its
        pacing, its retries), withdrawn the moment the call's facts no longer ask for it."""
        call = self._state
        assert call.caller_phone is not None  # eligibility requires it
        language = call.caller_language if call.caller_language in policy.languages else None
        request = SendTextInput(
            workflow_id=workflow.info().workflow_id,
            agency=call.agency,
            incident_id=call.incident_id,
            case_number=call.case_number or call.incident_id,
            kind=kind,
            language=language or policy.default_language,
            to=call.caller_phone,
            attempt=1 + sum(1 for text in call.texts if text.kind == kind),
            generation=call.send_generation,
        )
        self._ask_in_thread(request, policy)
        if kind == TextKind.ASSIGNED:
            request.officer = call.officer or ""
        elif kind == TextKind.CLEARED:
            request.call_type = call.call_type or ""
        safe = self._safe_sends()
        handle = workflow.start_activity(
            activities.SEND_TEXT,
            request,
            result_type=SendTextResult,
            task_queue=policy.sms_task_queue or None,
            schedule_to_close_timeout=SEND_TIMEOUT,
            start_to_close_timeout=SEND_ATTEMPT_TIMEOUT,
            retry_policy=SEND_RETRY,
            summary=f"{kind.value} text",
            # Withdrawn by revocation, then abandoned, not cancelled at the server: once
            # revoked, no attempt can hand the text over (the next one finds its row
            # withheld and ends at once), and a cancel request that races the attempt's
            # own completion wedges the time-skipping test server (sdk-java#2391).
            cancellation_type=ActivityCancellationType.ABANDON
            if safe
            else ActivityCancellationType.TRY_CANCEL,
        )
        self._send_in_flight = kind
        withdrawn: str | None = None
        try:
            if safe:
                withdrawn = await self._withdraw_if_no_longer_asked(
                    handle, kind, request.attempt, policy
                )
            result = await handle
        except ActivityError as error:
            if withdrawn is not None and isinstance(error.cause, CancelledError):
                call.texts.append(SentText(kind=kind, status=WITHHELD, at=workflow.now()))
                thread_survey.after_send(call, kind, WITHHELD, workflow.now())
                return
            call.texts.append(SentText(kind=kind, status="failed", at=workflow.now()))
            thread_survey.after_send(call, kind, "failed", workflow.now())
            self._on_send_failure(error)
            return
        finally:
            self._send_in_flight = None
            if kind == TextKind.CONFIRMATION:
                call.confirmation_resend_requested = False
        call.texts.append(
            SentText(
                kind=kind,
                status=result.status,
                at=workflow.now(),
                segments=result.segments,
                provider_id=result.provider_id,
            )
        )
        if kind == TextKind.SURVEY and request.survey_question and result.status not in NOT_SENT:
            thread_survey.start(call, policy, request.language, workflow.now())
        thread_survey.after_send(call, kind, result.status, workflow.now())

    def _ask_in_thread(self, request: SendTextInput, policy: AgencyPolicy) -> None:
        """The survey text opens the thread with its first question where the agency
        surveys by text; the thread's own texts name their question."""
        survey = self._state.thread_survey
        if request.kind == TextKind.SURVEY and thread_survey.opens_thread(policy, request.language):
            request.survey_question = policy.thread_questions[0].id
            request.survey_link = thread_survey.offers_link(policy, request.language)
        elif request.kind == TextKind.SURVEY_QUESTION and survey is not None:
            request.language = survey.language
            request.survey_question = survey.questions[survey.current].id
            request.survey_retry = survey.retry
        elif request.kind == TextKind.SURVEY_THANKS and survey is not None:
            request.language = survey.language

    async def _store_thread_survey(self, answers: list[ThreadAnswer]) -> None:
        """Store what the thread was answered, once (the activity is idempotent too)."""
        survey = self._state.thread_survey
        assert survey is not None
        if thread_survey.has_answers(answers):
            await workflow.execute_local_activity(
                activities.STORE_THREAD_SURVEY,
                StoreThreadSurveyInput(
                    workflow_id=workflow.info().workflow_id,
                    agency=self._state.agency,
                    language=survey.language,
                    answers=answers,
                ),
                start_to_close_timeout=LOCAL_ACTIVITY_TIMEOUT,
            )
        survey.stored = True

    async def _withdraw_if_no_longer_asked(
        self,
        handle: ActivityHandle[SendTextResult],
        kind: TextKind,
        attempt: int,
        policy: AgencyPolicy,
    ) -> str | None:
        """Wait for the send; if a fact arrives first after which the planner no longer
        asks for this text (a safety stop, STOP, a suppression, a later stage), withdraw
        it: revoke the call's sends in the database, which every hand-off checks, then
        let go of the activity. Returns why it was withdrawn, None when it ran its course
        (or had reached the provider before the revocation)."""
        call = self._state
        while True:
            self._changed = False
            await workflow.wait_condition(lambda: handle.done() or self._changed)
            if handle.done():
                return None
            self._decide(policy)  # latches a safety stop at once, and shows it in the UI
            # An operator's resend asked for meanwhile waits its turn; it withdraws nothing.
            step = self._plan(policy, resend=kind == TextKind.CONFIRMATION)
            if step.send == kind:
                continue
            decision = call.decision
            if decision is not None and not decision.eligible:
                reason = decision.reason
            elif step.finished:
                reason = "the call's lifecycle is over"
            else:
                reason = "no longer news: the call has moved on"
            generation = call.send_generation
            call.send_generation += 1
            revoked: RevokeSendsResult = await workflow.execute_local_activity(
                activities.REVOKE_SENDS,
                RevokeSendsInput(
                    workflow.info().workflow_id, generation, reason, kind, attempt=attempt
                ),
                result_type=RevokeSendsResult,
                start_to_close_timeout=LOCAL_ACTIVITY_TIMEOUT,
            )
            if revoked.handed_over:
                return None  # the provider has it already: its answer is what happened
            handle.cancel()
            workflow.logger.info(
                "text withdrawn on its way", extra={"kind": kind.value, "reason": reason}
            )
            return reason

    def _on_send_failure(self, error: ActivityError) -> None:
        cause = error.cause
        failure = None
        if isinstance(cause, ApplicationError) and cause.type == PERMANENT_SMS_ERROR:
            failure = SmsFailure(cause.details[0]) if cause.details else None
        workflow.logger.warning("text not sent", extra={"failure": str(failure or cause)})
        if failure == SmsFailure.OPTED_OUT:
            self._state.opted_out = True
        elif failure == SmsFailure.NUMBER_UNUSABLE:
            self._state.unusable_phone = self._state.caller_phone

    def _now(self) -> datetime:
        """Workflow time, never before a deadline whose timer has fired.

        After a local activity, `workflow.now()` is only approximately the server's clock
        and is not the same on replay: a timer can fire a fraction of a second before the
        deadline it was set for, by the workflow's reckoning. Planning as if the deadline
        had come once its timer fired makes that decision come from history alone, so a
        replay (a query, a worker restart) takes the same path as the live run."""
        now = workflow.now()
        if self._deadline_reached is not None and self._deadline_reached > now:
            return self._deadline_reached
        return now

    async def _wait_for_change(
        self, wake_at: datetime | None, *, until_handlers_finish: bool = False
    ) -> None:
        """Sleep until a signal changes something or the next deadline comes (or, when
        the call is to continue as new, until its running updates have finished)."""
        self._changed = False
        timeout = None
        if wake_at is not None:
            timeout = max((wake_at - self._now()).total_seconds(), 0.001)
        self._state.idle = True
        try:
            await workflow.wait_condition(
                lambda: (
                    self._changed or (until_handlers_finish and workflow.all_handlers_finished())
                ),
                timeout=timeout,
            )
        except TimeoutError:
            if self._has_every_patch or workflow.patched(versions.DEADLINE_REACHED_ON_TIMER.id):
                self._deadline_reached = wake_at
        finally:
            self._state.idle = False

    async def _purge(self) -> None:
        purge = PurgeInput(workflow_id=workflow.info().workflow_id)
        if self._purge_locally:
            await workflow.execute_local_activity(
                activities.PURGE_PERSONAL_DATA,
                purge,
                start_to_close_timeout=LOCAL_ACTIVITY_TIMEOUT,
            )
        else:
            await workflow.execute_activity(
                activities.PURGE_PERSONAL_DATA,
                purge,
                start_to_close_timeout=timedelta(minutes=1),
            )
        call = self._state
        call.caller_phone = None
        call.opt_out_checked_for = None
        call.unusable_phone = None
        call.purged = True


def _resend_refused(reason: str) -> ApplicationError:
    return ApplicationError(f"not resent: {reason}", type="ResendRefused")
