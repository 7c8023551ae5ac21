"""sentence-transformers models (all-MiniLM-L6-v2 by default), loaded from a local folder.

Encoding tokenises once, splits long texts into windows, runs the transformer on
length-sorted batches and mean-pools each text's windows (weighted by length). On a CPU with
native bfloat16 matrix units, entries with ``cpu_dtype = "bfloat16"`` run the transformer's
matrix products in bfloat16 (``bf16_wanted``); elsewhere a float32 model on the CPU runs its
exported graph in ONNX Runtime where that is installed (``_onnx``; benchmarks/RUNTIME.md).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from ..registry import ModelSpec
from . import _onnx, l2_normalize
from ._precision import bf16_wanted, cpu_autocast, switched_off
from ._windows import check_truncate, windows


class SentenceTransformerEmbedder:
    def __init__(self, spec: ModelSpec, device: str) -> None:
        self.spec = spec
        self.device = device
        self._model = None  # the SentenceTransformer, loaded on first need when a cached graph runs the encodes
        self._model_lock = threading.Lock()
        self._float = None  # the float32 model, when ``model`` is its int8 copy (see float_model)
        self._float_lock = threading.Lock()
        self._quantize, self.bf16, graphs = runtime_plan(spec, device)
        self.quantized = False
        self.batch_size = spec.batch_size
        self._onnx: _onnx.OnnxEncoder | None | bool = None  # None: not decided yet; False: torch
        self._onnx_owner: object = self  # a copy (a tuned encoder: another model in it) never runs this graph
        self._onnx_lock = threading.Lock()
        folders = _folders(spec)
        self._fast = _onnx.FastTokenizer.of(folders[0]) if graphs else None
        graph = _onnx.cached(folders, _onnx.folder()) if self._fast is not None else None
        if graph is not None:  # no torch at all until something needs the model itself
            self._onnx = graph
            seq = graph.max_seq_length
            tok = self._fast
        else:
            seq = int(self.model.max_seq_length or spec.max_tokens or 512)
            tok = self._fast or self.tokenizer
        self._seq = seq
        self.max_tokens = min(seq, spec.max_tokens) if spec.max_tokens else seq
        self._prefix, self._suffix = _special_affixes(tok)
        self._specials = len(self._prefix) + len(self._suffix)
        self.window = self.max_tokens - self._specials

    @property
    def model(self):
        """The SentenceTransformer (its int8 copy for ``quantize = "int8"`` entries), loaded on
        first use."""
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    model = _load(self.spec, self.device)
                    if self._quantize:
                        int8 = quantized_copy(model)
                        if int8 is not None:
                            model, self.quantized = int8, True
                    self._model = model
        return self._model

    @model.setter
    def model(self, value) -> None:
        self._model = value

    @property
    def tokenizer(self):
        """The model's Hugging Face tokenizer (what tuning tokenises with)."""
        return self.model.tokenizer

    @property
    def float_model(self):
        """The float32 model: what tuning trains and merges a delta into. It is ``model`` itself
        unless ``model`` runs in int8; then it is loaded again on first use (not kept otherwise:
        scoring never needs it)."""
        model = self.model
        if not self.quantized:
            return model
        with self._float_lock:
            if self._float is None:
                self._float = _load(self.spec, self.device)
        return self._float

    def _ids(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        if self._fast is not None:
            return self._fast(texts)
        enc = self.tokenizer(
            list(texts), add_special_tokens=False, truncation=False, verbose=False,
            return_attention_mask=False, return_token_type_ids=False,
        )
        return enc["input_ids"]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) + self._specials for ids in self._ids(texts)]

    def encode(self, texts: Sequence[str], truncate: str | None = None) -> np.ndarray:
        vectors, _ = self.encode_with_tokens(texts, truncate)
        return vectors

    def encode_with_tokens(self, texts: Sequence[str], truncate: str | None = None) -> tuple[np.ndarray, list[int]]:
        """Vectors and each text's token count, from one tokenisation."""
        mode = check_truncate(truncate)
        all_ids = self._ids(texts)
        chunks: list[list[int]] = []
        owner: list[int] = []
        for i, ids in enumerate(all_ids):
            for chunk in windows(ids, self.window, mode, i):
                chunks.append(self._prefix + chunk + self._suffix)
                owner.append(i)
        tokens = [len(ids) + self._specials for ids in all_ids]
        if not chunks:
            return np.zeros((0, self.spec.dim), dtype=np.float32), tokens
        chunk_vecs = self._forward(chunks)
        if len(chunks) == len(all_ids):
            return chunk_vecs, tokens
        weights = np.array([len(c) for c in chunks], dtype=np.float32)
        pooled = np.zeros((len(all_ids), chunk_vecs.shape[1]), dtype=np.float32)
        np.add.at(pooled, np.array(owner), chunk_vecs * weights[:, None])
        return l2_normalize(pooled), tokens

    def onnx_encoder(self) -> _onnx.OnnxEncoder | None:
        """The ONNX graph that runs the model on the CPU, or None where torch runs it (see
        ``_onnx.wanted``). Decided, and exported if need be, on the first call; a copy of this
        embedder (a tuned encoder, another model in it) always runs torch."""
        if self._onnx_owner is not self or self._fast is None:
            return None
        if self._onnx is None:
            with self._onnx_lock:
                if self._onnx is None:
                    probe = [self._prefix + ids[: self.window] + self._suffix for ids in self._ids(_PROBE)]
                    enc = _onnx.export_for(self.model, self.spec.name, _folders(self.spec), _onnx.folder(), probe,
                                           self._seq)
                    self._onnx = enc or False
        return self._onnx or None

    def _forward(self, chunks: list[list[int]]) -> np.ndarray:
        import contextlib

        from .. import threads

        graph = self.onnx_encoder()
        order = np.argsort([-len(c) for c in chunks], kind="stable")
        out = np.empty((len(chunks), self.spec.dim), dtype=np.float32)
        pad = (self._fast.pad_id if graph is not None else self.tokenizer.pad_token_id) or 0
        work = sum(len(c) for c in chunks)
        with contextlib.ExitStack() as stack:
            if graph is None:
                import torch

                model = self.model
                stack.enter_context(torch.inference_mode())
                stack.enter_context(cpu_autocast(self.bf16))
            # for_work counts this call (threads.share divides the cores by the calls running); the
            # graph's thread count comes from share, so it skips choose's CPU meter
            n = stack.enter_context(threads.for_work(work if self.device == "cpu" and graph is None else 0))
            size = min(self.batch_size, _onnx.MAX_BATCH) if graph is not None else self.batch_size
            for k, idx in enumerate(_batches([len(chunks[j]) for j in order], order, size)):
                if graph is not None:
                    n = threads.share()  # its pool sleeps while it waits: the cores, shared by the calls running
                elif k and self.device == "cpu":
                    n = threads.rechoose(work)  # a long encode sees neighbours come and go
                width = len(chunks[idx[0]])
                ids = np.full((len(idx), width), pad, dtype=np.int64)
                mask = np.zeros((len(idx), width), dtype=np.int64)
                for row, j in enumerate(idx):
                    c = chunks[j]
                    ids[row, : len(c)] = c
                    mask[row, : len(c)] = 1
                if graph is not None:
                    out[idx] = graph.run(ids, mask, n)
                    continue
                features = {
                    "input_ids": torch.from_numpy(ids).to(self.device),
                    "attention_mask": torch.from_numpy(mask).to(self.device),
                    "token_type_ids": torch.zeros_like(torch.from_numpy(ids)).to(self.device),
                }
                emb = model(features)["sentence_embedding"]
                out[idx] = emb.float().cpu().numpy()
        return l2_normalize(out)


