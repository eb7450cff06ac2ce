"""The id of a CAD event that came without one, derived in one place for every entry path
(HTTP, EIDO, CLI, the Python `CadClient`, replay) and, as a backstop, by the workflow.

The same content gives the same id, so a resent event is recognised as a duplicate; an
empty id is never an id (two different events without one must not collide on "").
Pure and deterministic: the workflow sandbox runs it too.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace

from workflows.model import CadEvent


def event_fingerprint(event: CadEvent) -> str:
    content = {k: v for k, v in asdict(event).items() if k != "event_id"}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode())
    return f"sha256:{digest.hexdigest()[:32]}"


def with_event_id(event: CadEvent) -> CadEvent:
    """The event as given when it has an id, else with its content's fingerprint."""
    if event.event_id.strip():
        return event
    return replace(event, event_id=event_fingerprint(event))
