"""The optimizer steps: the plan of each epoch, the optimizer and schedule, resuming, and the loop.

An optimizer step runs this process's share of the step's pairs in token-budget
micro-batches (forward, loss, backward), sums the gradients over the processes,
clips and steps; every ``log_every`` steps a metrics line, every ``eval_every`` a
held-out evaluation, every ``save_every`` a resumable checkpoint.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from . import checkpoint as ckpt
from .config import TrainConfig
from .data import EncodedPair, PairData, epoch_steps, shard
from .evaluation import Forwarded, batch_rewards
from .losses import pair_loss
from .metrics_log import MetricsLog
from .model_setup import TrainModel, trainable_parameters


@dataclass
class StepPlan:
    """Which pairs each optimizer step takes (see TrainConfig's docstring) and how many steps there are."""

    lengths: list[int]
    pairs_per_step: int
    window: int
    seed: int
    steps_per_epoch: int
    total_steps: int
    warmup: int
    _epoch: int = -1
    _steps: list[list[int]] = field(default_factory=list)

    @classmethod
    def for_pairs(cls, pairs: list[EncodedPair], cfg: TrainConfig) -> "StepPlan":
        lengths = [p.length for p in pairs]
        per_epoch = len(epoch_steps(lengths, cfg.pairs_per_step, cfg.group_by_length_window, cfg.seed, 0))
        total = cfg.max_steps or max(1, math.ceil(cfg.epochs * per_epoch))
        warmup = cfg.warmup_steps or int(cfg.warmup_ratio * total)
        return cls(lengths, cfg.pairs_per_step, cfg.group_by_length_window, cfg.seed, per_epoch, total, warmup)

    def step(self, global_step: int) -> tuple[int, int, list[int]]:
        """(epoch, position in the epoch, pair indices) of optimizer step ``global_step`` (0-based)."""
        epoch, pos = divmod(global_step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._steps, self._epoch = epoch_steps(self.lengths, self.pairs_per_step, self.window, self.seed, epoch), epoch
        return epoch, pos, self._steps[pos]


@dataclass
class Progress:
    """How far the run is: steps done and pairs trained on, over all invocations."""

    step: int = 0
    pairs_seen: int = 0
    resumed_from: Path | None = None
    window: dict | None = None  # the metrics sums of the checkpoint's unfinished log window (summed over processes)


@dataclass
class LoopTimes:
    """What this invocation's loop did, for the throughput figures of the summary."""

    seconds: float
    pairs: int
    tokens: int  # real (unpadded) tokens trained on


def lr_lambda(kind: str, warmup: int, total: int):
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / (warmup + 1)
        if kind == "constant":
            return 1.0
        return max(0.0, (total - step) / max(1, total - warmup))

    return f


def make_optimizer(tm: TrainModel, cfg: TrainConfig, plan: StepPlan):
    """AdamW (no weight decay on biases and norms; the head's own learning rate) and its schedule."""
    groups: dict[tuple, list] = {}
    for n, p in trainable_parameters(tm.model):
        is_head = any(n == h or n.endswith("." + h) or ("." + h + ".") in n or n.startswith(h + ".") for h in tm.head_modules)
        lr = cfg.head_learning_rate if (is_head and cfg.head_learning_rate is not None) else cfg.learning_rate
        wd = 0.0 if (p.ndim < 2) else cfg.weight_decay
        groups.setdefault((lr, wd), []).append(p)
    params = [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg.scheduler, plan.warmup, plan.total_steps))
    return optimizer, scheduler


def resume(launch, checkpoint: Path | None, tm: TrainModel, optimizer, scheduler, plan: StepPlan) -> Progress:
    """Restore ``checkpoint`` (None: a fresh start at step 0)."""
    if checkpoint is None:
        return Progress()
    state = ckpt.load_checkpoint(launch.accelerator, checkpoint, model=tm.model, optimizer=optimizer, scheduler=scheduler,
                                 sharded_root=tm.root, engine=tm.engine)
    progress = Progress(state["step"], state.get("pairs_seen", 0), checkpoint, state.get("metrics_window"))
    if launch.main:
        print(f"synpref train: resuming from {checkpoint} (step {progress.step}/{plan.total_steps})", file=sys.stderr)
    return progress


@dataclass
class _Window:
    """Training metrics summed since the last metrics line (this process's share).

    A checkpoint saves the sums over all processes (``saved``) and a resumed run starts
    its window from them on the main process (``restored``), so the first metrics line
    after a resume averages the same steps as in an uninterrupted run.
    """

    loss: float = 0.0
    correct: float = 0.0
    margin: float = 0.0
    pairs: float = 0.0
    tokens: float = 0.0
    padded: float = 0.0
    started: float = field(default_factory=time.time)

    SUMS = ("loss", "correct", "margin", "pairs", "tokens", "padded")

    @classmethod
    def restored(cls, saved: dict | None, main: bool) -> "_Window":
        """The window a resumed run continues (``saved`` from the checkpoint; None: an empty one)."""
        window = cls()
        if saved and main:  # the other processes start from 0: the metrics line sums over the processes
            for k in cls.SUMS:
                setattr(window, k, float(saved[k]))
            window.started -= float(saved["seconds"])
        return window

    def saved(self, launch) -> dict:
        """The sums over all processes and the seconds the window has run (a collective)."""
        totals = launch.sum([getattr(self, k) for k in self.SUMS])
        return {**dict(zip(self.SUMS, totals)), "seconds": time.time() - self.started}

    def add(self, per_pair: torch.Tensor, done: Forwarded):
        diff = (done.chosen - done.rejected).double()
        self.loss += float(per_pair.detach().double().sum())
        self.correct += float((diff > 0).sum())
        self.margin += float(diff.sum())
        self.pairs += len(per_pair)
        self.tokens += done.tokens
        self.padded += done.positions

    def line(self, launch, step: int, plan: StepPlan, lr: float, pairs_seen: int, grad_norm: float | None) -> dict:
        """The metrics line over all processes (a collective)."""
        loss_s, correct, margin_s, n, tok, padded = launch.sum(
            [self.loss, self.correct, self.margin, self.pairs, self.tokens, self.padded])
        dt = time.time() - self.started
        rec = {"step": step, "epoch": round(step / plan.steps_per_epoch, 4), "loss": loss_s / max(1, n),
               "accuracy": correct / max(1, n), "mean_margin": margin_s / max(1, n), "lr": lr,
               "pairs_per_s": n / max(1e-9, dt), "padding_fraction": 1 - tok / max(1, padded), "pairs_seen": pairs_seen}
        if grad_norm is not None:
            rec["grad_norm"] = grad_norm
        return rec


def run_steps(cfg: TrainConfig, launch, tm: TrainModel, data: PairData, plan: StepPlan, optimizer, scheduler,
              progress: Progress, log: MetricsLog, evaluate: Callable[[], dict]) -> LoopTimes:
    """Train from ``progress.step`` to ``plan.total_steps``; ``evaluate()`` scores the held-out pairs."""
    return _Loop(cfg, launch, tm, data, plan, optimizer, scheduler).run(progress, log, evaluate)


class _Loop:
    """The optimizer steps of one invocation, with what every step reuses."""

    def __init__(self, cfg: TrainConfig, launch, tm: TrainModel, data: PairData, plan: StepPlan, optimizer, scheduler):
        self.cfg, self.launch, self.tm, self.plan = cfg, launch, tm, plan
        self.optimizer, self.scheduler = optimizer, scheduler
        self.pairs, self.held_out = data.train, data.eval
        self.margins = torch.tensor([p.margin for p in self.pairs], dtype=torch.float32)
        self.weights = torch.tensor([p.weight for p in self.pairs], dtype=torch.float32)
        self.autocast = launch.autocast(cfg.precision)
        self.budget = cfg.max_batch_tokens or launch.default_batch_tokens()
        self.layout = tm.layout
        # FSDP and DeepSpeed average gradients over the processes; the step's loss is a sum over its pairs.
        self.grad_scale = launch.world if launch.collective_backward else 1
        self.engine = tm.engine

    def run(self, progress: Progress, log: MetricsLog, evaluate: Callable[[], dict]) -> LoopTimes:
        cfg, plan = self.cfg, self.plan
        bar = None
        if self.launch.main and cfg.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=plan.total_steps, initial=progress.step, desc="train", unit="step", dynamic_ncols=True)
        window = _Window.restored(progress.window, self.launch.main)
        t_loop = time.time()
        pairs_at_start = progress.pairs_seen
        tokens = 0
        if cfg.eval_every and self.held_out and progress.step == 0:  # the baseline before any update
            log({"step": 0, **evaluate()})
        while progress.step < plan.total_steps:
            epoch, pos, step = plan.step(progress.step)
            self._accumulate_gradients(step, window)
            grad_norm = self._optimizer_step()
            progress.step += 1
            progress.pairs_seen += len(step)
            tokens += sum(len(self.pairs[i].chosen) + len(self.pairs[i].rejected) for i in step)
            if bar is not None:
                rate = (progress.pairs_seen - pairs_at_start) / max(1e-9, time.time() - t_loop)
                bar.set_postfix({"pairs/s": f"{rate:.2f}", "loss": f"{window.loss / max(1, window.pairs):.4f}"}, refresh=False)
                bar.update(1)
            done = progress.step == plan.total_steps
            if progress.step % cfg.log_every == 0 or done:
                log(window.line(self.launch, progress.step, plan, self.scheduler.get_last_lr()[0], progress.pairs_seen,
                                grad_norm))
                window = _Window()
            if cfg.eval_every and self.held_out and progress.step % cfg.eval_every == 0 and not done:
                log({"step": progress.step, **evaluate()})
            if cfg.save_every and progress.step % cfg.save_every == 0 and not done:
                self._save(progress, epoch, pos, window)
        if bar is not None:
            bar.close()
        return LoopTimes(time.time() - t_loop, progress.pairs_seen - pairs_at_start, tokens)

    def _accumulate_gradients(self, step: list[int], window: _Window) -> None:
        """Forward and backward of this process's share of one optimizer step, micro-batch by micro-batch."""
        cfg, launch = self.cfg, self.launch
        mine = self.layout.micro_batches(shard(step, launch.rank, launch.world), self.pairs, self.budget)
        runs = launch.lockstep(mine, step[:1])
        for k, (mb, real) in enumerate(runs):
            if self.engine is not None:  # DeepSpeed: the step's last micro-batch is the accumulation boundary
                self.engine.set_gradient_accumulation_boundary(k == len(runs) - 1)
            done = batch_rewards(self.tm.rm, [self.pairs[i] for i in mb], self.autocast, self.tm.root, self.layout)
            r_c, r_r = done.chosen, done.rejected
            margin = self.margins[mb].to(r_c.device) * cfg.margin_scale if cfg.use_margin else None
            per_pair = pair_loss(r_c, r_r, margin=margin, center_coef=cfg.center_rewards_coef, loss=cfg.loss)
            loss = (per_pair * self.weights[mb].to(r_c.device)).sum() / len(step) * self.grad_scale
            loss = loss if real else loss * 0.0
            if self.engine is not None:
                self.engine.backward(loss)
            else:
                loss.backward()
            if real:
                with torch.no_grad():
                    window.add(per_pair, done)

    def _optimizer_step(self) -> float | None:
        """Sum the gradients over the processes, clip, step; return the gradient norm before clipping."""
        if self.engine is not None:  # DeepSpeed reduces, clips (gradient_clipping) and steps
            self.engine.step()
            self.scheduler.step()
            norm = self.engine.get_global_grad_norm() if self.cfg.max_grad_norm else None
            return None if norm is None else float(norm)
        params = self.tm.params
        if not self.launch.sharded:
            self.launch.allreduce_grads(params)
        grad_norm = None
        if self.cfg.max_grad_norm:
            norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.max_grad_norm)
            grad_norm = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)  # sharded: a DTensor
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    def _save(self, progress: Progress, epoch: int, pos: int, window: _Window) -> None:
        plan = self.plan
        metrics_window = window.saved(self.launch)  # collective, like the checkpoint itself
        ckpt.save_checkpoint(self.launch.accelerator, self.cfg.run_dir, step=progress.step, model=self.tm.model,
                             optimizer=self.optimizer, scheduler=self.scheduler, sharded_root=self.tm.root,
                             engine=self.engine,
                             trainer_state={"epoch": epoch, "position": pos + 1, "pairs_seen": progress.pairs_seen,
                                            "steps_per_epoch": plan.steps_per_epoch, "total_steps": plan.total_steps,
                                            "metrics_window": metrics_window})
