"""ASGI middleware: a request id on every request and response, and the body-size limit.

Both are plain ASGI (not ``BaseHTTPMiddleware``) so streaming responses and uploads pass
through untouched.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import InvalidRequestError
from ..request_ids import new_request_id
from .errors import error_response


class RequestIdMiddleware:
    """Give every request an id, and every response ``X-Request-ID`` plus the rate-limit headers.

    The route (or an auth dependency) leaves extra headers in ``request.state.headers``; they
    are added here so error responses carry them too.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["request_id"] = new_request_id()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                names = {k.lower() for k, _ in headers}
                extra = {
                    "x-request-id": state["request_id"],
                    **{k.lower(): v for k, v in (state.get("headers") or {}).items()},
                }
                for k, v in extra.items():
                    if k.encode() not in names:
                        headers.append((k.encode(), str(v).encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimitMiddleware:
    """Refuse bodies over ``limit`` bytes (413, typed body) before the app reads them.

    ``limits`` maps a path prefix to its own limit (None: the route streams and checks its
    own); the first match wins. The body of a limited path is read here (never more than
    ``limit`` bytes kept) and replayed to the app.
    """

    def __init__(self, app: ASGIApp, limit: int, limits: dict[str, int | None] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.limits = limits or {}

    def _limit_for(self, path: str) -> int | None:
        for prefix, limit in self.limits.items():
            if path.startswith(prefix):
                return limit
        return self.limit

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        err = InvalidRequestError(
            "request_too_large", f"The request body is larger than {limit} bytes.", {"max_bytes": limit}
        )
        await error_response(err)(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        limit = self._limit_for(scope["path"])
        if limit is None:
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await self._refuse(scope, receive, send, limit)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                await self._refuse(scope, receive, send, limit)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
