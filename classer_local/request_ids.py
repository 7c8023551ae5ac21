"""Request ids: the one place they are made (library results, the server, usage rows)."""

from __future__ import annotations

import os


def new_request_id() -> str:
    """A fresh id in the hosted API's shape.

    Example:
        >>> new_request_id().startswith("req_") and len(new_request_id()) == 28
        True
    """
    return "req_" + os.urandom(12).hex()  # 4 µs where uuid4 took 17: a fast-tier row costs ~40


def new_request_ids(n: int) -> list[str]:
    """``n`` fresh ids from one ``os.urandom`` call (a batch's rows: one system call, not ``n``).

    Example:
        >>> ids = new_request_ids(3)
        >>> len(set(ids)) == 3 and all(i.startswith("req_") and len(i) == 28 for i in ids)
        True
    """
    raw = os.urandom(12 * n).hex()
    return ["req_" + raw[24 * i : 24 * i + 24] for i in range(n)]
