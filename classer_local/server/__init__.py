"""The HTTP server (``classer-local serve``): FastAPI app, API keys, rate limits, micro-batching.

Needs the ``server`` extra (fastapi, uvicorn, python-multipart). See ``docs/server.md``.

Example:
    >>> from classer_local.server import ServerConfig, create_app   # doctest: +SKIP
    >>> app = create_app(ServerConfig(auth=False))                   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServerConfig", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module 'classer_local.server' has no attribute {name!r}")
