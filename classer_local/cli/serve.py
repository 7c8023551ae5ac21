"""``serve``: the HTTP server (needs the ``server`` extra; fastapi is imported only here)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ._common import CliError

if TYPE_CHECKING:
    from ._common import Subparsers

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def register(sub: Subparsers) -> None:
    s = sub.add_parser("serve", help="run the HTTP server")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--no-auth", action="store_true", help="no API keys (local development only)")
    s.add_argument("--rpm", type=int, default=600, help="default requests/min per key (0: unlimited)")
    s.add_argument("--tpm", type=int, default=None, help="default tokens/min per key (default 1,000,000; 0: unlimited)")
    s.add_argument(
        "--batch-wait-ms", type=float, default=2.0, help="how long a lone request waits for company"
    )
    s.add_argument("--batch-max-items", type=int, default=256, help="most inputs in one model call")
    s.add_argument("--model-threads", type=int, default=None,
                   help="model calls at once (default: 2, or 1 on a one-core machine)")
    s.add_argument("--preload", default=None,
                   help="models to load and warm before the port opens (default standard,fast,image; 'none' for none)")
    s.add_argument("--auth-failures-per-min", type=int, default=None,
                   help="failed authentications per client address and minute before 429 (default 30)")
    s.add_argument("--request-timeout", type=float, default=None, help="wall-time budget per request, s (default 60)")
    s.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from classer_local.server.app import ServerConfig, serve
    except ImportError as exc:
        raise CliError(f"the server needs its extra: pip install 'classer-local[server]' ({exc})") from None
    given = {
        "tpm": args.tpm,
        "auth_failures_per_min": args.auth_failures_per_min,
        "request_timeout_s": args.request_timeout,
        "model_threads": None if args.model_threads is None else max(1, args.model_threads),
        "preload": None if args.preload is None else
        tuple(x for x in args.preload.split(",") if x and x.strip().lower() != "none"),
    }
    config = ServerConfig(
        auth=not args.no_auth,
        rpm=args.rpm,
        batch_wait_ms=args.batch_wait_ms,
        batch_max_items=args.batch_max_items,
        **{k: v for k, v in given.items() if v is not None},
    )
    if args.host not in _LOOPBACK and args.no_auth:
        print("warning: serving without authentication on a non-loopback address", file=sys.stderr)
    serve(args.host, args.port, config, log_level=args.log_level)
    return 0
