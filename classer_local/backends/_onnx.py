"""ONNX Runtime for the sentence-transformers encoders on the CPU, in float32.

torch runs a small transformer op by op from Python, and on a short text that overhead is most
of the time. The same graph in ONNX Runtime, measured on a 2-core AVX2 EPYC (no native
bfloat16, all-MiniLM-L6-v2, float32 both): one short text 16.7-20.1 ms in torch against
5.9-7.6 ms; Banking77's 616 examples in length-sorted batches 2.35-2.87 s against 1.92-2.03 s;
every vector within cosine 1e-7 of torch's (end to end: benchmarks/RUNTIME.md).

How it is used (``SentenceTransformerEmbedder``): on the CPU, for a float32 model, when
``onnxruntime`` and ``onnx`` are installed (both are dependencies) and neither
``CLASSER_ONNX=0`` (the process) nor ``cpu_runtime = "torch"`` (one model, in models.toml or the
user's models.json) turns it off. A CPU with native bfloat16 keeps torch's bfloat16 autocast,
int8 entries keep torch's integer kernels, and a tuned encoder (a copy of the model with a delta
merged in) runs in torch.

The first encode on a machine exports the model: ``CLASSER_HOME/onnx/DIGEST.onnx``, DIGEST a
sha256 of the model's files and the export format, written under a temporary name and renamed
into place (processes exporting at once write the same bytes). The new graph is used only when a
probe batch gives torch's vectors within ``PROBE_MIN_COSINE``; one that disagrees is deleted.
A new export deletes the graphs recorded for the same model name (made from earlier versions of
its files: an upgrade), as ``models remove`` does for a user model (``remove_graphs``).
Later processes find the file and run it with the model's own ``tokenizer.json``
(``FastTokenizer``) without importing torch, sentence-transformers or transformers: a cold
``classify`` then starts in about a second instead of ten. Anything that fails (no exporter, a
file that does not load, a probe that disagrees) logs one warning and leaves the model on torch:
answers never depend on it.

One session per thread count, created on first use. Their thread pools sleep while they wait
(no spinning), so every call uses the cores ``threads.share`` gives it (all of them, shared by
the model calls running at once) even for one text and on a busy machine: beside three
CPU-bound processes that was faster than one thread, where torch's spinning threads were 30x
slower.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._precision import switched_off

log = logging.getLogger("classer_local.onnx")

EXPORT_FORMAT = 1  # bump when the exported graph changes (inputs, outputs, opset): old files are not reused
OPSET = 17
PROBE_MIN_COSINE = 0.9999
# Texts per graph call, at most (the model's batch_size otherwise). On the 2-core AVX2 EPYC, 5 runs
# alternating, CPU seconds: 600 AG News texts 11.84 at 64 -> 10.66 at 32, Banking77's 616 8-shot
# examples 3.34 -> 3.11; 16 was no better than 32 and 4 worse (activations of 64 texts outgrow
# the caches; torch keeps the model's batch_size).
MAX_BATCH = 32

_export_lock = threading.RLock()  # export_for holds it while it calls remove_graphs


def available(module: str = "onnxruntime") -> bool:
    """Whether ``module`` (ONNX Runtime; ``"onnx"``: the package torch's exporter writes with) is
    installed, without importing it."""
    import importlib.util

    return importlib.util.find_spec(module) is not None


def wanted(device: str, *, quantized: bool, bf16: bool, runtime: object = "onnx") -> bool:
    """Whether a text encoder on ``device`` should run in ONNX Runtime (see the module docstring);
    ``runtime``: its models.toml ``cpu_runtime`` (``"torch"`` keeps that model on torch)."""
    return (device == "cpu" and runtime != "torch" and not quantized and not bf16
            and not switched_off("CLASSER_ONNX") and available())


def folder() -> Path:
    """Where exported graphs live: ``CLASSER_HOME/onnx``."""
    from ..config import subdir

    return subdir("onnx")


def files_digest(folders: Sequence[Path]) -> str:
    """sha256 of the model's files (weights, configuration; not its docs), with the export format:
    a graph is exported again whenever anything it was made from changes. Hashed once per process
    (about 0.08 s for MiniLM's 90 MB)."""
    return _digest(tuple(str(f) for f in folders))


@functools.lru_cache(maxsize=32)
def _digest(folders: tuple[str, ...]) -> str:
    h = hashlib.sha256(f"classer-onnx-{EXPORT_FORMAT}-opset{OPSET}".encode())
    for k, root in enumerate(folders):
        for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
            rel = path.relative_to(root).as_posix()
            if rel.startswith(".") or path.suffix.lower() in (".md", ".onnx") or "/." in rel:
                continue
            h.update(f"{k}:{rel}:{path.stat().st_size}".encode())
            with open(path, "rb") as fh:
                while block := fh.read(1 << 20):
                    h.update(block)
    return h.hexdigest()[:20]


def graph_path(folders: Sequence[Path], dest: Path) -> Path:
    """The graph's file: named by the digest alone, so entries over the same files share it."""
    return dest / f"{files_digest(folders)}.onnx"


class FastTokenizer:
    """The model's own ``tokenizer.json`` through the ``tokenizers`` library: the same ids as the
    Hugging Face fast tokenizer (which wraps the same object), without importing transformers."""

    def __init__(self, tok: Any, pad_id: int) -> None:
        self.tok = tok
        self.pad_id = pad_id

    @classmethod
    def of(cls, root: Path) -> FastTokenizer | None:
        """The tokenizer of the sentence-transformers folder ``root``, or None where it has no
        ``tokenizer.json`` (that model then runs in torch)."""
        root = Path(root)
        try:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(root / "tokenizer.json"))
        except Exception:  # noqa: BLE001 - no tokenizers, no file, a file it cannot read: the torch path
            return None
        tok.no_truncation()
        tok.no_padding()
        pad = None
        for name in ("tokenizer_config.json", "special_tokens_map.json"):
            try:
                raw = json.loads((root / name).read_text(encoding="utf-8")).get("pad_token")
            except (OSError, ValueError):
                continue
            token = raw.get("content") if isinstance(raw, dict) else raw
            if isinstance(token, str) and tok.token_to_id(token) is not None:
                pad = tok.token_to_id(token)
                break
        return cls(tok, pad or 0)

    def __call__(self, texts: Sequence[str], add_special_tokens: bool = False, **_: Any) -> Any:
        """``_ids``' form: a list of id lists; called with one string (``_special_affixes``), a
        ``{"input_ids": ids}`` mapping as the Hugging Face tokenizer returns."""
        if isinstance(texts, str):
            return {"input_ids": self.tok.encode(texts, add_special_tokens=add_special_tokens).ids}
        return [e.ids for e in self.tok.encode_batch(list(texts), add_special_tokens=add_special_tokens)]


def _wrapped(model: Any) -> Any:
    """``model`` (a SentenceTransformer) as a module of (input_ids, attention_mask) -> sentence_embedding."""
    import torch

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            features = {"input_ids": input_ids, "attention_mask": attention_mask,
                        "token_type_ids": torch.zeros_like(input_ids)}
            return self.inner(features)["sentence_embedding"]

    return Wrapped().eval()


def export(model: Any, path: Path) -> None:
    """Write ``model`` (a SentenceTransformer) to ``path`` as ONNX, atomically."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    ids = torch.ones((2, 8), dtype=torch.long)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings and the exporter's deprecation notice
            torch.onnx.export(
                _wrapped(model), (ids, torch.ones_like(ids)), tmp, input_names=["input_ids", "attention_mask"],
                output_names=["sentence_embedding"], opset_version=OPSET, dynamo=False,
                dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                              "sentence_embedding": {0: "batch"}},
            )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class OnnxEncoder:
    """The exported graph of one model: ``run(ids, mask, threads)`` -> float32 embeddings."""

    def __init__(self, path: Path, max_seq_length: int) -> None:
        self.path = path
        self.max_seq_length = max_seq_length  # the torch model's, recorded beside the graph at export
        self._sessions: dict[int, Any] = {}
        self._lock = threading.Lock()

    def session(self, threads: int) -> Any:
        threads = max(1, int(threads))
        s = self._sessions.get(threads)
        if s is None:
            with self._lock:
                s = self._sessions.get(threads)
                if s is None:
                    s = self._sessions[threads] = _session(self.path, threads)
        return s

    def run(self, ids: np.ndarray, mask: np.ndarray, threads: int = 1) -> np.ndarray:
        out = self.session(threads).run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return np.asarray(out, dtype=np.float32)

    def agrees(self, model: Any, probe: list[list[int]]) -> bool:
        """Whether the graph gives ``model``'s (torch) vectors for ``probe`` (token ids of a few
        texts, specials included) within cosine PROBE_MIN_COSINE."""
        import torch

        width = max(len(p) for p in probe)
        ids = np.zeros((len(probe), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, p in enumerate(probe):
            ids[row, : len(p)] = p
            mask[row, : len(p)] = 1
        ours = self.run(ids, mask)
        with torch.inference_mode():
            t = torch.from_numpy(ids)
            ref = model({"input_ids": t, "attention_mask": torch.from_numpy(mask),
                         "token_type_ids": torch.zeros_like(t)})["sentence_embedding"].float().numpy()
        cos = (ours * ref).sum(1) / np.maximum(np.linalg.norm(ours, axis=1) * np.linalg.norm(ref, axis=1), 1e-12)
        return bool(np.all(cos >= PROBE_MIN_COSINE))


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    # Memory patterns plan buffers per input shape; with every batch a new (rows, tokens) shape
    # they only pile up: a run of mixed texts and documents held 1.8 GB with them, 0.78 GB without
    # (torch: 1.2 GB). The arena itself stays (without it the same run took 25% longer).
    so.enable_mem_pattern = False
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def cached(folders: Sequence[Path], dest: Path) -> OnnxEncoder | None:
    """The graph exported earlier from exactly these files, if there is one that loads (no torch
    needed); None otherwise (a graph that does not load is removed: it is exported again)."""
    from ..durable import read_json

    path = graph_path(folders, dest)
    try:
        meta = read_json(path.with_suffix(".json"))
        if not path.exists():
            return None
        enc = OnnxEncoder(path, int(meta["max_seq_length"]))
        enc.session(1)
        return enc
    except (OSError, ValueError, KeyError, TypeError):
        return None  # not exported yet (or its record is unreadable): the first encode exports it
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: export it again
        log.warning("exported graph %s does not load (%s); it will be exported again", path.name, exc)
        path.unlink(missing_ok=True)
        return None


def export_for(model: Any, name: str, folders: Sequence[Path], dest: Path, probe: list[list[int]],
               max_seq_length: int) -> OnnxEncoder | None:
    """``model``'s graph, exported into ``dest`` (unless there already), checked against torch on
    ``probe`` (token ids of a few texts), with ``max_seq_length`` (the model's, as the embedder
    read it) recorded beside it (``DIGEST.json``, what a later process reads instead of loading
    the model); None where it cannot be had or disagrees (a warning says why, and the caller
    stays on torch)."""
    if not available("onnx"):
        log.info("the onnx package is not installed: %s runs in torch", name)
        return None
    try:
        with _export_lock:
            path = graph_path(folders, dest)
            for attempt in (0, 1):
                if not path.exists():
                    export(model, path)
                enc = OnnxEncoder(path, int(max_seq_length))
                try:
                    ok = enc.agrees(model, probe)
                except Exception:  # a truncated or foreign file: export it again, once
                    if attempt:
                        raise
                    path.unlink(missing_ok=True)
                    continue
                if ok:
                    from ..durable import write_json

                    write_json(path.with_suffix(".json"), {"max_seq_length": enc.max_seq_length, "model": name})
                    # the model's files changed (a package upgrade, a user model's folder rewritten):
                    # the graphs made from their earlier versions are never read again
                    remove_graphs(name, dest, keep=path)
                    return enc
                path.unlink(missing_ok=True)  # never loaded later without this check
                log.warning("ONNX graph of %s disagrees with torch on the probe; staying on torch", name)
                return None
    except Exception as exc:  # noqa: BLE001 - any failure leaves the model on torch, as before
        log.warning("ONNX Runtime not used for %s (%s: %s); staying on torch", name, type(exc).__name__, exc)
    return None


def remove_graphs(name: str, dest: Path | None = None, keep: Path | None = None) -> int:
    """Delete the graphs whose record says model ``name`` exported them, except ``keep``; returns
    the bytes freed. ``models remove`` calls it for a user model, and a new export for the graphs
    of the same model's earlier files: otherwise each would stay in ``CLASSER_HOME/onnx`` for good,
    as large as the model's weights. Another entry over the same files (or two installs of
    different versions sharing one home) exports its graph again on first use."""
    from ..durable import read_json

    freed = 0
    root = Path(dest) if dest is not None else folder()
    with _export_lock:
        for record in sorted(root.glob("*.json")):
            graph = record.with_suffix(".onnx")
            if keep is not None and graph == Path(keep):
                continue
            try:
                meta = read_json(record)
            except (OSError, ValueError):
                continue
            if not isinstance(meta, dict) or meta.get("model") != name:
                continue
            for path in (graph, record):
                try:
                    size = path.stat().st_size
                    path.unlink()
                    freed += size
                except OSError:  # gone already, or held open where that forbids deleting
                    pass
    return freed


__all__ = ["FastTokenizer", "OnnxEncoder", "available", "cached", "export", "export_for", "files_digest", "folder",
           "remove_graphs", "wanted"]
