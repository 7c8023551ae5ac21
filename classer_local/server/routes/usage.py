"""``/v1/usage`` (totals and groups) and ``/v1/logs`` (rows): admins see every key's, others their own."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from ... import usagelog
from ...errors import InvalidRequestError
from ..convert import check_strings
from ..deps import Authed, Caller
from ..schemas import ERRORS, UsageGroup

router = APIRouter(tags=["usage"], responses=ERRORS)
MAX_LOG_ROWS = 1000


def _scope(caller: Caller, key_id: str | None) -> str | None:
    # A key that is not admin sees only its own rows, whatever key_id it asks for.
    return key_id if caller.admin else caller.key_id


def _time_arg(value: str | None, name: str) -> Any:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequestError(
            f"{name}_invalid", f"{name} must be an ISO time or Unix seconds.", {name: value}
        ) from None
    return value


@router.get("/v1/usage")
async def usage(
    caller: Authed,
    since: str | None = None,
    until: str | None = None,
    group_by: UsageGroup | None = "day",
    endpoint: str | None = None,
    model: str | None = None,
    key_id: str | None = None,
) -> dict[str, Any]:
    """Requests, items, tokens and latency, grouped by day/hour/month/endpoint/model/key."""
    check_strings([since, until, endpoint, model, key_id])
    return await run_in_threadpool(
        lambda: usagelog.usage(
            since=_time_arg(since, "since"),
            until=_time_arg(until, "until"),
            group_by=group_by,
            endpoint=endpoint,
            model=model,
            key_id=_scope(caller, key_id),
        )
    )


@router.get("/v1/logs")
async def logs(
    caller: Authed,
    limit: int = Query(100, ge=1, le=MAX_LOG_ROWS),
    offset: int = Query(0, ge=0, le=2**62),
    since: str | None = None,
    until: str | None = None,
    endpoint: str | None = None,
    status: str | None = None,
    cached: bool | None = None,
    key_id: str | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """One row per request, newest first."""
    check_strings([since, until, endpoint, status, key_id, request_id])
    rows = await run_in_threadpool(
        lambda: usagelog.logs(
            limit=MAX_LOG_ROWS if request_id else limit,
            offset=offset,
            since=_time_arg(since, "since"),
            until=_time_arg(until, "until"),
            endpoint=endpoint,
            status=status,
            cached=cached,
            key_id=_scope(caller, key_id),
        )
    )
    if request_id:
        rows = [r for r in rows if r["request_id"] == request_id][:limit]
    return {"logs": rows}
