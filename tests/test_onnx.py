"""The standard encoders in ONNX Runtime on the CPU: same ids, same vectors, no torch on a cached start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from classer_local import registry
from classer_local.backends import _onnx
from classer_local.backends.sentence_transformers import SentenceTransformerEmbedder, _folders

NAME = "minilm-l6-labelmatch"
TEXTS = ["How do I get a new card?", "", "Ünïcödé naïve café — “quotes” 日本語", "tab\tnew\nline " * 3,
         "[CLS] [SEP] [PAD]", "🙂👍🏽", "word " * 400]

pytestmark = pytest.mark.skipif(not (_onnx.available() and _onnx.available("onnx")), reason="onnxruntime/onnx missing")


@pytest.fixture()
def fresh_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("CLASSER_HOME", str(tmp_path))
    monkeypatch.delenv("CLASSER_ONNX", raising=False)
    monkeypatch.setenv("CLASSER_BF16", "0")  # a CPU with native bfloat16 runs torch's autocast instead of the graph
    return tmp_path


def torch_vectors(emb: SentenceTransformerEmbedder, texts: list[str]) -> np.ndarray:
    graph, emb._onnx = emb._onnx, False  # this embedder's torch path, same tokenisation and windows
    try:
        return emb.encode(texts)
    finally:
        emb._onnx = graph


def test_graph_gives_torchs_vectors_and_tokenizer_ids(fresh_home: Path) -> None:
    # graphs left by earlier versions of the files: this model's goes with the new export, another's stays
    for stale, owner in (("0" * 20, NAME), ("1" * 20, "some-other-model")):
        (_onnx.folder() / f"{stale}.onnx").write_bytes(b"an older export")
        (_onnx.folder() / f"{stale}.json").write_text(json.dumps({"max_seq_length": 256, "model": owner}))
    emb = SentenceTransformerEmbedder(registry.get(NAME), "cpu")
    assert emb.onnx_encoder() is not None  # exported on first use
    files = sorted((fresh_home / "onnx").glob("*.onnx"))
    assert [f.name for f in files] == sorted(["1" * 20 + ".onnx", _onnx.graph_path(_folders(emb.spec), fresh_home / "onnx").name])
    files = [f for f in files if not f.name.startswith("1" * 20)]
    assert not (_onnx.folder() / ("0" * 20 + ".json")).exists()
    assert json.loads(files[0].with_suffix(".json").read_text())["max_seq_length"] == emb.model.max_seq_length == 256
    hf = emb.tokenizer(TEXTS, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    assert emb._fast(TEXTS) == hf
    assert emb._fast.pad_id == emb.tokenizer.pad_token_id
    ours = emb.encode(TEXTS)
    ref = torch_vectors(emb, TEXTS)
    assert ours.shape == ref.shape == (len(TEXTS), 384)
    assert float((ours * ref).sum(1).min()) > 0.99999


def test_a_cached_graph_starts_without_torch_and_answers_the_same(fresh_home: Path) -> None:
    std = registry.get("standard")  # export the graphs of every transformer the default reads
    for spec in registry.ensemble_members(std)[0] if std.backend == "ensemble" else [std]:
        if spec.backend == "sentence-transformers":
            SentenceTransformerEmbedder(spec, "cpu").encode(["export it"])
    code = (
        "import sys, json, classer_local as cl\n"
        "r = cl.classify(\"I can't log in to my account\", labels=['billing', 'technical', 'sales'], cache=False)\n"
        "print(json.dumps({'label': r.label, 'scores': r.scores, 'torch': 'torch' in sys.modules,"
        " 'transformers': 'transformers' in sys.modules}))\n"
    )

    def run(onnx: str) -> dict:
        env = {**os.environ, "CLASSER_HOME": str(fresh_home), "CLASSER_ONNX": onnx}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, check=False)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    fast, slow = run("1"), run("0")
    assert not fast["torch"] and not fast["transformers"]
    assert slow["torch"]
    assert fast["label"] == slow["label"] == "technical"
    assert all(abs(fast["scores"][k] - slow["scores"][k]) < 1e-4 for k in slow["scores"])


def test_a_broken_graph_file_is_exported_again(fresh_home: Path) -> None:
    spec = registry.get(NAME)
    path = _onnx.graph_path(_folders(spec), _onnx.folder())
    path.write_bytes(b"not an onnx graph")
    path.with_suffix(".json").write_text(json.dumps({"max_seq_length": 256}))
    emb = SentenceTransformerEmbedder(spec, "cpu")  # the file does not load: removed, torch loaded instead
    assert not path.exists() and emb._onnx is None
    vec = emb.encode(["a new card please"])  # first encode exports a good one
    assert path.exists() and emb.onnx_encoder() is not None
    assert float((vec * torch_vectors(emb, ["a new card please"])).sum()) > 0.99999


def test_graph_of_other_weights_is_refused_by_the_probe(fresh_home: Path) -> None:
    base = SentenceTransformerEmbedder(registry.get("all-minilm-l6-v2"), "cpu")
    tuned_like = SentenceTransformerEmbedder(registry.get(NAME), "cpu")
    graph = base.onnx_encoder()
    probe = [base._prefix + ids + base._suffix for ids in base._ids(["How do I get a new card?", "Markets fell."])]
    assert graph.agrees(base.model, probe)
    assert not graph.agrees(tuned_like.model, probe)  # another model's vectors: never used for it


def test_switch_off_int8_and_copies_run_torch(fresh_home: Path, monkeypatch) -> None:
    from classer_local import tuning

    emb = SentenceTransformerEmbedder(registry.get(NAME), "cpu")
    delta = tuning.tune(emb, ["how many?", "where is it?"], [[0], [1]], [["number"], ["place"]],
                        settings=tuning.TuneSettings(max_steps=2), progress=False)
    tuned = tuning.apply(emb, delta)
    assert emb.onnx_encoder() is not None and tuned.onnx_encoder() is None  # a tuned copy has other weights
    assert not np.allclose(tuned.encode(["how far?"]), emb.encode(["how far?"]), atol=1e-6)
    assert SentenceTransformerEmbedder(registry.get(NAME + "-int8"), "cpu").onnx_encoder() is None
    monkeypatch.setenv("CLASSER_ONNX", "0")
    off = SentenceTransformerEmbedder(registry.get(NAME), "cpu")
    assert off.onnx_encoder() is None and off._model is not None
    assert not _onnx.wanted("cuda", quantized=False, bf16=False)
