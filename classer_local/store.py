"""Saved, versioned classifiers: ``name@vN``, exposed as ``classer_local.classifiers``.

Each ``create`` fits a ``Classifier`` (prototypes, example heads, tag calibration) and
saves it as a new version; earlier versions are never touched, and a version number is
never reused, even after a delete (the request cache keys saved classifiers by ref).
Loading reads the arrays back with no re-encoding::

    CLASSER_HOME/classifiers/<name>/
        .lock              flock taken to number, write and delete versions
        .last              highest version ever given out
        v1/manifest.json   format_version, name, version, model, model_id, weights_hash, labels,
                           owner (the API key id that saved it, or null), shared, config
        v1/arrays.npz      prototypes and heads
        v2/...

A version appears by one ``os.rename`` of a fully written, fsynced temporary folder, so
a crash never leaves half a version visible.

Example:
    >>> import classer_local as cl
    >>> cl.classifiers.create("tickets", labels=["billing", "technical"])["ref"]  # doctest: +SKIP
    'tickets@v1'
    >>> cl.classify(text="refund please", classifier="tickets").label             # doctest: +SKIP
    'billing'
"""

from __future__ import annotations

import builtins
import json
import os
import re
import shutil
import tempfile
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from . import config, durable, registry
from .classifier import Classifier
from .options import Priority, Truncate
from .errors import ConflictError, InvalidRequestError, ModelNotInstalledError, NotFoundError

__all__ = ["FORMAT_VERSION", "create", "delete", "get", "list", "load", "not_found", "parse_ref", "resolve"]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_VERSION = re.compile(r"v?([0-9]{1,9})")

# (root, name, version, device, allow_paths) -> (inode of the version folder, Classifier)
_loaded: dict[tuple[str, str, int, str, bool], tuple[int, Classifier]] = {}
_loaded_lock = threading.Lock()


# ---------------------------------------------------------------------- refs and paths
def _bad_ref(ref: Any, why: str) -> InvalidRequestError:
    return InvalidRequestError(
        "classifier_name_invalid",
        f"Invalid classifier reference {ref!r}: {why} Use 'name' or 'name@vN'; a name is 1-100 "
        "characters from A-Z a-z 0-9 _ . - and does not start with '.'.",
        {"classifier": ref if isinstance(ref, str) else repr(ref)},
    )


def _check_name(name: Any) -> str:
    if not isinstance(name, str):
        raise _bad_ref(name, "it must be a string.")
    if not _NAME.fullmatch(name) or name.startswith("."):
        raise _bad_ref(name, "bad name.")
    return name


def parse_ref(ref: str) -> tuple[str, int | None]:
    """Split ``"name"`` / ``"name@v2"`` into (name, version or None for latest).

    Example:
        >>> parse_ref("tickets@v2")
        ('tickets', 2)
        >>> parse_ref("tickets")
        ('tickets', None)
    """
    if not isinstance(ref, str):
        raise _bad_ref(ref, "it must be a string.")
    name, at, version = ref.partition("@")
    _check_name(name)
    if not at or version == "latest":
        return name, None
    m = _VERSION.fullmatch(version)
    if not m or int(m.group(1)) < 1:
        raise _bad_ref(ref, f"bad version {version!r}.")
    return name, int(m.group(1))


def _root() -> Path:
    return config.subdir("classifiers")


def _versions(name_dir: Path) -> builtins.list[int]:
    try:
        entries = os.listdir(name_dir)
    except FileNotFoundError:
        return []
    out = []
    for entry in entries:
        if entry.startswith("v") and entry[1:].isdigit():
            out.append(int(entry[1:]))
    return sorted(out)


def not_found(ref: str) -> NotFoundError:
    """The error for a classifier that is not there (or, over HTTP, not the caller's to see)."""
    return _not_found(ref)


