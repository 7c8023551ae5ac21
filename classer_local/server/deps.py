"""Who is calling, and may they: authentication, throttling and metering as FastAPI dependencies.

Every ``/v1`` and ``/cohere`` route takes ``Authed`` (a valid key, within its request
rate) or ``Metered`` (also: balance left, within its token rate). The caller's key id is
then passed explicitly to whatever records usage or owns objects; nothing is kept in
global or context-variable state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from ..errors import (
    AuthenticationError,
    InsufficientBalanceError,
    PermissionDeniedError,
    RateLimitError,
)
from .ratelimit import Decision
from .state import app_state


@dataclass
class Caller:
    """Who is calling: a key's public row, or None when the server runs with ``--no-auth``."""

    key: dict[str, Any] | None
    decision: Decision | None = None

    @property
    def key_id(self) -> str | None:
        return self.key["id"] if self.key else None

    @property
    def admin(self) -> bool:
        return self.key is None or bool(self.key["admin"])

    def may_read(self, owner: str | None, shared: bool = False) -> bool:
        """Admins read everything; other keys what they made, and what is shared."""
        return self.admin or bool(shared) or (owner is not None and owner == self.key_id)

    def may_change(self, owner: str | None) -> bool:
        """Admins change everything; other keys only what they made."""
        return self.admin or (owner is not None and owner == self.key_id)


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _identify(request: Request) -> Caller:
    st = app_state(request)
    if not st.config.auth:
        return Caller(None)
    address = _address(request)
    wait = st.auth_throttle.blocked(address)
    if wait:
        limit = st.auth_throttle.limit
        raise RateLimitError(
            "too_many_auth_failures",
            f"Too many failed authentications from this address ({limit} a minute); try again later.",
            {"limit": limit, "retry_after_s": round(wait, 3)},
            retry_after=wait,
        )
    try:
        return Caller(_verify(request))
    except AuthenticationError:
        st.auth_throttle.fail(address)
        raise


def _verify(request: Request) -> dict[str, Any]:
    st = app_state(request)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        if st.keys.count() == 0:
            raise AuthenticationError(
                "no_api_keys",
                "This server requires an API key and none exists yet. Create one with "
                "`classer-local keys create --name NAME --admin`, or start the server with --no-auth.",
            )
        raise AuthenticationError("missing_api_key", "Pass your API key as `Authorization: Bearer <key>`.")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("invalid_authorization", "The Authorization header must be `Bearer <key>`.")
    return st.keys.verify(token.strip())


async def authenticate(request: Request) -> Caller:
    """The caller's key, checked (401) and within its request rate limit (429)."""
    caller = await _identify(request)
    if caller.key is not None:
        _admit(request, caller, tokens=False)
    return caller


async def metered(request: Request) -> Caller:
    """As ``authenticate``, for routes that spend tokens: balance left (402) and token rate limit (429)."""
    caller = await _identify(request)
    if caller.key is not None:
        quota, used = caller.key["quota"], caller.key["used"]
        if quota is not None and used >= quota:
            raise InsufficientBalanceError(
                "balance_exhausted",
                f"This key has used its quota of {quota} tokens. Ask an admin to raise it.",
                {"quota": quota, "used": used, "remaining": 0},
            )
        _admit(request, caller, tokens=True)
    return caller


def _admit(request: Request, caller: Caller, tokens: bool) -> None:
    st = app_state(request)
    key = caller.key
    assert key is not None
    rpm = st.config.rpm if key["rpm"] is None else key["rpm"]
    tpm = st.config.tpm if key["tpm"] is None else key["tpm"]
    decision = st.limiter.check(key["id"], rpm=rpm, tpm=tpm, enforce_tokens=tokens)
    request.state.headers = decision.headers()
    if not decision.allowed:
        if decision.reason == "requests":
            raise RateLimitError(
                "rate_limit_requests",
                f"Rate limit of {rpm} requests/min reached.",
                {"limit": rpm, "retry_after_s": round(decision.retry_after, 3)},
                retry_after=decision.retry_after,
            )
        raise RateLimitError(
            "rate_limit_tokens",
            f"Token rate limit of {tpm} tokens/min reached.",
            {"limit_tokens": tpm, "retry_after_s": round(decision.retry_after, 3)},
            retry_after=decision.retry_after,
        )
    caller.decision = decision


async def bill(request: Request, caller: Caller, tokens: int) -> None:
    """Charge ``tokens`` to the caller's balance and token window, and refresh the token headers."""
    if caller.key is None or tokens <= 0:
        return
    st = app_state(request)
    st.limiter.record(caller.key["id"], tokens)
    await run_in_threadpool(st.keys.charge, caller.key["id"], tokens)
    if caller.decision is not None and caller.decision.token_limit:
        left = max(0, caller.decision.tokens_remaining - tokens)
        headers = dict(getattr(request.state, "headers", None) or {})
        headers["X-RateLimit-Remaining-Tokens"] = str(left)
        request.state.headers = headers


def require_admin(caller: Caller) -> None:
    """403 ``forbidden`` for a key that is not an admin's."""
    if not caller.admin:
        raise PermissionDeniedError("forbidden", "This needs an admin key.")


Authed = Annotated[Caller, Depends(authenticate)]
Metered = Annotated[Caller, Depends(metered)]
