"""The acceptance experiment: Skywork-Reward-V2's Fig. 7 in miniature, on the shared sample.

1. Build a pool of real pairs from ../shared/data (hh-rlhf, UltraFeedback, arena without
   ties, stack-exchange, Dahoas, RM-Gallery helpful); hold out a gold set whose original
   labels play the humans; flip FLIP of the remaining labels with a fixed seed.
2. Run Stage 2 (``synpref curate run``: prep, gold RM, current RMs cross-fitted on the noisy
   pool, the embedded SmolLM2 judge, the Stage 2 rule) on the noisy pool.
3. Report (a) precision/recall of the flipped pairs it detects and (b) the accuracy of
   MiniLM RMs trained (same trainer settings for every arm) on: the noisy pool, the
   curated pool, the curated pool plus recycled flips, a random noisy subset of the
   curated size; on the shared RM-Bench, JudgeBench, RMB and RewardBench sample.

Run: python bench/curation_replication.py --out /tmp/curation_bench [--per-source 200 --gold 300]
Numbers are on the shared sample, not leaderboard numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SOURCES = {
    "hh-rlhf": DATA / "hh-rlhf" / "train-sample",
    "ultrafeedback": DATA / "ultrafeedback-binarized-sample" / "train_clean.jsonl",
    "arena": DATA / "chatbot-arena-55k-sample",
    "stack-exchange": DATA / "stack-exchange-preferences-sample",
    "dahoas": DATA / "dahoas-full-hh-rlhf-sample",
    "rm-gallery-helpful": DATA / "prefsets-anthropic-helpful-subset",
}
BENCHES = ["rm-bench", "judgebench", "rmb", "rewardbench"]


def build_pool(per_source: int, seed: int):
    from synpref.ingest import read_records
    from synpref.schema import expand_to_pairs

    rng = random.Random(seed)
    out, seen, counts = [], set(), {}
    for name, path in SOURCES.items():
        errors = []
        recs = []
        for rec in read_records([path], errors=errors):
            for p in expand_to_pairs(rec, mode="best-vs-worst"):  # ties (arena) give no pair
                if p.id not in seen:
                    recs.append(p)
        rng.shuffle(recs)
        recs = recs[:per_source]
        seen.update(r.id for r in recs)
        counts[name] = len(recs)
        out += recs
    rng.shuffle(out)
    return out, counts


def add_arm_args(ap: argparse.ArgumentParser) -> None:
    """Trainer settings shared by every reward model of the experiment (gold, current, arms)."""
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--length-policy", default="truncate", help="truncate keeps every pair (the start of an over-long response)")
    ap.add_argument("--epochs", type=float, default=3.0)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--pairs-per-step", type=int, default=16)
    ap.add_argument("--head-lr", type=float, default=1e-3, help="learning rate of the reward head (a fresh head needs a large one)")
    ap.add_argument("--top-layers", type=int, default=0, help="train only the top N layers (0: the full model)")


def arm_settings(args) -> dict:
    return {"model": "minilm", "max_length": args.max_length, "length_policy": args.length_policy, "epochs": args.epochs,
            "train_top_layers": args.top_layers, "precision": "auto", "eval_fraction": 0.0, "progress": False,
            "tensorboard": False, "pairs_per_step": args.pairs_per_step, "learning_rate": args.lr,
            "head_learning_rate": args.head_lr, "warmup_ratio": 0.1}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/curation_bench")
    ap.add_argument("--per-source", type=int, default=200)
    ap.add_argument("--gold", type=int, default=300)
    ap.add_argument("--flip", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--eval-limit", type=int, default=100, help="items per benchmark")
    ap.add_argument("--n-samples", type=int, default=1, help="judge samples per pair")
    ap.add_argument("--max-examples", type=int, default=0, help="retrieved human-verified examples in the judge prompt")
    ap.add_argument("--judge-chars", type=int, default=200, help="characters kept of each message in the judge prompt")
    ap.add_argument("--folds", type=int, default=2, help="Stage 2 current RMs cross-fitted over this many folds (1: one model on the whole pool)")
    ap.add_argument("--detection-only", action="store_true", help="stop after Stage 2's flip detection (part a); train no arms")
    add_arm_args(ap)
    args = ap.parse_args(argv)
    if not DATA.is_dir():
        sys.exit(f"{DATA} is absent: this benchmark needs the shared data folder")
    from synpref.curate.run import run_curation
    from synpref.curate.util import flip, read_jsonl
    from synpref.evaluate import run_evaluation
    from synpref.store.pool import PoolWriter
    from synpref.train import TrainConfig, train

    t0 = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pool, counts = build_pool(args.per_source, args.seed)
    gold, rest = pool[: args.gold], pool[args.gold :]
    rng = random.Random(args.seed + 1)
    flipped_ids, noisy = set(), []
    for rec in rest:
        if rng.random() < args.flip:
            rec = flip(rec)
            flipped_ids.add(rec.id)
        noisy.append(rec)
    for name, recs in (("gold", gold), ("noisy", noisy)):
        d = out / name
        if not d.exists():
            with PoolWriter(d) as w:
                w.write_all(recs)
    print(f"pool: {counts} -> gold {len(gold)}, noisy {len(noisy)} ({len(flipped_ids)} flipped)", flush=True)
    rm = arm_settings(args)
    cfg = {
        "pool": str(out / "noisy"), "gold": str(out / "gold"), "data_dir": str(DATA),
        "prep": {"enabled": True, "near_dup": True, "decontaminate": True},
        "attributes": {"enabled": False},
        "judge": {"n_samples": args.n_samples, "max_examples": args.max_examples, "max_chars": args.judge_chars, "example_chars": 200,
                  "params": {"temperature": 0.7, "max_tokens": 12, "seed": 0}},
        "rm": rm,
        "stage1": {"iterations": 0},
        "stage2": {"enabled": True, "band": 0.0, "recycle_flips": False, "current_rm_folds": args.folds},
        "seed": args.seed,
    }
    run_dir = out / "run"
    summ = run_curation(cfg, run_dir, progress=True)
    t_cur = time.time() - t0
    entries = [e for e in read_jsonl(run_dir / "ledger" / "stage2.jsonl")]
    removed_prep = {e["pair_id"] for e in read_jsonl(run_dir / "ledger" / "prep.jsonl")}
    considered = [e for e in entries if e["decision"] in ("keep", "flip", "discard")]
    flips_in = {e["pair_id"] for e in considered} & flipped_ids
    detected = {e["pair_id"] for e in considered if e["decision"] in ("discard", "flip")}
    flipped_dec = {e["pair_id"] for e in considered if e["decision"] == "flip"}

    def pr(det):
        tp = len(det & flips_in)
        return {"detected": len(det), "true_flips_detected": tp, "precision": tp / max(1, len(det)), "recall": tp / max(1, len(flips_in))}

    # how good were the three signals, against the truth (a flipped pair's given label is wrong)?
    truth = {e["pair_id"]: e["pair_id"] not in flipped_ids for e in considered}
    judged = {e["pair_id"]: e["judge"]["label"] for e in considered if e.get("judge") and e["judge"]["label"]}
    signals = {
        "current_rm_accuracy": sum((e["p_current"] > 0.5) == truth[e["pair_id"]] for e in considered) / max(1, len(considered)),
        "gold_rm_accuracy": sum((e["p_gold"] > 0.5) == truth[e["pair_id"]] for e in considered) / max(1, len(considered)),
        "judge_accuracy": sum((lab == "A") == truth[p] for p, lab in judged.items() if p in truth) / max(1, len(judged)),
        "judged": len(judged),
    }
    detection = {"signals_vs_truth": signals, "flipped_pairs_after_prep": len(flips_in), "pairs_considered": len(considered),
                 "removed_by_prep": len(removed_prep), "discard_or_flip": pr(detected), "flip_only": pr(flipped_dec),
                 "decisions": summ["stage2"]}
    print(json.dumps(detection, indent=2), flush=True)

    # -- arms ------------------------------------------------------------------------------
    by_id = {r.id: r for r in noisy}
    kept = [by_id[e["pair_id"]] for e in considered if e["decision"] == "keep"]
    recycled = [flip(by_id[e["pair_id"]]) for e in considered if e["decision"] == "flip"]
    noisy_after_prep = [by_id[e["pair_id"]] for e in considered]
    rnd = random.Random(args.seed + 2).sample(noisy_after_prep, min(len(kept), len(noisy_after_prep)))
    if args.detection_only:
        (out / "report.json").write_text(json.dumps({"detection": detection, "llm": summ["llm_cumulative"], "seconds": time.time() - t0,
                                                     "args": vars(args), "pool_counts": counts}, indent=2))
        print(f"total {time.time() - t0:.0f}s (detection only); LLM usage {summ['llm_cumulative']}")
        return
    arms = {"noisy": noisy_after_prep, "curated": kept, "curated+recycled": kept + recycled, "random-subset": rnd}
    models = {}
    for name, recs in arms.items():
        d = out / "arms" / name
        if not (d / "model" / "config.json").is_file():
            t = time.time()
            train(TrainConfig(**rm, data=[], run_dir=str(d), seed=args.seed), records=recs)
            print(f"trained {name} on {len(recs)} pairs in {time.time() - t:.0f}s", flush=True)
        models[name] = str(d / "model")
    res = run_evaluation(list(models.values()), BENCHES, DATA, out / "eval", limit=args.eval_limit, baselines=False,
                         write_report=False, progress=False)
    table = {}
    for name, path in models.items():
        m = res["models"][path]
        scores = {b: (m["benchmarks"][b]["score"] if m["benchmarks"].get(b) and m["benchmarks"][b].get("score") is not None else float("nan")) for b in BENCHES}
        scores["mean"] = sum(scores.values()) / len(BENCHES)
        table[name] = {"pairs": len(arms[name]), **scores}
    lines = ["| arm | pairs | " + " | ".join(BENCHES) + " | mean |", "|---|---:|" + "---:|" * (len(BENCHES) + 1)]
    for name, row in table.items():
        lines.append(f"| {name} | {row['pairs']} | " + " | ".join(f"{row[b]:.3f}" for b in BENCHES) + f" | {row['mean']:.3f} |")
    report = {"detection": detection, "table": table, "llm": summ["llm_cumulative"], "seconds": time.time() - t0,
              "curation_seconds": t_cur, "args": vars(args), "pool_counts": counts}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print("\n".join(lines))
    print(f"total {time.time() - t0:.0f}s; LLM usage {summ['llm_cumulative']}")


if __name__ == "__main__":
    main()
