"""The opt-out registry: checked when a call learns its caller's number."""

from __future__ import annotations

from temporalio import activity

from callerloop.core.db import Database
from callerloop.messaging.opt_outs import is_opted_out
from workflows.model import CheckOptOutInput, CheckOptOutResult


class OptOutActivities:
    def __init__(self, db: Database) -> None:
        self._db = db

    @activity.defn(name="check_opt_out")
    def check_opt_out(self, input: CheckOptOutInput) -> CheckOptOutResult:
        return CheckOptOutResult(opted_out=is_opted_out(self._db, input.agency, input.phone))
