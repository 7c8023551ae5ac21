"""Is this text English? A small offline language guess for ``language="auto"`` routing.

The standard text model reads English; a text or document in another language is better
scored by the multilingual model when it is installed (``registry`` default ``multilingual``).
Telling English from the rest needs no model: scripts other than Latin are read from the
characters (Cyrillic, Greek, Arabic, Hebrew, Devanagari, Thai, Hangul, kana, CJK), and Latin-script
languages from their most frequent short function words (the top ~20 of each of nine
languages, which make up a large share of any running text in them). A text too short to
tell (under ``MIN_WORDS`` words) counts as English, so short labels-like inputs stay on the
standard model.

Example:
    >>> detect("The invoice is due within thirty days of the date of issue.")
    'en'
    >>> detect("Die Rechnung ist innerhalb von dreißig Tagen nach dem Rechnungsdatum fällig.")
    'de'
    >>> is_english("Veuillez trouver ci-joint la facture du mois avec le détail des frais et les conditions.")
    False
"""

from __future__ import annotations

import re
import unicodedata
from enum import Enum

__all__ = ["LANGUAGES", "MIN_WORDS", "SAMPLE_CHARS", "Language", "detect", "is_english"]

MIN_WORDS = 6
SAMPLE_CHARS = 4000  # the start of a long document says what language it is in


class Language(str, Enum):
    """What a call's ``language=`` may say besides ``None`` (the model as given): ``auto`` sends
    inputs detected as not English to the multilingual model (``api.route``)."""

    AUTO = "auto"


LANGUAGES: tuple[str, ...] = tuple(x.value for x in Language)
"""The values of ``Language``, spelt once: the server's schema and ``api.check_language`` read them."""

_STOPWORDS: dict[str, frozenset[str]] = {
    lang: frozenset(words.split())
    for lang, words in {
        "en": "the of and to in is that for it with as was on be by this are from at or have an not which you we",
        "de": "der die das und ist nicht mit den von zu sich des auf für im dem ein eine auch es an werden aus",
        "fr": "le la les de des et est un une du en que qui dans pour pas sur au avec ce il par sont nous vous "
              "je ne mon l j qu n",  # the last four: elisions (l'application, j'ai, qu'il, n'arrive)
        "nl": "de het een en van is dat op te in voor niet met zijn die er aan ook als bij door wordt naar uw u ik wij",
        "es": "el la los las de y en que es un una por con para del se no al lo como su más pero sus",
        "it": "il la di e che un una per non del della sono in con si le da al gli è ma come questo",
        "pt": "o a os as de e que do da em um uma para com não por se na no mais ao dos das como",
        "pl": "i w nie na się z do jest to że jak o co ale po tak za od są przez dla",
        "tr": "ve bir bu da de için ile çok ne daha gibi olarak olan var ama en kadar sonra her",
    }.items()
}
# A word in two lists ("in", "de", "die") says little: each list keeps only its own words.
_OWN = {lang: frozenset(w for w in stop if sum(w in other for other in _STOPWORDS.values()) == 1)
        for lang, stop in _STOPWORDS.items()}
_WORD = re.compile(r"[^\W\d_]+")

# Unicode name prefixes of the scripts told apart by their characters alone.
_SCRIPTS = {"CYRILLIC": "ru", "GREEK": "el", "ARABIC": "ar", "HEBREW": "he", "DEVANAGARI": "hi", "THAI": "th",
            "HANGUL": "ko", "HIRAGANA": "ja", "KATAKANA": "ja", "CJK": "zh"}


_FIRST_NON_LATIN = "\u0370"  # Greek and Coptic, the first block after Latin, its extensions and IPA


def _script(text: str) -> str | None:
    """The language of the dominant non-Latin script, when most letters are in one."""
    if text.isascii():  # most texts: no name lookups at all
        return None
    counts: dict[str, int] = {}
    letters = 0
    for ch in text:
        if not ch.isalpha():
            continue
        letters += 1
        if ch < _FIRST_NON_LATIN:  # Latin letters and IPA: no script of _SCRIPTS
            continue
        name = unicodedata.name(ch, "")
        for prefix, lang in _SCRIPTS.items():
            if name.startswith(prefix):
                counts[lang] = counts.get(lang, 0) + 1
                break
    if not letters or not counts:
        return None
    if "ja" in counts:  # Japanese mixes kana with CJK ideographs
        counts["ja"] += counts.pop("zh", 0)
    lang, n = max(counts.items(), key=lambda kv: kv[1])
    return lang if n >= 0.3 * letters else None


def detect(text: str) -> str:
    """The likely language of ``text`` as a two-letter code; ``"en"`` when it cannot tell.

    Latin-script texts get the language with the most of its own function words, if they are
    at least 3 and 1 in 30 words and outnumber the English ones 1.5 to 1; otherwise ``"en"``.
    """
    sample = text[:SAMPLE_CHARS]
    script = _script(sample)
    if script is not None:
        return script
    words = [w.lower() for w in _WORD.findall(sample)]
    if len(words) < MIN_WORDS:
        return "en"
    hits = {lang: sum(w in own for w in words) for lang, own in _OWN.items()}
    lang, best = max(hits.items(), key=lambda kv: kv[1])
    # Tables and forms have few function words: 3 own words and 1 word in 30 is enough, when
    # they outnumber the English ones.
    if lang == "en" or best < max(3, len(words) / 30) or best <= 1.5 * hits["en"]:
        return "en"
    return lang


def is_english(text: str) -> bool:
    """Whether ``text`` reads as English (or is too short or too bare to tell)."""
    return detect(text) == "en"
