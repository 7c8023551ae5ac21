"""Usage and request logs in SQLite under ``CLASSER_HOME`` (``usage.sqlite3``).

Calls enqueue a row; a background thread writes queued rows in one transaction, so
logging costs a warm call microseconds, not a disk sync. Rows are flushed before any
read and at exit. Turn logging off with ``CLASSER_USAGE=0`` or ``set_enabled(False)``.

Example:
    >>> import classer_local as cl                          # doctest: +SKIP
    >>> cl.usage(group_by="day")["totals"]["requests"]      # doctest: +SKIP
    12
"""

from __future__ import annotations

import atexit
import queue
import sqlite3
import threading
import time
from datetime import UTC, datetime
from typing import Any

from . import config
from .request_ids import new_request_id

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY,
    ts REAL NOT NULL,
    endpoint TEXT NOT NULL,
    model TEXT,
    labels INTEGER,
    items INTEGER,
    tokens INTEGER,
    visual_tokens INTEGER,
    latency_ms REAL,
    cached_items INTEGER,
    status TEXT,
    error_code TEXT,
    key_id TEXT
);
CREATE INDEX IF NOT EXISTS requests_ts ON requests(ts);
"""
_COLUMNS = ("request_id", "ts", "endpoint", "model", "labels", "items", "tokens", "visual_tokens",
            "latency_ms", "cached_items", "status", "error_code", "key_id")
GROUPS = {"day": "%Y-%m-%d", "hour": "%Y-%m-%dT%H:00", "month": "%Y-%m"}

_enabled = config.env_flag("CLASSER_USAGE", True)
_queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
_writer: threading.Thread | None = None
_lock = threading.Lock()
_idle = threading.Condition()


def set_enabled(enabled: bool) -> None:
    """Turn usage logging on or off for this process."""
    global _enabled
    _enabled = bool(enabled)


def enabled() -> bool:
    return _enabled


def _db_path() -> str:
    return str(config.home() / "usage.sqlite3")


def connect() -> sqlite3.Connection:
    con = sqlite3.connect(_db_path(), timeout=30, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.executescript(_SCHEMA)
    return con


def _write_loop() -> None:
    path = _db_path()
    con = connect()
    placeholders = ",".join("?" * len(_COLUMNS))
    sql = f"INSERT OR REPLACE INTO requests ({','.join(_COLUMNS)}) VALUES ({placeholders})"
    while True:
        row = _queue.get()
        rows = [row]
        while True:
            try:
                rows.append(_queue.get_nowait())
            except queue.Empty:
                break
        real = [r for r in rows if r is not None]
        if real and _db_path() != path:  # CLASSER_HOME changed: follow it
            con.close()
            path = _db_path()
            con = connect()
        if real:
            con.execute("BEGIN")
            con.executemany(sql, real)
            con.execute("COMMIT")
        for _ in rows:
            _queue.task_done()


def _ensure_writer() -> None:
    global _writer
    if _writer is None or not _writer.is_alive():
        with _lock:
            if _writer is None or not _writer.is_alive():
                _writer = threading.Thread(target=_write_loop, name="classer-usage", daemon=True)
                _writer.start()


def flush() -> None:
    """Block until every queued row is on disk."""
    if _writer is not None and _writer.is_alive():
        _queue.join()


atexit.register(flush)


def record(*, endpoint: str, model: str | None, labels: int = 0, items: int = 1, tokens: int = 0,
           visual_tokens: int = 0, latency_ms: float = 0.0, cached_items: int = 0, status: str = "ok",
           error_code: str | None = None, request_id: str | None = None, key_id: str | None = None) -> None:
    """Queue one request row; ``key_id`` is the caller's API key (passed by whoever knows it)."""
    if not _enabled:
        return
    _ensure_writer()
    _queue.put((request_id or new_request_id(), time.time(), endpoint, model, labels, items,
                tokens, visual_tokens, round(latency_ms, 3), cached_items, status, error_code,
                key_id))


