"""callerloop's own Prometheus metrics (the Temporal SDK exports its own: see
`callerloop.core.health.temporal_runtime`). Every name starts with `callerloop_`.

Worker: texts by kind and outcome, eligibility decisions by reason, CAD events applied by
type, and the latency from a CAD event reaching callerloop to the text's hand-off to the SMS
provider. Web app: CAD events accepted by the ingest API, opt-outs and opt-ins from inbound
texts, and webhook/ingest requests answered with an error.

Labels stay few and bounded (agency ids, enum values, HTTP statuses): never a phone number,
an incident id or free text.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

TEXTS = Counter(
    "callerloop_texts",
    "Send attempts of texts to callers, by outcome: sent/queued (handed to the provider), "
    "failed (permanent provider error), retrying (transient error), unknown (an earlier "
    "attempt died mid-send and the provider keeps no records: not resent), reconciled (an "
    "earlier attempt died mid-send and the provider's records show the text: not resent), "
    "duplicate (already in the outbox: not resent).",
    ["agency", "kind", "status"],
)
ELIGIBILITY_DECISIONS = Counter(
    "callerloop_eligibility_decisions",
    "Eligibility decisions recorded for calls, by outcome and reason.",
    ["agency", "eligible", "reason"],
)
CAD_EVENTS = Counter(
    "callerloop_cad_events",
    "CAD events recorded by the call workflows, by type; applied=false: a duplicate or "
    "out-of-order event that changed nothing.",
    ["agency", "event_type", "applied"],
)
CAD_EVENTS_ACCEPTED = Counter(
    "callerloop_cad_events_accepted",
    "CAD events the ingest API delivered to their calls' workflows, by type.",
    ["agency", "event_type"],
)
OPT_OUTS = Counter(
    "callerloop_opt_outs",
    "Opt-outs recorded (a STOP word or a plain request to stop).",
    ["agency"],
)
OPT_INS = Counter(
    "callerloop_opt_ins",
    "Opt-ins recorded (START, UNSTOP, …) undoing an opt-out.",
    ["agency"],
)
WEBHOOK_ERRORS = Counter(
    "callerloop_webhook_errors",
    "Requests to the Twilio webhooks and the CAD ingest API answered with an error "
    "status (4xx: refused input, 5xx: callerloop could not handle it).",
    ["endpoint", "status"],
)
EVENT_TO_HANDOFF = Histogram(
    "callerloop_cad_event_to_handoff_seconds",
    "From the worker recording the CAD event a text answers (created, assigned, cleared) "
    "to the SMS provider accepting the text.",
    ["agency", "kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600),
)
