"""Job lines: parsing (ids, bad JSON, lone surrogates, untrusted paths) and scoring a chunk with a real model.

Every input here is real bytes as they would sit in an NDJSON file; the scoring tests use the
fast tier model and the real fixture image.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import pytest

from classer_local.classifier import Classifier
from classer_local.jobs.lines import MAX_ID_CHARS, dump_row, parse_line, score_chunk

FIXTURES = Path(__file__).parent / "fixtures"
CAT = FIXTURES / "cifar_cat.jpg"
LABELS = ["billing", "technical", "sales"]


def strict_loads(line: bytes) -> Any:
    """A reader that refuses NaN/Infinity, as other languages' JSON parsers do."""
    def no_constants(name: str) -> Any:
        raise AssertionError(f"{name} in a result line")
    return json.loads(line.decode("utf-8"), parse_constant=no_constants)


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier(LABELS, priority="fast")


# ---------------------------------------------------------------------- parsing
@pytest.mark.parametrize("raw, code", [
    (b"{not json", "line_invalid_json"),
    (b'{"id": 1, "text": NaN}', "line_invalid_json"),
    (b'{"id": 1, "text": "x", "w": Infinity}', "line_invalid_json"),
    (b'{"id": 1e999, "text": "x"}', "line_invalid_json"),
    (b"[" * 100_000 + b"]" * 100_000, "line_invalid_json"),
    (b'{"id": "x", "text": "caf\xe9"}', "line_invalid_utf8"),
    (b'{"id": "x", "text": "\xed\xa0\x80"}', "line_invalid_utf8"),  # an encoded surrogate is not UTF-8
    (b"[1, 2]", "line_invalid"),
    (b'"just a string"', "line_invalid"),
])
def test_unparseable_lines_get_their_row_number(raw, code):
    line = parse_line(raw, 41)
    assert line.item is None and line.error is not None
    assert line.error.code == code
    assert line.id == 41 and line.error.details["row"] == 41
    assert line.error.message.startswith("Line 42: ")


def test_a_lone_surrogate_in_a_text_is_a_row_error_with_the_rows_id():
    line = parse_line(b'{"id": "s1", "text": "ok \\ud800 then"}', 0)
    assert (line.id, line.error.code) == ("s1", "text_invalid")
    line = parse_line(b'{"id": "s2", "text": "\\udc80"}', 0)
    assert (line.id, line.error.code) == ("s2", "text_invalid")
    # A proper surrogate pair is one character, and fine.
    line = parse_line(b'{"id": "s3", "text": "emoji \\ud83d\\ude00"}', 0)
    assert line.error is None and line.item.text == "emoji \U0001F600"


@pytest.mark.parametrize("rid, code", [
    ("9" * 5000, "id_too_long"),            # past Python's 4,300-digit int limit
    ("-" + "1" * 300, "id_too_long"),
    ('"' + "a" * (MAX_ID_CHARS + 1) + '"', "id_too_long"),
    ('{"a": 1}', "id_invalid"),
    ("[1]", "id_invalid"),
    ("true", "id_invalid"),
    ('"bad \\ud800 id"', "id_invalid"),
])
def test_unusable_ids_are_replaced_by_the_line_number(rid, code):
    raw = f'{{"id": {rid}, "text": "refund my invoice"}}'.encode()
    line = parse_line(raw, 7)
    assert line.error is not None and line.error.code == code
    assert line.id == 7
    json.dumps(line.error.to_dict(), allow_nan=False)  # its error is writable


@pytest.mark.parametrize("rid, expected", [
    ('"a" ', "a"), ("12", 12), ("-3", -3), ("1.5", 1.5), ('"' + "b" * MAX_ID_CHARS + '"', "b" * MAX_ID_CHARS),
    ("1" * MAX_ID_CHARS, int("1" * MAX_ID_CHARS)), ("null", 0),
])
def test_usable_ids_are_kept(rid, expected):
    line = parse_line(f'{{"id": {rid}, "text": "refund"}}'.encode(), 0)
    assert line.error is None and line.id == expected


