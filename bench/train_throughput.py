"""Benchmark: synpref's reward-model trainer vs TRL's RewardTrainer on the same data.

Not a test. Both train MiniLM (all-MiniLM-L6-v2, packaged) for one epoch on the
same pairs from the shared sample data (``../shared/data`` relative to the project
root): ``--pairs`` pairs, half from hh-rlhf train-sample, half from UltraFeedback
binarized train. Same max length (512), pairs per optimizer step, learning rate,
schedule, seed and precision (fp32 for both; synpref is also run with bf16 as an
extra line). Both see the same token ids (synpref's ``encode``): TRL gets them
pre-tokenized and untruncated and, as it does, drops pairs longer than max_length;
synpref truncates the context on the left and drops nothing that fits the policy.
Held-out accuracy: ``--heldout`` other pairs (prompts disjoint from training), both
trained models scored by ``RewardModel.score`` (identical scoring).

    python bench/train_throughput.py                # 400 train pairs, 200 held out
    python bench/train_throughput.py --quick        # 32 + 32 pairs, smoke run
    python bench/train_throughput.py --pairs 200 --heldout 100
    python bench/train_throughput.py --packing off,on   # synpref padded and packed, each against TRL

Numbers are "on the shared sample", not leaderboard numbers.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SYNPREF_SHARED_DATA", ROOT.parent / "shared" / "data"))
HH = [DATA / "hh-rlhf" / "train-sample" / "helpful_train_sample.jsonl",
      DATA / "hh-rlhf" / "train-sample" / "harmless_train_sample.jsonl"]
UF = DATA / "ultrafeedback-binarized-sample" / "train_clean.jsonl"


def hh_record(row: dict):
    """hh-rlhf transcripts share every turn but the last assistant turn."""
    from synpref.schema import make_pair

    def turns(text: str):
        out = []
        for chunk in text.split("\n\nHuman: ")[1:]:
            human, *assistant = chunk.split("\n\nAssistant: ")
            out.append({"role": "user", "content": human})
            for a in assistant:
                out.append({"role": "assistant", "content": a})
        return out

    c, r = turns(row["chosen"]), turns(row["rejected"])
    if len(c) < 2 or c[:-1] != r[:-1] or c[-1]["role"] != "assistant" or r[-1]["role"] != "assistant":
        return None
    return make_pair(c[:-1], c[-1]["content"], r[-1]["content"])


def uf_record(row: dict):
    from synpref.schema import make_pair

    return make_pair(row["prompt"], row["chosen"], row["rejected"])


def load_records(n_train: int, n_held: int):
    from synpref.schema import RecordError

    def read(path, fn, limit):
        out = []
        with open(path) as f:
            for line in f:
                if len(out) >= limit:
                    break
                try:
                    rec = fn(json.loads(line))
                except RecordError:
                    rec = None
                if rec is not None:
                    out.append(rec)
        return out

    need = n_train + n_held
    hh_all = read(HH[0], hh_record, need // 4 + 50) + read(HH[1], hh_record, need // 4 + 50)
    uf_all = read(UF, uf_record, need // 2 + 100)
    half = n_train // 2
    hh_train = hh_all[: half // 2] + hh_all[len(hh_all) // 2 : len(hh_all) // 2 + half - half // 2]
    train = hh_train + uf_all[: n_train - len(hh_train)]
    seen = {r.prompt_id for r in train}
    rest = [r for r in hh_all + uf_all[n_train - len(hh_train):] if r not in train and r.prompt_id not in seen]
    rest = [r for r in rest if _fits(r)]  # both sides scoreable under truncate-left 512: no NaN scores
    hh_rest = [r for r in rest if r in hh_all][: n_held // 2]
    uf_rest = [r for r in rest if r not in hh_all][: n_held - len(hh_rest)]
    return train, hh_rest + uf_rest


_FIT_RM = None


def _fits(rec) -> bool:
    global _FIT_RM
    from synpref.model import packaged_model_path
    from synpref.text import TextPolicy, encode

    if _FIT_RM is None:
        from transformers import AutoTokenizer

        _FIT_RM = AutoTokenizer.from_pretrained(packaged_model_path("minilm"))
    pol = TextPolicy(512, "truncate-left")
    return all(encode(_FIT_RM, rec.conversation(i), pol) is not None for i in (0, 1))


def heldout_accuracy(model_dir, held, *, zero_types=False) -> tuple[float, float]:
    from synpref.model import RewardModel
    from synpref.text import TextPolicy

    rm = RewardModel.from_pretrained(model_dir, policy=TextPolicy(512, "truncate-left"), device="cpu")
    if zero_types:
        orig = rm.collate

        def collate(items):
            b = orig(items)
            b.pop("token_type_ids", None)
            return b

        rm.collate = collate
    scores = rm.score_pairs(held, max_batch_tokens=16384, precision="fp32")
    acc = sum(a > b for a, b in scores) / len(scores)
    margin = sum(a - b for a, b in scores) / len(scores)
    return acc, margin


def run_synpref(model_ref, train, workdir, args, precision, packing="auto"):
    from synpref.train import TrainConfig, train as sp_train

    cfg = TrainConfig(model=str(model_ref), run_dir=str(workdir / f"synpref-{precision}-{packing}"), max_length=512,
                      packing=packing,
                      length_policy="truncate-left", pairs_per_step=args.pairs_per_step, epochs=1,
                      learning_rate=args.lr, scheduler="linear", warmup_steps=0, seed=42, eval_fraction=0.0,
                      precision=precision, max_batch_tokens=args.max_batch_tokens, progress=not args.no_progress,
                      log_every=1, tensorboard=False, reward_stats_pairs=200, num_threads=args.threads)
    t0 = time.time()
    s = sp_train(cfg, records=train)
    return {"name": f"synpref ({precision}, {s['layout']})", "pairs": s["pairs_seen"], "loop_s": s["train_seconds"],
            "total_s": time.time() - t0, "dir": s["model_dir"], "tokens": round(s["tokens_per_s"] * s["train_seconds"]), "dropped": s["data"]["pairs_dropped_length"],
            "truncated": s["data"]["pairs_truncated"], "steps": s["steps"]}


def run_trl(model_ref, train, workdir, args):
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed
    from trl import RewardConfig, RewardTrainer

    from synpref.model import RewardModel
    from synpref.text import TextPolicy

    t0 = time.time()
    # The same token ids synpref uses, untruncated: TRL then applies its own max_length rule.
    enc_rm = RewardModel.from_pretrained(model_ref, policy=TextPolicy(10**7, "error"), device="cpu")
    rows = {"chosen_ids": [], "rejected_ids": []}
    for r in train:
        rows["chosen_ids"].append(enc_rm.encode(r.conversation(0)).input_ids)
        rows["rejected_ids"].append(enc_rm.encode(r.conversation(1)).input_ids)
    del enc_rm
    longer = sum(max(len(a), len(b)) > 512 for a, b in zip(rows["chosen_ids"], rows["rejected_ids"]))
    ds = Dataset.from_dict(rows)
    tok = AutoTokenizer.from_pretrained(model_ref)
    tok.eos_token = "[SEP]"  # TRL appends eos_token; MiniLM has none
    set_seed(42)
    model = AutoModelForSequenceClassification.from_pretrained(model_ref, num_labels=1)
    model.config.pad_token_id = tok.pad_token_id
    ga = max(1, args.pairs_per_step // args.trl_batch)
    cfg = RewardConfig(output_dir=str(workdir / "trl"), per_device_train_batch_size=args.trl_batch,
                       gradient_accumulation_steps=ga, num_train_epochs=1, learning_rate=args.lr,
                       lr_scheduler_type="linear", warmup_steps=0, max_length=512, bf16=False, fp16=False,
                       gradient_checkpointing=False, use_cpu=True, report_to=[], save_strategy="no",
                       logging_steps=10, seed=42, disable_tqdm=args.no_progress, dataloader_num_workers=0)
    trainer = RewardTrainer(model=model, args=cfg, train_dataset=ds, processing_class=tok)
    kept = len(trainer.train_dataset)
    tokens = sum(len(a) + len(b) for a, b in zip(trainer.train_dataset["chosen_ids"], trainer.train_dataset["rejected_ids"]))
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    out = trainer.train()
    loop = out.metrics.get("train_runtime")
    save = workdir / "trl-model"
    trainer.save_model(str(save))
    tok.save_pretrained(str(save))
    return {"name": "TRL RewardTrainer (fp32)", "pairs": kept, "loop_s": loop, "total_s": time.time() - t0,
            "dir": str(save), "tokens": tokens, "dropped": len(train) - kept, "dropped_check": longer, "truncated": 0,
            "steps": out.global_step}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=400, help="training pairs (half hh-rlhf, half UltraFeedback)")
    p.add_argument("--heldout", type=int, default=200, help="held-out pairs for accuracy")
    p.add_argument("--quick", action="store_true", help="32 training + 32 held-out pairs, fp32 lines only")
    p.add_argument("--pairs-per-step", type=int, default=32)
    p.add_argument("--trl-batch", type=int, default=8, help="TRL per-device batch (x gradient accumulation = pairs per step)")
    p.add_argument("--max-batch-tokens", type=int, default=0, help="synpref micro-batch token budget (0: the trainer default)")
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--no-bf16", action="store_true", help="skip the extra synpref bf16 line")
    p.add_argument("--packing", default="auto", help="synpref --packing for its fp32 line; several, comma-separated "
                   "(e.g. off,on), give one fp32 line each, the first one compared with TRL")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    if args.quick:
        args.pairs, args.heldout, args.no_bf16 = 32, 32, True
    missing = [str(f) for f in HH + [UF] if not f.is_file()]
    if missing:
        print(f"SKIP: shared data not found ({', '.join(missing)}); set SYNPREF_SHARED_DATA", file=sys.stderr)
        return 0
    try:
        import trl  # noqa: F401
    except ImportError:
        print("SKIP: trl is not installed (pip install synpref[bench])", file=sys.stderr)
        return 0
    import torch

    from synpref.model import bf16_supported, packaged_model_path

    model_ref = packaged_model_path("minilm")
    train, held = load_records(args.pairs, args.heldout)
    threads = args.threads or len(os.sched_getaffinity(0))
    print(f"data: {len(train)} train pairs, {len(held)} held-out pairs (prompts disjoint), from {DATA}")
    print(f"model: MiniLM ({model_ref}); max_length 512; {args.pairs_per_step} pairs/step; lr {args.lr}; "
          f"1 epoch; {threads} threads; torch {torch.__version__}")
    results = []
    with tempfile.TemporaryDirectory(prefix="synpref-bench-") as tmp:
        work = Path(tmp)
        results.append(run_trl(model_ref, train, work, args))
        gc.collect()
        for packing in args.packing.split(","):
            results.append(run_synpref(model_ref, train, work, args, "fp32", packing.strip()))
            gc.collect()
        if not args.no_bf16 and bf16_supported(torch.device("cpu")):
            results.append(run_synpref(model_ref, train, work, args, "bf16", args.packing.split(",")[0].strip()))
        for r in results:
            r["acc"], r["margin"] = heldout_accuracy(r["dir"], held)
        trl_res = results[0]
        trl_res["acc_types0"], _ = heldout_accuracy(trl_res["dir"], held, zero_types=True)
        base_acc, _ = heldout_accuracy(model_ref, held)

    print()
    print(f"{'trainer':28s} {'pairs':>6s} {'dropped':>7s} {'trunc':>6s} {'steps':>5s} {'loop s':>8s} "
          f"{'pairs/s':>8s} {'tokens/s':>8s} {'end-to-end s':>12s} {'held-out acc':>12s} {'margin':>8s}")
    for r in results:
        r["pairs_per_s"] = r["pairs"] / r["loop_s"]
        r["tokens_per_s"] = r["tokens"] / r["loop_s"]
        print(f"{r['name']:28s} {r['pairs']:6d} {r['dropped']:7d} {r['truncated']:6d} {r['steps']:5d} {r['loop_s']:8.1f} "
              f"{r['pairs_per_s']:8.2f} {r['tokens_per_s']:8.0f} {r['total_s']:12.1f} {r['acc']:12.3f} {r['margin']:8.3f}")
    sp = results[1]
    print()
    print(f"TRL dropped {trl_res['dropped']} of {len(train)} pairs longer than 512 tokens "
          f"(its own filter; {trl_res['dropped_check']} by our count) and trained on {trl_res['pairs']}.")
    print(f"synpref dropped {sp['dropped']} pairs and truncated the context of {sp['truncated']} (truncate-left).")
    print(f"speed ratio synpref(fp32)/TRL(fp32), pairs/s in the training loop: {sp['pairs_per_s'] / trl_res['pairs_per_s']:.2f}x")
    print(f"  (real tokens/s, fairer since TRL drops the longest pairs: {sp['tokens_per_s'] / trl_res['tokens_per_s']:.2f}x)")
    for other in results[2:]:
        if "fp32" in other["name"]:
            print(f"speed ratio {other['name']}/TRL(fp32): {other['pairs_per_s'] / trl_res['pairs_per_s']:.2f}x pairs/s, "
                  f"{other['tokens_per_s'] / trl_res['tokens_per_s']:.2f}x tokens/s")
    bf16_lines = [r for r in results[2:] if "bf16" in r["name"]]
    if bf16_lines:
        bf = bf16_lines[0]
        print(f"speed ratio synpref(bf16)/TRL(fp32): {bf['pairs_per_s'] / trl_res['pairs_per_s']:.2f}x pairs/s, "
              f"{bf['tokens_per_s'] / trl_res['tokens_per_s']:.2f}x tokens/s")
    print(f"held-out accuracy: TRL {trl_res['acc']:.3f} (scored with token_type_ids=0 as it trained: "
          f"{trl_res['acc_types0']:.3f}), synpref fp32 {sp['acc']:.3f}; untrained MiniLM head {base_acc:.3f} "
          f"({len(held)} pairs, on the shared sample)")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "baseline_acc": base_acc}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
