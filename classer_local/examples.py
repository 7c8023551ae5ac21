"""Example hygiene: what happens to duplicate, conflicting, lopsided, long and foreign examples.

The rules (documented in docs/examples.md, tested in tests/test_examples.py):

* **Duplicates.** The same text listed twice under one label counts once: repeating an example
  does not give it more weight.
* **One text under several labels.** For ``tag`` it is a positive of every label it is listed
  under (multi-label rows are the point of tag). For ``classify`` it cannot tell those labels
  apart, so the classify head leaves it out. An ``ExampleWarning`` names it.
* **Labels without examples beside labels with many.** The head covers only the labels that
  have examples; the others keep their prior (name/description) mass, so a text that matches an
  example-less label's name can still be given that label. The blend weight is chosen per
  classifier (``heads``), from the labels that have examples.
* **Long examples.** An example longer than the model's window is split into windows and their
  vectors pooled, like any input (``truncate`` applies to inputs, not to examples); the report
  counts them.
* **Examples in a language the model does not read.** Counted with ``language.detect``; on a
  model whose ``models.toml`` entry does not declare ``multilingual = true``, an
  ``ExampleWarning`` suggests the multilingual model.

``collect`` returns the unique texts, their owners and an ``ExampleReport`` (kept on the
classifier as ``example_report_``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .inputs import InputPolicy, looks_like_file

__all__ = ["ExampleReport", "ExampleWarning", "collect", "inspect"]


class ExampleWarning(UserWarning):
    """Examples were given in a way that classify or the model cannot fully use."""


@dataclass
class ExampleReport:
    """What ``collect`` and ``inspect`` found in a classifier's text examples."""

    texts: int = 0  # unique text examples
    duplicates: int = 0  # repeated (text, label) pairs, counted once
    conflicts: dict[str, list[str]] = field(default_factory=dict)  # text -> the labels it is listed under
    per_label: dict[str, int] = field(default_factory=dict)  # unique text examples per label
    without_examples: list[str] = field(default_factory=list)  # labels with no text example
    windowed: int = 0  # examples longer than the model's window (split and pooled)
    foreign: dict[str, int] = field(default_factory=dict)  # language -> examples not in English

    def as_dict(self) -> dict[str, Any]:
        return {"texts": self.texts, "duplicates": self.duplicates, "conflicts": dict(self.conflicts),
                "per_label": dict(self.per_label), "without_examples": list(self.without_examples),
                "windowed": self.windowed, "foreign": dict(self.foreign)}


def collect(examples: Mapping[str, Sequence[Any]], labels: Sequence[str],
            policy: InputPolicy) -> tuple[list[str], list[list[int]], ExampleReport]:
    """Unique text examples, the label indices each belongs to, and what was found.

    Example:
        >>> from classer_local.inputs import TRUSTED
        >>> texts, owners, rep = collect({"a": ["x", "x", "y"], "b": ["y"]}, ["a", "b", "c"], TRUSTED)
        >>> texts, owners, rep.duplicates, rep.conflicts, rep.without_examples
        (['x', 'y'], [[0], [0, 1]], 1, {'y': ['a', 'b']}, ['c'])
    """
    index = {lb: i for i, lb in enumerate(labels)}
    owners: dict[str, list[int]] = {}
    rep = ExampleReport()
    for lb, items in examples.items():
        for ex in items:
            if not isinstance(ex, str) or looks_like_file(ex, policy):
                continue  # images and files: the visual side
            o = owners.setdefault(ex, [])
            if index[lb] in o:
                rep.duplicates += 1
            else:
                o.append(index[lb])
    rep.texts = len(owners)
    rep.conflicts = {t: [labels[i] for i in o] for t, o in owners.items() if len(o) > 1}
    counts = [0] * len(labels)
    for o in owners.values():
        for i in o:
            counts[i] += 1
    rep.per_label = {lb: c for lb, c in zip(labels, counts) if c}
    if owners:
        rep.without_examples = [lb for lb, c in zip(labels, counts) if not c]
    return list(owners), list(owners.values()), rep


def inspect(rep: ExampleReport, texts: Sequence[str], embedder: Any, model: str, multilingual: bool,
            warn_conflicts: bool = True) -> ExampleReport:
    """Add the window and language checks (they need the model's tokenizer), then warn.

    ``warn_conflicts=False``: the examples came as a multi-label indicator matrix, where texts
    under several labels are the point, not a slip.
    """
    from . import language

    window = getattr(embedder, "max_tokens", 0)
    if window and hasattr(embedder, "count_tokens"):
        # A token covers at least one byte, so only texts with more bytes than the window (less a
        # few special tokens) can overflow it: the rest are not tokenised twice.
        maybe = [t for t in texts if len(t.encode("utf-8")) + 8 > window]
        rep.windowed = sum(n > window for n in embedder.count_tokens(maybe)) if maybe else 0
    for t in texts:
        lang = language.detect(t)
        if lang != "en":
            rep.foreign[lang] = rep.foreign.get(lang, 0) + 1
    if rep.conflicts and warn_conflicts:
        shown = "; ".join(f"{t[:40]!r} -> {ls}" for t, ls in list(rep.conflicts.items())[:3])
        warnings.warn(f"{len(rep.conflicts)} example text(s) are listed under several labels ({shown}): "
                      "they count for tag, and classify leaves them out.", ExampleWarning, stacklevel=4)
    n_foreign = sum(rep.foreign.values())
    if n_foreign and not multilingual:
        warnings.warn(f"{n_foreign} of {len(texts)} examples look like {sorted(rep.foreign)}; model {model!r} reads "
                      "English. Use model='use-multilingual' for other languages.", ExampleWarning, stacklevel=4)
    return rep
