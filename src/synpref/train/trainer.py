"""The training run, step by step: ``train(config) -> summary``.

Call it in one process, or in every process of ``accelerate launch``; only the main
process writes files and logs. Each stage lives in its own module:

* ``launch``      the processes: accelerate, the device, FSDP, DeepSpeed ZeRO (``zero``) or data parallelism
* ``run_dir``     RUN_DIR's settings check for resuming, config.json, versions.json, data.json
* ``model_setup`` the model: load, what to train, dropout, checkpointing, sharding
* ``data``        pools -> encoded train/held-out pairs
* ``layout``      padded, packed or shared-prefix micro-batches (``--packing``, ``--shared-prefix``)
* ``steps``       the step plan, optimizer, resuming, and the optimizer steps
* ``evaluation``  the no-grad lock-step forward of the held-out evaluation and reward statistics
* ``finalize``    final evaluation, summary.json and RUN_DIR/model
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Iterable

from ..schema import Record
from . import checkpoint as ckpt  # noqa: F401  (tests reach the checkpoint writer through trainer.ckpt)
from .config import TrainConfig
from .data import load_training_pairs
from .evaluation import evaluate, reward_stats
from .finalize import finalize
from .layout import choose_layout
from .launch import start
from .metrics_log import MetricsLog
from .model_setup import prepare_model
from .preflight import check_inputs
from .run_dir import finished_summary, prepare_run_dir, write_data_report
from .steps import StepPlan, make_optimizer, resume, run_steps


def train(config: TrainConfig | dict, *, records: Iterable[Record] | None = None) -> dict:
    """Train a Bradley-Terry reward model; return a summary dict (also in RUN_DIR/summary.json).

    ``records`` (optional) trains on in-memory records instead of ``config.data``.
    A finished run of the same settings and data in RUN_DIR is not trained again: its summary is returned.
    Call it in every process when launched with ``accelerate launch``.
    """
    from accelerate.utils import set_seed

    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    check_inputs(cfg, in_memory=records is not None)  # a bad model or an empty pool: nothing written to RUN_DIR
    launch = start(cfg)
    started = time.time()
    records = list(records) if records is not None else None
    done = finished_summary(cfg, launch, records)
    if done is not None:
        return done
    checkpoint = prepare_run_dir(cfg, launch)

    set_seed(cfg.seed)
    tm = prepare_model(cfg, launch)
    data = load_training_pairs(cfg, tm.rm, records)
    if launch.main:
        write_data_report(cfg, data, tm.rm.policy)
    tm.layout = choose_layout(cfg, tm.rm, data.train, main=launch.main)

    plan = StepPlan.for_pairs(data.train, cfg)
    optimizer, scheduler = make_optimizer(tm, cfg, plan)
    if launch.zero is not None:
        from .zero import prepare_engine

        tm.engine = prepare_engine(launch.accelerator, tm.model, optimizer, cfg.max_grad_norm)
    progress = resume(launch, checkpoint, tm, optimizer, scheduler, plan)
    log = MetricsLog(Path(cfg.run_dir), main=launch.main, resumed_at=progress.step if checkpoint else None,
                     tensorboard=cfg.tensorboard)
    # Forward only, so the scoring default budget rather than the training one.
    forward = dict(autocast=launch.autocast(cfg.precision), max_batch_tokens=launch.default_batch_tokens(), root=tm.root,
                   progress=cfg.progress and launch.main, layout=tm.layout)
    held_out = partial(evaluate, tm.rm, data.eval, launch.accelerator, **forward)
    loop = run_steps(cfg, launch, tm, data, plan, optimizer, scheduler, progress, log, held_out)

    stats = partial(reward_stats, tm.rm, data.train, launch.accelerator, limit=cfg.reward_stats_pairs, seed=cfg.seed,
                    **forward)
    return finalize(cfg, launch, tm, data, plan, progress, loop, log, evaluate=held_out, reward_stats=stats,
                    started=started)
