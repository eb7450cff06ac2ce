"""The payload codec: AES-GCM with key ids, rotation, tamper detection, clear errors."""

from __future__ import annotations

import base64
import re

import pytest
from cryptography.exceptions import InvalidTag
from hypothesis import given
from hypothesis import strategies as st
from temporalio.api.common.v1 import Payload

from callerloop.core.codec import (
    ENCODING,
    EncryptionKeyError,
    PlaintextPayloadError,
    codec_from_spec,
    new_key_spec,
)

KEY_A, KEY_B = new_key_spec("a"), new_key_spec("b")


def payload(data: bytes) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=data)


@given(data=st.binary(max_size=2048))
async def test_what_is_encrypted_decrypts_to_the_same_payload(data: bytes) -> None:
    codec = codec_from_spec(KEY_A)
    [sealed] = await codec.encode([payload(data)])
    assert sealed.metadata["encoding"] == ENCODING
    assert data not in sealed.data or len(data) < 4  # short strings may occur by chance
    assert await codec.decode([sealed]) == [payload(data)]


async def test_the_primary_key_encrypts_and_older_keys_still_decrypt() -> None:
    old = codec_from_spec(KEY_A)
    rotated = codec_from_spec(f"{KEY_B},{KEY_A}")
    [under_a] = await old.encode([payload(b'"+17035550142"')])
    [under_b] = await rotated.encode([payload(b'"+17035550142"')])
    assert under_b.metadata["encryption-key-id"] == b"b"
    assert await rotated.decode([under_a, under_b]) == [payload(b'"+17035550142"')] * 2
    with pytest.raises(EncryptionKeyError, match="key 'b', which is not configured"):
        await old.decode([under_b])


async def test_a_tampered_or_relabelled_payload_is_refused() -> None:
    codec = codec_from_spec(f"{KEY_A},{KEY_B}")
    [sealed] = await codec.encode([payload(b"secret")])
    flipped = Payload(
        metadata=sealed.metadata, data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    )
    relabelled = Payload(metadata={**sealed.metadata, "encryption-key-id": b"b"}, data=sealed.data)
    for bad in (flipped, relabelled):
        with pytest.raises(InvalidTag):
            await codec.decode([bad])


async def test_a_payload_that_is_not_encrypted_is_refused_by_default() -> None:
    """Whoever can write to Temporal without the keys (a client without the codec, the UI
    without the codec server) cannot slip a plaintext signal or input past the worker."""
    forged = payload(b'{"event_type": "cleared"}')
    with pytest.raises(PlaintextPayloadError, match="CALLERLOOP_ACCEPT_PLAINTEXT_PAYLOADS=1"):
        await codec_from_spec(KEY_A).decode([forged])


async def test_payloads_from_before_encryption_are_read_only_when_the_migration_allows() -> None:
    plain = payload(b'"written before keys were configured"')
    migrating = codec_from_spec(KEY_A, accept_plaintext=True)
    assert await migrating.decode([plain]) == [plain]
    [sealed] = await migrating.encode([plain])  # what it writes is encrypted all the same
    assert sealed.metadata["encoding"] == ENCODING


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "item 1: expected KEY_ID:BASE64_KEY"),
        ("a", "item 1: expected KEY_ID:BASE64_KEY"),
        (f"{KEY_A},b:not base64!", "item 2 (b): not base64"),
        ("a:" + base64.b64encode(b"short").decode(), "key 'a' is 5 bytes, not 32"),
        ("bad id:" + KEY_A.partition(":")[2], "key id 'bad id'"),
    ],
    ids=["empty", "no-key", "not-base64", "too-short", "bad-id"],  # no random key in an id
)
def test_bad_key_configuration_says_what_and_where(spec: str, message: str) -> None:
    with pytest.raises(EncryptionKeyError, match=re.escape(message)):
        codec_from_spec(spec)
