"""``Classifier``: label prototypes built once, then classify / tag / batch, and sklearn verbs.

How a score is made:

1. **Prior prototypes** (``prototypes``). Each label's name (in the model's template, with
   ``text_type``) and its description are embedded; their normalised mean is the label's
   prototype. Cosine similarity to the prototypes gives the prior: softmax(s / T) for
   classify, a calibrated sigmoid for tag, with T and the sigmoid's weights fitted on data
   (``benchmarks/calibrate.py``), separately for names-only and described labels.
2. **Examples** (``heads``). With examples, logistic-regression heads on the embeddings are
   blended with the prior in log space with weight w = n / (n + k).
3. **Images and documents** are scored by ``vision.VisualScorer`` and fused with the text
   score (``fusion``).

The request cache, usage rows and latency live in ``service`` (the one front door); this
module only scores.

Example:
    >>> clf = Classifier(["billing", "technical"])             # doctest: +SKIP
    >>> clf.classify("I can't log in").label                    # doctest: +SKIP
    'technical'
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np

from . import cache as cache_mod
from . import doc_scoring, fusion, registry, scoring, threads, validation
from . import examples as examples_mod
from . import prototypes as protos_mod
from .errors import InvalidRequestError
from .estimator import EstimatorMixin
from .heads import ExampleHeads, cross_validated_tag
from .inputs import REMOTE, TRUSTED, InputPolicy, PixelBudget
from .options import Priority, Truncate, value
from .request_ids import new_request_ids
from .results import ClassifyResult, LabelScore, TagResult
from .tuned import TunedEncoderMixin

__all__ = ["Classifier", "Item", "Priority", "Truncate", "check_item"]

# Classifier.run holds numpy's BLAS to one thread from this many (item, label) pairs
# (threads.single_blas): OpenBLAS went parallel between 1,024 and 4,000 pairs of 384-d vectors.
BLAS_SINGLE_FROM = 1024

# What ``Classifier._setup`` derives from the parameters, made when first read.
_SETTINGS = frozenset({"labels_", "descriptions_", "glossary_labels_", "examples_", "text_type_", "priority_",
                       "spec_", "image_spec_", "threshold_", "truncate_", "policy_"})


@dataclass(frozen=True)
class Item:
    """One input: a text, images, a document, or a mix."""

    text: str | None = None
    image: Any = None
    file: Any = None


class Classifier(EstimatorMixin, TunedEncoderMixin):
    """A set of labels (with optional descriptions and examples) bound to a model.

    Prototypes are embedded once per instance (and label texts are cached on disk),
    so repeated calls only embed the inputs. ``allow_paths=False`` (the server, untrusted
    jobs) means no string, input or example, is ever read as a path on this machine.

    A scikit-learn estimator: the constructor only stores its arguments, as given, under their
    own names. They are checked on first use (any verb, ``build``, ``fit``, or reading one of the
    settings below), which raises the typed ``InvalidRequestError`` of a bad argument. What they
    define ends in ``_``: ``labels_`` (the labels scored: ``labels``, or the keys of ``examples``,
    plus those ``fit`` finds in ``y``; ``classes_`` as an array), ``descriptions_`` (with the
    glossary's, ``glossary_labels_`` saying which), ``examples_``, ``spec_`` and ``image_spec_``
    (the models), ``threshold_``, ``truncate_``, ``text_type_``, ``priority_`` and ``policy_``.
    ``fit`` and ``set_params`` start again from the arguments.

    Example:
        >>> clf = Classifier(labels=["hot", "cold"],
        ...                  descriptions={"hot": "Ready to buy, asking for pricing or a demo"},
        ...                  examples={"hot": ["Can we get a quote for 500 seats?"]})  # doctest: +SKIP
        >>> clf.classify("Send me your price list").label                          # doctest: +SKIP
        'hot'
        >>> clf.descriptions_["cold"]  # the glossary's, as none was given                  # doctest: +SKIP
        'Cold lead: not interested, please stop emailing me, unsubscribe, remove me from your list'
    """

    # Fitted state before any fit, on the class so that an instance's own attributes after
    # ``__init__`` are its parameters only (scikit-learn's check_no_attributes_set_in_init).
    heads_: ExampleHeads | None = None
    tuned_: Any = None  # tuning.TunedDelta once tune() ran: the encoder's LoRA delta
    tag_platt_: tuple[float, ...] | None = None
    tag_thresholds_: np.ndarray | None = None  # per label (NaN: none), from calibrate()
    multi_label_ = False  # fitted with an indicator matrix: texts under several labels are expected
    ref_: str | None = None  # "name@vN" when loaded from the store
    state_id_: str | None = None  # hash of the fitted arrays, when restored from state
    _ready = False  # _setup done
    _built = False
    _visual: Any = None
    _tag_calibrated = False  # calibrate() tried (on first tag use, or restored from state)

    def __init__(
        self,
        labels: Sequence[str] | None = None,
        *,
        descriptions: Mapping[str, str] | None = None,
        examples: Mapping[str, Sequence[Any]] | None = None,
        text_type: str | None = None,
        priority: Priority | str = "standard",
        model: str | None = None,
        image_model: str | None = None,
        device: str = "auto",
        threshold: float | None = None,
        cache: bool = True,
        truncate: Truncate | str | None = None,
        allow_paths: bool = True,
        glossary: bool = True,
        ocr: bool = False,
    ) -> None:
        self.labels = labels
        self.descriptions = descriptions
        self.examples = examples
        self.text_type = text_type
        self.priority = priority
        self.model = model
        self.image_model = image_model
        self.device = device
        # None: per-label thresholds fitted from the examples (``calibrate``) where there are any, else 0.5.
        self.threshold = threshold
        self.cache = cache
        self.truncate = truncate
        self.allow_paths = allow_paths
        # Labels without a description borrow the built-in one (glossary.py) unless glossary=False.
        self.glossary = glossary
        # True: the words in an image (a photo of a receipt, a screenshot) are read (the ocr extra)
        # and scored as its text, fused with its look as a document's text is.
        self.ocr = ocr
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ settings
    def __getattr__(self, name: str) -> Any:
        # Only reached for an attribute the instance lacks: a setting read before first use is made now.
        if name in _SETTINGS and not self._ready:
            self._setup()
            return getattr(self, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _setup(self) -> None:
        """Check the parameters and derive the settings they define (``_SETTINGS``), once.

        Raises the typed error of the first bad parameter, at every call until it is fixed. Runs
        on first use; the pool, the scoring front door and job creation call it so that a bad
        parameter fails before anything is cached, scored or queued.
        """
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            try:
                labels = list(self.examples) if self.labels is None and self.examples else self.labels
                self.labels_: list[str] = validation.labels(labels) if labels is not None else []
                validation.glossary(self.glossary)
                validation.ocr(self.ocr)
                self._describe()
                self.examples_ = validation.examples(self.examples, self.labels_)
                self.text_type_ = validation.text_type(self.text_type) or None
                self.priority_ = str(value(self.priority) or "standard")
                self.spec_, self.image_spec_ = registry.resolve_pair(self.model, self.image_model, self.priority_)
                self.threshold_ = (validation.DEFAULT_THRESHOLD if self.threshold is None
                                   else validation.threshold(self.threshold))
                from .backends._windows import check_truncate

                self.truncate_ = check_truncate(value(self.truncate))
                self.policy_: InputPolicy = TRUSTED if self.allow_paths else REMOTE
            except BaseException:
                self._forget()  # no half-made settings: every read raises the same error
                raise
            self._ready = True

    def _describe(self) -> None:
        """``descriptions_``: the given descriptions of ``labels_`` plus the glossary's;
        ``glossary_labels_`` says which labels got one from the glossary."""
        from . import glossary

        own = validation.descriptions(self.descriptions, self.labels_)
        self.descriptions_ = glossary.fill(self.labels_, own) if self.glossary else own
        self.glossary_labels_ = frozenset(set(self.descriptions_) - set(own))

    # ------------------------------------------------------------------ building
    @property
    def classes_(self) -> np.ndarray:
        return np.array(self.labels_, dtype=object)

    def _calib(self, key: str, default: float) -> float:
        return float(self.spec_.calibration.get(key, default))

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """Embed label-side texts (names, descriptions, examples) through the embedding cache."""
        unique = list(dict.fromkeys(texts))
        found = cache_mod.get_vectors(self.vector_id, unique) if self.cache else {}
        missing = [t for t in unique if t not in found]
        if missing:
            prefix = self.spec_.prompt.get("document_prefix", "")
            vecs = self.embedder.encode([prefix + t for t in missing] if prefix else missing)
            new = dict(zip(missing, vecs))
            found.update(new)
            if self.cache:
                cache_mod.put_vectors(self.vector_id, new)
        return np.stack([found[t] for t in texts]) if texts else np.zeros((0, self.spec_.dim), np.float32)

    def label_texts(self, label: str) -> list[tuple[str, float]]:
        """The texts (and weights) whose embeddings make ``label``'s prior prototype."""
        return protos_mod.label_texts(self.spec_, label, self.descriptions_.get(label), self.text_type_)

    def build(self) -> Classifier:
        """Embed the prototypes and fit the example heads (done on first use anyway)."""
        if self._built:
            return self
        with self._lock:
            if self._built:
                return self
            if not self.labels_:
                from .estimator import not_fitted

                raise not_fitted()
            p = protos_mod.build(self.spec_, self.labels_, self.descriptions_, self.text_type_, self.embed_texts)
            self.prototypes_, self.components_, self.component_weights_ = p.vectors, p.components, p.component_weights
            self.heads_ = self._fit_heads(*self.text_examples())
            self._built = True
        return self

    def text_examples(self) -> tuple[list[str], list[list[int]]]:
        """Unique text examples and, for each, the indices of the labels it belongs to (``examples``)."""
        texts, owners, self.example_report_ = examples_mod.collect(self.examples_, self.labels_, self.policy_)
        return texts, owners

    def _fit_heads(self, texts: list[str], owners: list[list[int]], classify_head: bool = True) -> ExampleHeads | None:
        if not texts:
            return None
        examples_mod.inspect(self.example_report_, texts, self.embedder, self.spec_.name,
                             bool(self.spec_.options.get("multilingual")), warn_conflicts=not self.multi_label_)
        X = self.embed_texts(texts)
        self.example_vectors_ = X
        return self._heads_from(X, owners, classify_head)

    def _heads_from(self, X: np.ndarray, owners: list[list[int]], classify_head: bool = True) -> ExampleHeads:
        # A names-only prior is weaker than a described one, so examples outweigh it sooner.
        k = self._calib("prior_weight", 8.0) if self.descriptions_ else self._calib("prior_weight_names", 4.0)
        prior_logp = None
        if classify_head:
            prior_logp = scoring.log_softmax(scoring.cosine(X, self.prototypes_).astype(np.float64) / self._temperature())
        return ExampleHeads.fit(X, owners, len(self.labels_), prior_k=k, C=self._calib("head_C", 10.0),
                                classify_head=classify_head, prior_logp=prior_logp,
                                prior_temperature=self._temperature())

    @property
    def head_weight_(self) -> float:
        return self.heads_.weight if self.heads_ is not None else 0.0

    @property
    def fit_seconds_(self) -> float:
        """Seconds the example heads took to fit (encoding excluded)."""
        return self.heads_.fit_seconds if self.heads_ is not None else 0.0

    # ------------------------------------------------------------------ scoring math
    def _temperature(self) -> float:
        """The softmax temperature of the prior, per regime: names only, described, and described
        by the glossary alone (its short generic descriptions separate labels about as well as
        bare names: training/calibrate_glossary.py)."""
        if not self.descriptions_:
            return self._calib("temperature_names", self._calib("temperature", 0.05))
        if len(self.glossary_labels_) == len(self.descriptions_):
            return self._calib("temperature_glossary", self._calib("temperature", 0.05))
        return self._calib("temperature", 0.05)

    def _classify_logp(self, X: np.ndarray, sims: np.ndarray) -> np.ndarray:
        """Log-probabilities over labels from text vectors ``X`` and their prior sims."""
        logp = scoring.log_softmax(sims.astype(np.float64) / self._temperature())
        if self.heads_ is None:
            return logp
        return self.heads_.classify_logp(logp, X, self._calib("few_shot_temperature", 1.0))

    def _tag_prior_logits(self, sims: np.ndarray) -> np.ndarray:
        """Calibrated sigmoid logits from the prior: a·s + c·log softmax(s/T) + b.

        The cosine alone says how close a label is; the log-softmax term says how it ranks
        against the other labels. Both weights are fitted on data (benchmarks/calibrate.py).
        """
        s = sims.astype(np.float64)
        a, b, c = self._calib("tag_a", 1.4), self._calib("tag_b", 0.8), self._calib("tag_c", 1.3)
        return a * s + c * scoring.log_softmax(s / self._calib("temperature", 0.05)) + b

    def _tag_logits(self, X: np.ndarray, sims: np.ndarray) -> np.ndarray:
        z = self._tag_prior_logits(sims)
        if self.heads_ is not None:
            if not self._tag_calibrated:
                with self._lock:
                    if not self._tag_calibrated:
                        self.calibrate()
            z = self.heads_.tag_logits(z, X)
            if self.tag_platt_ is not None:
                a, b = self.tag_platt_
                z = a * z + b
        return z

    # ------------------------------------------------------------------ running
    @property
    def encoder_key(self) -> tuple[str, str, str | None]:
        """What a text's vector depends on (model, device, truncation) but not the labels: requests
        with equal keys can share one encode (the server batches across label sets with it)."""
        return (self.vector_id, self.device, self.truncate_)

    def encode(self, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        """Input-side vectors and token counts of plain texts (what ``run(encoded=...)`` takes)."""
        prefix = self.spec_.prompt.get("query_prefix", "")
        return self.embedder.encode_with_tokens([prefix + t for t in texts] if prefix else texts, self.truncate_)

    def _prepare(self, items: list[Item], encoded: tuple[np.ndarray, list[int]] | None = None,
                 ocr_out: list[int] | None = None
                 ) -> tuple[np.ndarray, np.ndarray, list[int], list[int], fusion.VisualSims | None]:
        """Embed the items: text vectors, text sims, tokens, visual tokens, visual sims.

        ``encoded``: vectors and token counts of the items' texts made already (by ``encode``,
        for items that are plain texts only), so only the scoring is left. ``ocr_out`` (length n)
        receives the words OCR read from scanned documents (the ``ocr`` extra).
        """
        self.build()
        n = len(items)
        X = np.zeros((n, self.spec_.dim), dtype=np.float32)
        sims = np.zeros((n, len(self.labels_)), dtype=np.float32)
        tokens, vtokens = [0] * n, [0] * n
        ocr_tokens = ocr_out if ocr_out is not None else [0] * n
        texts: list[str] = []
        text_idx: list[int] = []
        visual_items: list[list[Any]] = []
        visual_idx: list[int] = []
        docs: dict[int, Any] = {}
        budget = PixelBudget()  # one pixel budget for the whole call, not one per item
        image_only = bool(self.model) and self.image_spec_.name == self.model  # model= named an image model
        for i, it in enumerate(items):
            text = it.text
            images: list[Any] = []
            if it.file is not None:
                from .inputs import load_document

                doc = docs[i] = load_document(it.file, policy=self.policy_, budget=budget)
                if not doc.text.strip() and doc.pages:
                    from . import ocr

                    if ocr.available():  # a scan: read its words (first ocr.MAX_OCR_PAGES pages)
                        words, _, ocr_tokens[i] = ocr.read_pages(doc.pages)
                        doc = docs[i] = dataclasses.replace(doc, text=words)
                text = "\n".join(t for t in (text, doc.text) if t)
                images.extend(doc.pages)
            if it.image is not None:
                from .inputs import load_images

                loaded = load_images(it.image, policy=self.policy_, budget=budget)
                images.extend(loaded)
                if self.ocr:
                    text = self._image_words(text, loaded, ocr_tokens, i)
            if image_only and not images:
                raise InvalidRequestError(
                    "model_kind_mismatch", f"Model {self.model!r} is an image model; a text needs a text model "
                    f"({registry.names('text')}).", {"model": self.model, "kind": "image", "expected": "text", "index": i})
            if text and text.strip():
                texts.append(text)
                text_idx.append(i)
            if images:
                visual_items.append(images)
                visual_idx.append(i)
        if texts:
            if encoded is not None and len(encoded[1]) == len(texts) == n:
                vecs, toks = encoded
            else:
                vecs, toks = self.encode(texts)
            X[text_idx] = vecs
            sims[text_idx] = scoring.cosine(vecs, self.prototypes_)
            for j, i in enumerate(text_idx):
                tokens[i] = toks[j]
                if items[i].file is not None:
                    sims[i] = doc_scoring.passage_sims(texts[j], lambda ps: self.encode(ps)[0], self.components_,
                                                       self.component_weights_, docs.get(i))
        vis: fusion.VisualSims | None = None
        if visual_items:
            vsims, vt = self._visual_scorer().score(visual_items)
            full = np.full((n, len(self.labels_)), np.nan, dtype=np.float32)
            full[visual_idx] = vsims
            for j, i in enumerate(visual_idx):
                vtokens[i] = vt[j]
            has_text = np.zeros(n, dtype=bool)
            has_text[text_idx] = True
            vis = fusion.VisualSims(full, has_text)
        return X, sims, tokens, vtokens, vis

    @staticmethod
    def _image_words(text: str | None, images: list[Any], ocr_tokens: list[int], i: int) -> str | None:
        """``text`` with the words OCR reads in ``images`` (``ocr=True``; the ocr extra, else its
        typed ``ModelNotInstalledError``)."""
        from . import ocr

        words = []
        for image in images:
            found, _, count = ocr.read_text(image)
            ocr_tokens[i] += count
            if found.strip():
                words.append(found)
        return "\n".join(t for t in (text, *words) if t) or None

    def _visual_scorer(self) -> Any:
        with self._lock:
            if self._visual is None:
                from .vision import VisualScorer

                self._visual = VisualScorer(
                    self.labels_, self.descriptions_, self.examples_, self.text_type_,
                    self.embedder, self.image_spec_, self.device, policy=self.policy_,
                )
        return self._visual

    def _fused_classify(self, X: np.ndarray, sims: np.ndarray, vis: fusion.VisualSims | None) -> np.ndarray:
        logp = self._classify_logp(X, sims)
        if vis is None:
            return logp
        scorer = self._visual_scorer()
        return fusion.classify(logp, vis, scorer.temperature, scorer.visual_weight)

    def _fused_tag(self, X: np.ndarray, sims: np.ndarray, vis: fusion.VisualSims | None) -> np.ndarray:
        if vis is None:
            return self._tag_logits(X, sims)
        scorer = self._visual_scorer()
        return fusion.tag(X, sims, vis, self._tag_logits, self._calib("temperature", 0.05),
                          scorer.temperature, scorer.visual_weight)

    def _model_names(self, vis: fusion.VisualSims | None, i: int) -> tuple[str, str | None]:
        """(model, visual_model) of row ``i``: the image model alone answers a picture-only row."""
        if vis is None or np.isnan(vis.sims[i, 0]):
            return self.spec_.name, None
        return (self.spec_.name if vis.has_text[i] else self.image_spec_.name), self.image_spec_.name

    def _adapt(self, X: np.ndarray, sims: np.ndarray, items: Sequence[Item]) -> np.ndarray:
        """Batch adaptation (``adapt``) over the rows that are plain texts."""
        from .adapt import adapt_sims

        rows = [i for i, it in enumerate(items) if it.text and it.file is None and it.image is None]
        out = sims.copy()
        adapted, _ = adapt_sims(X[rows], self.prototypes_)
        out[rows] = adapted
        return out

    def run(self, items: list[Item], op: str, threshold: float | None = None, t0: float | None = None,
            adapt: bool = False, encoded: tuple[np.ndarray, list[int]] | None = None) -> list[ClassifyResult | TagResult]:
        """Score ``items`` without the request cache: one result per item, in order.

        ``t0`` is when the caller's call began: each result's ``latency_ms`` is that call's
        time per item so far (the front door re-stamps only answers it did not make here).
        ``adapt``: batch adaptation (``classer_local.adapt``), for batches only. ``encoded``: the
        texts' vectors made already by ``encode`` (all items plain texts), shared across classifiers.
        """
        t0 = time.perf_counter() if t0 is None else t0
        ocr_tokens = [0] * len(items)
        # From ~1,000 (text, label) pairs OpenBLAS shares a product between its threads, which then
        # spin after it: the fast tier burnt a second core for no speed. Smaller calls keep it as
        # it is (setting the count costs ~0.1 ms each way).
        big = len(items) * len(self.labels_) >= BLAS_SINGLE_FROM
        with threads.single_blas() if big else contextlib.nullcontext():
            X, sims, tokens, vtokens, vis = self._prepare(items, encoded, ocr_tokens)
            if adapt:
                sims = self._adapt(X, sims, items)
            labels = self.labels_
            if op == "classify":
                probs = np.exp(self._fused_classify(X, sims, vis))
                rounded = scoring.round_distribution(probs).tolist()
                best = np.argmax(probs, axis=1).tolist()
            else:
                thr = self.threshold_ if threshold is None else validation.threshold(threshold)
                probs = scoring.sigmoid(self._fused_tag(X, sims, vis))
                rounded = scoring.round_scores(probs).tolist()
                order = np.argsort(-probs, axis=1, kind="stable")
                above = probs >= (self.label_thresholds() if threshold is None else thr)
        n = len(items)
        ms = round((time.perf_counter() - t0) * 1000 / max(n, 1), 3)
        results: list[ClassifyResult | TagResult] = []
        ids = new_request_ids(n)
        for i in range(n):
            p = rounded[i]
            model, visual_model = self._model_names(vis, i)
            if op == "classify":
                results.append(ClassifyResult(
                    label=labels[best[i]], confidence=p[best[i]], scores=dict(zip(labels, p)), tokens=tokens[i],
                    visual_tokens=vtokens[i], latency_ms=ms, model=model, request_id=ids[i],
                    visual_model=visual_model, ocr_tokens=ocr_tokens[i]))
            else:
                chosen = [LabelScore(labels[j], p[j]) for j in order[i] if above[i, j]]
                results.append(TagResult(
                    labels=chosen, scores=dict(zip(labels, p)), threshold=thr, tokens=tokens[i],
                    visual_tokens=vtokens[i], latency_ms=ms, model=model, request_id=ids[i],
                    visual_model=visual_model, ocr_tokens=ocr_tokens[i]))
        return results

    # ------------------------------------------------------------------ public verbs
    def _score(self, items: list[Item], op: str, threshold: Any, cache: bool | None, endpoint: str,
               key_id: str | None = None, adapt: bool = False) -> list[Any]:
        from . import service

        return service.score(self, items, op, threshold=threshold, cache=cache, endpoint=endpoint,
                             key_id=key_id, adapt=adapt).results

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

    def classify_items(self, items: list[Item], cache: bool | None = None, key_id: str | None = None,
                       adapt: bool = False) -> list[ClassifyResult]:
        """``classify`` over a batch of ``Item``s; ``adapt=True`` adapts the prototypes to the batch."""
        return self._score(validation.batch(items, "inputs"), "classify", None, cache, "classify_batch", key_id,
                           adapt)

    def tag_items(self, items: list[Item], threshold: float | None = None, cache: bool | None = None,
                  key_id: str | None = None, adapt: bool = False) -> list[TagResult]:
        """``tag`` over a batch of ``Item``s; ``adapt=True`` adapts the prototypes to the batch."""
        return self._score(validation.batch(items, "inputs"), "tag", threshold, cache, "tag_batch", key_id, adapt)

    # ------------------------------------------------------------------ calibration and state
    def calibrate(self, folds: int = 4, min_per_label: int = 4) -> bool:
        """Fit tag calibration for these labels from the examples by cross-validation.

        Out-of-fold tag logits of every example against every label are Platt-scaled, so
        ``tag`` confidences are calibrated for this classifier's own labels, and each label with
        at least 5 examples gets the threshold that maximised its out-of-fold F1 (used by ``tag``
        when neither the call nor the constructor gives a threshold). Needs at least
        ``min_per_label`` text examples for every label; returns whether it calibrated.
        Runs by itself on the first ``tag`` of a classifier with examples.
        """
        self.build()
        self._tag_calibrated = True
        texts, owners = self.text_examples()
        counts = np.zeros(len(self.labels_), dtype=int)
        for owner in owners:
            counts[owner] += 1
        if not texts or counts.min() < min_per_label:
            return False
        X = self.example_vectors_
        prior_z = self._tag_prior_logits(scoring.cosine(X, self.prototypes_))
        self.tag_platt_, thresholds, kind = cross_validated_tag(
            X, owners, len(self.labels_), prior_z,
            lambda Xf, of: self._heads_from(Xf, of, classify_head=False), folds)
        if kind != self.heads_.tag_kind:
            self.heads_.refit_tag(kind, X, owners)
        self.tag_thresholds_ = thresholds if np.isfinite(thresholds).any() else None
        return True

    def label_thresholds(self) -> np.ndarray:
        """The tag threshold of every label when a call gives none: the constructor's
        ``threshold`` if it was given, else each label's fitted one (``calibrate``), else 0.5."""
        out = np.full(len(self.labels_), self.threshold_)
        if self.threshold is None and self.tag_thresholds_ is not None:
            fitted = np.asarray(self.tag_thresholds_, dtype=float)
            out = np.where(np.isfinite(fitted), fitted, out)
        return out

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The fitted classifier as (JSON-able config, arrays): what ``store`` saves (``snapshot``)."""
        from . import snapshot

        return snapshot.get_state(self)

    @classmethod
    def from_state(cls, config: dict[str, Any], arrays: Mapping[str, np.ndarray], device: str = "auto",
                   ref: str | None = None, allow_paths: bool = True) -> Classifier:
        """Rebuild a fitted classifier from ``get_state`` output, with no re-encoding."""
        from . import snapshot

        return snapshot.from_state(cls, config, arrays, device=device, ref=ref, allow_paths=allow_paths)

    # ------------------------------------------------------------------ scikit-learn verbs
    def fit(self, X: Sequence[str], y: Any, tune: bool = False, tune_settings: Any = None) -> Classifier:
        """Use ``X`` as examples of labels ``y``; returns ``self``.

        ``y`` is one label per row (labels not yet known are added to ``labels_``), or a binary
        indicator matrix (``MultiLabelBinarizer`` style) whose columns are the parameters' labels.
        Each fit starts again from the parameters, which it leaves as they were given.
        ``tune=True`` also fine-tunes the encoder on them (``tune``; seconds to minutes on a CPU).
        """
        self._forget()
        self._setup()
        X = list(X)
        if len(X) != len(y):
            raise InvalidRequestError("fit_length_mismatch", f"X has {len(X)} rows but y has {len(y)}.",
                                      {"X": len(X), "y": len(y)})
        examples: dict[str, list[Any]] = {}
        Y = np.asarray(y, dtype=object)
        self.multi_label_ = Y.ndim == 2
        if Y.ndim == 2:
            if Y.shape[1] != len(self.labels_):
                raise InvalidRequestError(
                    "fit_labels_mismatch", f"y has {Y.shape[1]} columns but the classifier has {len(self.labels_)} labels.",
                    {"columns": int(Y.shape[1]), "labels": len(self.labels_)})
            for text, row in zip(X, Y.astype(float)):
                for j in np.flatnonzero(row):
                    examples.setdefault(self.labels_[j], []).append(text)
        else:
            for text, label in zip(X, y):
                examples.setdefault(str(label), []).append(text)
        self.labels_ = validation.labels(self.labels_ + sorted(lb for lb in examples if lb not in self.labels_))
        self._describe()
        self.examples_ = validation.examples(examples, self.labels_)
        # tune() builds with the tuned encoder: building first would encode the examples twice.
        return self.tune(tune_settings) if tune else self.build()

    def predict_proba(self, X: Sequence[str]) -> np.ndarray:
        """(n, n_labels) probabilities, columns in ``classes_`` order."""
        items = _items(list(X))
        out = []
        for start in range(0, len(items), validation.MAX_BATCH):
            chunk = items[start : start + validation.MAX_BATCH]
            Xv, sims, _, _, vis = self._prepare(chunk)
            out.append(np.exp(self._fused_classify(Xv, sims, vis)))
        return np.concatenate(out) if out else np.zeros((0, len(self.labels_)))

    def proba_from_embeddings(self, X: np.ndarray, adapt: bool = False) -> np.ndarray:
        """Classify probabilities for text vectors already embedded with this model, (n, d) -> (n, L)."""
        self.build()
        X = np.asarray(X, dtype=np.float32)
        sims = scoring.cosine(X, self.prototypes_)
        if adapt:
            from .adapt import adapt_sims

            sims = adapt_sims(X, self.prototypes_)[0]
        return np.exp(self._classify_logp(X, sims))

    def tag_proba_from_embeddings(self, X: np.ndarray) -> np.ndarray:
        """Tag probabilities for text vectors already embedded with this model, (n, d) -> (n, L)."""
        self.build()
        X = np.asarray(X, dtype=np.float32)
        return scoring.sigmoid(self._tag_logits(X, scoring.cosine(X, self.prototypes_)))

    def predict(self, X: Sequence[str]) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _items(values: list[Any]) -> list[Item]:
    return [v if isinstance(v, Item) else Item(text=v) for v in values]


def check_item(item: Item, index: int | None, policy: InputPolicy = TRUSTED) -> None:
    """An input needs a text, an image or a file; a text must be a valid string."""
    if item.image is None and item.file is None or item.text is not None and not isinstance(item.text, str):
        validation.text(item.text, index)
