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
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.call_records import CallRecordActivities
    from activities.errors import PERMANENT_SMS_ERROR, UNKNOWN_AGENCY, SmsFailure
    from activities.line_types import LineTypeActivities
    from activities.opt_outs import OptOutActivities
    from activities.policy_loader import PolicyActivities
    from activities.texts import TextActivities
    from workflows import search_attributes as sa
    from workflows.call_state import apply_event
    from workflows.details import current_details
    from workflows.lifecycle import plan, refresh_decision
    from workflows.model import (
        CadEvent,
        CallInput,
        CallOutcome,
        CallSnapshot,
        CallState,
        CheckOptOutInput,
        Decision,
        EventRecord,
        LineType,
        LoadPolicyInput,
        LookupLineTypeInput,
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
        SendTextInput,
        SentText,
        SuppressRequest,
        SuppressSignal,
        TextingState,
        TextKind,
    )
    from workflows.policy import AgencyPolicy, EligibilityReason

# Patch ids of workflow changes that calls in flight must replay around (README: "Rolling
# out a workflow change"). Deprecate one only when no call started before it is running.
DEADLINE_REACHED_ON_TIMER = "deadline-reached-on-timer"
# Recording a call also looks its number up in the opt-out registry, after the record is
# committed: a STOP from then on reaches the call as a signal, so texts no longer each
# wait for a look at the registry first (two local activities fewer before the first).
RECORD_THEN_CHECK_OPT_OUT = "record-then-check-opt-out"
# The purge at the end runs as a local activity, in the workflow task that ends the call:
# no activity task and no workflow task after it, four server requests fewer per call.
# Decided in the call's first workflow task, beside the patch above.
PURGE_LOCALLY = "purge-locally"
# A closed call's survey window counts from when the survey falls due, after any quiet
# hours (`lifecycle.finish_at`), so a window shorter than the night loses no survey. A
# call with this patch has every patch above as well, and asks for this one only: one
# marker and one TemporalChangeVersion upsert instead of three. It also skips the look at
# the opt-out registry before its first record: the record looks right after committing.
SURVEY_WINDOW_AFTER_DEFERRAL = "survey-window-after-deferral"

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

    # --- signals and queries: facts in, state out; no I/O here ---------------------

    @workflow.signal
    def cad_event(self, event: CadEvent) -> None:
        if (event.agency, event.incident_id) != (self._state.agency, self._state.incident_id):
            workflow.logger.warning(
                "CAD event for another call ignored",
                extra={"event_agency": event.agency, "event_incident": event.incident_id},
            )
            return
        result = apply_event(self._state, event, workflow.now())
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
        self._state.opted_out = True
        self._changed = True

    @workflow.signal
    def opt_in(self, signal: OptInSignal) -> None:
        self._state.opted_out = False
        self._changed = True

    @workflow.signal
    def suppress(self, signal: SuppressSignal) -> None:
        if self._state.suppressed_reason is None:
            self._state.suppressed_reason = f"{signal.reason} (by {signal.by})"
            self._changed = True

    @workflow.query
    def state(self) -> CallState:
        return self._state

    # --- operator updates: validated before they reach history, answered in words -------

    @workflow.update(name="suppress")
    async def suppress_texts(self, request: SuppressRequest) -> OperatorResult:
        """Stop every text of this call, for good (the operator's safety stop)."""
        call = self._state
        call.suppressed_reason = f"{request.reason} (by {request.by})"
        call.operator_actions.append(
            OperatorAction("suppress", request.by, request.reason, workflow.now())
        )
        self._changed = True
        await workflow.wait_condition(
            lambda: call.texting_state in (TextingState.BLOCKED, TextingState.FINISHED)
        )
        return OperatorResult("no more texts will be sent for this call", call.texting_state)

    @suppress_texts.validator
    def _validate_suppress(self, request: SuppressRequest) -> None:
        _require_who_and_why(request.by, request.reason)
        if self._state.purged:
            raise ValueError("the call has finished: there is nothing left to suppress")
        if self._state.suppressed_reason is not None:
            raise ValueError(f"already suppressed: {self._state.suppressed_reason}")

    @workflow.update
    async def resend_confirmation(self, request: ResendConfirmationRequest) -> OperatorResult:
        """Send the confirmation again, once the outbox confirms nothing of this call
        reached the caller (the check reads delivery receipts: no I/O in a validator)."""
        call = self._state
        report: OutboxReport = await workflow.execute_local_activity_method(
            TextActivities.outbox_report,
            OutboxReportInput(workflow_id=workflow.info().workflow_id),
            start_to_close_timeout=LOCAL_ACTIVITY_TIMEOUT,
        )
        if report.delivered:
            raise ApplicationError(
                "not resent: a text of this call reached the caller "
                f"({', '.join(report.statuses)})",
                type="ResendRefused",
            )
        call.operator_actions.append(
            OperatorAction("resend_confirmation", request.by, request.reason, workflow.now())
        )
        call.confirmation_resend_requested = True
        self._changed = True
        await workflow.wait_condition(lambda: not call.confirmation_resend_requested)
        last = [t for t in call.texts if t.kind == TextKind.CONFIRMATION][-1]
        return OperatorResult(f"confirmation sent again ({last.status})", call.texting_state)

    @resend_confirmation.validator
    def _validate_resend(self, request: ResendConfirmationRequest) -> None:
        _require_who_and_why(request.by, request.reason)
        call = self._state
        if call.purged:
            raise ValueError("the call has finished: there is no one to confirm to")
        if call.texting_state != TextingState.ACTIVE:
            raise ValueError(f"the call is not being texted ({call.texting_state})")
        if not call.sent(TextKind.CONFIRMATION):
            raise ValueError("no confirmation was sent yet: it will go on its own")
        if call.confirmation_resend_requested:
            raise ValueError("a resend is already on its way")

    @workflow.update
    def mark_language(self, request: MarkLanguageRequest) -> OperatorResult:
        """The caller's language, as the operator learnt it: used for the texts to come."""
        call = self._state
        call.caller_language = request.language
        call.operator_actions.append(
            OperatorAction(
                "mark_language", request.by, request.reason, workflow.now(), request.language
            )
        )
        self._changed = True
        return OperatorResult(f"texts to come will be in {request.language!r}", call.texting_state)

    @mark_language.validator
    def _validate_mark_language(self, request: MarkLanguageRequest) -> None:
        _require_who_and_why(request.by, request.reason)
        if self._state.purged:
            raise ValueError("the call has finished: no texts are to come")
        if self._policy is None:
            raise ValueError("the call is still starting: try again in a moment")
        if request.language not in self._policy.languages:
            offered = ", ".join(self._policy.languages)
            raise ValueError(f"language {request.language!r} is not offered; use one of {offered}")

    # --- the lifecycle ---------------------------------------------------------------

    @workflow.run
    async def run(self, input: CallInput) -> CallOutcome:
        self._has_every_patch = workflow.patched(SURVEY_WINDOW_AFTER_DEFERRAL)
        self._purge_locally = self._has_every_patch or workflow.patched(PURGE_LOCALLY)
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
            if (
                self._unrecorded_events
                or call.decision != self._recorded_decision
                or len(call.operator_actions) != self._recorded_actions
            ):
                await self._record()
                continue  # signals may have arrived meanwhile: decide again before acting
            step = plan(call, policy, self._now(), window_after_deferral=self._has_every_patch)
            call.skipped.extend(step.skip)
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
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(CallInput(call.agency, call.incident_id, call, policy))
            await self._wait_for_change(step.wake_at)

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

    async def _load_policy(self) -> AgencyPolicy:
        try:
            return await workflow.execute_local_activity_method(
                PolicyActivities.load_agency_policy,
                LoadPolicyInput(agency=self._state.agency),
                start_to_close_timeout=LOCAL_ACTIVITY_TIMEOUT,
                retry_policy=RetryPolicy(non_retryable_error_types=[UNKNOWN_AGENCY]),
            )
        except ActivityError as error:
            raise ApplicationError(
                f"cannot load the policy of agency {self._state.agency!r}", non_retryable=True
            ) from error

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
        result = await workflow.execute_local_activity_method(
            OptOutActivities.check_opt_out,
            CheckOptOutInput(agency=call.agency, phone=phone),
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
            result = await workflow.execute_activity_method(
                LineTypeActivities.lookup_line_type,
                LookupLineTypeInput(phone=phone),
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
        record = RecordCallInput(
            workflow_id=workflow.info().workflow_id,
            snapshot=CallSnapshot.of(self._state),
            events=events,
            decision=new_decision,
            decided_at=workflow.now() if new_decision else None,
        )
        if not (self._has_every_patch or workflow.patched(RECORD_THEN_CHECK_OPT_OUT)):
            await workflow.execute_local_activity_method(
                CallRecordActivities.record_call,
                record,
                start_to_close_timeout=LOCAL_ACTIVITY_TIMEOUT,
            )
            return
        phone = self._state.caller_phone
        result = await workflow.execute_local_activity_method(
            CallRecordActivities.record_call_then_check_opt_out,
            record,
            start_to_close_timeout=LOCAL_ACTIVITY_TIMEOUT,
        )
        if phone is not None:
            self._state.opted_out = self._state.opted_out or result.opted_out
            self._on_record_for = phone

    async def _send(self, kind: TextKind, policy: AgencyPolicy) -> None:
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
        )
        try:
            result = await workflow.execute_activity_method(
                TextActivities.send_text,
                request,
                task_queue=policy.sms_task_queue or None,
                schedule_to_close_timeout=SEND_TIMEOUT,
                start_to_close_timeout=SEND_ATTEMPT_TIMEOUT,
                retry_policy=SEND_RETRY,
                summary=f"{kind.value} text",
            )
        except ActivityError as error:
            call.texts.append(SentText(kind=kind, status="failed", at=workflow.now()))
            self._on_send_failure(error)
            return
        finally:
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

    async def _wait_for_change(self, wake_at: datetime | None) -> None:
        """Sleep until a signal changes something or the next deadline comes."""
        self._changed = False
        timeout = None
        if wake_at is not None:
            timeout = max((wake_at - self._now()).total_seconds(), 0.001)
        self._state.idle = True
        try:
            await workflow.wait_condition(lambda: self._changed, timeout=timeout)
        except TimeoutError:
            if self._has_every_patch or workflow.patched(DEADLINE_REACHED_ON_TIMER):
                self._deadline_reached = wake_at
        finally:
            self._state.idle = False

    async def _purge(self) -> None:
        purge = PurgeInput(workflow_id=workflow.info().workflow_id)
        if self._purge_locally:
            await workflow.execute_local_activity_method(
                CallRecordActivities.purge_personal_data,
                purge,
                start_to_close_timeout=LOCAL_ACTIVITY_TIMEOUT,
            )
        else:
            await workflow.execute_activity_method(
                CallRecordActivities.purge_personal_data,
                purge,
                start_to_close_timeout=timedelta(minutes=1),
            )
        call = self._state
        call.caller_phone = None
        call.opt_out_checked_for = None
        call.unusable_phone = None
        call.purged = True
