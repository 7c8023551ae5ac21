"""The HTTP app: the hosted API's wire format over the library, for ``classer-local serve``.

Every request passes through, in order: the body limit (1 MB on real-time routes), the
request id, authentication (``Authorization: Bearer <key>``; 401, 429 after too many
failures from one address), the key's token balance (402), its rate limits (429 with
``Retry-After``), then the route (``routes/``). Scoring routes go through the library's
front door (``service.score_async``) with the micro-batcher as its runner, so model work
happens in the one model thread. Every error body is ``ClasserError.to_dict()`` with the
status of ``server.errors.STATUS``.

Layout: ``state`` (config + shared state), ``schemas`` (pydantic models), ``deps`` (who is
calling), ``middleware``, ``convert`` (request -> Items), ``errors`` (status table and
handlers), ``routes/*`` (one ``APIRouter`` each).

Example:
    >>> from classer_local.server.app import ServerConfig, create_app
    >>> app = create_app(ServerConfig(auth=False, preload=()))  # doctest: +SKIP
    >>> # uvicorn.run(app, host="127.0.0.1", port=8000)
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .. import __version__, usagelog
from . import errors as server_errors
from .middleware import BodyLimitMiddleware, RequestIdMiddleware
from .routes import ROUTERS
from .state import AppState, ServerConfig

log = logging.getLogger("classer_local.server")


def _warm(name: str) -> str:
    """Load and warm one preload entry (``standard``, ``fast``, ``image`` or a model name) in this thread.

    The first call of a model pays for its lazy parts (tokenizer, graph, thread pools); one
    tiny call here moves that before the port opens.
    """
    from ..classifier import Item
    from ..options import PRIORITIES, ClassifierOptions

    if name == "image":
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.new("RGB", (32, 32), (200, 40, 40)).save(buf, format="PNG")
        clf = ClassifierOptions(labels=["red", "blue"], priority="fast").build(allow_paths=False)
        clf.run([Item(None, buf.getvalue())], "classify")
    else:
        tier = {"priority": name} if name in PRIORITIES else {"model": name}
        clf = ClassifierOptions(labels=["billing", "technical"], **tier).build(allow_paths=False)
        clf.run([Item("warming up the model")], "classify")
    return name


async def _preload(state: AppState) -> None:
    for name in state.config.preload:
        t0 = time.perf_counter()
        try:
            await state.batcher.call(_warm, name)
        except Exception as exc:  # noqa: BLE001 - a model that is not installed must not stop the server
            log.warning("preload %s skipped: %s", name, getattr(exc, "message", exc))
            continue
        state.preloaded.append(name)
        log.info("preloaded %s in %.1f s", name, time.perf_counter() - t0)


def create_app(config: ServerConfig | None = None) -> FastAPI:
    """The FastAPI app; one per process (it owns the model thread)."""
    config = config or ServerConfig()
    state = AppState(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Uvicorn opens the port only after this startup part: the first request finds warm models.
        await _preload(state)
        state.ready = True
        yield
        state.ready = False
        state.batcher.shutdown()
        usagelog.flush()
        state.keys.close()

    app = FastAPI(
        title="classer_local",
        version=__version__,
        lifespan=lifespan,
        description="Offline classification server speaking the hosted classification API.",
    )
    app.state.classer = state
    server_errors.install(app)
    limits: dict[str, int | None] = {"/v1/batch": None}
    app.add_middleware(BodyLimitMiddleware, limit=config.max_body_bytes, limits=limits)
    app.add_middleware(RequestIdMiddleware)
    for router in ROUTERS:
        app.include_router(router)
    return app


def serve(
    host: str = "127.0.0.1", port: int = 8000, config: ServerConfig | None = None, log_level: str = "info"
) -> None:
    """Run the server in this process (one process: the models are loaded once, before the port opens)."""
    import uvicorn

    from .. import threads

    threads.pin_single_blas()  # this process only serves: numpy's products here are all small
    uvicorn.run(
        create_app(config), host=host, port=port, log_level=log_level, workers=1, timeout_graceful_shutdown=5
    )


__all__ = ["ServerConfig", "create_app", "serve"]
