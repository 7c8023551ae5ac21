"""``classifiers``: create (from a JSON/YAML spec and/or flags), list, get and delete saved classifiers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import (
    TRUNCATES,
    CliError,
    add_json,
    cell,
    descriptions,
    emit,
    existing,
    labels,
    read_ndjson,
    table,
)

if TYPE_CHECKING:
    from ._common import Subparsers

_SPEC_KEYS = {
    "labels",
    "descriptions",
    "examples",
    "text_type",
    "model",
    "priority",
    "threshold",
    "truncate",
    "calibrate",
}


def register(sub: Subparsers) -> None:
    cf = sub.add_parser("classifiers", help="saved, versioned classifiers")
    csub = cf.add_subparsers(dest="classifiers_command", metavar="SUBCOMMAND", required=True)
    cc = csub.add_parser("create", help="fit and save a classifier (from a JSON/YAML spec and/or flags)")
    cc.add_argument("name")
    cc.add_argument(
        "--spec", help="JSON or YAML: labels, descriptions, examples, text_type, model, threshold"
    )
    cc.add_argument("-l", "--label", action="append", default=[])
    cc.add_argument("--labels")
    cc.add_argument("--description", action="append", default=[], metavar="LABEL=TEXT")
    cc.add_argument("--example", action="append", default=[], metavar="LABEL=TEXT")
    cc.add_argument("--examples-file", help='NDJSON rows {"text", "label"}')
    cc.add_argument("--text-type")
    cc.add_argument("--model", help="standard, fast or a model name")
    cc.add_argument("--threshold", type=float)
    cc.add_argument("--truncate", choices=TRUNCATES)
    cc.add_argument("--no-calibrate", action="store_true")
    cc.add_argument("--no-glossary", action="store_true", help="bare label names: no built-in descriptions")
    cc.add_argument("--tune", action="store_true", help="fine-tune the encoder on the examples (a LoRA delta; minutes)")
    _tune_flags(cc)
    add_json(cc)
    cc.set_defaults(func=run_create)
    ct = csub.add_parser("tune", help="fine-tune a saved classifier's encoder on its examples -> the next version")
    ct.add_argument("ref")
    _tune_flags(ct)
    add_json(ct)
    ct.set_defaults(func=run_tune)
    cl_ = csub.add_parser("list", help="saved classifiers (latest versions; with NAME, all its versions)")
    cl_.add_argument("name", nargs="?")
    add_json(cl_)
    cl_.set_defaults(func=run_list)
    for name, func in (("get", run_get), ("delete", run_delete)):
        cp = csub.add_parser(name, help=f"{name} a saved classifier (NAME or NAME@vN)")
        cp.add_argument("ref")
        add_json(cp)
        cp.set_defaults(func=func)


def _tune_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-steps", type=int, help="cap on tuning steps (default 150)")
    p.add_argument("--max-seconds", type=float, help="stop tuning after this many seconds")
    p.add_argument("--seed", type=int, help="tuning seed (default 0)")


def _tune_settings(args: argparse.Namespace) -> Any:
    from classer_local.tuning import TuneSettings

    given = {k: getattr(args, k) for k in ("max_steps", "max_seconds", "seed") if getattr(args, k, None) is not None}
    return TuneSettings(**given)


def run_tune(args: argparse.Namespace) -> int:
    """Ctrl-C cancels (the saved versions are untouched)."""
    from classer_local import store

    info = store.tune(args.ref, tune_settings=_tune_settings(args), progress=not args.json)
    t = info["tuned"]
    emit(args, info, f"created {info['ref']}: tuned {t['steps']} steps in {t['seconds']:.1f} s, "
                     f"loss {t['first_loss']:.3f} -> {t['final_loss']:.3f}, delta {t['delta_bytes'] / 1024:.0f} KiB")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from classer_local import store

    rows = store.list(args.name) if args.name else store.list()
    emit(args, rows, table(rows, ("ref", "model", "labels", "n_examples", "calibrated", "created_at")))
    return 0


def run_get(args: argparse.Namespace) -> int:
    from classer_local import store

    info = store.get(args.ref)
    emit(args, info, "\n".join(f"{k}: {cell(v)}" for k, v in info.items()))
    return 0


def run_delete(args: argparse.Namespace) -> int:
    from classer_local import store

    res = store.delete(args.ref)
    emit(args, res, "deleted " + ", ".join(res["deleted"]))
    return 0


def run_create(args: argparse.Namespace) -> int:
    """Flags add to (and override) the spec file: labels, descriptions, examples, options."""
    from classer_local import store

    spec: dict[str, Any] = _load_spec(args.spec) if args.spec else {}
    unknown = set(spec) - _SPEC_KEYS - {"name"}
    if unknown:
        raise CliError(f"unknown keys in spec: {sorted(unknown)}; known: {sorted(_SPEC_KEYS)}")
    spec.pop("name", None)
    given = labels(args)
    if given:
        spec["labels"] = given
    if args.description:
        spec["descriptions"] = {**(spec.get("descriptions") or {}), **(descriptions(args.description) or {})}
    for pair in args.example:
        label, sep, text = pair.partition("=")
        if not sep:
            raise CliError(f"--example takes LABEL=TEXT, got {pair!r}")
        spec.setdefault("examples", {}).setdefault(label.strip(), []).append(text)
    if args.examples_file:
        for _, row in read_ndjson(args.examples_file):
            if not isinstance(row.get("label"), str) or not isinstance(row.get("text"), str):
                raise CliError(f"{args.examples_file}: rows need string text and label")
            spec.setdefault("examples", {}).setdefault(row["label"], []).append(row["text"])
    for flag in ("text_type", "model", "priority", "threshold", "truncate"):
        value = getattr(args, flag, None)
        if value is not None:
            spec[flag] = value
    if args.no_calibrate:
        spec["calibrate"] = False
    if args.no_glossary:
        spec["glossary"] = False
    if args.tune:
        spec.update(tune=True, tune_settings=_tune_settings(args), progress=not args.json)
    info = store.create(args.name, spec.pop("labels", None), **spec)
    emit(
        args,
        info,
        f"created {info['ref']} ({len(info['labels'])} labels, {info['n_examples']} examples, "
        f"calibrated={info['calibrated']})",
    )
    return 0


def _load_spec(path: str) -> dict[str, Any]:
    text = Path(existing(path)).read_text(encoding="utf-8")
    if path.lower().endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise CliError("reading YAML needs PyYAML (pip install pyyaml); or use a JSON spec") from None
        spec = yaml.safe_load(text)
    else:
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CliError(f"{path}: not JSON ({exc.msg})") from None
    if not isinstance(spec, dict):
        raise CliError(f"{path}: the spec must be an object (labels, descriptions, examples, ...)")
    return spec
