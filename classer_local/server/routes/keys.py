"""API keys (``/v1/keys``: admins create; every key sees itself) and ``/v1/balance``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from ..convert import check_strings
from ..deps import Authed, require_admin
from ..schemas import ERRORS, KeyCreateRequest
from ..state import app_state

router = APIRouter(tags=["keys"], responses=ERRORS)


@router.get("/v1/keys")
async def list_keys(request: Request, caller: Authed) -> dict[str, Any]:
    """Every key (admin), or the caller's own."""
    st = app_state(request)
    if caller.key is not None and not caller.admin:
        return {"keys": [await run_in_threadpool(st.keys.get, caller.key["id"])]}
    return {"keys": await run_in_threadpool(st.keys.list)}


@router.post("/v1/keys", status_code=201)
async def create_key(body: KeyCreateRequest, request: Request, caller: Authed) -> dict[str, Any]:
    """A new key (admin only: 403 ``forbidden`` otherwise); the full key is in this answer only."""
    require_admin(caller)
    check_strings(body.name)
    st = app_state(request)
    key, row = await run_in_threadpool(
        lambda: st.keys.create(body.name, quota=body.quota, rpm=body.rpm, tpm=body.tpm, admin=body.admin)
    )
    return {"key": key, **row}


@router.get("/v1/balance")
async def balance(request: Request, caller: Authed) -> dict[str, Any]:
    """The caller's quota, tokens used and tokens left."""
    if caller.key is None:
        return {"key_id": None, "name": None, "quota": None, "used": None, "remaining": None}
    row = await run_in_threadpool(app_state(request).keys.get, caller.key["id"])
    return {k: row[k] for k in ("name", "quota", "used", "remaining")} | {"key_id": row["id"]}
