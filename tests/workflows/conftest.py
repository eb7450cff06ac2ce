"""Fixtures of the workflow tests: activities held up on purpose."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import worker
from tests.workflows.held_activities import HeldOutboxReport


@pytest.fixture
def held_outbox_report(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[HeldOutboxReport]]:
    HeldOutboxReport.looking.clear()
    HeldOutboxReport.answer.clear()
    monkeypatch.setattr(worker, "TextActivities", HeldOutboxReport)
    yield HeldOutboxReport
    HeldOutboxReport.answer.set()
