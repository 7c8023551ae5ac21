"""models.toml -> frozen ``ModelSpec``s. Resolves weights to paths; never downloads.

The table is read from ``$CLASSER_MODELS_TOML`` if set, else the ``models.toml``
shipped in the package (a copy of the one at the repository root).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import config
from .errors import InvalidRequestError, ModelNotInstalledError

PRIORITIES = ("standard", "fast")


@dataclass(frozen=True)
class ModelSpec:
    """One model entry of models.toml."""

    name: str
    kind: str  # "text" or "image"
    backend: str
    weights: str
    dim: int
    max_tokens: int = 0
    package: str = ""
    version: str = ""
    install: str = ""
    license: str = ""
    batch_size: int = 64
    prompt: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    calibration: dict[str, float] = field(default_factory=dict, hash=False, compare=False)
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def model_id(self) -> str:
        """Name and version: part of every cache key, so a new model never serves old answers."""
        return f"{self.name}@{self.version or 'local'}"

    @property
    def scoring_id(self) -> str:
        """Model id plus a hash of its prompts and calibration: what a cached answer depends on."""
        blob = repr((sorted(self.prompt.items()), sorted(self.calibration.items())))
        return f"{self.model_id}#{hashlib.sha256(blob.encode()).hexdigest()[:12]}"

    def weights_path(self) -> Path:
        """Where the weights are; raises ``ModelNotInstalledError`` when absent. An ensemble's
        are its members': each is checked, and the primary's path is returned."""
        if self.backend == "ensemble":
            members = ensemble_members(self)[0]
            for m in members:
                m.weights_path()
                m.base_path()
            return members[0].weights_path()
        path = _locate(self.weights)
        if path is None or not path.exists():
            raise ModelNotInstalledError(
                "model_not_installed",
                f"Model {self.name!r} is not installed (weights {self.weights!r} not found). "
                f"Install it with: {self.install or 'see models.toml'}",
                {"model": self.name, "weights": self.weights, "install": self.install},
            )
        return path

    def base_path(self) -> Path | None:
        """The base model a weights overlay applies to (``base = ...`` in models.toml), if any."""
        base = self.options.get("base")
        if not base:
            return None
        path = _locate(base)
        if path is None or not path.exists():
            raise ModelNotInstalledError(
                "model_not_installed", f"Model {self.name!r} needs its base model {base!r}, which is not installed. "
                f"Install it with: {self.install or 'see models.toml'}", {"model": self.name, "base": base})
        return path

    def installed(self) -> bool:
        try:
            self.weights_path()
            self.base_path()
        except ModelNotInstalledError:
            return False
        return True

    def weights_hash(self) -> str:
        """A cheap fingerprint of the weight files on disk (names and sizes; code and caches excluded)."""
        h = hashlib.sha256(self.model_id.encode())
        if self.backend == "ensemble":  # its members' fingerprints (each checks its own weights) and weights
            for m, w in zip(*ensemble_members(self)):
                h.update(f"{m.weights_hash()}*{w:.6f}".encode())
            return h.hexdigest()[:16]
        root = self.weights_path()
        files = [root] if root.is_file() else sorted(
            p for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in {".py", ".pyc", ".pyi", ".typed"})
        for p in files:
            st = p.stat()
            h.update(f"{p.relative_to(root.parent)}:{st.st_size}".encode())
        return h.hexdigest()[:16]


def ensemble_members(spec: ModelSpec) -> tuple[list[ModelSpec], list[float]]:
    """An ensemble's member specs and their weights (summing to 1), checked:
    ``model_config_invalid`` for a member that is unknown, not a text model, an ensemble itself
    or prompted with query/document prefixes, for weights that are not positive numbers (one
    per member), and for a ``dim`` that is not the members' dims summed."""
    def bad(why: str, **details: Any) -> InvalidRequestError:
        return InvalidRequestError("model_config_invalid", f"Ensemble model {spec.name!r}: {why}",
                                   {"model": spec.name, **details})

    names = spec.options.get("members")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise bad("members must be a non-empty list of model names.", members=names)
    specs = _table()[1]
    members = []
    for n in names:
        m = specs.get(n)
        if m is None:
            raise bad(f"member {n!r} is not a model in models.toml or your models.json.", member=n)
        if m.kind != "text" or m.backend == "ensemble":
            raise bad(f"member {n!r} must be a text model that is not an ensemble.", member=n)
        if m.prompt.get("query_prefix") or m.prompt.get("document_prefix"):
            raise bad(f"member {n!r} has query/document prefixes, which an ensemble cannot apply.", member=n)
        members.append(m)
    raw = spec.options.get("member_weights", [1.0] * len(names))
    if (not isinstance(raw, list) or len(raw) != len(names)
            or not all(isinstance(w, (int, float)) and not isinstance(w, bool) and w > 0 for w in raw)):
        raise bad("member_weights must be one positive number per member.", member_weights=raw)
    total = float(sum(raw))
    dims = sum(m.dim for m in members)
    if spec.dim != dims:
        raise bad(f"dim is {spec.dim}, but the members' dims sum to {dims}.", dim=spec.dim, members_dim=dims)
    return members, [float(w) / total for w in raw]


