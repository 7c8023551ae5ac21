"""How a document's words are scored against labels: its best passages, its skeleton, its structure.

What makes a document an invoice or a paper is local (a totals table, an abstract), and
averaging a long text's windows washes it out into its topic. Three kinds of evidence, each
compared with every part of a label's prototype (name, description, description phrases):

1. **Passages.** The text cut into sentence-sized passages (the first ``MAX_PASSAGES``); each
   label part takes its best-matching passage (the scoring before structure cues).
2. **Skeleton.** The document's short heading-like lines and field names ("Invoice number",
   "Experience", "Abstract", "Key Terms") joined: what a document is made of shows in its
   headings and keys more than in its content.
3. **Structure cues.** Counts read from the text (amounts of money, large figures and
   percentages, dates, key-value lines, blanks to fill, contact lines, citations, defined
   terms and numbered clauses, a greeting and a closing, signature blocks, questions and rating
   scales, notes, page count, prose vs short
   lines), each strong cue said in a short neutral sentence ("line items with prices, amounts
   of money, tax and a total"). The sentences are embedded like passages, so they reach any
   label set through the model, not through rules naming labels; each label part takes the
   best cue sentence.

The label score is the weighted mean of the three (``SKELETON_WEIGHT``, ``CUE_WEIGHT`` against
1 for passages). Measured on the 34 files of evaldata/documents (benchmarks/documents.py):
standard model, text and pages fused, 0.56 -> 0.74 with label names only, 0.65 -> 0.88 with
descriptions (0.65 -> 0.91 with the use-multilingual model). The cues were written while
looking at these files, with round thresholds on densities, none per file. The
cues read text, so they work the same on OCR'd pages; the phrases are English, which the
standard model reads, and the regexes also know EUR/€ amounts, European dates and a few
non-English greetings and closings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .inputs import Document

__all__ = ["CUE_WEIGHT", "SKELETON_WEIGHT", "Structure", "cue_sentences", "passage_sims", "passages",
           "skeleton", "structure"]

PASSAGE_WORDS = 36  # about 48 word-piece tokens: a sentence or two
MAX_PASSAGES = 64
SKELETON_WORDS = 80
SKELETON_WEIGHT = 1.0
CUE_WEIGHT = 1.0
STRUCTURE = True
"""Use the skeleton and structure cues (``False``: passages only, the earlier scoring; for baselines)."""


def passages(text: str) -> list[str]:
    """The document's text cut into sentence-sized passages (at most ``MAX_PASSAGES``).

    Example:
        >>> len(passages("word " * 100))
        3
    """
    words = text.split()
    out = [" ".join(words[k : k + PASSAGE_WORDS]) for k in range(0, len(words), PASSAGE_WORDS)]
    return out[:MAX_PASSAGES] or [text]


_LONG_NUMBER = re.compile(r"\d{3,}")


def skeleton(text: str, max_words: int = SKELETON_WORDS) -> str:
    r"""The heading-like lines and field names of a text, joined (the first ``max_words`` words).

    A line counts when it is short (at most six words), does not end a sentence, has letters
    and no long number (an amount or an id is content, not structure).

    Example:
        >>> skeleton("INVOICE\nInvoice number: 42\nThank you for your order, it ships today.\nTotal:")
        'INVOICE | Invoice number | Total'
    """
    out: list[str] = []
    n = 0
    for line in text.splitlines():
        line = line.strip()
        key = line.split(":", 1)[0].strip() if ":" in line else line
        words = key.split()
        if (not words or len(words) > 6 or key.endswith((".", ",", ";")) or sum(c.isalpha() for c in key) < 3
                or _LONG_NUMBER.search(key)):
            continue
        out.append(key)
        n += len(words)
        if n >= max_words:
            break
    return " | ".join(out)

_I, _M = re.IGNORECASE, re.MULTILINE
_CUR = r"(?:[$€£¥₹]|\b(?:EUR|USD|GBP|CHF|CAD|AUD)\b)"
AMOUNT = re.compile(rf"{_CUR}\s?\(?-?\d[\d.,' ]*\d|\d[\d.,' ]*[.,]\d{{2}}\s?{_CUR}|"
                    rf"\b\d{{1,3}}(?:[.,' ]\d{{3}})*[.,]\d{{2}}\b(?!\s?%)")
BIG = re.compile(r"\b(?:million|billion|thousand|millions|milliards?|Mio|Mrd)\b", _I)
PERCENT = re.compile(r"\d\s?%")
_MONTHS = ("jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|januar|februar|märz|mai|juni|juli|okt|dez|"
           "janvier|février|mars|avril|juin|juillet|août|septembre|octobre|novembre|décembre|"
           "januari|februari|maart|mei|augustus|oktober")
DATE = re.compile(rf"\b\d{{1,2}}[./-]\d{{1,2}}[./-]\d{{2,4}}\b|\b\d{{4}}-\d{{2}}-\d{{2}}\b|"
                  rf"\b\d{{1,2}}\.?\s(?:{_MONTHS})[a-zé]*\.?\s\d{{4}}\b|"
                  rf"\b(?:{_MONTHS})[a-zé]*\.?\s\d{{1,2}},?\s\d{{4}}\b", _I)
KEY_VALUE = re.compile(r"^[^\W\d][\w .#/()'-]{1,40}:\s*\S")
KEY_ONLY = re.compile(r"^[^\W\d][\w .#/()'-]{1,40}:\s*$")
# Blanks and boxes to fill. A template's {placeholders} are not counted: any kind of document
# (a contract, a letter) can be a template.
BLANK = re.compile(r"_{3,}|\.{5,}|\[\s*\]|\(\s+\)|☐|□")
SIGNATURE = re.compile(r"^(?:signature|signed|sign here|by:|print name|name and title|unterschrift|signé|"
                       r"handtekening)\b", _I | _M)
QUESTION = re.compile(r"\?\s*$|^\s*(?:yes|no)\s*$", _I | _M)
RATING = re.compile(r"^\s*1\s*\n\s*2\s*\n\s*3\s*\n\s*4\s*\n\s*5\s*$", _M)  # a 1-5 scale, one number a line
EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.]+\b")
PHONE = re.compile(r"\+?\(?\d{1,4}\)?[\s-]\(?\d{2,4}\)?[\s-]\d{3,4}[\s-]?\d{0,4}")
CITATION = re.compile(r"\bet al\.|\[\d{1,3}(?:[,–-]\s?\d{1,3})*\]|\barXiv\b|\bdoi\b|\(\w+,? \d{4}[a-z]?\)", _I)
DEFINED = re.compile(r"\(\s*(?:the\s)?[“\"'][A-Z][\w ]{1,30}[”\"']\s*\)")
CLAUSE = re.compile(r"^\(?\d{1,2}(?:\.\d{1,2})+\.?\)?\s+[A-Z]|^\(?[a-z]\)\s|^(?:Section|Article|Clause)\s\d", _M)
GREETING = re.compile(r"^(?:Dear|To whom|Hello|Hi|Sehr geehrte|Liebe|Cher|Chère|Madame|Monsieur|Beste|Geachte)\b",
                      _I | _M)
CLOSING = re.compile(r"^(?:Sincerely|Yours|Best|Kind regards|Regards|Cheers|Respectfully|Warm regards|Thank you|"
                     r"Mit freundlichen|Cordialement|Met vriendelijke)\b.{0,30}$", _I | _M)
NOTE = re.compile(r"^(?:NOTE|CAUTION|WARNING|IMPORTANT|TIP)\b", _M)


@dataclass(frozen=True)
class Structure:
    """Counts read from a document's text (see ``structure``): what ``cue_sentences`` speaks of."""

    words: int
    lines: int
    n_pages: int
    short_lines: float
    prose_lines: float
    amounts: int
    big_numbers: int
    percents: int
    dates: int
    key_values: int
    blanks: int
    contacts: int
    citations: int
    defined_terms: int
    clauses: int
    greeting: bool
    closing: bool
    signatures: int
    questions: int
    notes: int


