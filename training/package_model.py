#!/usr/bin/env python
"""Copy a finished ``train_encoder.py`` run into the package, with its manifest and a model card.

    python training/package_model.py --run runs/lm1 --train-dir ../shared/trainingdata/train \
        --dest classer_local/models/minilm-l6-labelmatch [--metrics benchmarks/results/zeroshot.json]

The card lists the base model, every training set with the license line of its SOURCE.md, the
recipe (the manifest's hyperparameters) and the measured figures (``--metrics``: the zero-shot
benchmark's summary), so what ships can be traced to data, code and numbers.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path


def license_line(source_md: Path) -> str:
    for line in source_md.read_text().splitlines():
        m = re.match(r"\s*-\s*(?:Original:.*)?License:\s*(.*)", line, flags=re.I)
        if m:
            return m.group(1).strip()
    return "see SOURCE.md"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, type=Path)
    ap.add_argument("--train-dir", required=True, type=Path)
    ap.add_argument("--dest", required=True, type=Path)
    ap.add_argument("--metrics", type=Path, default=None)
    a = ap.parse_args(argv)
    manifest = json.loads((a.run / "manifest.json").read_text())
    a.dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(a.run / "encoder.safetensors", a.dest / "encoder.safetensors")
    (a.dest / "manifest.json").write_text(json.dumps(manifest, indent=1))
    size = (a.dest / "encoder.safetensors").stat().st_size / 2**20
    hp = manifest["hyperparameters"]
    lines = [
        "# minilm-l6-labelmatch: all-MiniLM-L6-v2 taught to match texts with label names",
        "",
        f"- **Base**: {manifest['base_model']} (Apache-2.0). This folder holds only the transformer layers "
        f"training changed, fp16 ({size:.1f} MiB); the word embeddings and tokenizer are the base package's.",
        f"- **Program**: `{manifest['program']}` {' '.join(manifest['argv'])} (seed {hp['seed']}, torch {manifest['torch']}).",
        f"- **Objective**: per step one training set, {hp['batch']} of its texts against its whole label set "
        f"(bare name, \"This is about {{name}}.\", lower case, description) plus {hp['foreign']} label names "
        f"of other sets as hard negatives; softmax over cos/τ (τ={hp['tau']}); AdamW lr {hp['lr']}, "
        f"{hp['warmup']:.0%} warm-up, linear decay; word embeddings frozen.",
        f"- **Run**: {manifest['rows']} rows ({hp['cap']} per set at most), {manifest['steps']} steps, "
        f"{manifest['train_seconds'] / 60:.0f} min on CPU; loss {manifest['first_loss20']:.2f} → {manifest['final_loss20']:.2f}.",
        f"- **Soup**: trained weights averaged with the base at share {manifest['soup_share']}, chosen on the "
        f"held-out training sets {', '.join(manifest['held_out_sets'])} (never on eval/ or the dev sets):",
        "",
        "| trained share | held-out mean accuracy (names only) |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v['mean']:.3f} |" for k, v in manifest["soups"].items()]
    lines += ["", "## Training data (`train/` only; licenses as their SOURCE.md states)", "",
              "| set | license | used for |", "|---|---|---|"]
    held = set(manifest["held_out_sets"])
    for name in sorted(manifest["data"]):
        lines.append(f"| {name} | {license_line(a.train_dir / name / 'SOURCE.md')} | "
                     f"{'soup selection (held out of training)' if name in held else 'training'} |")
    if a.metrics and a.metrics.exists():
        summary = json.loads(a.metrics.read_text())["summary"]
        lines += ["", "## Measured (benchmarks/zeroshot.py, same run as the base model)", "",
                  "| model | group/regime | sets | mean accuracy | answers > 0.9 | right when > 0.9 | ECE |",
                  "|---|---|---|---|---|---|---|"]
        for model, rows in summary.items():
            for k, v in rows.items():
                hi = "-" if v["hi_acc"] is None else f"{v['hi_acc']:.3f}"
                lines.append(f"| {model} | {k} | {v['sets']} | {v['mean_acc']:.3f} | {v['hi_share']:.3f} | {hi} | {v['ece']:.3f} |")
    (a.dest / "MODEL_CARD.md").write_text("\n".join(lines) + "\n")
    print(f"packaged {a.dest} ({size:.1f} MiB)")


if __name__ == "__main__":
    main()
