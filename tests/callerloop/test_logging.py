"""Logs are structlog JSON; Temporal's stdlib loggers carry the workflow and incident ids."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from callerloop.logging import configure_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure_logging binds the root handler to the (captured) stderr: undo it after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level
    structlog.reset_defaults()


def test_workflow_logger_records_carry_workflow_and_incident_ids(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("json", "INFO")
    logging.getLogger("temporalio.workflow").info(
        "texting blocked for safety",
        extra={
            "reason": "call_type_sensitive",
            "temporal_workflow": {"workflow_id": "call/example/25-071089", "run_id": "r1"},
        },
    )
    structlog.get_logger("callerloop.test").info("worker started", task_queue="callerloop")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["event"] == "texting blocked for safety"
    assert lines[0]["workflow_id"] == "call/example/25-071089"
    assert lines[0]["agency"] == "example" and lines[0]["incident_id"] == "25-071089"
    assert lines[0]["reason"] == "call_type_sensitive" and lines[0]["level"] == "info"
    assert lines[1]["event"] == "worker started" and lines[1]["task_queue"] == "callerloop"