def structure(text: str, n_pages: int = 1) -> Structure:
    r"""The structure counts of a text (amounts and contacts are looked for where they usually are).

    Example:
        >>> s = structure("Invoice no: 7\nDate: 02/03/2024\nWidget 2 x 10.00 EUR\nTotal: 20.00 EUR")
        >>> s.amounts, s.dates, s.key_values
        (2, 1, 3)
    """
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    n = max(len(lines), 1)
    wc = [len(ln.split()) for ln in lines]
    head, tail = "\n".join(lines[:40]), "\n".join(lines[-25:])
    return Structure(
        words=sum(wc), lines=len(lines), n_pages=n_pages,
        short_lines=sum(w <= 3 for w in wc) / n, prose_lines=sum(w >= 10 for w in wc) / n,
        amounts=len(AMOUNT.findall(text)), big_numbers=len(BIG.findall(text)), percents=len(PERCENT.findall(text)),
        dates=len(DATE.findall(text)),
        key_values=sum(bool(KEY_VALUE.match(ln) or KEY_ONLY.match(ln)) for ln in lines),
        blanks=len(BLANK.findall(text)), contacts=len(EMAIL.findall(head)) + len(PHONE.findall(head)),
        citations=len(CITATION.findall(text)), defined_terms=len(DEFINED.findall(text)),
        clauses=len(CLAUSE.findall(text)), greeting=bool(GREETING.search(head) or GREETING.search(text[:3000])),
        closing=bool(CLOSING.search(tail)), signatures=len(SIGNATURE.findall(text)),
        questions=len(QUESTION.findall(text)) + 3 * len(RATING.findall(text)), notes=len(NOTE.findall(text)),
    )


