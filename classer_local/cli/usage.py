"""``usage`` (totals and groups) and ``logs`` (recent requests) from the local usage log."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ._common import add_json, emit, table

if TYPE_CHECKING:
    from ._common import Subparsers

_USAGE_COLUMNS = (
    "requests",
    "items",
    "tokens",
    "errors",
    "cache_hit_rate",
    "latency_ms_p50",
    "latency_ms_p95",
)
_LOG_COLUMNS = (
    "time",
    "request_id",
    "endpoint",
    "model",
    "items",
    "tokens",
    "cached",
    "latency_ms",
    "status",
    "error_code",
    "key_id",
)


def register(sub: Subparsers) -> None:
    u = sub.add_parser("usage", help="usage totals and groups")
    u.add_argument("--since")
    u.add_argument("--until")
    u.add_argument(
        "--group-by", default="day", choices=["day", "hour", "month", "endpoint", "model", "key_id", "none"]
    )
    u.add_argument("--endpoint")
    u.add_argument("--model")
    u.add_argument("--key-id")
    add_json(u)
    u.set_defaults(func=run_usage)

    lg = sub.add_parser("logs", help="recent requests, newest first")
    lg.add_argument("--limit", type=int, default=20)
    lg.add_argument("--since")
    lg.add_argument("--endpoint")
    lg.add_argument("--status", choices=["ok", "error"])
    lg.add_argument("--key-id")
    add_json(lg)
    lg.set_defaults(func=run_logs)


def run_usage(args: argparse.Namespace) -> int:
    from classer_local.usagelog import usage

    filters = {
        k: v
        for k, v in (("endpoint", args.endpoint), ("model", args.model), ("key_id", args.key_id))
        if v is not None
    }
    res = usage(
        since=args.since,
        until=args.until,
        group_by=None if args.group_by == "none" else args.group_by,
        **filters,
    )
    text = "totals\n" + table([res["totals"]], _USAGE_COLUMNS)
    if res["groups"]:
        text += f"\n\nby {res['group_by']}\n" + table(res["groups"], ("key", *_USAGE_COLUMNS))
    emit(args, res, text)
    return 0


def run_logs(args: argparse.Namespace) -> int:
    from classer_local.usagelog import logs

    filters = {
        k: v
        for k, v in (("endpoint", args.endpoint), ("status", args.status), ("key_id", args.key_id))
        if v is not None
    }
    rows = logs(limit=args.limit, since=args.since, **filters)
    emit(args, rows, table(rows, _LOG_COLUMNS))
    return 0