def record_results(*, endpoint: str, model: str, labels: int, results: list[Any], latency_ms: float) -> None:
    """One row for a call that returned ``results``; tokens on cache hits are not counted."""
    if not _enabled:
        return
    fresh = [r for r in results if not r.cached]
    record(endpoint=endpoint, model=model, labels=labels, items=len(results),
           tokens=sum(r.tokens for r in fresh), visual_tokens=sum(r.visual_tokens for r in fresh),
           latency_ms=latency_ms, cached_items=len(results) - len(fresh),
           request_id=results[0].request_id if len(results) == 1 else None)


def _ts(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    text = str(value)
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def _where(since: Any, until: Any, filters: dict[str, Any]) -> tuple[str, list[Any]]:
    clauses, args = [], []
    if since is not None:
        clauses.append("ts >= ?")
        args.append(_ts(since))
    if until is not None:
        clauses.append("ts < ?")
        args.append(_ts(until))
    for col in ("endpoint", "model", "status", "error_code", "key_id"):
        if filters.get(col) is not None:
            clauses.append(f"{col} = ?")
            args.append(filters[col])
    if filters.get("cached") is not None:
        clauses.append("cached_items > 0" if filters["cached"] else "cached_items = 0")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    pos = (len(values) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(values) - 1)
    return round(values[lo] + (values[hi] - values[lo]) * (pos - lo), 3)


def _summary(rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    items = sum(r[1] for r in rows)
    cached = sum(r[2] for r in rows)
    lat = [r[5] for r in rows]
    return {
        "requests": len(rows),
        "items": items,
        "tokens": sum(r[3] for r in rows),
        "visual_tokens": sum(r[4] for r in rows),
        "errors": sum(1 for r in rows if r[6] != "ok"),
        "cache_hits": cached,
        "cache_hit_rate": round(cached / items, 4) if items else 0.0,
        "latency_ms_p50": _percentile(lat, 0.5),
        "latency_ms_p95": _percentile(lat, 0.95),
    }


def usage(since: Any = None, until: Any = None, group_by: str | None = "day", **filters: Any) -> dict[str, Any]:
    """Totals (requests, tokens, cache hit rate, p50/p95 latency) and the same per group.

    ``group_by``: ``"day"``, ``"hour"``, ``"month"``, ``"endpoint"``, ``"model"``, ``"key_id"`` or None.
    ``since``/``until``: datetimes, ISO strings or Unix seconds.
    """
    flush()
    where, args = _where(since, until, filters)
    with connect() as con:
        rows = con.execute(
            f"SELECT ts, items, cached_items, tokens, visual_tokens, latency_ms, status, endpoint, model, key_id "
            f"FROM requests{where} ORDER BY ts", args).fetchall()
    out: dict[str, Any] = {"totals": _summary(rows), "group_by": group_by, "groups": []}
    if group_by:
        buckets: dict[str, list[tuple[Any, ...]]] = {}
        col = {"endpoint": 7, "model": 8, "key_id": 9}.get(group_by)
        if col is None and group_by not in GROUPS:
            from .errors import InvalidRequestError

            raise InvalidRequestError("group_by_invalid", f"group_by must be one of {sorted(GROUPS) + ['endpoint', 'model', 'key_id']}.",
                                      {"group_by": group_by})
        for r in rows:
            key = str(r[col]) if col is not None else datetime.fromtimestamp(r[0], UTC).strftime(GROUPS[group_by])
            buckets.setdefault(key, []).append(r)
        out["groups"] = [{"key": k, **_summary(v)} for k, v in buckets.items()]
    return out


def logs(limit: int = 100, since: Any = None, until: Any = None, offset: int = 0, **filters: Any) -> list[dict[str, Any]]:
    """Request log entries, newest first. Filters: endpoint, model, status, error_code, key_id, cached."""
    flush()
    where, args = _where(since, until, filters)
    with connect() as con:
        rows = con.execute(f"SELECT {','.join(_COLUMNS)} FROM requests{where} ORDER BY ts DESC LIMIT ? OFFSET ?",
                           [*args, int(limit), int(offset)]).fetchall()
    out = []
    for r in rows:
        d = dict(zip(_COLUMNS, r))
        d["time"] = datetime.fromtimestamp(d["ts"], UTC).isoformat()
        d["cached"] = d["cached_items"] > 0
        out.append(d)
    return out
