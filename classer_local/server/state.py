"""The server's configuration and the state one app holds (keys, limiters, the model thread)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from starlette.requests import Request

from .. import threads
from .batching import MicroBatcher
from .keys import KeyStore
from .ratelimit import AuthThrottle, RateLimiter

MAX_BODY_BYTES = 1_000_000
MAX_UPLOAD_BYTES = 512 * 1024 * 1024
DEFAULT_PRELOAD = ("standard", "fast", "image")


@dataclass
class ServerConfig:
    """How ``create_app`` behaves; ``classer-local serve`` fills it from its flags.

    ``rpm``/``tpm`` are the limits of every key without its own (0: unlimited); the
    rate-limit headers report them. ``auth_failures_per_min`` failed authentications from one
    client address within a minute refuse that address (429) until the minute has aged
    (0: off). ``request_timeout_s`` is the wall-time budget of one scoring request (504
    ``request_timeout`` past it). ``preload``: tiers (``standard``, ``fast``, ``image``) or
    model names loaded and warmed before the port opens; ``()`` loads nothing up front.
    ``model_threads``: model calls at once (two where there are two cores: small batches run on
    one thread each, so one call at a time left a core idle).
    """

    auth: bool = True
    rpm: int = 600
    tpm: int = 1_000_000
    max_body_bytes: int = MAX_BODY_BYTES
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    batch_wait_ms: float = 2.0
    batch_max_items: int = 256
    model_threads: int = field(default_factory=lambda: min(2, threads.cores()))
    preload: Sequence[str] = DEFAULT_PRELOAD
    keys_path: str | None = None
    auth_failures_per_min: int = 30
    request_timeout_s: float = 60.0


class AppState:
    """What the routes share: set on ``app.state.classer`` by ``create_app``."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.keys = KeyStore(config.keys_path)
        self.limiter = RateLimiter()
        self.auth_throttle = AuthThrottle(config.auth_failures_per_min)
        self.batcher = MicroBatcher(config.batch_wait_ms, config.batch_max_items, workers=config.model_threads)
        self.ready = False
        self.preloaded: list[str] = []


def app_state(request: Request) -> AppState:
    return request.app.state.classer  # type: ignore[no-any-return]
