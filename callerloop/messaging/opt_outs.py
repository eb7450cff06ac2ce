"""The opt-out registry: which numbers said STOP, kept by a keyed hash of the number
(`Database.pseudonym`) so it outlives the retention period. Written by inbound texts, the
"never text me" page (`web/never_text.py`) and the CLI; read by the calls (and by the
send's hand-off, `activities.outbox`). A row's `keyword` tells how it came: the word a
text said ("STOP", "NEVER TEXT ME", "START"), or `REGISTERED_ON_PAGE`."""

from __future__ import annotations

from sqlalchemy import bindparam, select

from callerloop.core import metrics
from callerloop.core.db import Database, OptOut, utcnow

# The keyword of a number registered on the "never text me" page, not by a text.
REGISTERED_ON_PAGE = "PAGE"


def is_opted_out(db: Database, agency: str, phone: str) -> bool:
    """Whether the number is in the agency's opt-out registry (by its keyed hash)."""
    with db.engine.connect() as connection:
        opted_out = connection.execute(
            _OPTED_OUT, {"agency": agency, "pseudonym": db.pseudonym(phone)}
        ).scalar()
        return bool(opted_out)


# A Core statement built once: an ORM identity load per look cost more than the query.
_OPT_OUTS = OptOut.__table__  # type: ignore[attr-defined]
_OPTED_OUT = select(_OPT_OUTS.c.opted_out).where(
    _OPT_OUTS.c.agency == bindparam("agency"),
    _OPT_OUTS.c.phone_pseudonym == bindparam("pseudonym"),
)


def record_opt_out(db: Database, agency: str, phone: str, keyword: str, opted_out: bool) -> None:
    """Write an opt-out (or opt-in) for a number; used by inbound SMS and the CLI."""
    with db.session() as session:
        key = (agency, db.pseudonym(phone))
        row = session.get(OptOut, key) or OptOut(agency=agency, phone_pseudonym=key[1])
        row.opted_out, row.keyword, row.updated_at = opted_out, keyword, utcnow()
        session.add(row)
        session.commit()
    (metrics.OPT_OUTS if opted_out else metrics.OPT_INS).labels(agency).inc()
