"""The fast tier's piece path gives the tokenizer's own ids and WordLlama's own vectors."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from classer_local import registry
from classer_local.backends import load_text
from classer_local.backends import wordllama as wl

DATA = Path(__file__).resolve().parents[2] / "shared" / "evaldata"
EDGES = [
    "", " ", "  ", "a", " a", "a ", "a  b", "  lead and trail  ", "tab\there", "new\nline", "\u2581", "\u2581\u2581x\u2581",
    "spaces\u2581and\u2581marks", "<s>hello</s> <unk>", "a<s>b", "NUL\x00inside", "emoji \U0001f600 and \u6f22\u5b57",
    "non\u00a0breaking\u3000space", "x" * 300, "1234567890 3.14159 $5,000", "caf\u00e9 na\u00efve r\u00e9sum\u00e9",
]


def _sample() -> list[str]:
    texts: list[str] = []
    for rel, n in (("ag_news/test.jsonl", 600), ("banking77/test.jsonl", 300)):
        path = DATA / rel
        if path.exists():
            with open(path, encoding="utf-8") as fh:
                texts.extend(json.loads(line)["text"] for line in list(fh)[:n])
    rng = random.Random(0)
    alphabet = [*"ab \u2581.,\u00e9\u6f22\U0001f600\n\t<>/", "  ", "<s>", "</s>", "<unk>", "\u2581\u2581", "\x00"]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(1500)]
    return texts + EDGES


@pytest.fixture(scope="module")
def fast():
    emb = load_text(registry.resolve(None, "fast"), "cpu")
    assert emb.pieces is not None  # the Llama tokenizer qualifies for the exact piece path
    return emb


def test_ids_equal_the_tokenizers_cold_and_warm(fast):
    texts = _sample()
    want = [e.ids for e in fast.tokenizer.encode_batch(texts, add_special_tokens=False)]
    fast.pieces._forget()
    assert fast._ids(texts) == want  # every piece unseen
    assert fast._ids(texts) == want  # every piece remembered
    assert fast.count_tokens(texts) == [len(x) for x in want]
    assert fast._ids(texts[::-1]) == want[::-1]


def test_word_split_path_and_regex_path_agree(fast):
    """A chunk is split at spaces (keys: bare words, and runs of spaces put back as the regex cuts
    them) unless a text holds "\u2581", a NUL, a special token or nothing: then the regex. Both give
    the tokenizer's ids, whichever path met a piece first."""
    texts = _sample()
    want = [e.ids for e in fast.tokenizer.encode_batch(texts, add_special_tokens=False)]
    fast.pieces._forget()
    assert [fast._ids([t])[0] for t in texts] == want  # one text a call: each text takes its own path
    keys = fast.pieces.index
    assert "a" in keys and "  b" in keys  # split: "a" a bare word, "a  b"'s extra space put back
    assert " \u2581\u2581x" in keys  # "\u2581\u2581x\u2581": a text holding "\u2581" went through the regex
    for size in (7, 64):
        got = [ids for i in range(0, len(texts), size) for ids in fast._ids(texts[i : i + size])]
        assert got == want


def test_ids_survive_forgetting_when_full(fast, monkeypatch):
    texts = _sample()
    want = [e.ids for e in fast.tokenizer.encode_batch(texts, add_special_tokens=False)]
    fast.pieces._forget()
    fast._ids(texts)
    everything = len(fast.pieces.index)
    monkeypatch.setattr(wl, "_MAX_PIECES", max(10, everything // 3))  # full several times over the sample
    fast.pieces._forget()
    got = []
    for i in range(0, len(texts), 100):  # each chunk may forget everything the last one learned
        got.extend(fast._ids(texts[i : i + 100]))
    assert got == want
    assert len(fast.pieces.index) < everything  # it did forget


def test_vectors_equal_wordllamas_own_embed(fast):
    texts = [t for t in _sample() if fast.tokenizer.encode(t, add_special_tokens=False).ids]
    fast.pieces._forget()
    ours, tokens = fast.encode_with_tokens(texts)
    ref = fast.model.embed(texts, norm=True)  # the package's padded mean pool: what the tier computed before
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    assert np.abs(ours - ref).max() < 1e-5
    assert tokens == [len(e.ids) for e in fast.tokenizer.encode_batch(texts, add_special_tokens=False)]
    again = fast.encode(texts[::-1])[::-1]
    assert np.abs(again - ours).max() < 1e-6


def test_empty_text_is_a_zero_vector(fast):
    vecs, tokens = fast.encode_with_tokens(["", "hello world", ""])
    assert tokens[0] == tokens[2] == 0 and tokens[1] > 0
    assert not vecs[0].any() and not vecs[2].any()
    assert np.isclose(np.linalg.norm(vecs[1]), 1.0)
    assert fast.encode([]).shape == (0, fast.table.shape[1])