def _not_found(ref: str, known: builtins.list[int] | None = None) -> NotFoundError:
    details: dict[str, Any] = {"classifier": ref}
    if known:
        details["versions"] = known
    return NotFoundError("classifier_not_found", f"No saved classifier {ref!r}.", details)


def _resolve(ref: str) -> tuple[str, int, Path]:
    name, version = parse_ref(ref)
    name_dir = _root() / name
    known = _versions(name_dir)
    if version is None:
        if not known:
            raise _not_found(ref)
        version = known[-1]
    elif version not in known:
        raise _not_found(ref, known)
    return name, version, name_dir / f"v{version}"


def resolve(ref: str) -> str:
    """The pinned ref ``"name@vN"`` that ``ref`` names now (``"name"`` is the latest).

    Example:
        >>> resolve("tickets")  # doctest: +SKIP
        'tickets@v2'
    """
    name, version, _ = _resolve(ref)
    return f"{name}@v{version}"


# ---------------------------------------------------------------------- durable writes
# (one helper for every durable write in the package: ``durable``)
def _locked(name_dir: Path) -> Any:
    """Hold ``name_dir/.lock``; retaken when a concurrent delete swapped the folder away."""
    return durable.locked(name_dir / ".lock", create_parent=True)


_write_file = durable.write_bytes
_fsync_dir = durable.fsync_dir



