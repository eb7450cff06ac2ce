"""SMS providers: small adapters behind one interface (see `base.SmsProvider`)."""

from __future__ import annotations

from activities.sms_providers.base import SmsProvider
from activities.sms_providers.local import LocalProvider
from callerloop.core.settings import Settings


def make_provider(settings: Settings) -> SmsProvider:
    if settings.sms_provider == "twilio":
        from activities.sms_providers.twilio import twilio_provider_from_settings

        return twilio_provider_from_settings(settings)
    return LocalProvider()
