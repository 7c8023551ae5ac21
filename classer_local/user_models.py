"""Bring your own model: add a sentence-transformers folder by name, and calibrate it on your rows.

Entries go to the user's ``$CLASSER_HOME/models.json`` (merged over the package's models.toml by
``registry``), never into the package. A model added here is chosen like any other
(``model="my-e5"``); its prompts (``query_prefix`` for the texts classified,
``document_prefix`` for label names, descriptions and examples) are applied for it.

Example:
    >>> add("my-e5", "/models/multilingual-e5-small", query_prefix="query: ",
    ...     document_prefix="passage: ")                                     # doctest: +SKIP
    >>> calibrate("my-e5", "rows.jsonl")["calibration"]["temperature_names"]   # doctest: +SKIP
    0.021
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from . import registry
from .errors import InvalidRequestError, NotFoundError

NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_.")


def _read() -> dict[str, Any]:
    path = registry._user_path()
    return json.loads(path.read_text()) if path.exists() else {"models": {}}


def _write(data: dict[str, Any]) -> None:
    path = registry._user_path()
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def add(name: str, local_dir: str | os.PathLike[str], *, query_prefix: str = "", document_prefix: str = "",
        max_tokens: int | None = None, batch_size: int = 32, license: str = "",
        quantize: str | None = None, cpu_dtype: str = "bfloat16") -> dict[str, Any]:
    """Register the sentence-transformers folder ``local_dir`` as text model ``name``; returns its entry.
    ``quantize="int8"``: run its linear layers in int8 on the CPU (faster, a little less accurate:
    benchmarks/QUANTIZE.md measured 2.2x and -2.5 points on the standard model).
    ``cpu_dtype``: ``"bfloat16"`` (matrix products in bfloat16 on a CPU that has native bfloat16
    units, float32 elsewhere; about 1.8x the texts/s on MiniLM, accuracy unchanged: benchmarks/PRECISION.md) or
    ``"float32"``."""
    if not name or set(name) - NAME_CHARS or len(name) > 64:
        raise InvalidRequestError("model_name_invalid", "A model name is 1-64 of a-z, 0-9, '-', '_', '.'.", {"name": name})
    if quantize not in (None, "int8"):
        raise InvalidRequestError("quantize_invalid", 'quantize is "int8" or nothing.', {"quantize": quantize})
    registry.check_cpu_dtype(name, cpu_dtype)  # before anything is written
    folder = Path(local_dir).expanduser().resolve()
    if not (folder / "config.json").exists() and not (folder / "modules.json").exists():
        raise InvalidRequestError("model_folder_invalid", f"{folder} is not a sentence-transformers model folder "
                                  "(no modules.json or config.json).", {"path": str(folder)})
    data = _read()
    if name in registry.names("text") + registry.names("image") and name not in data["models"]:
        raise InvalidRequestError("model_exists", f"Model {name!r} is already defined by the package.", {"name": name})
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    dim = int(st.get_sentence_embedding_dimension())
    seq = int(st.max_seq_length or 512)
    entry = {"kind": "text", "backend": "sentence-transformers", "weights": f"local-dir:{folder}", "dim": dim,
             "max_tokens": min(seq, max_tokens) if max_tokens else seq, "batch_size": batch_size,
             "version": "local", "license": license, "install": f"a local folder: {folder}",
             "prompt": {"query_prefix": query_prefix, "document_prefix": document_prefix}}
    if quantize:
        entry["quantize"] = quantize
    if cpu_dtype != "float32":
        entry["cpu_dtype"] = cpu_dtype
    data["models"][name] = entry
    _write(data)
    return entry


def set_default(tier: str, name: str | None) -> dict[str, str]:
    """Make model ``name`` the ``tier`` (``standard``, ``fast`` or ``image``) default for this user
    (a server run by this user too), or with ``name=None`` go back to the package's; returns the
    defaults in force."""
    kind = {"standard": "text", "fast": "text", "image": "image"}.get(tier)
    if kind is None:
        raise InvalidRequestError("tier_invalid", "A tier is standard, fast or image.", {"tier": tier})
    if name is not None and name not in registry.names(kind):
        raise NotFoundError("model_not_found", f"No {kind} model named {name!r}.", {"name": name, "kind": kind})
    data = _read()
    tiers = data.setdefault("defaults", {})
    if name is None:
        tiers.pop(tier, None)
    else:
        tiers[tier] = name
    _write(data)
    return registry.defaults()


def remove(name: str) -> int:
    """Forget user model (or calibration) ``name``; for a model, also delete the ONNX graph exported
    for it (``CLASSER_HOME/onnx``). Returns the bytes that freed."""
    data = _read()
    if name not in data["models"]:
        raise NotFoundError("model_not_found", f"No user model or calibration named {name!r}.", {"name": name})
    entry = data["models"].pop(name)
    _write(data)
    if "weights" not in entry and "like" not in entry:  # a calibration of a package model: its graph stays
        return 0
    from .backends import _onnx

    return _onnx.remove_graphs(name)


def calibrate(name: str, rows: str | os.PathLike[str], max_rows: int = 5000) -> dict[str, Any]:
    """Fit ``name``'s confidence constants on labelled rows (JSONL ``{"text", "label"}``; optional
    ``labels.json`` beside it, else the labels seen). Written to the user's config; returns the fit."""
    from . import scoring
    from .calibration import expected_calibration_error, fit_platt, fit_temperature
    from .classifier import Classifier

    spec = registry.get(name)
    path = Path(rows).expanduser()
    data = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()][:max_rows]
    data = [r for r in data if isinstance(r, dict) and isinstance(r.get("text"), str) and isinstance(r.get("label"), str)]
    labels_file = path.with_name("labels.json")
    labels = json.loads(labels_file.read_text()) if labels_file.exists() else sorted({r["label"] for r in data})
    data = [r for r in data if r["label"] in labels]
    if len(labels) < 2 or len(data) < 20:
        raise InvalidRequestError("calibration_rows_too_few", "Calibration needs at least 20 rows over 2 or more labels.",
                                  {"rows": len(data), "labels": len(labels)})
    clf = Classifier(labels, model=spec.name, glossary=False).build()
    X = clf.encode([r["text"] for r in data])[0]
    y = np.array([labels.index(r["label"]) for r in data])
    sims = scoring.cosine(X, clf.prototypes_)
    T = fit_temperature(sims, y)
    logp = scoring.log_softmax(sims / T)
    Y = np.zeros_like(sims)
    Y[np.arange(len(y)), y] = 1
    a, c, b = fit_platt(np.stack([sims.ravel(), logp.ravel()], 1), Y.ravel())
    fitted = {"temperature": round(T, 5), "temperature_names": round(T, 5), "tag_a": round(a, 4),
              "tag_c": round(c, 4), "tag_b": round(b, 4)}
    P = np.exp(logp)
    store = _read()
    entry = store["models"].setdefault(name, {})
    entry["calibration"] = {**entry.get("calibration", {}), **fitted}
    _write(store)
    return {"model": name, "rows": len(data), "labels": len(labels), "calibration": fitted,
            "accuracy": round(float((P.argmax(1) == y).mean()), 4),
            "ece": round(expected_calibration_error(P.max(1), P.argmax(1) == y), 4)}