def test_wrong_types_are_row_errors():
    cases = {b'{"id": 1, "image": 5}': "image_invalid", b'{"id": 1, "image": []}': "image_invalid",
             b'{"id": 1, "image": ["aGVsbG8=", 3]}': "image_invalid", b'{"id": 1, "file": ["a"]}': "file_invalid",
             b'{"id": 1, "text": 42}': "text_invalid", b'{"id": 1, "text": "  "}': "text_empty",
             b'{"id": 1}': "input_required", b'{"id": 1, "text": ["a"], "image": "aGVsbG8="}': "text_invalid",
             b'{"id": 1, "text": 9' + b"9" * 5000 + b"}": "text_invalid"}
    for raw, code in cases.items():
        line = parse_line(raw, 0)
        assert line.error is not None and line.error.code == code, raw[:60]
        assert line.id == 1


def test_a_byte_order_mark_on_the_first_line_is_not_an_error():
    line = parse_line(b'\xef\xbb\xbf{"id": "a", "text": "hello"}', 0)
    assert line.error is None and line.item.text == "hello"


# ---------------------------------------------------------------------- untrusted rows
PATHS = [
    b'{"id": "esc", "\\u0069mage": "/srv/x.png"}',  # the key spelt with an escape
    b'{"id": "trail", "file": "/etc/passwd "}',
    b'{"id": "lead", "file": "  /etc/hosts"}',
    b'{"id": "home", "image": "~/.bashrc"}',
    b'{"id": "url", "file": "file:///etc/passwd"}',
    b'{"id": "URL", "image": "FILE:/etc/passwd"}',
    b'{"id": "rel", "image": "../secret.png"}',
    b'{"id": "win", "image": "C:\\\\Users\\\\x.png"}',
    b'{"id": "list", "image": ["aGVsbG8gd29ybGQ=", "/tmp/cat.jpg"]}',
    b'{"id": "dot", "image": "cat.jpg"}',
    b'{"id": "ws", "image": "\\t/etc/passwd\\n"}',
]


@pytest.mark.parametrize("raw", PATHS)
def test_untrusted_rows_never_name_a_path(raw):
    line = parse_line(raw, 5, allow_paths=False)
    assert line.error is not None and line.error.code == "path_not_allowed", line
    assert line.id == json.loads(raw)["id"]
    assert line.error.details["row"] == 5 and line.error.details["field"] in ("image", "file")


def test_untrusted_rows_may_give_base64_data_urls_and_http_urls():
    png = CAT.read_bytes()
    b64 = base64.b64encode(png).decode()
    wrapped = "\n".join(b64[i:i + 76] for i in range(0, len(b64), 76))  # MIME line breaks
    urlsafe = base64.urlsafe_b64encode(png).decode()
    for value in (b64, wrapped, " " + b64 + "\n", urlsafe):
        line = parse_line(json.dumps({"id": "b", "image": value}).encode(), 0, allow_paths=False)
        assert line.error is None and line.item.image == png  # decoded here: no string left to read as a path
    data_url = "data:image/jpeg;base64," + b64
    for value in (data_url, "  " + data_url, "https://example.com/cat.jpg", "HTTP://example.com/x"):
        line = parse_line(json.dumps({"id": "u", "image": [value]}).encode(), 0, allow_paths=False)
        assert line.error is None and line.item.image == [value.strip()]
    # Trusted (in-process) rows keep paths as given.
    line = parse_line(json.dumps({"image": str(CAT)}).encode(), 0)
    assert line.error is None and line.item.image == str(CAT)


# ---------------------------------------------------------------------- scoring a chunk
def rows(*objs: Any) -> list[tuple[int, bytes]]:
    return [(i, o if isinstance(o, bytes) else json.dumps(o).encode()) for i, o in enumerate(objs)]


