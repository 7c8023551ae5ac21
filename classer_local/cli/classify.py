"""``classify`` (the best label) and ``tag`` (every label above a threshold) for one input."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from classer_local.language import LANGUAGES

from ._common import add_json, add_labels, emit, existing, options, read_text

if TYPE_CHECKING:
    from ._common import Subparsers


def register(sub: Subparsers) -> None:
    for name, help_ in (("classify", "pick the best label"), ("tag", "every label above a threshold")):
        c = sub.add_parser(name, help=help_, description=help_)
        c.add_argument("text", nargs="?", help="the text; '-' or omitted reads stdin")
        c.add_argument("--file", help="a PDF or DOCX")
        c.add_argument("--image", action="append", help="an image (repeat for several)")
        add_labels(c)
        if name == "tag":
            c.add_argument("--threshold", type=float,
                           help="minimum confidence (default: the classifier's per-label thresholds, else 0.5)")
        c.add_argument("--language", choices=LANGUAGES,
                       help="auto: a text or document that is not English goes to the multilingual model "
                            "when installed")
        c.add_argument("-v", "--verbose", action="store_true", help="print every label's score")
        add_json(c)
        c.set_defaults(func=run_tag if name == "tag" else run_classify)


def model_keywords(
    model: str | None, call: Callable[..., Any], *, image: bool, file: bool
) -> dict[str, str | None]:
    """Which keyword of ``call`` gets ``--model``.

    Text goes to ``model=``. An image is scored by the image model, so ``--model`` names it
    (``image_model=``; a text model there is the library's typed error). A document is read by
    both models, so there the named model's kind decides. Until the library takes
    ``image_model`` the name goes to ``model=`` as before.
    """
    if model is None or not (image or file) or "image_model" not in inspect.signature(call).parameters:
        return {"model": model}
    if file:
        from classer_local import registry

        if registry.get(model).kind != "image":
            return {"model": model}
    return {"model": None, "image_model": model}


def _call(args: argparse.Namespace, verb: str) -> tuple[Any, dict[str, Any]]:
    """The library function for ``verb`` and its keywords from the command line."""
    import classer_local as cl

    call = cl.tag if verb == "tag" else cl.classify
    opts = options(args)
    text = read_text(args)
    images = [existing(p) for p in args.image] if args.image else None
    image: Any = images[0] if images is not None and len(images) == 1 else images
    file = existing(args.file) if args.file else None
    opts.update(model_keywords(opts.pop("model"), call, image=image is not None, file=file is not None))
    if args.language:
        opts["language"] = args.language
    return call, {"text": text, "image": image, "file": file, **opts}


def run_classify(args: argparse.Namespace) -> int:
    call, kwargs = _call(args, "classify")
    r = call(**kwargs)
    _print(args, r, [f"{r.label}  {r.confidence:.4f}"])
    return 0


def run_tag(args: argparse.Namespace) -> int:
    call, kwargs = _call(args, "tag")
    r = call(**kwargs, threshold=args.threshold)
    chosen = ", ".join(f"{x.label} ({x.confidence:.4f})" for x in r.labels) or "(no label above threshold)"
    _print(args, r, [chosen])
    return 0


def _print(args: argparse.Namespace, r: Any, lines: list[str]) -> None:
    if args.verbose:
        for label, score in sorted(r.scores.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {label:<30} {score:.4f}")
        lines.append(
            f"  tokens={r.tokens} visual_tokens={r.visual_tokens} cached={r.cached} "
            f"latency_ms={r.latency_ms} model={r.model}"
        )
    emit(args, r.to_dict(), "\n".join(lines))
