"""Every error the server sends is a ``ClasserError.to_dict()`` body; its status comes from one table.

``errors.STATUS`` (re-exported here) is the only place an HTTP status is chosen: by the error's
kind (``error``), except the few codes whose status differs from their kind's. Framework errors
(validation, unknown route, wrong method, oversized body) and unexpected exceptions are
turned into the same body; a 500 never carries a traceback.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from ..errors import (
    STATUS,
    ClasserError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    ServerError,
    status_for,
)

__all__ = ["STATUS", "error_response", "error_statuses", "status_for"]

log = logging.getLogger("classer_local.server")


def error_statuses() -> list[int]:
    """Every status an error may have, for the OpenAPI ``responses`` of the routes."""
    return sorted(set(STATUS.values()))


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
        allowed = allowed_methods(request)
        err = InvalidRequestError(
            "method_not_allowed",
            f"{request.method} is not allowed on {request.url.path}.",
            {"method": request.method, "path": request.url.path, "allowed": allowed},
        )
        response = await on_classer_error(request, err)
        response.headers["Allow"] = ", ".join(allowed)
        return response
    elif exc.status_code == 413:
        err = InvalidRequestError("request_too_large", str(exc.detail))
    elif exc.status_code < 500:
        err = InvalidRequestError("request_invalid", str(exc.detail))
    else:
        err = ServerError("internal_error", "The server failed to handle this request.")
    return await on_classer_error(request, err)


def _routes(routes: Any) -> Any:
    for route in routes:
        inner = getattr(route, "original_router", None)  # an included APIRouter (no prefix here)
        if inner is not None:
            yield from _routes(inner.routes)
        else:
            yield route


def allowed_methods(request: Request) -> list[str]:
    """The methods of every route matching this path (a path may have one route per method)."""
    path = request.url.path
    methods: set[str] = set()
    for route in _routes(request.app.router.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


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