def runtime_plan(spec: ModelSpec, device: str) -> tuple[bool, bool, bool]:
    """How ``spec`` runs on ``device``: (int8 wanted, bfloat16 autocast, ONNX Runtime wanted).
    int8 layers already run integer kernels, so autocast would only add casts around them; ONNX
    Runtime runs the float32 model only."""
    quantize = quantize_wanted(spec.options.get("quantize"), device)
    bf16 = not quantize and bf16_wanted(spec.options.get("cpu_dtype"), device)
    graphs = _onnx.wanted(device, quantized=quantize, bf16=bf16, runtime=spec.options.get("cpu_runtime"))
    return quantize, bf16, graphs


def _folders(spec: ModelSpec) -> list:
    """The model's folders: the one with its tokenizer and configuration first (the base, for
    an overlay), then the overlay's."""
    base = spec.base_path()
    path = spec.weights_path()
    return [base, path] if base is not None else [path]


_PROBE = ("How do I get a new card?", "The markets fell sharply on Monday after the report.")  # onnx_encoder's check


def _overlay(model, folder) -> None:
    """Load trained transformer weights (``encoder.safetensors``, fp16 allowed) over the base
    model: the shipped artefact holds only the layers training changed."""
    from pathlib import Path

    from safetensors.torch import load_file

    state = load_file(str(Path(folder) / "encoder.safetensors"))
    bert = model[0].auto_model
    own = bert.state_dict()
    unknown = sorted(set(state) - set(own))
    if unknown:
        from ..errors import ModelNotInstalledError

        raise ModelNotInstalledError("model_weights_invalid", f"Weights in {folder} do not fit the base model.",
                                     {"unknown": unknown[:5]})
    bert.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=False)


