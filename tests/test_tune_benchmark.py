"""benchmarks/tune.py end to end on a toy set: real tuning, SetFit runs reused from a saved file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import tune
from common import TEXT_SETS

ROWS = {"positive": ["a wonderful, moving film", "great acting and a clever plot", "I loved every minute"],
        "negative": ["a dull, lifeless mess", "the worst script this year", "boring and far too long"]}


def toy_sst2(root: Path) -> Path:
    eval_file, pool_file = TEXT_SETS["sst2"]
    folder = root / "sst2"
    folder.mkdir(parents=True)
    (folder / "labels.json").write_text(json.dumps(sorted(ROWS)))
    pool = [{"text": t, "label": lb} for lb, texts in ROWS.items() for t in texts]
    scored = [{"text": f"{t}, really", "label": lb} for lb, texts in ROWS.items() for t in texts]
    (folder / pool_file).write_text("".join(json.dumps(r) + "\n" for r in pool))
    (folder / eval_file).write_text("".join(json.dumps(r) + "\n" for r in scored))
    return root


def saved_run(path: Path, n_eval: int, accs: list[float]) -> Path:
    runs = [{"acc": a, "fit_s": 1.0, "steps": 4} for a in accs]
    path.write_text(json.dumps({"meta": {}, "results": {"sst2": {"n_eval": n_eval, "setfit": {"acc": 0.5, "runs": runs}}}}))
    return path


def test_tune_benchmark_reuses_saved_setfit_runs(tmp_path: Path) -> None:
    data = toy_sst2(tmp_path / "data")
    saved = saved_run(tmp_path / "saved.json", 6, [0.25, 0.75])
    out, md = tmp_path / "tune.json", tmp_path / "TUNE.md"
    res = tune.main(["--data", str(data), "--sets", "sst2", "--shots", "2", "--seeds", "2",
                     "--setfit-from", str(saved), "--out", str(out), "--md", str(md)])
    sf = res["sst2"]["setfit"]
    assert [r["acc"] for r in sf["runs"]] == [0.25, 0.75] and sf["acc"] == pytest.approx(0.5)
    assert all(r["from"] == str(saved) for r in sf["runs"])
    written = json.loads(out.read_text())
    assert written["meta"]["partial"] is False and written["results"]["sst2"]["n_eval"] == 6
    tuned = written["results"]["sst2"]["tuned"]["runs"]
    assert len(tuned) == 2 and all(r["steps"] > 0 and r["delta_bytes"] > 0 for r in tuned)
    table = md.read_text()
    assert "| sst2 |" in table and "per seed" in table and "are reused" in table
    assert f"--sets sst2 --shots 2 --seeds 2 --setfit-from {saved}" in table and written["meta"]["argv"][:2] == ["--data", str(data)]
    per_seed = [f"{100 * (t['acc'] - s):+.1f}" for t, s in zip(tuned, (0.25, 0.75))]
    assert " / ".join(per_seed) in table


def test_tune_benchmark_refuses_setfit_runs_of_other_rows(tmp_path: Path) -> None:
    data = toy_sst2(tmp_path / "data")
    saved = saved_run(tmp_path / "saved.json", 1000, [0.5])
    with pytest.raises(SystemExit, match="scored 1000 rows, not 6"):
        tune.main(["--data", str(data), "--sets", "sst2", "--shots", "2", "--seeds", "1", "--no-setfit",
                   "--setfit-from", str(saved), "--out", str(tmp_path / "t.json"), "--md", str(tmp_path / "T.md")])