def _locate(weights: str) -> Path | None:
    scheme, _, rest = weights.partition(":")
    if scheme == "package":
        module, _, sub = rest.partition("/")
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        base = Path(next(iter(spec.submodule_search_locations)))
        return base / sub if sub else base
    if scheme == "local-dir":
        return Path(rest).expanduser()
    if scheme == "models-dir":
        root = config.models_dir()
        return root / rest if root else None
    return Path(weights).expanduser()


def _toml_path() -> Path:
    env = os.environ.get("CLASSER_MODELS_TOML")
    if env:
        return Path(env)
    return Path(__file__).with_name("models.toml")


_KNOWN = {"kind", "backend", "weights", "dim", "max_tokens", "package", "version", "install",
          "license", "batch_size", "prompt", "calibration"}


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> dict[str, Any]:
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def _user_path() -> Path:
    """The user's own models and calibrations (``classer-local models add/calibrate``), never the package's."""
    return config.home() / "models.json"


@lru_cache(maxsize=4)
def _merged(path: str, mtime: float, user: str, user_mtime: float) -> tuple[dict[str, str], dict[str, ModelSpec]]:
    import json

    data = _load(path, mtime)
    entries = {name: dict(entry) for name, entry in data.get("models", {}).items()}
    user_data = json.loads(Path(user).read_text()) if user_mtime >= 0 else {}
    user_entries = user_data.get("models", {})
    for name, entry in user_entries.items():  # the user's keys over the package's, tables merged key by key
        _overlay(entries.setdefault(name, {}), entry)
    likes = {name: entry.pop("like") for name, entry in entries.items() if "like" in entry}
    for name, parent in likes.items():  # like = "other": start from that entry's keys
        if parent not in entries or parent in likes:
            raise InvalidRequestError("model_config_invalid", f"Model {name!r} is like {parent!r}, which is not "
                                      "a model of its own (models.toml or your models.json).",
                                      {"model": name, "like": parent})
        entries[name] = _overlay(_overlay({}, entries[parent]), entries[name])
    defaults = {**data.get("defaults", {}), **user_data.get("defaults", {})}  # the user's tiers first
    return defaults, {name: _spec(name, e) for name, e in entries.items()}


