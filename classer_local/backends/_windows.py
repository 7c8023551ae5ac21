"""Fitting token sequences into a model's window: split and pool, cut, or refuse."""

from __future__ import annotations

from ..errors import InputTooLongError, InvalidRequestError

MAX_TEXT_TOKENS = 1_000_000
TRUNCATE_MODES = (None, "NONE", "START", "END")


def check_truncate(truncate: str | None) -> str | None:
    mode = None if truncate is None else str(getattr(truncate, "value", truncate)).upper()
    if mode not in TRUNCATE_MODES:
        raise InvalidRequestError(
            "invalid_truncate", f"truncate must be NONE, START or END, got {truncate!r}.", {"truncate": truncate}
        )
    return mode


def windows(ids: list[int], window: int, truncate: str | None, index: int = 0) -> list[list[int]]:
    """Split ``ids`` into chunks of at most ``window`` (``truncate=None``), or cut/refuse."""
    n = len(ids)
    if n > MAX_TEXT_TOKENS:
        raise InvalidRequestError(
            "text_too_long", f"Text {index} has {n} tokens; the limit is {MAX_TEXT_TOKENS}.",
            {"index": index, "tokens": n, "limit": MAX_TEXT_TOKENS},
        )
    if window <= 0 or n <= window:
        return [ids]
    if truncate == "NONE":
        raise InputTooLongError(
            "input_too_long",
            f"Text {index} has {n} tokens, over the model's window of {window}, and truncate is NONE.",
            {"index": index, "tokens": n, "window": window},
        )
    if truncate == "END":
        return [ids[:window]]
    if truncate == "START":
        return [ids[-window:]]
    return [ids[i : i + window] for i in range(0, n, window)]
