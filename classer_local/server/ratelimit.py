"""Per-key rate limits: requests per minute and tokens per minute over a sliding 60 s window.

The window is an exact log of (time, tokens) per key, so ``Retry-After`` is the time until
enough of it has aged out, not a guess. Memory per key is bounded by its request limit.

Example:
    >>> rl = RateLimiter()
    >>> rl.check("k", rpm=1, tpm=0, now=0.0).allowed
    True
    >>> rl.record("k", tokens=5, now=0.0)
    >>> rl.check("k", rpm=1, tpm=0, now=1.0).retry_after
    59.0
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

WINDOW_S = 60.0


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int  # requests per window; 0 means unlimited
    remaining: int
    reset_s: float  # seconds until the oldest request in the window ages out
    retry_after: float = 0.0
    reason: str = ""  # "requests" or "tokens" when refused
    token_limit: int = 0
    tokens_remaining: int = 0

    def headers(self) -> dict[str, str]:
        if not self.limit and not self.token_limit:
            return {}
        out = {}
        if self.limit:
            out.update(
                {
                    "X-RateLimit-Limit": str(self.limit),
                    "X-RateLimit-Remaining": str(self.remaining),
                    "X-RateLimit-Reset": str(math.ceil(self.reset_s)),
                }
            )
        if self.token_limit:
            out.update(
                {
                    "X-RateLimit-Limit-Tokens": str(self.token_limit),
                    "X-RateLimit-Remaining-Tokens": str(self.tokens_remaining),
                }
            )
        return out


class RateLimiter:
    def __init__(self, window_s: float = WINDOW_S) -> None:
        self.window_s = window_s
        self._log: dict[str, deque[list[float]]] = {}
        self._lock = threading.Lock()

    def _window(self, key: str, now: float) -> deque[list[float]]:
        log = self._log.setdefault(key, deque())
        while log and log[0][0] <= now - self.window_s:
            log.popleft()
        return log

    def check(self, key: str, *, rpm: int, tpm: int, now: float | None = None) -> Decision:
        """Whether ``key`` may make one more request now; admits it (counts it) if so."""
        now = time.monotonic() if now is None else now
        with self._lock:
            log = self._window(key, now)
            used_tokens = int(sum(e[1] for e in log))
            reset = (log[0][0] + self.window_s - now) if log else 0.0
            retry = 0.0
            reason = ""
            if rpm and len(log) >= rpm:
                retry, reason = log[len(log) - rpm][0] + self.window_s - now, "requests"
            elif tpm and used_tokens >= tpm:
                excess, t = used_tokens - tpm, 0.0
                for when, tokens in log:  # wait until enough tokens have aged out
                    excess -= int(tokens)
                    t = when
                    if excess < 0:
                        break
                retry, reason = t + self.window_s - now, "tokens"
            if reason:
                return Decision(
                    False,
                    rpm,
                    max(0, rpm - len(log)),
                    reset,
                    max(retry, 0.001),
                    reason,
                    tpm,
                    max(0, tpm - used_tokens),
                )
            log.append([now, 0.0])
            return Decision(
                True,
                rpm,
                max(0, rpm - len(log)) if rpm else 0,
                (log[0][0] + self.window_s - now),
                0.0,
                "",
                tpm,
                max(0, tpm - used_tokens),
            )

    def record(self, key: str, tokens: int, now: float | None = None) -> None:
        """Count ``tokens`` against the request ``check`` last admitted for ``key``."""
        if tokens <= 0:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            log = self._window(key, now)
            if log:
                log[-1][1] += tokens
            else:
                log.append([now, float(tokens)])
