"""Line-type lookups before a number's first text, when CAD did not say it is a mobile.

Lookups are paid for, so results are cached per number for `line_type_cache_days`."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity

from activities.sms_providers.base import SmsProvider
from callerloop.core.db import Database, LineTypeCache, utcnow
from workflows.model import LineType, LookupLineTypeInput, LookupLineTypeResult


class LineTypeActivities:
    def __init__(self, db: Database, provider: SmsProvider, cache_days: int) -> None:
        self._db = db
        self._provider = provider
        self._cache_for = timedelta(days=cache_days)

    @activity.defn(name="lookup_line_type")
    def lookup_line_type(self, input: LookupLineTypeInput) -> LookupLineTypeResult:
        with self._db.session() as session:
            cached = session.get(LineTypeCache, input.phone)
            if cached is not None and utcnow() - cached.looked_up_at < self._cache_for:
                return LookupLineTypeResult(line_type=LineType(cached.line_type))
        # TransientProviderError propagates: Temporal retries the lookup with backoff.
        line_type = self._provider.lookup_line_type(input.phone)
        if line_type != LineType.UNKNOWN:  # an unknown answer is worth asking again later
            with self._db.session() as session:
                row = session.get(LineTypeCache, input.phone) or LineTypeCache(
                    phone=input.phone, line_type=line_type.value, looked_up_at=utcnow()
                )
                row.line_type, row.looked_up_at = line_type.value, utcnow()
                session.add(row)
                session.commit()
        return LookupLineTypeResult(line_type=line_type)