def cue_sentences(s: Structure) -> list[str]:
    r"""What the structure shows, in short neutral sentences the embedding model can compare with any label.

    Only strong cues speak (densities, not single hits), so a document with nothing striking adds
    no sentence and is scored by its passages and skeleton alone.

    Example:
        >>> cue_sentences(structure("Dear Ann,\nThe garden is in bloom and we miss you all.\nYours, Bob"))
        ['a greeting addressed to the reader', "a closing with the sender's signature"]
    """
    out = []
    w = max(s.words, 1)
    money = s.amounts >= 5 and s.amounts / w >= 0.02
    fin = s.big_numbers >= 3 or (s.percents >= 8 and s.amounts >= 5)
    if fin:
        out.append("financial figures in millions, percentages and results by quarter or year")
    elif money:
        out.append("line items with prices, amounts of money, tax and a total")
    if s.key_values >= 5 and s.key_values / max(s.lines, 1) >= 0.04:
        out.append("labelled fields with values")
    if s.blanks >= 3:
        out.append("blank fields, boxes and placeholders to fill in")
    if s.questions >= 5 and s.questions / max(s.lines, 1) >= 0.05:
        out.append("questions to answer, yes or no, or on a rating scale")
    if s.contacts >= 1 and s.words < 1200 and not s.citations:
        out.append("contact details: name, email address and phone number")
    if s.citations >= 5:
        out.append("citations of published research and a list of references")
    if s.defined_terms >= 2 or s.clauses >= 3 and not s.citations:
        out.append("defined terms and numbered clauses")
    if s.greeting:
        out.append("a greeting addressed to the reader")
    if s.closing:
        out.append("a closing with the sender's signature")
    if s.signatures >= 2:
        out.append("a signature block for each party")
    if s.notes:
        out.append("instructions with notes and warnings")
    if s.n_pages >= 5:
        out.append("a long document of many pages")
    if s.lines < 8:  # too little text to have a layout
        return out
    if s.prose_lines >= 0.5:
        out.append("long paragraphs of running text")
    elif s.short_lines >= 0.6:
        out.append("short lines in tables and columns")
    return out


def passage_sims(text: str, encode: Callable[[list[str]], np.ndarray], components: np.ndarray,
                 component_weights: np.ndarray, doc: Document | None = None, structured: bool | None = None,
                 **_: Any) -> np.ndarray:
    """(L,) label similarities of a document's text: best passages, skeleton and structure cues.

    ``encode`` embeds input-side texts; ``components``/``component_weights`` are the label
    prototypes' parts and their weights (``prototypes.Prototypes``). ``doc`` is the read
    document (its page count is a cue). ``structured=False`` (or module ``STRUCTURE = False``)
    scores by passages alone.
    """
    structured = STRUCTURE if structured is None else structured
    chunks = passages(text)
    extra: list[str] = []
    if structured:
        cues = cue_sentences(structure(text, doc.n_pages if doc is not None else 1))
        extra = [skeleton(text) or chunks[0], *cues]
    V = encode(chunks + extra)  # one encode call for all of it
    S = V @ components.T
    score = component_weights @ S[: len(chunks)].max(axis=0)
    if not structured:
        return score.astype(np.float32)
    total = 1.0 + SKELETON_WEIGHT
    score = score + SKELETON_WEIGHT * (component_weights @ S[len(chunks)])
    if len(extra) > 1:
        score = score + CUE_WEIGHT * (component_weights @ S[len(chunks) + 1 :].max(axis=0))
        total += CUE_WEIGHT
    return (score / total).astype(np.float32)
