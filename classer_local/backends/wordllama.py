"""WordLlama static embeddings: the ``fast`` tier (tens of thousands of texts/s on CPU).

Static token embeddings are averaged, so there is no window to split: every token counts.

Where the time went (38-word AG News texts, cProfile, one core): the Llama tokenizer has no
pre-tokenizer, so it ran BPE over each whole text and its word cache never hit (~80 us a
text), and ``np.add.reduceat`` over the gathered (tokens, 256) rows took ~150 us more. Now:

* **Pieces.** No Llama token holds a ``▁`` after another character, so no BPE merge crosses
  the start of a space-led piece: each piece tokenised alone gives the ids the whole text
  gets. Pieces repeat (words), so their ids are kept; only unseen pieces reach the
  tokenizer. A chunk of texts is cut into pieces by one ``str.split(" ")`` over the joined
  texts (runs of extra spaces put back as the pieces they are), or by one regex call when a
  text holds a literal "▁", and looked up by one ``map``; the rest is numpy. Texts holding a
  special token (``<s>``...), a NUL, or nothing keep the tokenizer's own path. The split cut
  steady AG News encoding from 34 to 27 µs a text (paired A/B in one process: 1.25×).
* **Pooling** is one sparse (texts x vocab) @ table product: no (tokens, 256) copy.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..registry import ModelSpec
from . import l2_normalize
from ._windows import MAX_TEXT_TOKENS, check_truncate, windows

# A piece is a run of spaces (or literal "▁", which the normaliser makes of a space too) and the
# characters up to the next one: the normalised text ("▁" + text, spaces as "▁") cut before every
# "▁" that follows another character. NUL separates texts joined for one regex call.
_PIECE = re.compile("[ \u2581]+[^ \u2581\x00]*|\x00")
_SPACES = " \u2581"
_SEP = "\x00"
_MAX_PIECES = 200_000  # ~40 MB of index; forgotten all at once when full
_CHUNK = 4096


class WordLlamaEmbedder:
    def __init__(self, spec: ModelSpec, device: str) -> None:
        import scipy.sparse
        from tokenizers import Tokenizer
        from wordllama import WordLlama

        self.spec = spec
        self.device = "cpu"  # numpy model: runs on the CPU whatever the device
        path = Path(spec.weights_path())
        # The package ships its tokenizer under tokenizers/ but looks in tokenizer/ unless pointed here.
        self.model = WordLlama.load(cache_dir=path, disable_download=True, dim=spec.dim)
        # Our own copy of the tokenizer without padding: we pool straight from token ids, so a
        # batch is never padded to its longest text, and counting tokens costs no second pass.
        self.tokenizer = Tokenizer.from_str(self.model.tokenizer.to_str())
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.pieces = _PieceIds.for_tokenizer(self.tokenizer)
        self._sparse = scipy.sparse
        self.table = np.ascontiguousarray(self.model.embedding, dtype=np.float32)
        self.max_tokens = 0
        self.batch_size = spec.batch_size

    def _flat_ids(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """All texts' token ids end to end, and each text's count (the tokenizer's, no specials)."""
        if self.pieces is not None:
            return self.pieces.ids(texts)
        encs = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        return _flatten([e.ids for e in encs])

    def _ids(self, texts: Sequence[str]) -> list[list[int]]:
        flat, lengths = self._flat_ids(list(texts))
        return [a.tolist() for a in np.split(flat, np.cumsum(lengths)[:-1])] if len(lengths) else []

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._flat_ids(list(texts))[1].tolist() if texts else []

    def encode(self, texts: Sequence[str], truncate: str | None = None) -> np.ndarray:
        return self.encode_with_tokens(texts, truncate)[0]

    def encode_with_tokens(self, texts: Sequence[str], truncate: str | None = None) -> tuple[np.ndarray, list[int]]:
        """Mean of the static token vectors of each text (what ``WordLlama.embed`` computes), normalised."""
        check_truncate(truncate)
        texts = list(texts)
        out = np.zeros((len(texts), self.table.shape[1]), dtype=np.float32)
        tokens: list[int] = []
        for start in range(0, len(texts), _CHUNK):
            flat, lengths = self._flat_ids(texts[start : start + _CHUNK])
            if lengths.max(initial=0) > MAX_TEXT_TOKENS:  # the only limit: static vectors have no window
                i = int(np.argmax(lengths > MAX_TEXT_TOKENS))
                windows(range(int(lengths[i])), 0, None, start + i)
            tokens.extend(lengths.tolist())
            if not len(flat):
                continue
            np.clip(flat, 0, len(self.table) - 1, out=flat)
            indptr = np.zeros(len(lengths) + 1, dtype=np.int64)
            np.cumsum(lengths, out=indptr[1:])
            counts = self._sparse.csr_matrix(
                (np.ones(len(flat), dtype=np.float32), flat, indptr), shape=(len(lengths), len(self.table))
            )
            sums = np.asarray(counts @ self.table, dtype=np.float32)
            nonempty = lengths > 0
            out[start : start + len(lengths)][nonempty] = sums[nonempty] / lengths[nonempty, None]
        return l2_normalize(out), tokens


class _PieceIds:
    """Token ids through remembered pieces: piece -> number in ``index``; piece ``k``'s ids are
    ``store[start[k] : start[k] + length[k]]``. Number 0 is the text separator (no ids)."""

    def __init__(self, tokenizer: Any, bare: Any, specials: tuple[str, ...]) -> None:
        self.tokenizer = tokenizer  # the whole-text path
        self.bare = bare  # the same BPE without the normaliser, for pieces normalised here
        self.specials = specials
        self._angled = all("<" in s for s in specials)  # then a text without "<" holds none
        self._lock = threading.Lock()
        self._forget()

    @classmethod
    def for_tokenizer(cls, tokenizer: Any) -> _PieceIds | None:
        """The piece path for ``tokenizer``, or None when tokenising pieces alone would not be exact
        for it: it must only prepend "▁" and turn spaces into "▁" (no other normalisation or
        pre-tokenisation), and no token may hold a "▁" after another character."""
        from tokenizers import Tokenizer

        config = json.loads(tokenizer.to_str())
        norm = config.get("normalizer") or {}
        steps = norm.get("normalizers", []) if norm.get("type") == "Sequence" else [norm]
        want = [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
        ]
        model = config.get("model") or {}
        if steps != want or config.get("pre_tokenizer") or model.get("type") != "BPE" or model.get("dropout"):
            return None
        if any(re.search("[^\u2581]\u2581", tok) for tok in model.get("vocab", {})):
            return None
        specials = tuple(t["content"] for t in config.get("added_tokens") or [])
        config.update(normalizer=None, pre_tokenizer=None, post_processor=None, padding=None, truncation=None)
        return cls(tokenizer, Tokenizer.from_str(json.dumps(config)), specials)

    def _forget(self) -> None:
        self.index: dict[str, int] = {_SEP: 0}
        self.store = np.zeros(1 << 16, dtype=np.int64)
        self.used = 0
        self.start = np.zeros(1 << 14, dtype=np.int64)
        self.length = np.zeros(1 << 14, dtype=np.int64)
        self.count = 1

    def _whole(self, text: str) -> bool:
        """Texts the tokenizer must take as they are: empty, a special token inside, or a NUL."""
        if not text or _SEP in text:
            return True
        return ("<" in text or not self._angled) and any(s in text for s in self.specials)

    def ids(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(flat ids, count per text), equal to the tokenizer's ``encode_batch(texts).ids``."""
        n = len(texts)
        if not n:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        # Split at spaces (a C call, 3x faster than the regex): a word w is the piece " " + w, kept
        # under the bare word (a key no regex piece has: they start with a space); a run of extra
        # spaces comes back as empty strings, put back as the regex's own piece.
        words = " \x00 ".join(texts)
        whole: list[int] = []
        if (all(texts) and words.count(_SEP) == n - 1 and _SPACES[1] not in words
                and not any(s in words for s in self.specials)):
            pieces = words.split(" ")
            if "" in pieces:
                pieces = _space_runs(pieces)
        else:  # one regex call over every text, each led by its space and followed by a NUL
            big = " " + _SEP.join(texts).replace(_SEP, _SEP + " ")
            if not all(texts) or big.count(_SEP) != n - 1 or any(s in big for s in self.specials):
                whole = [i for i, t in enumerate(texts) if self._whole(t)]
                skip = set(whole)
                big = _SEP.join("" if i in skip else " " + t for i, t in enumerate(texts))
            pieces = _PIECE.findall(big)
        with self._lock:  # the arrays grow and are forgotten as a whole: one chunk at a time
            numbers = self._numbers(pieces)
            lens = self.length[numbers]
            firsts = self.start[numbers]
            text_of = np.cumsum(numbers == 0)
            lengths = np.bincount(text_of, weights=lens, minlength=n).astype(np.int64)
            total = int(lens.sum())
            ends = np.cumsum(lens)
            flat = self.store[np.repeat(firsts - (ends - lens), lens) + np.arange(total)]
        if whole:
            parts = np.split(flat, np.cumsum(lengths)[:-1])
            for i, enc in zip(whole, self.tokenizer.encode_batch([texts[i] for i in whole], add_special_tokens=False)):
                parts[i] = np.asarray(enc.ids, dtype=np.int64)
                lengths[i] = len(enc.ids)
            flat = np.concatenate(parts) if parts else flat
        return flat, lengths

    def _numbers(self, pieces: list[str]) -> np.ndarray:
        """Each piece's number, learning the unseen ones (forgetting all first when full). A piece
        that does not start with a space is a bare word: the piece " " + word."""
        numbers = np.fromiter(map(self.index.get, pieces, itertools.repeat(-1)), dtype=np.int64, count=len(pieces))
        missing = np.flatnonzero(numbers < 0)
        if not len(missing):
            return numbers
        unseen = list(dict.fromkeys(pieces[j] for j in missing.tolist()))
        if len(self.index) + len(unseen) > _MAX_PIECES and len(self.index) > 1:
            self._forget()  # then this chunk's pieces are all unseen
            numbers = np.fromiter((0 if p == _SEP else -1 for p in pieces), dtype=np.int64, count=len(pieces))
            missing = np.flatnonzero(numbers < 0)
            unseen = list(dict.fromkeys(pieces[j] for j in missing.tolist()))
        self._learn([p if p[0] in _SPACES else " " + p for p in unseen], unseen)
        numbers[missing] = [self.index[pieces[j]] for j in missing.tolist()]
        return numbers

    def _learn(self, pieces: list[str], keys: list[str]) -> None:
        """Tokenise unseen pieces, kept under ``keys``. Those with a character after their spaces
        go joined, ~256 a string (no merge crosses a piece's start, so each token falls in one
        piece: split back by character offsets); a piece of spaces alone could merge with the
        next one's, so it goes alone."""
        alone = [(p, k) for p, k in zip(pieces, keys) if p[-1] in _SPACES]
        joined = [(p, k) for p, k in zip(pieces, keys) if p[-1] not in _SPACES]
        groups = [joined[i : i + 256] for i in range(0, len(joined), 256)]
        strings = ["".join(p for p, _ in g).replace(" ", "\u2581") for g in groups]
        strings += [p.replace(" ", "\u2581") for p, _ in alone]
        encs = self.bare.encode_batch(strings, add_special_tokens=False)
        names: list[str] = []
        flats: list[np.ndarray] = []
        counts: list[np.ndarray] = []
        for g, enc in zip(groups, encs):  # numpy per group, no list per piece (they woke the GC)
            starts = np.cumsum([0] + [len(p) for p, _ in g])
            first = np.array([o[0] for o in enc.offsets], dtype=np.int64)
            owner = np.searchsorted(starts, first, side="right") - 1
            names.extend(k for _, k in g)
            flats.append(np.asarray(enc.ids, dtype=np.int64))  # the group's tokens, piece after piece
            counts.append(np.bincount(owner, minlength=len(g)))
        names.extend(k for _, k in alone)
        if alone:
            flat, lengths = _flatten([enc.ids for enc in encs[len(groups) :]])
            flats.append(flat)
            counts.append(lengths)
        flat, lengths = np.concatenate(flats), np.concatenate(counts).astype(np.int64)
        k, used = len(names), self.used
        self.store = _fit(self.store, used + len(flat))
        self.start = _fit(self.start, self.count + k)
        self.length = _fit(self.length, self.count + k)
        self.store[used : used + len(flat)] = flat
        self.start[self.count : self.count + k] = used + np.cumsum(lengths) - lengths
        self.length[self.count : self.count + k] = lengths
        self.index.update(zip(names, range(self.count, self.count + k)))
        self.count += k
        self.used += len(flat)


def _space_runs(words: list[str]) -> list[str]:
    """``text.split(" ")`` with each run of empty strings (extra spaces) joined to what follows
    as the regex cuts it: k empties then a word w is k + 1 spaces and w; k empties then a text's
    end (a NUL, or the last item) is k spaces alone."""
    out: list[str] = []
    i, n = 0, len(words)
    while True:
        try:
            j = words.index("", i)
        except ValueError:
            out.extend(words[i:])
            return out
        out.extend(words[i:j])
        k = j
        while k < n and not words[k]:
            k += 1
        if k < n and words[k] != _SEP:
            out.append(" " * (k - j + 1) + words[k])
            i = k + 1
        else:
            out.append(" " * (k - j))
            i = k


def _fit(a: np.ndarray, size: int) -> np.ndarray:
    """``a``, or a copy twice as long (repeatedly) when ``size`` does not fit."""
    if size <= len(a):
        return a
    grown = np.zeros(max(size, 2 * len(a)), dtype=a.dtype)
    grown[: len(a)] = a
    return grown


def _flatten(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum()))
    return flat, lengths
