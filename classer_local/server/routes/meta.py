"""``/health`` (no key) and ``/v1/models``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ... import __version__
from ..deps import Authed
from ..schemas import ERRORS
from ..state import app_state

router = APIRouter(tags=["meta"])


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    """Readiness (200 once the preloaded models are loaded and warm, 503 before) and batching counters."""
    st = app_state(request)
    body: dict[str, Any] = {
        "status": "ok" if st.ready else "loading",
        "ready": st.ready,
        "version": __version__,
        "auth": st.config.auth,
        "preloaded": list(st.preloaded),
        "batching": st.batcher.stats.to_dict(),
    }
    return JSONResponse(body, status_code=200 if st.ready else 503)


@router.get("/v1/models", responses=ERRORS)
async def models(caller: Authed) -> dict[str, Any]:
    """Every model in models.toml and whether it is installed here."""
    from ...registry import models as list_models

    return {"models": await run_in_threadpool(list_models)}