def test_a_chunk_that_fails_as_a_whole_is_rescored_row_by_row(clf, tmp_path):
    lines = rows({"id": "a", "text": "I was charged twice"},
                 {"id": "gone", "file": str(tmp_path / "missing.pdf")},  # fails inside the model
                 {"id": "b", "text": "the app crashes on start"},
                 b'{"id": "s", "text": "\\ud800"}',
                 {"id": "c", "text": "can I get a quote for 50 seats"})
    chunk = score_chunk(clf, "classify", None, lines)
    out = [strict_loads(line) for line in chunk.data.splitlines()]
    assert [r["id"] for r in out] == ["a", "gone", "b", "s", "c"]
    assert (chunk.rows, chunk.failed, chunk.scored) == (5, 2, 3)
    assert out[1]["error"]["code"] == "file_not_found" and out[1]["error"]["details"]["row"] == 1
    assert out[3]["error"]["code"] == "text_invalid"
    alone = clf.classify(["I was charged twice", "the app crashes on start", "can I get a quote for 50 seats"],
                         cache=False)
    assert [(r["label"], r["scores"]) for r in out if "label" in r] == [(x.label, x.scores) for x in alone]
    assert chunk.tokens == sum(r["tokens"] for r in out if "label" in r) > 0


def test_scores_that_are_not_finite_never_reach_a_result_line(clf):
    row = {"id": 1, "label": "a", "confidence": math.nan, "scores": {"a": math.inf}}
    with pytest.raises(ValueError):
        dump_row(row)
    # Text the model cannot turn into a vector (zero-width characters only) scores or errors, never NaN.
    chunk = score_chunk(clf, "tag", 0.3, rows({"id": "zw", "text": "\u200b\u200b"}, {"id": "ok", "text": "refund"}))
    out = [strict_loads(line) for line in chunk.data.splitlines()]
    assert [r["id"] for r in out] == ["zw", "ok"]
    assert "labels" in out[1]


def test_untrusted_chunk_scores_base64_and_refuses_the_same_image_by_path(clf):
    b64 = base64.b64encode(CAT.read_bytes()).decode()
    lines = rows({"id": "b64", "image": b64, "text": "a photo"}, {"id": "path", "image": str(CAT)},
                 {"id": "txt", "text": "refund my invoice"})
    untrusted = Classifier(LABELS, priority="fast", allow_paths=False)
    chunk = score_chunk(untrusted, "classify", None, lines, allow_paths=False)
    out = [strict_loads(line) for line in chunk.data.splitlines()]
    assert out[0]["visual_tokens"] > 0 and "label" in out[0]
    assert out[1]["error"]["code"] == "path_not_allowed" and "visual_tokens" not in out[1]
    assert "label" in out[2]
    trusted = score_chunk(clf, "classify", None, lines)
    path_row = strict_loads(trusted.data.splitlines()[1])
    assert path_row["visual_tokens"] > 0  # in-process, a path is read: the same file, the same tokens
    assert path_row["visual_tokens"] == out[0]["visual_tokens"]


@pytest.mark.skipif(not Path("/proc/self/mem").is_file(), reason="needs Linux procfs")
def test_a_row_that_raises_inside_the_model_is_that_rows_error(clf):
    """Reading /proc/self/mem (this process's own memory) raises a bare OSError inside the model."""
    lines = rows({"id": "a", "text": "I was charged twice"}, {"id": "mem", "image": "/proc/self/mem"},
                 {"id": "b", "text": "the app crashes on start"}, {"id": "doc", "file": "/proc/self/mem"})
    chunk = score_chunk(clf, "classify", None, lines)
    out = [strict_loads(line) for line in chunk.data.splitlines()]
    assert [r["id"] for r in out] == ["a", "mem", "b", "doc"]
    assert (chunk.failed, chunk.scored) == (2, 2)
    assert "label" in out[0] and "label" in out[2]
    for r in (out[1], out[3]):
        assert r["error"]["details"]["row"] in (1, 3)
        assert "/proc" not in r["error"]["message"]  # what the exception said is not echoed
