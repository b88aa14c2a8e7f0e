"""The request-body limit of both web apps (the reward server and the annotation app).

A body over the limit is refused with 413 as soon as that is known: at once when
its ``Content-Length`` says so, otherwise while it is read, chunk by chunk, so a
huge or endless chunked body never sits in memory. The HTTP server then reads the
rest of the body and throws it away (uvicorn drops body data that arrives after
the response), so a client that sends its whole body before reading the answer
still gets the 413, not a reset, and the keep-alive connection stays usable.

Each app renders the refusal in its own error format: ``refuse(status, message)``
returns the response, and :class:`BodyTooLarge` (raised while the app reads the
body) is an ``HTTPException``, so the app's exception handlers answer it.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse, Response


class BodyTooLarge(HTTPException):
    """The body passed ``max_bytes`` while being read."""

    def __init__(self, max_bytes: int):
        super().__init__(413, f"request body is larger than the limit of {max_bytes} bytes")
        self.max_bytes = max_bytes


def plain_refusal(status: int, message: str) -> Response:
    return PlainTextResponse(message, status_code=status)


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413, by header or by counting (plain ASGI)."""

    def __init__(self, app, max_bytes: int, refuse: Callable[[int, str], Response] = plain_refusal):
        self.app, self.max_bytes, self.refuse = app, max_bytes, refuse

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and not length.isdigit():
            return await self._refuse(scope, receive, send, 400, "bad Content-Length header")
        if length is not None and int(length) > self.max_bytes:
            return await self._refuse(scope, receive, send, 413, str(BodyTooLarge(self.max_bytes).detail))
        seen = 0
        started = False

        async def counted_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracked_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge as exc:  # the app had no handler for it
            if started:
                raise
            await self._refuse(scope, receive, send, 413, str(exc.detail))

    async def _refuse(self, scope, receive, send, status: int, message: str) -> None:
        await self.refuse(status, message)(scope, receive, send)
