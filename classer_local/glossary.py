"""Built-in descriptions for common label names (``data/label_glossary.json``).

A bare name is a weak prior: "technical" means "a technical problem" to a person sorting support
mail, but to a sentence encoder it is one adjective, and "I can't log in to my account" lands
nearer "billing" (accounts, charges). A description fixes that, as the README's examples show,
and most users never write one. So a label given without a description borrows the glossary's:
about 120 everyday names (support, sentiment, spam, urgency, emotions, toxicity, news topics,
products, document kinds), written from general knowledge, each a few comma-separated phrases
that become part of the label's prototype. ``glossary=False`` (library, CLI ``--no-glossary``,
HTTP ``"glossary": false``) turns it off; a description the caller gives always wins.

>>> fill(["Technical", "Billing", "zebra"], {"Billing": "Money"})["Technical"].split(":")[0]
'Technical problem'
>>> sorted(fill(["Technical", "Billing", "zebra"], {"Billing": "Money"}))
['Billing', 'Technical']
>>> key("  Not_Spam ")
'not spam'
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from importlib.resources import files

__all__ = ["fill", "key", "lookup", "version"]

_SEPARATORS = re.compile(r"[\s_\-]+")


def key(label: str) -> str:
    """How a label name is matched: lower case, ``_``/``-``/runs of spaces read as one space."""
    return _SEPARATORS.sub(" ", label).strip().lower()


@functools.cache
def _table() -> tuple[dict[str, str], str]:
    raw = (files(__package__) / "data" / "label_glossary.json").read_text(encoding="utf-8")
    data = json.loads(raw)
    table = {key(name): entry["description"] for entry in data["entries"] for name in entry["names"]}
    return table, f"{data['version']}-{hashlib.sha256(raw.encode()).hexdigest()[:12]}"


def lookup(label: str) -> str | None:
    """The built-in description for ``label``, or None."""
    return _table()[0].get(key(label))


def version() -> str:
    """The glossary's version and content hash (it changes every built-in description)."""
    return _table()[1]


def fill(labels: Sequence[str], given: Mapping[str, str]) -> dict[str, str]:
    """``given``, plus the glossary's description for every label that has none there."""
    out = dict(given)
    for label in labels:
        if label not in out:
            found = lookup(label)
            if found is not None:
                out[label] = found
    return out
