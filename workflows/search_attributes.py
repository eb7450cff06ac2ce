"""Custom search attributes: how operators find and filter calls in the Temporal Web UI.

The dev server is started with these registered (see `callerloop.devserver`); a Temporal
cluster needs them added once with `temporal operator search-attribute create`.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

AGENCY = SearchAttributeKey.for_keyword("Agency")
INCIDENT_ID = SearchAttributeKey.for_keyword("IncidentId")
CALL_STATUS = SearchAttributeKey.for_keyword("CallStatus")
CALL_PRIORITY = SearchAttributeKey.for_int("CallPriority")
TEXTING_STATE = SearchAttributeKey.for_keyword("TextingState")

ALL = (AGENCY, INCIDENT_ID, CALL_STATUS, CALL_PRIORITY, TEXTING_STATE)
