"""SMS providers: small adapters behind one interface (see `base.SmsProvider`)."""

from __future__ import annotations

from activities.sms_providers.base import SmsProvider
from activities.sms_providers.local import LocalProvider


def make_provider(name: str) -> SmsProvider:
    if name == "local":
        return LocalProvider()
    raise ValueError(f"unknown SMS provider {name!r}; available: local")
