"""``synpref demo``: the whole spine on embedded data, in a few minutes on a CPU.

1. ingest the packaged demo pairs (written for this project) into a pool;
2. hold out about 20% of prompts by a hash of the prompt id (a plain hash split,
   so the held-out share per category varies a little);
3. fine-tune a reward model on the rest with the Bradley-Terry trainer;
4. score the held-out pairs with the trained model, the untouched base model and
   two length-only baselines, and print accuracies and a few scored examples.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import shutil
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

DEMO_DATA = "demo_pairs.jsonl"
HELD_OUT_PERCENT = 20

# Settings chosen so the demo finishes in a few minutes on 2 CPU cores.
DEMO_TRAIN = dict(
    max_length=256,
    length_policy="truncate-left",
    epochs=3.0,
    pairs_per_step=16,
    learning_rate=5e-5,
    warmup_ratio=0.1,
    eval_fraction=0.0,
    precision="auto",
    seed=7,
)


def demo_data_path() -> Path:
    return Path(str(importlib.resources.files("synpref") / "data" / DEMO_DATA))


def _held_out(prompt_id: str) -> bool:
    return int(hashlib.sha256(prompt_id.encode()).hexdigest()[:8], 16) % 100 < HELD_OUT_PERCENT


def split_pool(pool_dir: Path, train_dir: Path, test_dir: Path) -> tuple[int, int]:
    """Split by prompt into fresh train and test pools (a rerun replaces, never appends)."""
    from .store import PoolWriter, read_pool

    for directory in (train_dir, test_dir):
        shutil.rmtree(directory, ignore_errors=True)
    with PoolWriter(train_dir) as train_w, PoolWriter(test_dir) as test_w:
        for rec in read_pool(pool_dir):
            (test_w if _held_out(rec.prompt_id) else train_w).write(rec)
    return train_w.written, test_w.written


def _accuracy(rows) -> float:
    return sum(1 for c, r in rows if c > r) / max(1, len(rows))


def run_demo(out_dir: Path, *, model: str = "minilm", epochs: float | None = None, echo: Callable = print) -> dict:
    from .ingest import ingest
    from .model import RewardModel
    from .store import read_pool
    from .train import TrainConfig, train

    start = time.perf_counter()
    out_dir = Path(out_dir)
    echo(f"synpref demo: data {demo_data_path().name} (packaged), backbone {model}, output {out_dir}")
    report = ingest([demo_data_path()], out_dir / "pool", overwrite=True, progress=False)
    echo(f"[1/4] ingest: read {report['read']}, kept {report['kept']}, quarantined {report['quarantined']}, duplicates {report['duplicates']}")

    n_train, n_test = split_pool(out_dir / "pool", out_dir / "train_pool", out_dir / "test_pool")
    if n_train == 0 or n_test == 0:
        raise RuntimeError("the demo split left one side empty; the packaged data is damaged")
    echo(f"[2/4] split by prompt: {n_train} training pairs, {n_test} held-out pairs")

    settings = dict(DEMO_TRAIN, epochs=epochs or DEMO_TRAIN["epochs"])
    config = TrainConfig(data=[str(out_dir / "train_pool")], run_dir=str(out_dir / "run"), model=model, **settings)
    echo(f"[3/4] training ({settings['epochs']:g} epochs, max_length {settings['max_length']}, precision {settings['precision']})")
    summary = train(config)

    echo("[4/4] scoring the held-out pairs")
    test = list(read_pool(out_dir / "test_pool"))
    trained = RewardModel.from_pretrained(out_dir / "run" / "model")
    base = RewardModel.from_pretrained(model, policy=trained.policy)
    trained_scores = trained.score_pairs(test)
    base_scores = base.score_pairs(test)
    lengths = [(len(r.chosen[-1].content), len(r.rejected[-1].content)) for r in test]
    results = {
        "trained": _accuracy(trained_scores),
        "base model (untrained head)": _accuracy(base_scores),
        "longer response wins": _accuracy(lengths),
        "shorter response wins": _accuracy([(-c, -r) for c, r in lengths]),
    }
    by_category = defaultdict(list)
    for rec, rewards in zip(test, trained_scores):
        by_category[rec.meta.get("category", "?")].append(rewards)

    echo("")
    echo(f"Held-out accuracy on {len(test)} demo pairs (chosen scored strictly higher):")
    for name, acc in results.items():
        echo(f"  {name:<28} {acc:6.1%}")
    echo("Trained model by category:")
    for cat in sorted(by_category):
        rows = by_category[cat]
        echo(f"  {cat:<28} {_accuracy(rows):6.1%}  (n={len(rows)})")
    echo("")
    echo("A few held-out examples (reward of chosen vs rejected):")
    for rec, (c, r) in list(zip(test, trained_scores))[:4]:
        prompt = rec.context[-1].content.replace("\n", " ")
        echo(f"  Q: {prompt[:90]}")
        echo(f"     chosen   {c:+.3f}  {rec.chosen[-1].content.replace(chr(10), ' ')[:70]}")
        echo(f"     rejected {r:+.3f}  {rec.rejected[-1].content.replace(chr(10), ' ')[:70]}")
    elapsed = time.perf_counter() - start
    echo("")
    echo(f"Done in {elapsed:.0f} s. Model: {out_dir / 'run' / 'model'} (a standard transformers checkpoint)")
    return {"accuracy": results, "train_summary": summary, "n_train": n_train, "n_test": n_test, "seconds": elapsed}
