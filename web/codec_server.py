"""The codec server: lets an authorised operator's Temporal Web UI decrypt (and encrypt,
for signals it sends) callerloop's payloads, following Temporal's remote codec protocol:
`POST /codec/decode` and `/codec/encode` with `{"payloads": [...]}` as protobuf JSON.

Who may use it: a bearer token from CALLERLOOP_CODEC_ACCESS_TOKENS (the UI forwards the
operator's token with `codec.passAccessToken`), or, when none is configured, only this
machine (the `make run` stack). Browsers may call it only from the UI origins in
CALLERLOOP_CODEC_CORS_ORIGINS. Start the UI with `--ui-codec-endpoint <web app>/codec`.

It decodes as the worker does: a payload that is not encrypted is refused (422, saying
so), unless CALLERLOOP_ACCEPT_PLAINTEXT_PAYLOADS=1 reads histories written before
encryption was turned on. A plaintext payload in a call's history was written by a
client without the keys, and the operator should see that, not a normal-looking value.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, HTTPException, Request, status
from fastapi.middleware.cors import CORSMiddleware
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload, Payloads

from callerloop.core.codec import EncryptionCodec, EncryptionKeyError

log = structlog.get_logger("web.codec_server")

Transform = Callable[[Sequence[Payload]], Awaitable[list[Payload]]]


def codec_app(
    codec: EncryptionCodec, cors_origins: Sequence[str], access_tokens: Sequence[str]
) -> FastAPI:
    """A sub-application to mount at /codec (CORS applies to it alone)."""
    app = FastAPI(title="callerloop codec server", docs_url=None, redoc_url=None)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(cors_origins),
        allow_methods=["POST"],
        allow_headers=["Content-Type", "Authorization", "X-Namespace"],
        allow_credentials=True,
    )
    tokens = [token for token in access_tokens if token]

    def authorise(request: Request) -> None:
        if tokens:
            scheme, _, presented = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not any(
                hmac.compare_digest(presented.strip(), token) for token in tokens
            ):
                raise HTTPException(status.HTTP_401_UNAUTHORIZED, "codec access token needed")
        elif not _is_local(request):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                "no codec access tokens configured: only this machine may decrypt",
            )

    async def transform(request: Request, apply: Transform, action: str) -> dict[str, Any]:
        authorise(request)
        try:
            payloads = json_format.Parse(await request.body(), Payloads())
        except (json_format.ParseError, DecodeError, UnicodeDecodeError) as error:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, f"expected Temporal Payloads JSON: {error}"
            ) from None
        try:
            result = await apply(payloads.payloads)
        except (EncryptionKeyError, ValueError) as error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None
        log.info(
            f"codec {action}",
            namespace=request.headers.get("x-namespace"),
            payloads=len(result),
            client=request.client.host if request.client else None,
        )
        answer: dict[str, Any] = json_format.MessageToDict(Payloads(payloads=result))
        return answer

    @app.post("/decode")
    async def decode(request: Request) -> dict[str, Any]:
        return await transform(request, codec.decode, "decode")

    @app.post("/encode")
    async def encode(request: Request) -> dict[str, Any]:
        return await transform(request, codec.encode, "encode")

    return app


def _is_local(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
