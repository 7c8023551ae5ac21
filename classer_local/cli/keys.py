"""``keys``: the server's API keys (create, list, update, revoke); an admin's local commands."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ._common import add_json, cell, emit, table

if TYPE_CHECKING:
    from classer_local.server.keys import KeyStore

    from ._common import Subparsers


def register(sub: Subparsers) -> None:
    k = sub.add_parser("keys", help="server API keys (admin)")
    ksub = k.add_subparsers(dest="keys_command", metavar="SUBCOMMAND", required=True)
    kc = ksub.add_parser("create", help="create a key (printed once)")
    kc.add_argument("--name", required=True)
    kc.add_argument("--quota", type=int, help="token budget (default unlimited)")
    kc.add_argument("--rpm", type=int, help="requests/min (default: the server's; 0 unlimited)")
    kc.add_argument("--tpm", type=int, help="tokens/min (default: the server's; 0 unlimited)")
    kc.add_argument("--admin", action="store_true", help="may create keys and read all usage")
    kl = ksub.add_parser("list", help="keys (never their secrets)")
    ku = ksub.add_parser("update", help="change a key's quota or limits (-1 clears)")
    ku.add_argument("id")
    ku.add_argument("--quota", type=int)
    ku.add_argument("--rpm", type=int)
    ku.add_argument("--tpm", type=int)
    ku.add_argument("--reset-used", action="store_true", help="set used tokens back to 0")
    kr = ksub.add_parser("revoke", help="revoke a key")
    kr.add_argument("id")
    for kp, func in ((kc, run_create), (kl, run_list), (ku, run_update), (kr, run_revoke)):
        add_json(kp)
        kp.set_defaults(func=func)


@contextmanager
def _store() -> Iterator[KeyStore]:
    from classer_local.server.keys import KeyStore

    store = KeyStore()
    try:
        yield store
    finally:
        store.close()


def run_create(args: argparse.Namespace) -> int:
    with _store() as store:
        key, row = store.create(args.name, quota=args.quota, rpm=args.rpm, tpm=args.tpm, admin=args.admin)
    emit(
        args,
        {"key": key, **row},
        f"{key}\n(id {row['id']}; shown once: store it now. quota={cell(row['quota'])})",
    )
    return 0


def run_list(args: argparse.Namespace) -> int:
    with _store() as store:
        rows = store.list()
    emit(
        args,
        rows,
        table(rows, ("id", "name", "admin", "quota", "used", "remaining", "rpm", "tpm", "revoked")),
    )
    return 0


def run_update(args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {}
    for flag in ("quota", "rpm", "tpm"):
        value = getattr(args, flag)
        if value is not None:
            changes[flag] = None if value < 0 else value  # -1 clears the limit
    if args.reset_used:
        changes["used"] = 0
    with _store() as store:
        row = store.update(args.id, **changes)
    emit(
        args,
        row,
        f"{row['id']}: quota={cell(row['quota'])} used={row['used']} rpm={cell(row['rpm'])} tpm={cell(row['tpm'])}",
    )
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    with _store() as store:
        row = store.update(args.id, revoked=True)
    emit(args, row, f"revoked {row['id']}")
    return 0
