"""The end of a run: final held-out evaluation, reward statistics, the summary, and the saved model.

RUN_DIR/model is a plain Hugging Face checkpoint (LoRA merged, an FSDP model gathered
into one copy) carrying the reward mean/std of the training pairs; it is written to
``.model.tmp`` and renamed into place, so it is either complete or absent.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from .config import TrainConfig
from .data import PairData
from .metrics_log import MetricsLog
from .model_setup import TrainModel
from .run_dir import write_json
from .steps import LoopTimes, Progress, StepPlan


def finalize(cfg: TrainConfig, launch, tm: TrainModel, data: PairData, plan: StepPlan, progress: Progress,
             loop: LoopTimes, log: MetricsLog, *, evaluate: Callable[[], dict], reward_stats: Callable[[], dict],
             started: float) -> dict:
    """Evaluate and save the final model; return the summary (also RUN_DIR/summary.json)."""
    from ..model import uses_bf16

    final_eval = evaluate() if data.eval else {}
    if final_eval:
        log({"step": progress.step, **final_eval})
    tm.finish()
    stats = reward_stats(trained=min(progress.pairs_seen, len(data.train)) or None)
    run_dir = Path(cfg.run_dir)
    summary = {
        "run_dir": str(run_dir),
        "model_dir": str(run_dir / "model"),
        "base_model": cfg.model,
        "model_class": tm.base_class,
        "steps": progress.step,
        "steps_per_epoch": plan.steps_per_epoch,
        "pairs_seen": progress.pairs_seen,
        "train_seconds": loop.seconds,
        "pairs_per_s": loop.pairs / max(1e-9, loop.seconds),
        "tokens_per_s": loop.tokens / max(1e-9, loop.seconds),
        "resumed_from": str(progress.resumed_from) if progress.resumed_from else None,
        "device": str(launch.device),
        "num_processes": launch.world,
        "fsdp": launch.sharded,
        "threads_per_process": torch.get_num_threads(),
        "layout": tm.layout.name,
        "precision": cfg.precision,
        "bf16": uses_bf16(launch.device, cfg.precision),
        "data": data.counts,
        **tm.parameter_info,
        **final_eval,
        **stats,
        "total_seconds": time.time() - started,
    }
    saving = time.time()
    if launch.main and cfg.progress:
        print(f"synpref train: saving the model to {run_dir / 'model'} ...", file=sys.stderr, flush=True)
    save_model(cfg, launch, tm, reward_stats=stats, training={
        **{k: summary[k] for k in ("base_model", "steps", "pairs_seen") if k in summary}, **final_eval,
        "data_counts": data.counts})
    if launch.main and cfg.progress:
        print(f"synpref train: saved in {time.time() - saving:.1f} s", file=sys.stderr, flush=True)
    if launch.main:
        write_json(run_dir / "summary.json", summary)
        log.close()
    launch.wait()
    return summary


def save_model(cfg: TrainConfig, launch, tm: TrainModel, *, reward_stats: dict, training: dict) -> None:
    """Collective: write RUN_DIR/model atomically from the main process (a sharded model is gathered first)."""
    from ..model import RewardModel

    full_weights = None
    if launch.sharded:  # collective: gathered on the main process
        from .sharding import full_state

        full_weights = full_state(tm.root)[0]
    if not launch.main:
        return
    run_dir = Path(cfg.run_dir)
    out, tmp = run_dir / "model", run_dir / ".model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    rm = tm.rm
    if launch.sharded:  # an unsharded copy of the model to save
        rm = RewardModel.from_pretrained(cfg.model, policy=tm.rm.policy, device="cpu")
        rm.model.load_state_dict(full_weights)
    rm.save_pretrained(tmp, reward_mean=reward_stats["reward_mean"], reward_std=reward_stats["reward_std"], training=training)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)


def summary_table(summary: dict) -> str:
    """The few numbers a finished run prints (the full summary is RUN_DIR/summary.json)."""
    counts = summary.get("data") or {}

    def num(key, fmt="{:.4f}"):
        value = summary.get(key)
        return "—" if value is None else fmt.format(value)

    rows = [
        ("model", summary.get("model_dir")),
        ("base model", summary.get("base_model")),
        ("steps", f"{summary.get('steps')} ({summary.get('pairs_seen')} pairs, {num('train_seconds', '{:.0f}')} s, "
                  f"{num('pairs_per_s', '{:.1f}')} pairs/s on {summary.get('device')})"),
        ("pairs", f"{counts.get('pairs_train')} train, {counts.get('pairs_eval')} held out, "
                  f"{counts.get('pairs_dropped_length', 0)} dropped by the length policy"),
        ("held-out accuracy", f"{num('eval_accuracy')} (loss {num('eval_loss')}, {summary.get('eval_pairs', 0)} pairs)"
         if summary.get("eval_pairs") else "— (no held-out pairs)"),
        ("reward mean / std", f"{num('reward_mean')} / {num('reward_std')} (on {summary.get('reward_stats_pairs')} training pairs)"),
        ("total time", f"{num('total_seconds', '{:.0f}')} s"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name.ljust(width)}  {value}" for name, value in rows]
    lines.append(f"full summary: {Path(summary['run_dir']) / 'summary.json'}")
    return "\n".join(lines)
