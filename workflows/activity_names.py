"""The activities the workflows run (the call's, the CAD poller's), by the names the
worker registers them under.

The workflow refers to its activities by name with their result types, so the modules
that do I/O (sqlmodel, twilio) never enter its sandbox; each activity's `@activity.defn`
takes its name from here, so the two sides cannot drift apart.
"""

from __future__ import annotations

LOAD_AGENCY_POLICY = "load_agency_policy"
CHECK_OPT_OUT = "check_opt_out"
RECORD_CALL = "record_call"
RECORD_CALL_THEN_CHECK_OPT_OUT = "record_call_then_check_opt_out"
PURGE_PERSONAL_DATA = "purge_personal_data"
LOOKUP_LINE_TYPE = "lookup_line_type"
SEND_TEXT = "send_text"
OUTBOX_REPORT = "outbox_report"
REVOKE_SENDS = "revoke_sends"
POLL_CAD = "poll_cad"
STORE_THREAD_SURVEY = "store_thread_survey"
SEND_FOLLOW_UPS = "send_follow_ups"
