"""Logs are structlog JSON; Temporal's stdlib loggers carry the workflow and incident ids."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from callerloop.core.logging import configure_logging, mask_phone_numbers


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


PHONES = ["+17035550142", "703-555-0142", "(703) 555-0142", "703.555.0142", "+33 612345678"]


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_logs_never_carry_a_full_phone_number(
    capsys: pytest.CaptureFixture[str], log_format: str
) -> None:
    configure_logging(log_format, "INFO")
    log = structlog.get_logger("callerloop.test")
    log.info(f"texting {PHONES[0]}", to=PHONES[1], nested={"numbers": [PHONES[2], PHONES[3]]})
    logging.getLogger("temporalio.activity").warning(
        "send failed for %s", PHONES[4], extra={"caller": PHONES[0]}
    )
    try:
        raise ValueError(f"provider refused {PHONES[0]}")
    except ValueError:
        log.exception("send crashed")
    output = capsys.readouterr().err
    for phone in PHONES:
        assert phone not in output
    for digits in ("7035550142", "5550142", "612345678"):
        assert digits not in output
    assert "***42" in output and "***78" in output  # callers still tell apart


def test_masking_leaves_ids_times_and_counts_alone() -> None:
    kept = [
        "call/example/25-071089",
        "2026-11-22T14:55:25.519930Z",
        "SM0123456789abcdef0123456789abcdef",
        "1763822125519",
        "segments=2 attempts=10",
    ]
    for text in kept:
        assert mask_phone_numbers(text) == text
