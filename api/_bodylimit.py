"""Request bodies capped at `ZHONGDU_API_MAX_BODY_BYTES`: a 413 with a message, before any parsing.

A declared `Content-Length` over the cap is refused at once; a chunked body is counted as it
arrives and refused when it passes the cap, so no request can make the API buffer more.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    """Raised from `receive` when a streamed body passes the cap."""


def _response(limit: int) -> tuple[Message, Message]:
    body = json.dumps(
        {"detail": f"request body larger than {limit} bytes (ZHONGDU_API_MAX_BODY_BYTES)"}
    ).encode()
    start: Message = {
        "type": "http.response.start",
        "status": 413,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    return start, {"type": "http.response.body", "body": body}


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope.get("headers", []) if k == b"content-length"), None)
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            for message in _response(self.max_bytes):
                await send(message)
            return
        seen = 0
        exceeded = False

        async def counting_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # the app may turn the interrupted read into its own error answer: answer 413 instead
            if exceeded:
                if message["type"] == "http.response.start":
                    for ours in _response(self.max_bytes):
                        await send(ours)
                return
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            for message in _response(self.max_bytes):
                await send(message)
