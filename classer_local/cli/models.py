"""``models list``: every model in models.toml and whether its weights are on this machine."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ._common import add_json, emit, table

if TYPE_CHECKING:
    from ._common import Subparsers


def register(sub: Subparsers) -> None:
    m = sub.add_parser("models", help="models in models.toml")
    msub = m.add_subparsers(dest="models_command", metavar="SUBCOMMAND", required=True)
    ml = msub.add_parser("list", help="every model and whether it is installed")
    add_json(ml)
    ml.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> int:
    from classer_local.registry import models

    rows = models()
    emit(args, rows, table(rows, ("name", "kind", "backend", "dim", "installed", "default_for")))
    return 0
