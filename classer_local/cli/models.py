"""``models list|add|calibrate|remove``: the models classer_local knows, and the user's own.

``add`` registers a sentence-transformers folder you hold (an e5, bge, gte copy) by name, with
its prompts; ``calibrate`` fits its confidences on your labelled rows. Both write the user's
``$CLASSER_HOME/models.json``, never the package.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ._common import add_json, emit, table

if TYPE_CHECKING:
    from ._common import Subparsers


def register(sub: Subparsers) -> None:
    m = sub.add_parser("models", help="models in models.toml (and your own)")
    msub = m.add_subparsers(dest="models_command", metavar="SUBCOMMAND", required=True)
    ml = msub.add_parser("list", help="every model and whether it is installed")
    add_json(ml)
    ml.set_defaults(func=run_list)
    ma = msub.add_parser("add", help="add a local sentence-transformers folder as a text model")
    ma.add_argument("name")
    ma.add_argument("--local-dir", required=True, help="the model folder (config.json / modules.json)")
    ma.add_argument("--query-prefix", default="", help='prefix of the texts classified, e.g. "query: "')
    ma.add_argument("--document-prefix", default="", help='prefix of label names and examples, e.g. "passage: "')
    ma.add_argument("--max-tokens", type=int, default=None)
    ma.add_argument("--license", default="")
    ma.add_argument("--quantize", choices=["int8"], default=None,
                    help="run its linear layers in int8 on the CPU: faster, a little less accurate")
    ma.add_argument("--cpu-dtype", choices=["bfloat16", "float32"], default="bfloat16",
                    help="bfloat16 (default): matrix products in bfloat16 where the CPU has native bfloat16 units "
                         "(about 1.8x faster, same accuracy), float32 elsewhere")
    add_json(ma)
    ma.set_defaults(func=run_add)
    mc = msub.add_parser("calibrate", help="fit a model's confidences on labelled rows (JSONL text/label)")
    mc.add_argument("name")
    mc.add_argument("--data", required=True, help='rows.jsonl: {"text": ..., "label": ...} per line')
    add_json(mc)
    mc.set_defaults(func=run_calibrate)
    md = msub.add_parser("default", help="choose the model a tier uses for you (no NAME: the package's)")
    md.add_argument("tier", choices=["standard", "fast", "image"])
    md.add_argument("name", nargs="?", default=None)
    add_json(md)
    md.set_defaults(func=run_default)
    mr = msub.add_parser("remove", help="forget a model (or calibration) you added")
    mr.add_argument("name")
    mr.set_defaults(func=run_remove)


def run_list(args: argparse.Namespace) -> int:
    from classer_local import registry
    from classer_local.backends import cpu_runtime

    rows = registry.models()
    for row in rows:  # what runs it here (the entry's precision applies only where the CPU allows it)
        row["cpu_runtime"] = cpu_runtime(registry.get(row["name"]))
    emit(args, rows, table(rows, ("name", "kind", "backend", "dim", "precision", "cpu_runtime", "installed",
                                  "default_for")))
    return 0


def run_add(args: argparse.Namespace) -> int:
    from classer_local import user_models

    entry = user_models.add(args.name, args.local_dir, query_prefix=args.query_prefix,
                            document_prefix=args.document_prefix, max_tokens=args.max_tokens, license=args.license,
                            quantize=args.quantize, cpu_dtype=args.cpu_dtype)
    emit(args, {"name": args.name, **entry}, f"added {args.name} ({entry['dim']} dims, {entry['max_tokens']} tokens)")
    return 0


def run_default(args: argparse.Namespace) -> int:
    from classer_local import user_models

    tiers = user_models.set_default(args.tier, args.name)
    emit(args, tiers, f"{args.tier}: {tiers[args.tier]}")
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    from classer_local import user_models

    fit = user_models.calibrate(args.name, args.data)
    cal = ", ".join(f"{k}={v}" for k, v in fit["calibration"].items())
    emit(args, fit, f"{args.name}: {fit['rows']} rows, {fit['labels']} labels, accuracy {fit['accuracy']}, "
                    f"ECE {fit['ece']}; {cal}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from classer_local import user_models

    freed = user_models.remove(args.name)
    print(f"removed {args.name}" + (f" (its ONNX graph: {freed / 2**20:.1f} MiB freed)" if freed else ""))
    return 0
