"""Every Temporal payload encrypted with AES-256-GCM: workflow inputs, signals, updates,
queries, activity inputs and results, memos and summaries. A caller's phone number and
language never reach Temporal's database in clear.

Failures too: their messages and stack traces (a provider's error, an exception's text)
move into an encoded attribute, which the codec encrypts like any payload.

Keys carry an id, written in each payload's metadata, so keys rotate without breaking
calls in flight: the primary key encrypts, every configured key decrypts. Configure
`CALLERLOOP_ENCRYPTION_KEYS="2026-11:<base64 32 bytes>,2026-05:<…>"` (the first is the
primary); `callerloop encryption new-key` prints a fresh one.

Decoding refuses a payload that is not encrypted: anyone who can write to Temporal without
the keys (a client without the codec, the UI without the codec server) could have put it
there. Histories written before encryption was turned on are read with
`accept_plaintext` (CALLERLOOP_ACCEPT_PLAINTEXT_PAYLOADS=1) until those calls have ended.

This follows the encryption sample of temporalio/samples-python; the codec server in
`web/codec_server.py` lets an authorised operator's Temporal UI decrypt.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import re
from collections.abc import Mapping, Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import TypeAdapter
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    DefaultPayloadConverter,
    EncodingPayloadConverter,
    JSONPlainPayloadConverter,
    PayloadCodec,
)

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
NONCE_BYTES = 12
KEY_BYTES = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class EncryptionKeyError(ValueError):
    """The configured keys are malformed, or a payload names a key we do not have."""


class PlaintextPayloadError(ValueError):
    """A payload to decode is not encrypted, and plaintext is not accepted."""


class EncryptionCodec(PayloadCodec):
    def __init__(
        self, keys: Mapping[str, bytes], primary: str, *, accept_plaintext: bool = False
    ) -> None:
        if primary not in keys:
            raise EncryptionKeyError(f"primary key {primary!r} is not among the keys")
        for key_id, key in keys.items():
            if not _KEY_ID.match(key_id):
                raise EncryptionKeyError(f"key id {key_id!r}: use letters, digits, . _ -")
            if len(key) != KEY_BYTES:
                raise EncryptionKeyError(f"key {key_id!r} is {len(key)} bytes, not {KEY_BYTES}")
        self.primary = primary
        self.accept_plaintext = accept_plaintext
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        key_id = self.primary.encode()
        # The key id is authenticated too: a payload cannot be relabelled to another key.
        sealed = self._ciphers[self.primary].encrypt(nonce, payload.SerializeToString(), key_id)
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id}, data=nonce + sealed
        )

    def decrypt(self, payload: Payload) -> Payload:
        encoding = payload.metadata.get("encoding", b"")
        if encoding != ENCODING:
            if self.accept_plaintext:  # written before encryption was turned on
                return payload
            raise PlaintextPayloadError(
                f"refused a payload that is not encrypted (encoding {encoding.decode()!r}): "
                "it was written without callerloop's keys. For histories written before "
                "encryption was turned on, set CALLERLOOP_ACCEPT_PLAINTEXT_PAYLOADS=1 until "
                "those calls have ended"
            )
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode()
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise EncryptionKeyError(
                f"payload encrypted with key {key_id!r}, which is not configured"
            )
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        return Payload.FromString(cipher.decrypt(nonce, sealed, key_id.encode()))


def parse_keys(spec: str) -> tuple[dict[str, bytes], str]:
    """`id:base64key,id2:base64key` → ({id: key}, primary id = the first)."""
    keys: dict[str, bytes] = {}
    for position, item in enumerate(part.strip() for part in spec.split(",")):
        key_id, separator, encoded = item.partition(":")
        where = f"CALLERLOOP_ENCRYPTION_KEYS item {position + 1}"
        if not separator or not key_id or not encoded:
            raise EncryptionKeyError(f"{where}: expected KEY_ID:BASE64_KEY")
        try:
            keys[key_id] = base64.b64decode(encoded, validate=True)
        except binascii.Error as error:
            raise EncryptionKeyError(f"{where} ({key_id}): not base64: {error}") from None
    if not keys:
        raise EncryptionKeyError("CALLERLOOP_ENCRYPTION_KEYS is empty")
    return keys, next(iter(keys))


def new_key_spec(key_id: str) -> str:
    """A fresh `id:base64key` item for CALLERLOOP_ENCRYPTION_KEYS."""
    return f"{key_id}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"


def codec_from_spec(spec: str, *, accept_plaintext: bool = False) -> EncryptionCodec:
    keys, primary = parse_keys(spec)
    return EncryptionCodec(keys, primary, accept_plaintext=accept_plaintext)


# One cache of pydantic type adapters per process. The SDK makes a payload converter for
# each workflow run; with a cache each, every run built its own adapters (milliseconds of
# CPU and ~0.3 MB of memory per cached run, `make bench`).
_TYPE_ADAPTERS = functools.lru_cache(maxsize=512)(TypeAdapter)


class _JSONConverter(PydanticJSONPlainPayloadConverter):
    def __init__(self) -> None:
        super().__init__()
        self._type_adapter = _TYPE_ADAPTERS


class PayloadConverter(CompositePayloadConverter):
    """The SDK's default converters, with pydantic's JSON converter in place of its own.

    It writes the same JSON for callerloop's dataclasses and reads what the default wrote
    (every recorded history replays), but decodes a call's state about 20x faster: the
    default re-evaluates every dataclass's type hints on each conversion, which cost
    ~2.6 ms per `record_call` input."""

    def __init__(self) -> None:
        super().__init__(*_encoding_converters())


@functools.cache
def _encoding_converters() -> tuple[EncodingPayloadConverter, ...]:
    """Built once and shared (they keep no state of their own): the SDK makes a payload
    converter twice for each workflow activation, to decode it and to encode its answer."""
    json_converter = _JSONConverter()
    return tuple(
        json_converter if isinstance(converter, JSONPlainPayloadConverter) else converter
        for converter in DefaultPayloadConverter.default_encoding_payload_converters
    )


def data_converter(codec: PayloadCodec | None) -> DataConverter:
    """callerloop's payload converter, with `codec` (encryption) over it. Failure messages
    and stack traces are encoded attributes, so the codec covers them too: a provider's
    error or an exception's text can carry a caller's number."""
    return DataConverter(
        payload_converter_class=PayloadConverter,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
