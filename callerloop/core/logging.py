"""structlog for everything, including Temporal's stdlib loggers (`workflow.logger` and
`activity.logger`), which cannot call structlog directly from the workflow sandbox."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

EventDict = MutableMapping[str, Any]


def _lift_temporal_context(_logger: Any, _method: str, event: EventDict) -> EventDict:
    """Temporal puts workflow/activity info in a nested `temporal_*` dict: flatten the ids
    operators search by, and derive the incident id from `call/{agency}/{incident}`."""
    for key in ("temporal_workflow", "temporal_activity"):
        context = event.pop(key, None)
        if isinstance(context, dict):
            workflow_id = context.get("workflow_id")
            if workflow_id:
                event.setdefault("workflow_id", workflow_id)
            if "activity_type" in context:
                event.setdefault("activity", context["activity_type"])
                event.setdefault("attempt", context.get("attempt"))
    workflow_id = event.get("workflow_id")
    if isinstance(workflow_id, str) and workflow_id.startswith("call/"):
        _, agency, incident = workflow_id.split("/", 2)
        event.setdefault("agency", agency)
        event.setdefault("incident_id", incident)
    return event


# A phone number in any common spelling: +17035550142, 703-555-0142, (703) 555 0142,
# 703.555.0142, 7035550142, and URL-encoded (%2B17035550142, +1%20703%20555%200142) as in
# a request URL an HTTP error quotes. A national number inside a longer run of letters or
# digits is left alone (provider ids, hex, millisecond timestamps); `_`, `=`, `:` and
# punctuation around it do not protect it.
_SEPARATOR = r"(?:[\s.()/-]|%20)"
_PHONE = re.compile(
    rf"(?<!\d)(?:\+|%2[Bb])\d(?:{_SEPARATOR}{{0,3}}\d){{7,16}}(?!\d)"  # +, 8 or more digits
    rf"|(?<![0-9A-Za-z])(?:1{_SEPARATOR}{{0,2}})?\(?\d{{3}}\)?{_SEPARATOR}{{0,3}}"
    rf"\d{{3}}{_SEPARATOR}{{0,3}}\d{{4}}(?![0-9A-Za-z])"  # North American, national
)


def mask_phone_numbers(text: str) -> str:
    """Keep the last two digits, enough to tell callers apart in a log, not to call them."""
    return _PHONE.sub(lambda match: "***" + re.sub(r"\D", "", match.group())[-2:], text)


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_phone_numbers(value)
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_masked(item) for item in value)
    return value


def _mask_personal_data(_logger: Any, _method: str, event: EventDict) -> EventDict:
    """Logs never carry a full phone number, whoever logged it and however."""
    for key, value in event.items():
        event[key] = _masked(value)
    return event


def configure_logging(log_format: str = "json", level: str = "INFO") -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _lift_temporal_context],
        processors=[
            _lift_temporal_context,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _mask_personal_data,  # last before rendering: tracebacks are masked too
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
