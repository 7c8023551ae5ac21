"""The ``classer-local`` console script.

Readable output by default, JSON with ``--json``. Errors print their typed message and
exit non-zero: 2 for bad input (like argparse), 1 for anything else. Heavy modules
(torch, the models, fastapi) are imported by the command that needs them, so
``--help`` and ``models list`` stay fast.

One module per command group; each ``register``s its subcommands and sets their handler
(``set_defaults(func=...)``), so ``main`` only parses and calls ``args.func(args)``.

Example:
    $ classer-local classify "I can't log in" -l billing -l technical
    technical  0.94
    $ echo "refund please" | classer-local classify --labels billing,technical --json
    $ classer-local serve --port 8000
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import batch, classifiers, classify, evaluate, jobs, keys, models, serve, usage
from ._common import EXIT_BAD_INPUT, EXIT_ERROR, CliError, print_json

__all__ = ["EXIT_BAD_INPUT", "EXIT_ERROR", "CliError", "build_parser", "main"]

# In `--help` order.
_GROUPS = (classify, batch, jobs, classifiers, models, keys, usage, serve, evaluate)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="classer-local", description="Offline text, image and document classification."
    )
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in _GROUPS:
        group.register(sub)
    return p


def _version() -> str:
    from classer_local import __version__

    return f"classer-local {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script passes it to ``sys.exit``)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"classer-local: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `classer-local models list | head`: the reader left; not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        from classer_local.errors import ClasserError, InvalidRequestError

        if not isinstance(exc, ClasserError):
            raise
        if getattr(args, "json", False):
            print_json(exc.to_dict())
        print(f"classer-local: error: {exc.message} [{exc.code}]", file=sys.stderr)
        return EXIT_BAD_INPUT if isinstance(exc, InvalidRequestError) else EXIT_ERROR
