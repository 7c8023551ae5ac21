"""Every limit of the hosted API gives a typed error with the right code."""

import pytest

import classer_local as cl
from classer_local.errors import ClasserError, InputTooLongError, InvalidRequestError

LABELS = ["billing", "technical"]


def code_of(fn, *args, **kwargs):
    with pytest.raises(ClasserError) as info:
        fn(*args, **kwargs)
    body = info.value.to_dict()
    assert set(body) == {"error", "code", "message", "details", "docs_url"}
    assert body["docs_url"].endswith("#" + body["code"])
    return info.value


@pytest.mark.parametrize(
    "labels, code",
    [
        (None, "labels_required"),
        ([], "labels_empty"),
        ("billing", "labels_invalid"),
        ([f"l{i}" for i in range(201)], "labels_too_many"),
        (["a", "a"], "labels_duplicate"),
        (["a", ""], "label_empty"),
        (["a", "   "], "label_empty"),
        (["a", "x" * 101], "label_too_long"),
        (["a", 3], "label_invalid"),
    ],
)
def test_label_limits(labels, code):
    err = code_of(cl.classify, text="hello", labels=labels)
    assert err.code == code
    assert isinstance(err, InvalidRequestError) and isinstance(err, ValueError)
    assert err.status == 400


def test_two_hundred_labels_of_100_chars_are_fine():
    labels = [f"{i:03d}" + "x" * 97 for i in range(200)]
    r = cl.classify(text="hello", labels=labels, priority="fast", cache=False)
    assert r.label in labels


@pytest.mark.parametrize("text, code", [(None, "input_required"), ("", "text_empty"), ("  \n", "text_empty"),
                                        (42, "text_invalid")])
def test_text_required(text, code):
    assert code_of(cl.classify, text=text, labels=LABELS).code == code


@pytest.mark.parametrize("threshold", [-0.1, 1.5, "high"])
def test_threshold_range(threshold):
    err = code_of(cl.tag, text="hi", labels=LABELS, threshold=threshold)
    assert err.code in {"threshold_out_of_range", "threshold_invalid"}


@pytest.mark.parametrize("threshold", ["0.5", True, False, [0.5], b"0.5"])
def test_threshold_must_be_a_real_number_not_a_string_or_bool(threshold):
    err = code_of(cl.tag, text="hi", labels=LABELS, threshold=threshold)
    assert err.code == "threshold_invalid" and err.status == 400


def test_threshold_accepts_ints_and_numpy_numbers():
    import numpy as np

    from classer_local import validation

    assert validation.threshold(1) == 1.0 and validation.threshold(np.float32(0.25)) == 0.25
    assert code_of(validation.threshold, float("nan")).code == "threshold_out_of_range"


LONE = "caf\udce9 \ud800"  # lone surrogates, as a JSON "\\ud800" escape or a surrogateescape decode makes


def test_lone_surrogates_are_typed_errors_everywhere():
    assert code_of(cl.classify, text=LONE, labels=LABELS).code == "text_invalid"
    assert code_of(cl.classify_batch, texts=["fine", LONE], labels=LABELS).code == "text_invalid"
    # the option checks (ClassifierOptions.validate runs them before the classifier pool hashes them)
    from classer_local import validation

    assert code_of(validation.labels, ["a", LONE]).code == "label_invalid"
    assert code_of(validation.descriptions, {"billing": LONE}, LABELS).code == "description_invalid"
    err = code_of(validation.examples, {"billing": ["ok", LONE]}, LABELS)
    assert err.code == "example_invalid" and err.details == {"label": "billing", "index": 1}


def test_text_type_limits():
    from classer_local import validation

    assert validation.text_type("  support ticket ") == "support ticket"
    assert validation.text_type("   ") is None and validation.text_type(None) is None
    assert validation.text_type("x" * validation.MAX_TEXT_TYPE_CHARS) == "x" * 100
    err = code_of(validation.text_type, "x" * (validation.MAX_TEXT_TYPE_CHARS + 1))
    assert err.code == "text_type_too_long" and err.details == {"length": 101, "max": 100}
    assert code_of(validation.text_type, LONE).code == "text_type_invalid"
    assert code_of(validation.text_type, 42).code == "text_type_invalid"


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_threshold_bounds_are_inclusive(threshold):
    r = cl.tag(text="hi", labels=LABELS, threshold=threshold, priority="fast", cache=False)
    assert len(r.labels) == (2 if threshold == 0.0 else 0)


