"""Per-key rate limits (requests and tokens per minute) and per-address auth-failure throttling.

Both keep an exact log over a sliding 60 s window, so ``Retry-After`` is the time until
enough of it has aged out, not a guess. Memory per key is bounded by its request limit;
memory per address by the failure limit (and addresses are forgotten once their window is
empty).

Example:
    >>> rl = RateLimiter()
    >>> rl.check("k", rpm=1, tpm=0, now=0.0).allowed
    True
    >>> rl.record("k", tokens=5, now=0.0)
    >>> rl.check("k", rpm=1, tpm=0, now=1.0).retry_after
    59.0
    >>> t = AuthThrottle(limit=2)
    >>> t.fail("10.0.0.1", now=0.0); t.fail("10.0.0.1", now=1.0)
    >>> round(t.blocked("10.0.0.1", now=2.0), 1)
    58.0
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

WINDOW_S = 60.0
MAX_ADDRESSES = 10_000
"""Addresses with failures kept before the quiet ones (nothing within the window) are swept."""
UNLIMITED = 2**62
"""What the headers report for a limit of 0 (no limit): a count no client will reach."""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int  # requests per window; 0 means unlimited
    remaining: int
    reset_s: float  # seconds until the oldest request in the window ages out
    retry_after: float = 0.0
    reason: str = ""  # "requests" or "tokens" when refused
    token_limit: int = 0  # tokens per window; 0 means unlimited
    tokens_remaining: int = 0

    def headers(self) -> dict[str, str]:
        """The seeds' five rate-limit headers, always all five (an unlimited count reads ``UNLIMITED``)."""
        return {
            "X-RateLimit-Limit-Requests": str(self.limit or UNLIMITED),
            "X-RateLimit-Remaining-Requests": str(self.remaining if self.limit else UNLIMITED),
            "X-RateLimit-Limit-Tokens": str(self.token_limit or UNLIMITED),
            "X-RateLimit-Remaining-Tokens": str(self.tokens_remaining if self.token_limit else UNLIMITED),
            "X-RateLimit-Reset": str(math.ceil(max(self.reset_s, 0.0))),
        }


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

    def check(
        self, key: str, *, rpm: int, tpm: int, now: float | None = None, enforce_tokens: bool = True
    ) -> Decision:
        """Whether ``key`` may make one more request now; admits it (counts it) if so.

        ``enforce_tokens=False`` (routes that spend no tokens) still reports the token window.
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            log = self._window(key, now)
            used_tokens = int(sum(e[1] for e in log))
            reset = (log[0][0] + self.window_s - now) if log else 0.0
            retry = 0.0
            reason = ""
            if rpm and len(log) >= rpm:
                retry, reason = log[len(log) - rpm][0] + self.window_s - now, "requests"
            elif enforce_tokens and tpm and used_tokens >= tpm:
                excess, t = used_tokens - tpm, 0.0
                for when, tokens in log:  # wait until enough tokens have aged out
                    excess -= int(tokens)
                    t = when
                    if excess < 0:
                        break
                retry, reason = t + self.window_s - now, "tokens"
            tokens_left = max(0, tpm - used_tokens)
            if reason:
                return Decision(
                    False, rpm, max(0, rpm - len(log)), reset, max(retry, 0.001), reason, tpm, tokens_left
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
                tokens_left,
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


class AuthThrottle:
    """Failed authentications per client address; past ``limit`` a minute the address is refused.

    Checked before a key is verified, so a throttled address learns nothing from its guesses
    (a right key is refused too until the window has aged). ``limit`` 0 turns it off.
    """

    def __init__(self, limit: int, window_s: float = WINDOW_S) -> None:
        self.limit = max(0, int(limit))
        self.window_s = window_s
        self._fails: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _window(self, address: str, now: float) -> deque[float]:
        log = self._fails.get(address)
        if log is None:
            return deque()
        while log and log[0] <= now - self.window_s:
            log.popleft()
        if not log:
            del self._fails[address]
        return log

    def blocked(self, address: str, now: float | None = None) -> float:
        """Seconds until ``address`` may try again; 0.0 when it may now."""
        if not self.limit:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            log = self._window(address, now)
            if len(log) < self.limit:
                return 0.0
            return max(log[len(log) - self.limit] + self.window_s - now, 0.001)

    def fail(self, address: str, now: float | None = None) -> None:
        """Count one failed authentication from ``address``."""
        if not self.limit:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._fails) >= MAX_ADDRESSES:  # many addresses (IPv6): forget the quiet ones
                for quiet in [a for a, q in self._fails.items() if q[-1] <= now - self.window_s]:
                    del self._fails[quiet]
            log = self._window(address, now)
            if not log:
                log = self._fails[address] = deque()
            log.append(now)
            while len(log) > self.limit:  # older failures no longer change the answer
                log.popleft()