def quantize_wanted(kind: object, device: str) -> bool:
    """Whether ``quantize = "int8"`` in models.toml applies: on the CPU only (CUDA runs the float
    model), unless ``CLASSER_QUANTIZE=0`` turns it off for the process."""
    return kind == "int8" and device == "cpu" and not switched_off("CLASSER_QUANTIZE")


def quantized_copy(model):
    """A copy of the SentenceTransformer ``model`` whose transformer's Linear layers are int8
    (weights per output channel, activations quantised per call): 2.2x the texts/s of float32
    on this 2-core CPU, every vector within cosine 0.96 of the float one, 2.5 points lower on
    ``eval/`` (benchmarks/QUANTIZE.md). ``model`` is left as it is. None when this torch cannot."""
    import copy
    import warnings

    import torch

    try:
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    except ImportError:  # pragma: no cover - a torch that dropped torch.ao.quantization
        return None
    bert = model[0].auto_model
    with warnings.catch_warnings():  # torch marks the API deprecated in favour of torchao
        warnings.simplefilter("ignore")
        try:
            int8 = quantize_dynamic(bert, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
        except (RuntimeError, AssertionError):  # pragma: no cover - no int8 engine on this CPU
            return None
    out = copy.deepcopy(model, {**shared_tokenizers(model), id(bert): int8})
    out.eval()
    return out


def shared_tokenizers(model) -> dict[int, object]:
    """A ``copy.deepcopy`` memo that keeps ``model``'s tokenizers shared (read-only) in the copy."""
    return {id(v): v for m in model.modules() for v in vars(m).values() if hasattr(v, "convert_tokens_to_ids")}


def _load(spec: ModelSpec, device: str):
    """The float SentenceTransformer of ``spec`` (its base with the shipped layers laid over)."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    base = spec.base_path()
    path = spec.weights_path()
    model = SentenceTransformer(str(base or path), device=device, local_files_only=True)
    if base is not None:
        _overlay(model, path)
    model.eval()
    return model


def _special_affixes(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after a single text ([CLS] ... [SEP])."""
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for p in range(len(full) - len(bare) + 1):
        if full[p : p + len(bare)] == bare:
            return list(full[:p]), list(full[p + len(bare) :])
    return [], []


def _batches(lengths: list[int], order: np.ndarray, size: int) -> list[np.ndarray]:
    """``order`` (longest first, ``lengths`` in that order) cut into batches of at most ``size``
    whose shortest text is at least half the longest: a batch is padded to its longest text, so
    one long text among short ones (a job's slice, a server batch) would otherwise make the
    model read up to 5x the tokens there are; padding here stays under 2x."""
    out: list[np.ndarray] = []
    start = 0
    for k in range(1, len(order) + 1):
        if k == len(order) or k - start >= size or 2 * lengths[k] < lengths[start]:
            out.append(order[start:k])
            start = k
    return out