def test_descriptions_and_examples_only_for_known_labels():
    assert code_of(cl.classify, text="hi", labels=LABELS, descriptions={"sales": "x"}).code == "description_unknown_label"
    assert code_of(cl.classify, text="hi", labels=LABELS, examples={"sales": ["x"]}).code == "example_unknown_label"
    assert code_of(cl.classify, text="hi", labels=LABELS, examples={"billing": [""]}).code == "example_empty"


def test_batch_limits():
    assert code_of(cl.classify_batch, texts=["a"] * 1001, labels=LABELS).code == "batch_too_large"
    assert code_of(cl.classify_batch, texts=[], labels=LABELS).code == "batch_empty"
    assert code_of(cl.tag_batch, texts=["ok", ""], labels=LABELS).code == "text_empty"
    assert code_of(cl.classify_batch, labels=LABELS).code == "input_required"


def test_batch_of_1000_is_accepted():
    rs = cl.classify_batch(texts=[f"text {i}" for i in range(1000)], labels=LABELS, priority="fast", cache=False)
    assert len(rs) == 1000


def test_unknown_priority_and_model():
    assert code_of(cl.classify, text="hi", labels=LABELS, priority="turbo").code == "invalid_priority"
    assert code_of(cl.classify, text="hi", labels=LABELS, model="gpt-9").code == "model_unknown"


def test_truncate_none_over_window_is_typed():
    long_text = "word " * 400  # > 256 MiniLM tokens
    err = code_of(cl.classify, text=long_text, labels=LABELS, truncate="NONE", cache=False)
    assert isinstance(err, InputTooLongError) and err.code == "input_too_long"
    assert err.details["tokens"] > err.details["window"]
    assert code_of(cl.classify, text="hi", labels=LABELS, truncate="MIDDLE").code == "invalid_truncate"


def test_text_over_a_million_tokens_is_refused():
    err = code_of(cl.classify, text="a " * 1_000_001, labels=LABELS, priority="fast", cache=False)
    assert err.code == "text_too_long"


EX = [{"text": "a", "label": "x"}, {"text": "b", "label": "x"}, {"text": "c", "label": "y"}, {"text": "d", "label": "y"}]


def test_cohere_limits():
    assert code_of(cl.cohere.classify, inputs=["q"] * 97, examples=EX).code == "batch_too_large"
    assert code_of(cl.cohere.classify, inputs=[], examples=EX).code == "batch_empty"
    assert code_of(cl.cohere.classify, inputs=["ok", " "], examples=EX).code == "text_empty"
    assert code_of(cl.cohere.classify, inputs=["q"], examples=EX[:3]).code == "examples_too_few"
    big = [{"text": f"t{i}", "label": "xy"[i % 2]} for i in range(2501)]
    assert code_of(cl.cohere.classify, inputs=["q"], examples=big).code == "examples_too_many"
    assert code_of(cl.cohere.classify, inputs=["q"], examples=[{"text": "a"}] * 2).code == "example_invalid"
    assert code_of(cl.cohere.classify, inputs=["q"], examples=EX, truncate="SIDEWAYS").code == "invalid_truncate"


def test_error_pickles_with_its_code():
    import pickle

    err = InvalidRequestError("labels_empty", "At least one label is required.", {"min": 1})
    back = pickle.loads(pickle.dumps(err))
    assert back.to_dict() == err.to_dict()


def test_error_docs_are_current_and_cover_raised_codes():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    check = subprocess.run([sys.executable, str(root / "docs" / "gen_errors.py"), "--check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    documented = (root / "docs" / "errors.md").read_text()
    for code in ("labels_too_many", "input_too_long", "text_too_long", "examples_too_few", "image_invalid",
                 "decompression_bomb", "too_many_running_jobs", "model_not_installed"):
        assert f"\n## {code}\n" in documented, code
