"""One chunk of NDJSON input lines, parsed and scored into one block of result lines.

Both engines (``local`` in this process, ``ray`` on Ray actors) score through
``score_chunk``, so a line gives the same result line wherever it runs. No line can stop a
job: a line that cannot be decoded, parsed, checked, scored or written back becomes an
error row ``{"id": ..., "error": {...}}`` carrying its id, or its 0-based row number when the
id is missing or unusable. Result lines are strict JSON (no NaN or Infinity) in UTF-8.

Rows of an untrusted job (``allow_paths=False``: the server's) never name a file here:
``image``/``file`` must be base64, a ``data:`` URL or an ``http(s)`` URL, whatever the spelling
of the key or the value; base64 is decoded to bytes here, so no string reaches the reader.

Example:
    >>> parse_line(b'{"id": 7, "text": "refund please"}', 0).id
    7
    >>> parse_line(b'{"image": "~/.ssh/id_rsa"}', 3, allow_paths=False).error.code
    'path_not_allowed'
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
import math
import re
import time
from dataclasses import dataclass
from typing import Any

from .. import validation
from ..classifier import Classifier, Item
from ..errors import ClasserError, InvalidRequestError, ServerError, UnprocessableInputError

__all__ = ["MAX_ID_CHARS", "Chunk", "Line", "dump_row", "parse_line", "score_chunk"]

MAX_ID_CHARS = 256
# Standard or URL-safe base64 with its padding: what an untrusted row may give as image/file bytes.
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}|[A-Za-z0-9_-]+={0,2}")
_REMOTE_PREFIXES = ("data:", "http://", "https://")


@dataclass(frozen=True)
class Line:
    """A parsed input line: its row, the id its result carries, and an item or the error it gets."""

    row: int
    id: Any
    item: Item | None = None
    error: ClasserError | None = None


@dataclass(frozen=True)
class Chunk:
    """A scored chunk: its result lines, and counts for progress and usage (rows scored, tokens)."""

    data: bytes
    rows: int
    failed: int
    scored: int
    tokens: int
    visual_tokens: int
    ms: float


class _Overlong:
    """An integer literal too long to be anything a row holds (Python refuses > 4,300 digits)."""

    __slots__ = ("digits",)

    def __init__(self, digits: int) -> None:
        self.digits = digits


def _parse_int(s: str) -> int | _Overlong:
    return int(s) if len(s) <= MAX_ID_CHARS else _Overlong(len(s))


def _parse_float(s: str) -> float:
    f = float(s)
    if not math.isfinite(f):
        raise ValueError(f"the number {s[:40]} is out of range")
    return f


def _parse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Built once: json.loads with hooks would build a decoder per line.
_DECODER = json.JSONDecoder(parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)


def _bad_line(row: int, code: str, message: str, **details: Any) -> InvalidRequestError:
    return InvalidRequestError(code, f"Line {row + 1}: {message}", {"row": row, **details})


def _valid_unicode(s: str) -> bool:
    """False for a string holding a lone surrogate (``"\\ud800"``), which UTF-8 cannot encode."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _row_id(obj: dict[str, Any], row: int) -> tuple[Any, ClasserError | None]:
    """The id a row's result carries: its own when usable, else its row number (and an error)."""
    rid = obj.get("id")
    if rid is None:
        return row, None
    if isinstance(rid, _Overlong):
        return row, _bad_line(row, "id_too_long", f"its id has {rid.digits} digits; the limit is {MAX_ID_CHARS} "
                              "characters (the line number stands in).", max=MAX_ID_CHARS)
    if isinstance(rid, bool) or not isinstance(rid, (str, int, float)):
        return row, _bad_line(row, "id_invalid", f"id must be a string or a number, got {type(rid).__name__} "
                              "(the line number stands in).", type=type(rid).__name__)
    if len(str(rid)) > MAX_ID_CHARS:
        return row, _bad_line(row, "id_too_long", f"its id has {len(str(rid))} characters; the limit is "
                              f"{MAX_ID_CHARS} (the line number stands in).", max=MAX_ID_CHARS)
    if isinstance(rid, str) and not _valid_unicode(rid):
        return row, _bad_line(row, "id_invalid", "its id is not valid Unicode (a lone surrogate); the line "
                              "number stands in.")
    return rid, None


