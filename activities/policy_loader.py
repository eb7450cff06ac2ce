"""Hands the workflow its agency's policy, read from the worker's agency files."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from temporalio import activity
from temporalio.exceptions import ApplicationError

from callerloop.core.agency_config import AgencyConfig
from workflows.activity_errors import UNKNOWN_AGENCY
from workflows.model import LoadPolicyInput
from workflows.policy import AgencyPolicy


class PolicyActivities:
    def __init__(
        self,
        agencies: Mapping[str, AgencyConfig],
        time_scale: float,
        sms_task_queue: Callable[[str], str],
    ) -> None:
        self._agencies = agencies
        self._time_scale = time_scale
        self._sms_task_queue = sms_task_queue

    @activity.defn(name="load_agency_policy")
    def load_agency_policy(self, input: LoadPolicyInput) -> AgencyPolicy:
        """Run as a local activity: its result is recorded once in the call's history, so
        the call keeps the policy it started with even if the file changes."""
        agency = self._agencies.get(input.agency)
        if agency is None:
            raise ApplicationError(
                f"unknown agency {input.agency!r}; configured: {sorted(self._agencies)}",
                type=UNKNOWN_AGENCY,
                non_retryable=True,
            )
        return agency.to_policy(self._time_scale, self._sms_task_queue(agency.id))
