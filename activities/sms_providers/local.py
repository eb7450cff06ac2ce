"""The `local` provider: texts stay in the outbox; nothing leaves the machine."""

from __future__ import annotations

import uuid

from activities.sms_providers.base import OutgoingText, ProviderReceipt
from workflows.model import LineType


class LocalProvider:
    name = "local"

    def send(self, text: OutgoingText) -> ProviderReceipt:
        return ProviderReceipt(provider_id=f"local-{uuid.uuid4().hex}", status="sent")

    def lookup_line_type(self, phone: str) -> LineType:
        return LineType.UNKNOWN  # no lookup service: only CAD's word counts
