"""The API's routes, one ``APIRouter`` per group; ``create_app`` includes them all."""

from __future__ import annotations

from . import classifiers, classify, jobs, keys, meta, usage

ROUTERS = (meta.router, classify.router, keys.router, usage.router, classifiers.router, jobs.router)

__all__ = ["ROUTERS"]
