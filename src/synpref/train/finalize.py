"""The end of a run: final held-out evaluation, reward statistics, the summary, and the saved model.

RUN_DIR/model is a plain Hugging Face checkpoint (LoRA merged, an FSDP model gathered
into one copy) carrying the reward mean/std of the training pairs; it is written to
``.model.tmp`` and renamed into place, so it is either complete or absent.
"""

from __future__ import annotations

import os
import shutil
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
    stats = reward_stats()
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
    save_model(cfg, launch, tm, reward_stats=stats, training={
        **{k: summary[k] for k in ("base_model", "steps", "pairs_seen") if k in summary}, **final_eval,
        "data_counts": data.counts})
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