def _last_version(name_dir: Path) -> int:
    try:
        return int((name_dir / ".last").read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def _set_last_version(name_dir: Path, version: int) -> None:
    tmp = name_dir / f".last.{uuid.uuid4().hex}"
    _write_file(tmp, str(version).encode())
    os.replace(tmp, name_dir / ".last")


def _clean_leftovers(name_dir: Path) -> None:
    """Remove temporary folders of writers that crashed (we hold the lock: none is live)."""
    for entry in os.listdir(name_dir):
        if entry.startswith((".tmp-", ".trash-")):
            shutil.rmtree(name_dir / entry, ignore_errors=True)


# ---------------------------------------------------------------------- public API
def create(
    name: str,
    labels: Sequence[str] | None = None,
    *,
    descriptions: Mapping[str, str] | None = None,
    examples: Mapping[str, Sequence[Any]] | None = None,
    text_type: str | None = None,
    model: str | None = None,
    priority: Priority | str = Priority.STANDARD,
    threshold: float | None = None,
    truncate: Truncate | str | None = None,
    calibrate: bool = True,
    device: str = "auto",
    owner: str | None = None,
    shared: bool = False,
    allow_paths: bool = True,
    tune: bool = False,
    tune_settings: Any = None,
    progress: bool = False,
    glossary: bool = True,
) -> dict[str, Any]:
    """Fit a classifier and save it as the next version of ``name``; returns its info.

    ``owner`` records the API key id that made it (the server passes the caller's; ``None``:
    made on this machine, which over HTTP only admin keys see) and ``shared`` makes it readable
    by every key. ``allow_paths=False`` (a remote caller) never reads an example string as a file.

    ``model`` is a tier (``"standard"``/``"fast"``) or a model name from models.toml.
    With at least 4 text examples for every label, tag confidences are calibrated for
    these labels by cross-validation (``calibrate=False`` skips it). ``tune=True`` fine-tunes the
    encoder on the text examples first (``Classifier.tune``); the version then stores the LoRA
    delta (a few hundred KB), not a model. Labels without a description borrow the built-in
    glossary's (``glossary=False``: bare names); the version stores the descriptions it used, so
    a later glossary never changes a saved classifier.

    Example:
        >>> info = create("tickets", labels=["billing", "technical"],
        ...               examples={"billing": ["refund me"], "technical": ["app crashes"]})  # doctest: +SKIP
        >>> info["ref"]                                                                     # doctest: +SKIP
        'tickets@v1'
    """
    _check_name(name)
    if model is not None and str(getattr(model, "value", model)) in registry.PRIORITIES:
        priority, model = str(getattr(model, "value", model)), None
    if owner is not None and (not isinstance(owner, str) or not owner or len(owner) > 100):
        raise InvalidRequestError("classifier_owner_invalid", "owner must be a key id or None.", {})
    # allow_paths is passed only when false, so a Classifier that predates the keyword still saves.
    extra: dict[str, Any] = {} if allow_paths else {"allow_paths": False}
    clf = Classifier(labels, descriptions=descriptions, examples=examples, text_type=text_type,
                     priority=priority, model=model, device=device, threshold=threshold, truncate=truncate,
                     glossary=glossary, **extra)
    if tune:
        clf.tune(tune_settings, progress=progress)
    calibrated = bool(calibrate and clf.examples_ and clf.calibrate())
    state, arrays = clf.get_state()
    spec = clf.spec_
    weights_hash = spec.weights_hash()
    per_label = {lb: len(clf.examples_.get(lb, [])) for lb in clf.labels_}
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": 0,
        "ref": "",
        "created_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "model": spec.name,
        "model_id": spec.model_id,
        "weights_hash": weights_hash,
        "labels": builtins.list(clf.labels_),
        "counts": {"labels": len(clf.labels_), "examples": sum(per_label.values()),
                   "examples_per_label": per_label, "descriptions": len(clf.descriptions_)},
        "calibrated": calibrated,
        "tuned": None if clf.tuned_ is None else {
            "steps": clf.tuned_.steps, "seconds": round(clf.tuned_.seconds, 2), "delta_bytes": clf.tuned_.nbytes,
            "first_loss": round(clf.tuned_.first_loss, 4), "final_loss": round(clf.tuned_.final_loss, 4)},
        "owner": owner,
        "shared": bool(shared),
        "config": state,
        "arrays": ARRAYS,
    }
    import io

    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    blob = buf.getvalue()
    name_dir = _root() / name
    with _locked(name_dir):
        _clean_leftovers(name_dir)
        version = max([_last_version(name_dir), *_versions(name_dir)]) + 1
        manifest["version"] = version
        manifest["ref"] = f"{name}@v{version}"
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-v{version}-", dir=name_dir))
        try:
            _write_file(tmp / ARRAYS, blob)
            text = json.dumps(manifest, indent=1, ensure_ascii=False, default=_json_default)
            _write_file(tmp / MANIFEST, text.encode("utf-8"))
            _fsync_dir(tmp)
            # Record the number first: a crash after this wastes a number but never reuses one.
            _set_last_version(name_dir, version)
            os.rename(tmp, name_dir / f"v{version}")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(name_dir)
    return _info(manifest, _versions(name_dir))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    # Image examples given as bytes or PIL images land in get_state's config; a path or data: URI saves.
    raise InvalidRequestError(
        "classifier_example_unsaveable",
        f"A {type(value).__name__} example cannot be saved; give image examples as file paths or data: URIs.",
        {"type": type(value).__name__},
    )


