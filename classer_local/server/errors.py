"""Every error the server sends is a ``ClasserError.to_dict()`` body; its status comes from one table.

``STATUS_BY_ERROR`` (in ``classer_local.errors``) maps the error kind to a status; the
few codes whose status differs from their kind's are in ``STATUS_BY_CODE`` here.
Framework errors (validation, unknown route, wrong method, oversized body) and
unexpected exceptions are turned into the same body; a 500 never carries a traceback.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import (
    STATUS_BY_ERROR,
    ClasserError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    ServerError,
)

log = logging.getLogger("classer_local.server")

STATUS_BY_CODE: dict[str, int] = {
    "request_too_large": 413,
    "method_not_allowed": 405,
    "unsupported_media_type": 415,
    "not_implemented": 501,
}


def status_for(exc: ClasserError) -> int:
    return STATUS_BY_CODE.get(exc.code, STATUS_BY_ERROR.get(exc.error, exc.status))


def error_response(exc: ClasserError, headers: dict[str, str] | None = None) -> JSONResponse:
    extra = dict(headers or {})
    if isinstance(exc, RateLimitError):
        extra["Retry-After"] = str(max(1, int(-(-exc.retry_after // 1))))
    return JSONResponse(exc.to_dict(), status_code=status_for(exc), headers=extra)


def _rl_headers(request: Request) -> dict[str, str]:
    return dict(getattr(request.state, "headers", None) or {})


async def on_classer_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ClasserError)
    headers = _rl_headers(request)
    rid = getattr(request.state, "request_id", None)
    if rid:
        headers["X-Request-ID"] = rid
    return error_response(exc, headers)


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    errors: list[dict[str, Any]] = getattr(exc, "errors", list)()
    # Keep loc/msg/type: "input" and "ctx" may hold the raw (possibly huge or unserialisable) value.
    slim = [
        {
            "loc": [_jsonable(x) for x in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in errors[:20]
    ]
    first = slim[0] if slim else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(x) for x in first["loc"] if x != "body") or "body"
    err = InvalidRequestError(
        "request_invalid", f"Invalid request: {where}: {first['msg']}.", {"errors": slim}
    )
    return await on_classer_error(request, err)


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    err: ClasserError
    if exc.status_code == 404:
        err = NotFoundError(
            "route_not_found", f"No route {request.method} {request.url.path}.", {"path": request.url.path}
        )
    elif exc.status_code == 405:
        err = InvalidRequestError(
            "method_not_allowed",
            f"{request.method} is not allowed on {request.url.path}.",
            {"method": request.method, "path": request.url.path},
        )
    elif exc.status_code == 413:
        err = InvalidRequestError("request_too_large", str(exc.detail))
    elif exc.status_code < 500:
        err = InvalidRequestError("request_invalid", str(exc.detail))
    else:
        err = ServerError("internal_error", "The server failed to handle this request.")
    return await on_classer_error(request, err)


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    rid = getattr(request.state, "request_id", None)
    log.exception("unhandled error in %s %s (request %s)", request.method, request.url.path, rid)
    err = ServerError(
        "internal_error", "The server failed to handle this request; it has been logged.", {"request_id": rid}
    )
    return await on_classer_error(request, err)


def install(app: Any) -> None:
    from fastapi.exceptions import RequestValidationError

    app.add_exception_handler(ClasserError, on_classer_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)


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