def _overlay(into: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """``entry``'s keys over ``into``'s, tables merged key by key."""
    for k, v in entry.items():
        into[k] = {**into.get(k, {}), **v} if isinstance(v, dict) else v
    return into


CPU_DTYPES = ("float32", "bfloat16")  # models.toml cpu_dtype (backends/_precision.py)


def check_cpu_dtype(name: str, cpu_dtype: object) -> None:
    """Refuse a ``cpu_dtype`` other than ``CPU_DTYPES`` (``model_config_invalid``)."""
    if cpu_dtype not in CPU_DTYPES:
        raise InvalidRequestError("model_config_invalid", f"Model {name!r}: cpu_dtype must be one of "
                                  f"{', '.join(CPU_DTYPES)}, not {cpu_dtype!r}.", {"model": name, "cpu_dtype": cpu_dtype})


CPU_RUNTIMES = ("onnx", "torch")  # models.toml cpu_runtime (backends/_onnx.py); onnx where it is installed


def check_cpu_runtime(name: str, runtime: object) -> None:
    """Refuse a ``cpu_runtime`` other than ``CPU_RUNTIMES`` (``model_config_invalid``)."""
    if runtime not in CPU_RUNTIMES:
        raise InvalidRequestError("model_config_invalid", f"Model {name!r}: cpu_runtime must be one of "
                                  f"{', '.join(CPU_RUNTIMES)}, not {runtime!r}.", {"model": name, "cpu_runtime": runtime})


def _spec(name: str, entry: dict[str, Any]) -> ModelSpec:
    options = {k: v for k, v in entry.items() if k not in _KNOWN}
    check_cpu_dtype(name, options.get("cpu_dtype", "float32"))
    check_cpu_runtime(name, options.get("cpu_runtime", "onnx"))
    return ModelSpec(name=name, options=options, **{k: v for k, v in entry.items() if k in _KNOWN})


def _table() -> tuple[dict[str, str], dict[str, ModelSpec]]:
    path = _toml_path()
    user = _user_path()
    user_mtime = user.stat().st_mtime if user.exists() else -1.0
    return _merged(str(path), path.stat().st_mtime, str(user), user_mtime)


def defaults() -> dict[str, str]:
    return dict(_table()[0])


def get(name_or_priority: str | None = None, kind: str = "text") -> ModelSpec:
    """Look up a model by name, or by tier (``standard``/``fast``/``image``).

    Example:
        >>> get("standard").name
        'all-minilm-l6-v2'
    """
    defs, specs = _table()
    key = name_or_priority or ("standard" if kind == "text" else kind)
    name = defs.get(key, key)
    if name not in specs:
        raise InvalidRequestError(
            "model_unknown",
            f"Unknown model or priority {key!r}. Known: {sorted(set(specs) | set(defs))}.",
            {"model": key, "known": sorted(specs)},
        )
    return specs[name]


def resolve(model: str | None, priority: str | None) -> ModelSpec:
    """The text model for a call: an explicit ``model`` wins over ``priority``."""
    if model:
        return get(model)
    p = str(getattr(priority, "value", priority) or "standard")
    if p not in PRIORITIES:
        raise InvalidRequestError(
            "invalid_priority", f"priority must be one of {list(PRIORITIES)}, got {p!r}.", {"priority": p}
        )
    return get(p)


def resolve_pair(model: str | None, image_model: str | None, priority: str | None) -> tuple[ModelSpec, ModelSpec]:
    """(text model, image model): ``model`` may name either kind; ``image_model`` must be an image model."""
    text_spec = None
    image_spec = get(image_model, kind="image") if image_model else None
    if image_spec is not None and image_spec.kind != "image":
        raise InvalidRequestError(
            "model_kind_mismatch", f"image_model {image_model!r} is a {image_spec.kind} model; image models: "
            f"{names('image')}.", {"model": image_model, "kind": image_spec.kind, "expected": "image"})
    if model:
        spec = get(model)
        if spec.kind == "image":
            if image_spec is not None and image_spec.name != spec.name:
                raise InvalidRequestError("model_conflict", f"model {model!r} and image_model {image_model!r} "
                                          "both name an image model.", {"model": model, "image_model": image_model})
            image_spec = spec
        else:
            text_spec = spec
    return (text_spec or resolve(None, priority)), (image_spec or get("image", kind="image"))


def names(kind: str) -> list[str]:
    """The names of every model of ``kind`` (``text`` or ``image``) in models.toml."""
    return sorted(s.name for s in _table()[1].values() if s.kind == kind)


def models() -> list[dict[str, Any]]:
    """Every model in models.toml, with whether its weights are on this machine.

    Example:
        >>> any(m["default_for"] == ["standard"] for m in models())
        True
    """
    defs, specs = _table()
    rows = []
    for spec in specs.values():
        rows.append({
            "name": spec.name,
            "kind": spec.kind,
            "backend": spec.backend,
            "dim": spec.dim,
            "max_tokens": spec.max_tokens,
            "weights": spec.weights,
            "package": spec.package,
            "installed": spec.installed(),
            "install": spec.install,
            "default_for": [k for k, v in defs.items() if v == spec.name],
            # what the entry asks for; bfloat16 applies only on a CPU with native bf16 units
            "precision": spec.options.get("quantize") or spec.options.get("cpu_dtype", "float32"),
        })
    return rows