def _remote_source(value: str, field: str, row: int) -> str | bytes:
    """An untrusted row's image/file value as bytes (base64) or a data:/http(s) URL; never a path."""
    s = value.strip()
    if s[:8].lower().startswith(_REMOTE_PREFIXES):
        return s  # read as a URL (when URLs are allowed) or a data URL: never as a path
    compact = "".join(s.split())
    if compact and len(compact) % 4 == 0 and _BASE64.fullmatch(compact):
        try:
            return base64.b64decode(compact.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            pass
    raise _bad_line(row, "path_not_allowed", f"{field} must be base64, a data: URL or an http(s) URL; paths on "
                    "this machine are not read for this job.", field=field)


def _check_sources(value: Any, field: str, row: int, allow_paths: bool) -> Any:
    """Type-check ``image`` (a string or a list of them) or ``file`` (a string); untrusted: no paths."""
    many = field == "image" and isinstance(value, list)
    values = value if many else [value]
    if not values or not all(isinstance(v, str) for v in values):
        what = "a string or a list of strings" if field == "image" else "a string"
        raise _bad_line(row, f"{field}_invalid", f"{field} must be {what}.", field=field)
    if not allow_paths:
        values = [_remote_source(v, field, row) for v in values]
    elif not all(_valid_unicode(v) for v in values):
        raise _bad_line(row, f"{field}_invalid", f"{field} is not valid Unicode (a lone surrogate).", field=field)
    return values if many else values[0]


def parse_line(raw: bytes, row: int, *, allow_paths: bool = True) -> Line:
    """One input line as a ``Line``: an ``Item`` to score, or the error its result row reports.

    ``allow_paths=False`` (an untrusted job) refuses any ``image``/``file`` that is not
    base64, a ``data:`` URL or an ``http(s)`` URL (``path_not_allowed``).
    """
    if row == 0 and raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Line(row, row, error=_bad_line(row, "line_invalid_utf8", "is not valid UTF-8."))
    try:
        obj = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        return Line(row, row, error=_bad_line(row, "line_invalid_json", f"is not valid JSON ({exc.msg}).",
                                              column=exc.colno))
    except (ValueError, RecursionError) as exc:  # NaN, 1e999, nesting past the recursion limit
        reason = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        return Line(row, row, error=_bad_line(row, "line_invalid_json", f"is not valid JSON ({reason})."))
    if not isinstance(obj, dict):
        return Line(row, row, error=_bad_line(row, "line_invalid", f"must be a JSON object, got {type(obj).__name__}."))
    rid, bad_id = _row_id(obj, row)
    if bad_id is not None:
        return Line(row, rid, error=bad_id)
    text_value, image, file = obj.get("text"), obj.get("image"), obj.get("file")
    try:
        if image is None and file is None:
            if text_value is None:
                raise _bad_line(row, "input_required", 'needs "text", "image" or "file".')
            validation.text(text_value)
        elif text_value is not None and not isinstance(text_value, str):
            validation.text(text_value)
        if isinstance(text_value, str) and not _valid_unicode(text_value):
            raise _bad_line(row, "text_invalid", "text is not valid Unicode (a lone surrogate).")
        if image is not None:
            image = _check_sources(image, "image", row, allow_paths)
        if file is not None:
            file = _check_sources(file, "file", row, allow_paths)
    except InvalidRequestError as exc:
        message = exc.message if exc.message.startswith("Line ") else f"Line {row + 1}: {exc.message}"
        return Line(row, rid, error=InvalidRequestError(exc.code, message, {**exc.details, "row": row}))
    return Line(row, rid, item=Item(text=text_value, image=image, file=file))


# ---------------------------------------------------------------------- scoring
def _score(clf: Classifier, kind: str, threshold: float | None, items: list[Item], key_id: str | None,
           adapt: bool = False, language: str | None = None) -> list[Any]:
    """Through the library's front door, as ``cl.classify_batch`` scores: one usage row per call,
    on the job owner's key; ``language="auto"`` routes rows read as not English (``api.route``)."""
    from ..api import score_routed

    return score_routed(clf, items, kind, language, threshold=threshold, cache=False, endpoint=f"{kind}_batch",
                        key_id=key_id, adapt=adapt)


def _score_one(clf: Classifier, kind: str, threshold: float | None, line: Line, key_id: str | None,
               language: str | None = None) -> Any:
    """One row alone: its result, or the error its row reports. A ``ServerError`` is the model's or
    the machine's, not the row's: it is raised, failing the job (resumable) instead of every row."""
    assert line.item is not None
    try:
        return _score(clf, kind, threshold, [line.item], key_id, language=language)[0]
    except ServerError:
        raise
    except ClasserError as exc:
        return exc
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever one row does inside the model, it is that row's
        # The exception's text may name server paths or echo the input: only its type is reported.
        return UnprocessableInputError("row_unprocessable", f"Line {line.row + 1} could not be scored "
                                       f"({type(exc).__name__}).", {"exception": type(exc).__name__})


def _safe(s: str) -> str:
    return s.encode("utf-8", "backslashreplace").decode("utf-8")


def dump_row(obj: dict[str, Any]) -> bytes:
    """One result line: strict JSON (``ValueError`` on NaN/Infinity), UTF-8, newline-terminated."""
    return (json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n").encode("utf-8")


def _error_row(rid: Any, row: int, exc: ClasserError) -> bytes:
    err = exc.to_dict()
    err["details"] = {**(err.get("details") or {}), "row": row}
    try:
        return dump_row({"id": rid, "error": err})
    except (ValueError, TypeError, UnicodeEncodeError):  # details that are not strict JSON: keep the gist
        err = {"error": err.get("error"), "code": err.get("code"), "message": _safe(str(err.get("message"))),
               "details": {"row": row}}
        return dump_row({"id": rid, "error": err})


def _result_row(rid: Any, row: int, result: Any) -> tuple[bytes, bool]:
    """(line, ok): the result, or an error row when it is not strict JSON (a NaN score)."""
    try:
        return dump_row({"id": rid, **result.to_dict()}), True
    except (ValueError, TypeError, UnicodeEncodeError):
        err = ServerError("result_not_finite", f"Line {row + 1}: the model gave a score that is not a finite "
                          "number (or text that is not valid Unicode); the row is reported as an error.")
        return _error_row(rid, row, err), False


def score_chunk(clf: Classifier, kind: str, threshold: float | None, lines: list[tuple[int, bytes]], *,
                allow_paths: bool = True, key_id: str | None = None, adapt: bool = False,
                language: str | None = None) -> Chunk:
    """Score ``(row, raw line)`` pairs into one NDJSON block, in order, with its counts.

    The good rows are scored in one call; when that call fails, they are scored one by one,
    so only the rows that fail alone become error rows. ``key_id`` (the job's owner) goes on
    the usage rows. ``adapt``: batch adaptation over the chunk (``classer_local.adapt``);
    ``language``: as the library's ``language=``.

    Example:
        >>> clf = Classifier(["billing", "technical"], priority="fast")             # doctest: +SKIP
        >>> chunk = score_chunk(clf, "classify", None, [(0, b'{"text": "refund"}')])  # doctest: +SKIP
        >>> chunk.rows, chunk.failed                                                # doctest: +SKIP
        (1, 0)
    """
    t0 = time.perf_counter()
    parsed = [parse_line(raw, row, allow_paths=allow_paths) for row, raw in lines]
    outcome: list[Any] = [p.error for p in parsed]
    good = [i for i, p in enumerate(parsed) if p.item is not None]
    if good:
        try:
            results = _score(clf, kind, threshold, [parsed[i].item for i in good], key_id, adapt,  # type: ignore[misc]
                             language)
        except MemoryError:
            raise
        except Exception:  # noqa: BLE001 - isolate the rows that fail alone
            for i in good:
                outcome[i] = _score_one(clf, kind, threshold, parsed[i], key_id, language)
        else:
            for i, r in zip(good, results):
                outcome[i] = r
    out: list[bytes] = []
    failed = scored = tokens = visual = 0
    for p, res in zip(parsed, outcome):
        if isinstance(res, ClasserError):
            out.append(_error_row(p.id, p.row, res))
            failed += 1
            continue
        line, ok = _result_row(p.id, p.row, res)
        out.append(line)
        if ok:
            scored += 1
            tokens += int(getattr(res, "tokens", 0) or 0)
            visual += int(getattr(res, "visual_tokens", 0) or 0)
        else:
            failed += 1
    return Chunk(b"".join(out), len(lines), failed, scored, tokens, visual, (time.perf_counter() - t0) * 1000)
