"""``Classifier``: label prototypes built once, then classify / tag / batch, and sklearn verbs.

How a score is made:

1. **Prior prototypes.** Each label's name (in the model's template, with ``text_type``)
   and its description are embedded; their normalised mean is the label's prototype.
   Cosine similarity to the prototypes gives the prior: softmax(s / T) for classify,
   sigmoid(a·s + b) for tag, with T, a, b fitted on data (``benchmarks/calibrate.py``).
2. **Examples.** With examples, a logistic-regression head on the embeddings is fitted
   (multinomial for classify, one-vs-rest for tag) and blended with the prior in log space
   with weight w = n / (n + k): n examples per label against the prior's pseudo-count k.
3. **Images and documents** are scored by ``vision.VisualScorer`` and fused with the text
   score (weights in ``vision``).

Example:
    >>> clf = Classifier(["billing", "technical"])             # doctest: +SKIP
    >>> clf.classify("I can't log in").label                    # doctest: +SKIP
    'technical'
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, overload

import numpy as np

from . import cache as cache_mod
from . import registry, scoring, validation
from .errors import ClasserError, InvalidRequestError
from .results import ClassifyResult, LabelScore, TagResult


class Priority(str, Enum):
    """Model tier: ``standard`` (MiniLM) or ``fast`` (static WordLlama)."""

    STANDARD = "standard"
    FAST = "fast"


class Truncate(str, Enum):
    """What to do with texts longer than the model's window (Cohere's ``truncate``)."""

    NONE = "NONE"
    START = "START"
    END = "END"


@dataclass(frozen=True)
class _VisualSims:
    """Visual similarities of a batch (NaN rows: no image) and which rows also had text."""

    sims: np.ndarray
    has_text: np.ndarray


@dataclass(frozen=True)
class Item:
    """One input: a text, images, a document, or a mix."""

    text: str | None = None
    image: Any = None
    file: Any = None


TYPED_SHARE = 0.25
PASSAGE_WORDS = 36  # about 48 word-piece tokens: a sentence or two
MAX_PASSAGES = 64
_PHRASE_SPLIT = None


def description_phrases(description: str) -> list[str]:
    """Split a description into its phrases: "News about markets, trade and stocks." ->
    ["News about markets", "trade", "stocks"]."""
    import re

    global _PHRASE_SPLIT
    if _PHRASE_SPLIT is None:
        _PHRASE_SPLIT = re.compile(r"[,:;]| and | or ")
    parts = (p.strip(" .") for p in _PHRASE_SPLIT.split(description))
    return [p for p in parts if len(p) > 2]


def _new_request_id() -> str:
    return "req_" + uuid.uuid4().hex[:24]


def _opt(value: Any) -> Any:
    return getattr(value, "value", value)


class Classifier:
    """A set of labels (with optional descriptions and examples) bound to a model.

    Prototypes are embedded once per instance (and label texts are cached on disk),
    so repeated calls only embed the inputs.

    Example:
        >>> clf = Classifier(labels=["hot", "cold"],
        ...                  descriptions={"hot": "Ready to buy, asking for pricing or a demo"},
        ...                  examples={"hot": ["Can we get a quote for 500 seats?"]})  # doctest: +SKIP
        >>> clf.classify("Send me your price list").label                          # doctest: +SKIP
        'hot'
    """

    def __init__(
        self,
        labels: Sequence[str] | None = None,
        *,
        descriptions: Mapping[str, str] | None = None,
        examples: Mapping[str, Sequence[Any]] | None = None,
        text_type: str | None = None,
        priority: Priority | str = Priority.STANDARD,
        model: str | None = None,
        device: str = "auto",
        threshold: float = 0.5,
        cache: bool = True,
        truncate: Truncate | str | None = None,
    ) -> None:
        if labels is None and examples:
            labels = list(examples)
        self.labels: list[str] = validation.labels(labels) if labels is not None else []
        self.descriptions = validation.descriptions(descriptions, self.labels)
        self.examples = validation.examples(examples, self.labels)
        self.text_type = text_type.strip() if isinstance(text_type, str) and text_type.strip() else None
        self.priority = str(_opt(priority) or "standard")
        self.model = model
        self.spec = registry.resolve(model, self.priority)
        self.device = device
        self.threshold = validation.threshold(threshold)
        self.cache = cache
        from .backends._windows import check_truncate

        self.truncate = check_truncate(_opt(truncate))
        self._lock = threading.RLock()
        self._built = False
        self._visual: Any = None
        self.ref: str | None = None  # "name@vN" when loaded from the store
        self._state_id: str | None = None  # hash of the fitted arrays, when restored from state
        self.tag_platt_: tuple[float, ...] | None = None
        self.head_: Any = None
        self.tag_head_: Any = None
        self._tag_head_pending: Any = None

    # ------------------------------------------------------------------ building
    @property
    def classes_(self) -> np.ndarray:
        return np.array(self.labels, dtype=object)

    @property
    def embedder(self) -> Any:
        from .backends import load_text

        return load_text(self.spec, self.device)

    def _calib(self, key: str, default: float) -> float:
        return float(self.spec.calibration.get(key, default))

    def _embed_label_texts(self, texts: list[str]) -> np.ndarray:
        """Embed label-side texts through the embedding cache (in memory, then on disk)."""
        unique = list(dict.fromkeys(texts))
        found = cache_mod.get_vectors(self.spec.model_id, unique) if self.cache else {}
        missing = [t for t in unique if t not in found]
        if missing:
            vecs = self.embedder.encode(missing)
            new = dict(zip(missing, vecs))
            found.update(new)
            if self.cache:
                cache_mod.put_vectors(self.spec.model_id, new)
        return np.stack([found[t] for t in texts]) if texts else np.zeros((0, self.spec.dim), np.float32)

    def label_texts(self, label: str) -> list[tuple[str, float]]:
        """The texts (and weights) whose embeddings make ``label``'s prior prototype.

        Name (a quarter of it in the ``text_type`` template when one is given), the
        description, and the description's phrases (split at commas, colons, "and", "or")
        count equally: the phrases cover a label's several senses better than one sentence.
        Chosen on the training splits of five datasets (benchmarks/accuracy.py).
        """
        prompt = self.spec.prompt
        name = prompt.get("name_template", "{label}").format(label=label)
        out = [(name, 1.0)]
        if self.text_type:
            typed = prompt.get("typed_template", "{text_type} about {label}").format(
                label=label, text_type=self.text_type)
            out = [(name, 1.0 - TYPED_SHARE), (typed, TYPED_SHARE)]
        desc = self.descriptions.get(label)
        if desc:
            out.append((prompt.get("description_template", "{description}").format(
                label=label, description=desc, text_type=self.text_type or ""), 1.0))
            phrases = description_phrases(desc)
            if len(phrases) > 1:
                out.extend((ph, 1.0 / len(phrases)) for ph in phrases)
        return out

    def _build(self) -> None:
        if self._built:
            return
        with self._lock:
            if self._built:
                return
            if not self.labels:
                raise InvalidRequestError("labels_required", "This classifier has no labels: pass labels or call fit().")
            per_label = [self.label_texts(lb) for lb in self.labels]
            flat = [t for pairs in per_label for t, _ in pairs]
            vecs = self._embed_label_texts(flat)
            protos, i = [], 0
            for pairs in per_label:
                w = np.array([wt for _, wt in pairs], dtype=np.float32)
                protos.append((vecs[i : i + len(pairs)] * w[:, None]).sum(axis=0))
                i += len(pairs)
            from .backends import l2_normalize

            self.prototypes_ = l2_normalize(np.stack(protos))
            # The parts of each prototype, kept for passage-level scoring of documents.
            self.components_ = vecs
            weights = np.zeros((len(self.labels), len(flat)), dtype=np.float32)
            i = 0
            for j, pairs in enumerate(per_label):
                for _, wt in pairs:
                    weights[j, i] = wt
                    i += 1
            self.component_weights_ = weights / weights.sum(axis=1, keepdims=True)
            self._fit_heads()
            self._built = True

    def _text_examples(self) -> tuple[list[str], list[list[int]]]:
        """Unique text examples and, for each, the indices of the labels it belongs to."""
        index = {lb: i for i, lb in enumerate(self.labels)}
        owners: dict[str, list[int]] = {}
        for lb, items in self.examples.items():
            for ex in items:
                if isinstance(ex, str) and not _looks_like_file(ex):
                    owners.setdefault(ex, []).append(index[lb])
        return list(owners), list(owners.values())

    def _fit_heads(self, classify_head: bool = True) -> None:
        from .calibration import SoftmaxHead

        self.head_ = None
        self.tag_head_ = None
        self._tag_head_pending = None
        self.head_weight_ = 0.0
        texts, owners = self._text_examples()
        if not texts:
            return
        X = self._embed_label_texts(texts)
        self.example_vectors_ = X
        t0 = time.perf_counter()
        labels_with = sorted({i for o in owners for i in o})
        n_per_label = len(texts) / max(len(labels_with), 1)
        # A names-only prior is weaker than a described one, so examples outweigh it sooner.
        k = self._calib("prior_weight", 8.0) if self.descriptions else self._calib("prior_weight_names", 4.0)
        self.head_weight_ = n_per_label / (n_per_label + k)
        C = self._calib("head_C", 10.0)
        if classify_head and len(labels_with) >= 2:
            # Multinomial head over the labels that have examples (first owner for multi-label rows).
            local = {g: j for j, g in enumerate(labels_with)}
            y = np.array([local[o[0]] for o in owners])
            self.head_ = SoftmaxHead(len(labels_with), C=C).fit(X, y)
            self.head_labels_ = np.array(labels_with)
        self.fit_seconds_ = time.perf_counter() - t0
        self._tag_head_pending = (owners, labels_with, C)

    def _fit_tag_head(self) -> None:
        """One-vs-rest heads for ``tag``, fitted on first use (classify never needs them)."""
        pending = getattr(self, "_tag_head_pending", None)
        if pending is None:
            return
        from .calibration import BinaryHeads

        owners, labels_with, C = pending
        X = self.example_vectors_
        Y = np.zeros((len(owners), len(self.labels)), dtype=np.float32)
        for r, o in enumerate(owners):
            Y[r, o] = 1.0
        cols = np.array(labels_with)
        if len(owners) >= 2 and Y[:, cols].min(axis=0).max() == 0:  # every label seen has a negative
            self.tag_head_ = BinaryHeads(C=C).fit(X, Y[:, cols])
            self.tag_head_labels_ = cols
        self._tag_head_pending = None

    # ------------------------------------------------------------------ scoring
    def _text_sims(self, X: np.ndarray) -> np.ndarray:
        return scoring.cosine(X, self.prototypes_)

    def _passage_sims(self, text: str) -> np.ndarray:
        """Label similarities of a document from its passages, not its average.

        What makes a document an invoice or a paper is local (a totals table, an abstract),
        and averaging a long text's windows washes it out into its topic. So the text is cut
        into sentence-sized passages (the first ``MAX_PASSAGES``); each part of a label's
        prototype (name, description, each description phrase) takes its best-matching
        passage, and the label's score is the weighted mean of those best matches.
        """
        words = text.split()
        passages = [" ".join(words[k : k + PASSAGE_WORDS]) for k in range(0, len(words), PASSAGE_WORDS)]
        P = self.embedder.encode(passages[:MAX_PASSAGES] or [text])
        best = (P @ self.components_.T).max(axis=0)
        return (self.component_weights_ @ best).astype(np.float32)

    def _classify_logp(self, X: np.ndarray, sims: np.ndarray) -> np.ndarray:
        """Log-probabilities over labels from text vectors ``X`` and their prior sims."""
        T = self._calib("temperature", 0.05)
        logp = scoring.log_softmax(sims.astype(np.float64) / T)
        if self.head_ is None:
            return logp
        w = self.head_weight_
        cols = self.head_labels_
        head_logp = self.head_.predict_log_proba(X)
        # Labels without examples keep their prior mass; the head splits the rest.
        mass = np.log(np.exp(logp[:, cols]).sum(axis=1, keepdims=True) + 1e-300)
        full = logp.copy()
        full[:, cols] = head_logp + mass
        # A blend of two distributions is flatter than either; one fitted temperature restores it.
        t_fs = self._calib("few_shot_temperature", 1.0)
        return scoring.log_softmax(((1 - w) * logp + w * full) / t_fs)

    def _tag_prior_logits(self, sims: np.ndarray) -> np.ndarray:
        """Calibrated sigmoid logits from the prior: a·s + c·log softmax(s/T) + b.

        The cosine alone says how close a label is; the log-softmax term says how it ranks
        against the other labels. Both weights are fitted on data (benchmarks/calibrate.py).
        """
        s = sims.astype(np.float64)
        a, b = self._calib("tag_a", 1.4), self._calib("tag_b", 0.8)
        c = self._calib("tag_c", 1.3)
        T = self._calib("temperature", 0.05)
        return a * s + c * scoring.log_softmax(s / T) + b

    def _tag_logits(self, X: np.ndarray, sims: np.ndarray) -> np.ndarray:
        if self._tag_head_pending is not None:
            with self._lock:
                self._fit_tag_head()
        z = self._tag_prior_logits(sims)
        if self.tag_head_ is None:
            return z
        w = self.head_weight_
        cols = self.tag_head_labels_
        z = z.copy()
        z[:, cols] = (1 - w) * z[:, cols] + w * self.tag_head_.decision_function(X)
        if self.tag_platt_ is not None:
            a, b = self.tag_platt_
            z = a * z + b
        return z

    # ------------------------------------------------------------------ running
    def _prepare(self, items: list[Item]) -> tuple[np.ndarray, np.ndarray, list[int], list[int], _VisualSims | None]:
        """Embed the items: text vectors, text sims, tokens, visual tokens, visual sims."""
        self._build()
        n = len(items)
        X = np.zeros((n, self.spec.dim), dtype=np.float32)
        sims = np.zeros((n, len(self.labels)), dtype=np.float32)
        tokens = [0] * n
        vtokens = [0] * n
        texts: list[str] = []
        text_idx: list[int] = []
        visual_items: list[list[Any]] = []
        visual_idx: list[int] = []
        for i, it in enumerate(items):
            text = it.text
            images: list[Any] = []
            if it.file is not None:
                doc = self._load_document(it.file)
                text = "\n".join(t for t in (text, doc.text) if t)
                images.extend(doc.pages)
            if it.image is not None:
                images.extend(self._load_images(it.image))
            if text and text.strip():
                texts.append(text)
                text_idx.append(i)
            if images:
                visual_items.append(images)
                visual_idx.append(i)
        if texts:
            vecs, toks = self.embedder.encode_with_tokens(texts, self.truncate)
            X[text_idx] = vecs
            sims[text_idx] = self._text_sims(vecs)
            for j, i in enumerate(text_idx):
                tokens[i] = toks[j]
                if items[i].file is not None:
                    sims[i] = self._passage_sims(texts[j])
        vis: _VisualSims | None = None
        if visual_items:
            vsims, vt = self._visual_scorer().score(visual_items)
            full = np.full((n, len(self.labels)), np.nan, dtype=np.float32)
            full[visual_idx] = vsims
            for j, i in enumerate(visual_idx):
                vtokens[i] = vt[j]
            has_text = np.zeros(n, dtype=bool)
            has_text[text_idx] = True
            vis = _VisualSims(full, has_text)
        return X, sims, tokens, vtokens, vis

    def _load_images(self, image: Any) -> list[Any]:
        from .inputs import load_images

        return load_images(image)

    def _load_document(self, file: Any) -> Any:
        from .inputs import load_document

        return load_document(file)

    def _visual_scorer(self) -> Any:
        with self._lock:
            if self._visual is None:
                from .vision import VisualScorer

                self._visual = VisualScorer(
                    self.labels, self.descriptions, self.examples, self.text_type,
                    self.embedder, registry.get("image", kind="image"), self.device,
                )
        return self._visual

    def _fuse_classify(self, X: np.ndarray, sims: np.ndarray, vis: _VisualSims | None) -> np.ndarray:
        logp = self._classify_logp(X, sims)
        if vis is None:
            return logp
        scorer = self._visual_scorer()
        vsims, has_text = vis.sims, vis.has_text
        has_vis = ~np.isnan(vsims[:, 0])
        vis_logp = scoring.log_softmax(np.nan_to_num(vsims).astype(np.float64) / scorer.temperature)
        both = has_vis & has_text
        only_vis = has_vis & ~has_text
        out = logp.copy()
        out[only_vis] = vis_logp[only_vis]
        if both.any():
            wv = scorer.visual_weight  # vision.VISUAL_WEIGHT, more once page/image examples exist
            out[both] = scoring.log_softmax((1 - wv) * logp[both] + wv * vis_logp[both])
        return out

    def _fuse_tag(self, X: np.ndarray, sims: np.ndarray, vis: _VisualSims | None) -> np.ndarray:
        if vis is None:
            return self._tag_logits(X, sims)
        scorer = self._visual_scorer()
        T = self._calib("temperature", 0.05)
        vsims, has_text = vis.sims, vis.has_text
        has_vis = ~np.isnan(vsims[:, 0])
        # Put visual similarities on the text scale through the two softmax temperatures.
        vis_as_text = np.nan_to_num(vsims) * (T / scorer.temperature)
        mixed = sims.astype(np.float64).copy()
        both = has_vis & has_text
        only_vis = has_vis & ~has_text
        mixed[only_vis] = vis_as_text[only_vis]
        wv = scorer.visual_weight
        mixed[both] = (1 - wv) * sims[both] + wv * vis_as_text[both]
        z = self._tag_logits(X, mixed)
        return z

    def run(self, items: list[Item], op: str, threshold: float | None = None) -> list[ClassifyResult | TagResult]:
        """Score ``items`` without the request cache: one result per item, in order."""
        t0 = time.perf_counter()
        X, sims, tokens, vtokens, vis = self._prepare(items)
        n = len(items)
        results: list[ClassifyResult | TagResult] = []
        labels, name = self.labels, self.spec.name
        if op == "classify":
            probs = np.exp(self._fuse_classify(X, sims, vis))
            rounded = scoring.round_distribution(probs).tolist()
            best = np.argmax(probs, axis=1).tolist()
            ms = round((time.perf_counter() - t0) * 1000 / max(n, 1), 3)
            for i in range(n):
                p = rounded[i]
                results.append(ClassifyResult(
                    label=labels[best[i]], confidence=p[best[i]], scores=dict(zip(labels, p)),
                    tokens=tokens[i], visual_tokens=vtokens[i], latency_ms=ms, model=name,
                    request_id=_new_request_id(),
                ))
        else:
            thr = self.threshold if threshold is None else validation.threshold(threshold)
            probs = scoring.sigmoid(self._fuse_tag(X, sims, vis))
            rounded = scoring.round_scores(probs).tolist()
            order = np.argsort(-probs, axis=1, kind="stable")
            above = probs >= thr
            ms = round((time.perf_counter() - t0) * 1000 / max(n, 1), 3)
            for i in range(n):
                p = rounded[i]
                chosen = [LabelScore(labels[j], p[j]) for j in order[i] if above[i, j]]
                results.append(TagResult(
                    labels=chosen, scores=dict(zip(labels, p)), threshold=thr, tokens=tokens[i],
                    visual_tokens=vtokens[i], latency_ms=ms, model=name, request_id=_new_request_id(),
                ))
        return results

    # ------------------------------------------------------------------ cached front door
    def _examples_digest(self) -> str | None:
        """A content hash of the examples, computed once (``fit`` resets it): thousands of
        examples must not be re-hashed for every input's cache key."""
        if not self.examples:
            return None
        cached = self.__dict__.get("_examples_sha")
        if cached is None or cached[0] is not self.examples:
            sha = cache_mod.request_key(examples_fingerprint(self.examples))
            self.__dict__["_examples_sha"] = cached = (self.examples, sha)
        return cached[1]

    def request_key(self, item: Item, op: str, threshold: float | None = None) -> str:
        """SHA-256 of the canonical request: model and calibration, labels (sorted), descriptions,
        examples (by content), options and the input (files and images by content)."""
        payload = {
            "op": op,
            "model": self.spec.scoring_id,
            "labels": sorted(self.labels),
            "descriptions": self.descriptions,
            "examples": self.ref or self._state_id or self._examples_digest(),
            "text_type": self.text_type,
            "truncate": self.truncate,
            "tag_platt": self.tag_platt_,
            "threshold": (self.threshold if threshold is None else threshold) if op == "tag" else None,
            "text": item.text,
            "image": _fingerprint(item.image),
            "file": _fingerprint(item.file),
        }
        if item.image is not None or item.file is not None:
            payload["image_model"] = registry.get("image", kind="image").model_id
        return cache_mod.request_key(payload)

    def cached(self, items: list[Item], op: str, threshold: float | None = None
               ) -> tuple[list[ClassifyResult | TagResult | None], list[str]]:
        """The request cache's answers for ``items`` (None where it has none) and their keys."""
        keys = [self.request_key(it, op, threshold) for it in items]
        out: list[ClassifyResult | TagResult | None] = []
        for k in keys:
            hit = cache_mod.get_result(k)
            out.append(None if hit is None else _from_cache(hit[0], self.labels, hit[1]))
        return out, keys

    def remember(self, keys: Sequence[str | None], results: Sequence[Any], indices: Sequence[int]) -> None:
        """Store ``results[i]`` under ``keys[i]`` for each index (fresh answers only)."""
        for i in indices:
            key = keys[i]
            if key is not None:
                cache_mod.put_result(key, results[i].to_dict())

    def _score(self, items: list[Item], op: str, threshold: float | None, cache: bool | None,
               endpoint: str) -> list[Any]:
        from . import usagelog as usage

        use_cache = self.cache if cache is None else cache
        t0 = time.perf_counter()
        thr = None if threshold is None else validation.threshold(threshold)
        try:
            for i, it in enumerate(items):
                _check_item(it, i if len(items) > 1 else None)
            out: list[Any] = [None] * len(items)
            keys: list[Any] = [None] * len(items)
            if use_cache:
                out, keys = self.cached(items, op, thr)
            todo = [i for i, r in enumerate(out) if r is None]
            if todo:
                fresh = self.run([items[i] for i in todo], op, thr)
                for i, r in zip(todo, fresh):
                    out[i] = r
                self.remember(keys, out, todo)
        except ClasserError as exc:
            usage.record(endpoint=endpoint, model=self.spec.name, labels=len(self.labels), items=len(items),
                         latency_ms=(time.perf_counter() - t0) * 1000, status="error", error_code=exc.code)
            raise
        total_ms = (time.perf_counter() - t0) * 1000
        per = round(total_ms / len(items), 3)
        for r in out:
            # Results made by this call and not yet shared: stamp the whole call's latency in place
            # (dataclasses.replace per row would cost more than scoring a fast-tier row).
            object.__setattr__(r, "latency_ms", per)
        usage.record_results(endpoint=endpoint, model=self.spec.name, labels=len(self.labels),
                             results=out, latency_ms=total_ms)
        return out

    # ------------------------------------------------------------------ public verbs
    @overload
    def classify(self, text: str | None = None, *, image: Any = None, file: Any = None,
                 cache: bool | None = None) -> ClassifyResult: ...
    @overload
    def classify(self, text: list[str], *, image: Any = None, file: Any = None,
                 cache: bool | None = None) -> list[ClassifyResult]: ...

    def classify(self, text: Any = None, *, image: Any = None, file: Any = None,
                 cache: bool | None = None) -> Any:
        """One label per input (softmax over labels). A list of texts returns a list.

        Example:
            >>> Classifier(["sports", "politics"]).classify("The match ended 2-1").label  # doctest: +SKIP
            'sports'
        """
        if isinstance(text, list):
            return self._score(_items(validation.batch(text)), "classify", None, cache, "classify_batch")
        return self._score([Item(text, image, file)], "classify", None, cache, "classify")[0]

    @overload
    def tag(self, text: str | None = None, *, image: Any = None, file: Any = None,
            threshold: float | None = None, cache: bool | None = None) -> TagResult: ...
    @overload
    def tag(self, text: list[str], *, image: Any = None, file: Any = None,
            threshold: float | None = None, cache: bool | None = None) -> list[TagResult]: ...

    def tag(self, text: Any = None, *, image: Any = None, file: Any = None,
            threshold: float | None = None, cache: bool | None = None) -> Any:
        """Every label whose calibrated confidence reaches ``threshold``. A list returns a list."""
        if isinstance(text, list):
            return self._score(_items(validation.batch(text)), "tag", threshold, cache, "tag_batch")
        return self._score([Item(text, image, file)], "tag", threshold, cache, "tag")[0]

    def classify_items(self, items: list[Item], cache: bool | None = None) -> list[ClassifyResult]:
        return self._score(validation.batch(items, "inputs"), "classify", None, cache, "classify_batch")

    def tag_items(self, items: list[Item], threshold: float | None = None,
                  cache: bool | None = None) -> list[TagResult]:
        return self._score(validation.batch(items, "inputs"), "tag", threshold, cache, "tag_batch")

    # ------------------------------------------------------------------ calibration and state
    def calibrate(self, folds: int = 4, min_per_label: int = 4) -> bool:
        """Fit tag calibration for these labels from the examples by cross-validation.

        Out-of-fold tag logits of every example against every label are Platt-scaled, so
        ``tag`` confidences are calibrated for this classifier's own labels. Needs at least
        ``min_per_label`` text examples for every label; returns whether it calibrated.
        """
        self._build()
        texts, owners = self._text_examples()
        counts = np.zeros(len(self.labels), dtype=int)
        for owner in owners:
            counts[owner] += 1
        if not texts or counts.min() < min_per_label:
            return False
        from .calibration import fit_platt

        X = self.example_vectors_
        sims = self._text_sims(X)
        Y = np.zeros((len(texts), len(self.labels)))
        for r, o in enumerate(owners):
            Y[r, o] = 1.0
        rng = np.random.default_rng(0)
        fold = rng.permutation(len(texts)) % folds
        logits = np.zeros_like(Y)
        with self._lock:
            self._fit_tag_head()
        full = (self.head_, self.tag_head_, self.tag_platt_, self.example_vectors_)
        try:
            self.tag_platt_ = None
            for f in range(folds):
                train = fold != f
                sub = Classifier.__new__(Classifier)
                sub.__dict__.update(self.__dict__)
                sub.examples = {}
                for row in np.flatnonzero(train):
                    for lab in owners[row]:
                        sub.examples.setdefault(self.labels[lab], []).append(texts[row])
                sub._fit_heads(classify_head=False)
                sub._fit_tag_head()
                logits[fold == f] = sub._tag_logits(X[fold == f], sims[fold == f])
        finally:
            self.head_, self.tag_head_, self.tag_platt_, self.example_vectors_ = full
        self.tag_platt_ = fit_platt(logits.ravel(), Y.ravel())
        return True

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The fitted classifier as (JSON-able config, arrays): what ``store`` saves."""
        self._build()
        with self._lock:
            self._fit_tag_head()
        config = {
            "labels": self.labels, "descriptions": self.descriptions, "text_type": self.text_type,
            "model": self.spec.name, "priority": self.priority, "threshold": self.threshold,
            "truncate": self.truncate, "head_weight": self.head_weight_,
            "tag_platt": list(self.tag_platt_) if self.tag_platt_ else None,
            "visual_examples": {k: [x for x in v if not isinstance(x, str) or _looks_like_file(x)]
                                for k, v in self.examples.items()},
        }
        arrays = {"prototypes": self.prototypes_, "components": self.components_,
                  "component_weights": self.component_weights_}
        if self.head_ is not None:
            arrays.update(head_coef=self.head_.coef_, head_intercept=self.head_.intercept_,
                          head_labels=self.head_labels_)
        if self.tag_head_ is not None:
            arrays.update(tag_coef=self.tag_head_.coef_, tag_intercept=self.tag_head_.intercept_,
                          tag_labels=self.tag_head_labels_)
        return config, arrays

    @classmethod
    def from_state(cls, config: dict[str, Any], arrays: Mapping[str, np.ndarray], device: str = "auto",
                   ref: str | None = None) -> Classifier:
        """Rebuild a fitted classifier from ``get_state`` output, with no re-encoding."""
        from .calibration import BinaryHeads, SoftmaxHead

        clf = cls(config["labels"], descriptions=config.get("descriptions"), text_type=config.get("text_type"),
                  model=config["model"], priority=config.get("priority", "standard"), device=device, threshold=config.get("threshold", 0.5),
                  truncate=config.get("truncate"))
        visual = {k: v for k, v in (config.get("visual_examples") or {}).items() if v}
        clf.examples = visual
        clf.ref = ref
        digest = hashlib.sha256(cache_mod.canonical(config).encode())
        for name in sorted(arrays):
            digest.update(name.encode() + np.ascontiguousarray(arrays[name]).tobytes())
        clf._state_id = "state:" + digest.hexdigest()
        clf.prototypes_ = np.asarray(arrays["prototypes"], dtype=np.float32)
        clf.components_ = np.asarray(arrays.get("components", clf.prototypes_), dtype=np.float32)
        clf.component_weights_ = np.asarray(
            arrays.get("component_weights", np.eye(len(clf.labels), dtype=np.float32)), dtype=np.float32)
        clf.head_weight_ = float(config.get("head_weight", 0.0))
        clf.head_ = clf.tag_head_ = None
        if "head_coef" in arrays:
            clf.head_ = SoftmaxHead(len(arrays["head_labels"]))
            clf.head_.coef_, clf.head_.intercept_ = arrays["head_coef"], arrays["head_intercept"]
            clf.head_labels_ = np.asarray(arrays["head_labels"])
        if "tag_coef" in arrays:
            clf.tag_head_ = BinaryHeads()
            clf.tag_head_.coef_, clf.tag_head_.intercept_ = arrays["tag_coef"], arrays["tag_intercept"]
            clf.tag_head_labels_ = np.asarray(arrays["tag_labels"])
        platt = config.get("tag_platt")
        clf.tag_platt_ = (float(platt[0]), float(platt[1])) if platt else None
        clf._built = True
        return clf

    # ------------------------------------------------------------------ scikit-learn verbs
    def fit(self, X: Sequence[str], y: Sequence[str]) -> Classifier:
        """Use ``X`` as examples of labels ``y`` (labels not yet known are added). Returns ``self``."""
        if len(X) != len(y):
            raise InvalidRequestError("fit_length_mismatch", f"X has {len(X)} rows but y has {len(y)}.",
                                      {"X": len(X), "y": len(y)})
        examples: dict[str, list[Any]] = {}
        for text, label in zip(X, y):
            examples.setdefault(str(label), []).append(text)
        labels = list(self.labels) + sorted(lb for lb in examples if lb not in self.labels)
        self.labels = validation.labels(labels)
        self.examples = validation.examples(examples, self.labels)
        self._built = False
        self._visual = None
        self._build()
        return self

    def predict_proba(self, X: Sequence[str]) -> np.ndarray:
        """(n, n_labels) probabilities, columns in ``classes_`` order."""
        items = _items(list(X))
        out = []
        for start in range(0, len(items), validation.MAX_BATCH):
            chunk = items[start : start + validation.MAX_BATCH]
            Xv, sims, _, _, vis = self._prepare(chunk)
            out.append(np.exp(self._fuse_classify(Xv, sims, vis)))
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)))

    def proba_from_embeddings(self, X: np.ndarray) -> np.ndarray:
        """Classify probabilities for text vectors already embedded with this model, (n, d) -> (n, L)."""
        self._build()
        X = np.asarray(X, dtype=np.float32)
        return np.exp(self._classify_logp(X, self._text_sims(X)))

    def tag_proba_from_embeddings(self, X: np.ndarray) -> np.ndarray:
        """Tag probabilities for text vectors already embedded with this model, (n, d) -> (n, L)."""
        self._build()
        X = np.asarray(X, dtype=np.float32)
        return scoring.sigmoid(self._tag_logits(X, self._text_sims(X)))

    def predict(self, X: Sequence[str]) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def __repr__(self) -> str:
        return f"Classifier(labels={self.labels!r}, model={self.spec.name!r})"


def _items(values: list[Any]) -> list[Item]:
    return [v if isinstance(v, Item) else Item(text=v) for v in values]


def _check_item(item: Item, index: int | None) -> None:
    if item.image is None and item.file is None or item.text is not None and not isinstance(item.text, str):
        validation.text(item.text, index)


_FILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".pdf", ".docx")


def _looks_like_file(value: str) -> bool:
    """A string example that names an image or document file (rather than example text)."""
    if len(value) > 4096 or "\n" in value:
        return False
    low = value.lower()
    if low.startswith("data:"):
        return True
    if low.endswith(_FILE_SUFFIXES):
        import os

        return os.path.exists(value) or low.startswith(("http://", "https://"))
    return False


def examples_fingerprint(examples: Mapping[str, Any]) -> Any:
    """Examples as a JSON-able, content-based value (texts as they are, files by content)."""
    out = {}
    for label, values in sorted(examples.items()):
        values = [values] if isinstance(values, str) else list(values)
        if all(isinstance(v, str) and not _looks_like_file(v) for v in values):
            out[label] = values
        else:
            out[label] = [_fingerprint(v) for v in values]
    return out


def _fingerprint(value: Any) -> Any:
    """A stable, content-based stand-in for an input in a cache key."""

    if value is None or isinstance(value, (int, float, bool)):
        return value
    if isinstance(value, str):
        if _looks_like_file(value) and not value.lower().startswith(("http://", "https://", "data:")):
            with open(value, "rb") as fh:
                return "sha256:" + hashlib.sha256(fh.read()).hexdigest()
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "sha256:" + hashlib.sha256(bytes(value)).hexdigest()
    if isinstance(value, (list, tuple)):
        return [_fingerprint(v) for v in value]
    if hasattr(value, "tobytes") and hasattr(value, "size"):  # PIL.Image
        return "sha256:" + hashlib.sha256(value.tobytes()).hexdigest() + f":{value.size}"
    if hasattr(value, "__fspath__"):
        return _fingerprint(str(value))
    return repr(value)


def _from_cache(data: dict[str, Any], labels: list[str], age: float) -> ClassifyResult | TagResult:
    from .results import result_from_dict

    # Keys sort labels, so a hit may come from a call with another label order: restore the caller's.
    data = {**data, "scores": {lb: data["scores"][lb] for lb in labels}, "cached": True,
            "request_id": _new_request_id()}
    return result_from_dict(data).with_meta(cache_age_s=round(age, 3))