def _read_manifest(ref: str, vdir: Path) -> dict[str, Any]:
    try:
        with open(vdir / MANIFEST, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except FileNotFoundError:
        raise _not_found(ref) from None  # deleted under us
    fmt = manifest.get("format_version")
    if not isinstance(fmt, int) or fmt > FORMAT_VERSION:
        raise ConflictError(
            "classifier_format_unsupported",
            f"Saved classifier {ref!r} has format_version {fmt!r}; this classer_local reads up to "
            f"{FORMAT_VERSION}. Upgrade classer_local.",
            {"classifier": ref, "format_version": fmt, "supported": FORMAT_VERSION},
        )
    return manifest


def _info(manifest: dict[str, Any], versions: builtins.list[int]) -> dict[str, Any]:
    cfg = manifest.get("config", {})
    counts = manifest.get("counts", {})
    return {
        "name": manifest["name"],
        "version": manifest["version"],
        "ref": manifest["ref"],
        "labels": manifest["labels"],
        "descriptions": cfg.get("descriptions") or {},
        "text_type": cfg.get("text_type"),
        "model": manifest["model"],
        "model_id": manifest["model_id"],
        "created_at": manifest["created_at"],
        "n_examples": counts.get("examples", 0),
        "examples_per_label": counts.get("examples_per_label", {}),
        "calibrated": manifest["calibrated"],
        "tuned": manifest.get("tuned"),
        "threshold": cfg.get("threshold"),  # None: per-label thresholds where fitted, else 0.5
        "tag_thresholds": dict(zip(manifest["labels"], cfg["tag_thresholds"])) if cfg.get("tag_thresholds") else None,
        "versions": versions,
        "owner": manifest.get("owner"),
        "shared": bool(manifest.get("shared", False)),
    }


def get(ref: str) -> dict[str, Any]:
    """Info on one saved version (``"name"`` is the latest) as a JSON-able dict.

    Example:
        >>> get("tickets@v1")["labels"]  # doctest: +SKIP
        ['billing', 'technical']
    """
    name, version, vdir = _resolve(ref)
    return _info(_read_manifest(f"{name}@v{version}", vdir), _versions(vdir.parent))


def list(name: str | None = None) -> builtins.list[dict[str, Any]]:  # noqa: A001 - cl.classifiers.list()
    """The latest version of every saved classifier, by name; with ``name``, all its versions.

    Example:
        >>> [c["ref"] for c in list()]  # doctest: +SKIP
        ['tickets@v2']
    """
    root = _root()
    if name is not None:
        _check_name(name)
        names = [name]
    else:
        names = sorted(e for e in os.listdir(root) if not e.startswith(".") and (root / e).is_dir())
    out = []
    for n in names:
        versions = _versions(root / n)
        wanted = versions if name is not None else versions[-1:]
        for v in wanted:
            try:
                out.append(_info(_read_manifest(f"{n}@v{v}", root / n / f"v{v}"), versions))
            except NotFoundError:  # deleted while listing
                continue
    if name is not None and not out:
        raise _not_found(name)
    return out


def delete(ref: str) -> dict[str, Any]:
    """Delete one version (``"name@v1"``) or every version (``"name"``).

    Numbers are not reused: after deleting ``name@v2``, the next create is ``name@v3``.

    Example:
        >>> delete("tickets@v1")  # doctest: +SKIP
        {'deleted': ['tickets@v1']}
    """
    name, version = parse_ref(ref)
    name_dir = _root() / name
    if not _versions(name_dir):
        raise _not_found(ref)
    with _locked(name_dir):
        known = _versions(name_dir)
        targets = known if version is None else [version]
        if not known or (version is not None and version not in known):
            raise _not_found(ref, known)
        _set_last_version(name_dir, max([_last_version(name_dir), *known]))
        for v in targets:
            trash = name_dir / f".trash-v{v}-{uuid.uuid4().hex[:8]}"
            os.rename(name_dir / f"v{v}", trash)  # disappears at once; the rmtree may be slow
            shutil.rmtree(trash, ignore_errors=True)
        _fsync_dir(name_dir)
    root = str(_root())
    with _loaded_lock:
        for key in [k for k in _loaded if k[0] == root and k[1] == name and k[2] in targets]:
            del _loaded[key]
    return {"deleted": [f"{name}@v{v}" for v in targets]}


def tune(ref: str, *, tune_settings: Any = None, progress: bool = False, device: str = "auto",
         owner: str | None = None) -> dict[str, Any]:
    """Fine-tune the encoder of saved classifier ``ref`` on its text examples and save the
    result as the next version of its name (same labels, descriptions, options, sharing).

    Example:
        >>> tune("tickets")["ref"]   # doctest: +SKIP
        'tickets@v2'
    """
    name, version, vdir = _resolve(ref)
    manifest = _read_manifest(f"{name}@v{version}", vdir)
    cfg = manifest["config"]
    examples: dict[str, builtins.list[Any]] = {}
    for source in (cfg.get("text_examples") or {}, cfg.get("visual_examples") or {}):
        for label, items in source.items():
            examples.setdefault(label, []).extend(items)
    if not any(cfg.get("text_examples", {}).values()):
        raise InvalidRequestError(
            "tuning_examples_empty", f"{name}@v{version} has no saved text examples to tune on "
            "(versions saved before examples were kept need re-creating with their examples).",
            {"ref": f"{name}@v{version}"})
    return create(name, cfg["labels"], descriptions=cfg.get("descriptions"), examples=examples,
                  text_type=cfg.get("text_type"), model=cfg.get("model"), threshold=cfg.get("threshold"),
                  truncate=cfg.get("truncate"), calibrate=bool(manifest.get("calibrated", True)), device=device,
                  owner=manifest.get("owner") if owner is None else owner, shared=bool(manifest.get("shared")),
                  tune=True, tune_settings=tune_settings, progress=progress)


def load(ref: str, device: str = "auto", allow_paths: bool = True) -> Classifier:
    """The saved classifier ``ref`` (``"name"`` or ``"name@vN"``), ready to score.

    Loaded once per process, device and ``allow_paths`` (``False``: a remote caller's, which
    never reads an input or example string as a file). Raises ``ConflictError`` (``model_changed``) when
    the model's weights differ from the ones it was fitted with, and
    ``ModelNotInstalledError`` when they are gone.

    Example:
        >>> load("tickets@v1").classify("refund please").label  # doctest: +SKIP
        'billing'
    """
    name, version, vdir = _resolve(ref)
    pinned = f"{name}@v{version}"
    key = (str(vdir.parent.parent), name, version, device, bool(allow_paths))
    try:
        inode = os.stat(vdir).st_ino
    except FileNotFoundError:
        raise _not_found(ref) from None
    hit = _loaded.get(key)
    if hit is not None and hit[0] == inode:
        return hit[1]
    manifest = _read_manifest(pinned, vdir)
    _check_model(pinned, manifest)
    with np.load(vdir / manifest.get("arrays", ARRAYS), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    # allow_paths is passed only when false, so a Classifier that predates the keyword still loads.
    extra: dict[str, Any] = {} if allow_paths else {"allow_paths": False}
    clf = Classifier.from_state(manifest["config"], arrays, device=device, ref=pinned, **extra)
    with _loaded_lock:
        _loaded[key] = (inode, clf)
    return clf


def _check_model(ref: str, manifest: dict[str, Any]) -> None:
    name = manifest["model"]
    try:
        spec = registry.get(name)
    except InvalidRequestError:
        raise ModelNotInstalledError(
            "model_not_installed",
            f"Saved classifier {ref!r} was fitted with model {name!r}, which is not in models.toml any more.",
            {"classifier": ref, "model": name, "model_id": manifest.get("model_id")},
        ) from None
    try:
        current = spec.weights_hash()
    except ModelNotInstalledError as exc:
        raise ModelNotInstalledError(
            exc.code, f"Saved classifier {ref!r} needs model {name!r}. {exc.message}",
            {**exc.details, "classifier": ref},
        ) from None
    if current != manifest.get("weights_hash") or spec.model_id != manifest.get("model_id"):
        raise ConflictError(
            "model_changed",
            f"Saved classifier {ref!r} was fitted with {manifest.get('model_id')} (weights "
            f"{manifest.get('weights_hash')}), but {spec.model_id} (weights {current}) is installed now. "
            f"Re-create it with the same labels and examples to fit it to the installed model.",
            {"classifier": ref, "model": name, "old_model_id": manifest.get("model_id"),
             "new_model_id": spec.model_id, "old_hash": manifest.get("weights_hash"), "new_hash": current},
        )


def clear_loaded() -> None:
    """Forget the classifiers loaded in this process (they reload on next use)."""
    with _loaded_lock:
        _loaded.clear()
