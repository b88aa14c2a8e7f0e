"""The training loop: ``train(config) -> summary``.

Works in one process or in each process of ``accelerate launch``. Data-parallel
(DDP-style): every process holds the whole model, takes its share of each optimizer
step's pairs, and the gradients are summed across processes before the step.
Sharded (an accelerate config with ``distributed_type: FSDP``): the same split of
the pairs, but the model is sharded with FSDP2 (see ``sharding.py``). Only the main
process writes files and logs.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from ..batching import default_batch_tokens, length_groups
from ..schema import Record
from ..text import TextPolicy
from . import checkpoint as ckpt
from .config import TrainConfig
from .data import EncodedPair, epoch_steps, micro_batches, prepare_pairs, read_pools_with_checksums, records_checksum, shard
from .losses import pair_loss
from .model_setup import add_lora, count_parameters, disable_dropout, merge_lora, set_trainable, trainable_parameters
from .sharding import check_compatible, fsdp_launch_options, full_state, max_across, shard_model

# Fields that may change between a run and its resumption.
_RESUMABLE_CHANGES = {"progress", "tensorboard", "log_every", "eval_every", "save_every", "num_threads", "run_dir"}


def versions() -> dict:
    import transformers

    from .. import __version__

    out = {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
           "transformers": transformers.__version__, "synpref": __version__}
    for name in ("accelerate", "peft"):
        try:
            out[name] = __import__(name).__version__
        except Exception:  # pragma: no cover - optional
            pass
    return out


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


def _cpu_data_parallel() -> bool:
    """Launched as several processes (torchrun / ``accelerate launch --multi_gpu``) on a machine without a GPU.

    accelerate only picks its multi-CPU (gloo) mode when told to use the CPU, and its
    ``--cpu`` flag alone starts ONE process on a single machine; so the multi-process
    CPU launch is ``accelerate launch --multi_gpu --num_processes N`` (or
    configs/accelerate/cpu_2proc_gloo.yaml), and here we switch to the CPU for it.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    xpu = getattr(torch, "xpu", None)
    return not torch.cuda.is_available() and not (xpu is not None and xpu.is_available())


def _warn_single_process_launch(accelerator) -> None:
    """``accelerate launch --num_processes N`` (or ``--cpu``) on a machine without GPUs starts ONE process.

    accelerate's simple launcher sets MASTER_ADDR when asked for several processes
    but starts only one; say so instead of silently training alone.
    """
    if accelerator.num_processes == 1 and "MASTER_ADDR" in os.environ and "WORLD_SIZE" not in os.environ \
            and "ACCELERATE_MIXED_PRECISION" in os.environ:
        print("synpref train: WARNING: accelerate was asked for several processes but started one (on a machine "
              "without GPUs, `accelerate launch --cpu/--num_processes N` runs a single process). Use "
              "`accelerate launch --multi_gpu --num_processes N ...` or "
              "--config_file configs/accelerate/cpu_2proc_gloo.yaml for data-parallel CPU training.", file=sys.stderr)


def _threads(cfg: TrainConfig, accelerator) -> int:
    if cfg.num_threads:
        return cfg.num_threads
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cores = os.cpu_count() or 1
    local = int(os.environ.get("LOCAL_WORLD_SIZE", accelerator.num_processes))
    return max(1, cores // max(1, local))


def _lr_lambda(kind: str, warmup: int, total: int):
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / (warmup + 1)
        if kind == "constant":
            return 1.0
        return max(0.0, (total - step) / max(1, total - warmup))

    return f


def _optimizer(model, cfg: TrainConfig, head_names: set[str]):
    groups: dict[tuple, list] = {}
    for n, p in trainable_parameters(model):
        is_head = any(n == h or n.endswith("." + h) or ("." + h + ".") in n or n.startswith(h + ".") for h in head_names)
        lr = cfg.head_learning_rate if (is_head and cfg.head_learning_rate is not None) else cfg.learning_rate
        wd = 0.0 if (p.ndim < 2) else cfg.weight_decay
        groups.setdefault((lr, wd), []).append(p)
    params = [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]
    return torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)


def _batch_rewards(rm, pairs: Sequence[EncodedPair], autocast, root=None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Rewards of the chosen and rejected sequences of a micro-batch (for one backward
    pass), and the padded tokens that took.

    The 2n sequences are forwarded in a few groups of similar length rather than padded to
    one common length (rewards do not depend on the batch, so only the padding changes).
    ``root``: the FSDP root of a sharded model; every forward is then a collective, so a
    micro-batch is one forward on every process.
    """
    seqs = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    if root is None:
        groups, forward = length_groups([len(s) for s in seqs]), rm.forward
    else:
        groups = [list(range(len(seqs)))]
        forward = lambda batch: root({k: v.to(rm.device) for k, v in batch.items()})  # noqa: E731
    parts = []
    with autocast():
        for group in groups:
            parts.append(forward(rm.collate([seqs[i] for i in group])))
    order = torch.tensor([i for group in groups for i in group])
    rewards = torch.cat(parts)[torch.argsort(order).to(parts[0].device)]  # back to input order
    n = len(pairs)
    padded = sum(len(group) * max(len(seqs[i]) for i in group) for group in groups)
    return rewards[:n], rewards[n:], padded


def _lockstep(batches: Iterable[list[int]], filler: list[int], accelerator, sharded: bool) -> list[tuple[list[int], bool]]:
    """The micro-batches to run, each with whether it is real.

    Sharded, every forward and backward is a collective, so each process runs as many
    micro-batches as the busiest one: the extra ones repeat ``filler`` and are discarded.
    """
    runs = [(mb, True) for mb in batches]
    if sharded:
        runs += [(filler, False)] * (max_across(len(runs), accelerator.device) - len(runs))
    return runs


def _sum_across(accelerator, values: Sequence[float]) -> list[float]:
    t = torch.tensor(list(values), dtype=torch.float64, device=accelerator.device)
    if accelerator.num_processes > 1:
        t = accelerator.reduce(t, reduction="sum")
    return t.tolist()


@torch.no_grad()
def evaluate(rm, pairs: Sequence[EncodedPair], accelerator, *, autocast, max_batch_tokens: int, root=None) -> dict:
    """Held-out accuracy (ties count as wrong) and mean margin, over all processes.

    ``root``: the FSDP root module when the model is sharded."""
    was_training = rm.model.training
    rm.model.eval()
    lengths = [p.length for p in pairs]
    mine = list(range(accelerator.process_index, len(pairs), accelerator.num_processes))
    correct = margin = loss = 0.0
    for mb, real in _lockstep(micro_batches(mine, lengths, max_batch_tokens), [0], accelerator, root is not None):
        r_c, r_r, _ = _batch_rewards(rm, [pairs[i] for i in mb], autocast, root)
        if not real:
            continue
        diff = (r_c - r_r).double()
        correct += float((diff > 0).sum())
        margin += float(diff.sum())
        loss += float(pair_loss(r_c.double(), r_r.double()).sum())
    correct, margin, loss, n = _sum_across(accelerator, [correct, margin, loss, len(mine)])
    if was_training:
        rm.model.train()
    if n == 0:
        return {"eval_pairs": 0}
    return {"eval_accuracy": correct / n, "eval_mean_margin": margin / n, "eval_loss": loss / n, "eval_pairs": int(n)}


@torch.no_grad()
def reward_stats(rm, pairs: Sequence[EncodedPair], accelerator, *, autocast, max_batch_tokens: int, limit: int, seed: int,
                 root=None) -> dict:
    """Mean and std of the final model's rewards on (a seeded sample of) the training pairs."""
    rm.model.eval()
    idx = list(range(len(pairs)))
    if limit and len(idx) > limit:
        idx = sorted(np.random.RandomState(seed).choice(len(idx), limit, replace=False).tolist())
    lengths = [p.length for p in pairs]
    mine = idx[accelerator.process_index :: accelerator.num_processes]
    s = ss = 0.0
    for mb, real in _lockstep(micro_batches(mine, lengths, max_batch_tokens), [0], accelerator, root is not None):
        r_c, r_r, _ = _batch_rewards(rm, [pairs[i] for i in mb], autocast, root)
        if not real:
            continue
        r = torch.cat([r_c, r_r]).double()
        s += float(r.sum())
        ss += float((r * r).sum())
    s, ss, n = _sum_across(accelerator, [s, ss, 2 * len(mine)])
    if n == 0:
        return {"reward_mean": 0.0, "reward_std": 1.0, "reward_stats_pairs": 0}
    mean = s / n
    var = max(0.0, ss / n - mean * mean) * n / max(1, n - 1)
    return {"reward_mean": mean, "reward_std": math.sqrt(var), "reward_stats_pairs": int(n // 2)}


def _allreduce_grads(params: list[torch.nn.Parameter], accelerator) -> None:
    if accelerator.num_processes <= 1 or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    torch.distributed.all_reduce(flat, op=torch.distributed.ReduceOp.SUM)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).to(p.dtype)
        offset += n


def train(config: TrainConfig | dict, *, records: Iterable[Record] | None = None) -> dict:
    """Train a Bradley-Terry reward model; return a summary dict (also in RUN_DIR/summary.json).

    ``records`` (optional) trains on in-memory records instead of ``config.data``.
    Call it in every process when launched with ``accelerate launch``.
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedType, set_seed

    from ..model import RewardModel, autocast_context, uses_bf16

    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    supported = ("synpref's trainer supports data parallelism (configs/accelerate/multi_gpu_ddp.yaml, cpu_2proc_gloo.yaml) "
                 "and FSDP (configs/accelerate/fsdp.yaml, cpu_2proc_fsdp.yaml)")
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":  # before accelerate imports deepspeed
        raise NotImplementedError(f"DeepSpeed is not supported: {supported}.")
    fsdp = fsdp_launch_options()
    accelerator = Accelerator(cpu=_cpu_data_parallel())
    if accelerator.distributed_type not in (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU,
                                            DistributedType.MULTI_XPU, DistributedType.MULTI_NPU, DistributedType.MULTI_MLU,
                                            DistributedType.FSDP):
        raise NotImplementedError(f"{accelerator.distributed_type} is not supported: {supported}.")
    sharded = fsdp is not None and accelerator.num_processes > 1  # one process: nothing to shard
    if sharded:
        check_compatible(cfg)
    main = accelerator.is_main_process
    torch.set_num_threads(_threads(cfg, accelerator))
    run_dir = Path(cfg.run_dir)
    t_start = time.time()

    # -- run directory and resume detection --------------------------------------
    _warn_single_process_launch(accelerator)
    old = run_dir / "config.json"
    if old.is_file() and ckpt.latest_checkpoint(run_dir) is not None:  # every process checks: no hang on error
        prev = json.loads(old.read_text())
        diff = {k for k in set(prev) | set(cfg.to_dict()) if prev.get(k) != cfg.to_dict().get(k)} - _RESUMABLE_CHANGES
        if diff:
            raise ValueError(f"{run_dir} holds a checkpoint of a run with different settings ({', '.join(sorted(diff))}); "
                             "use another run_dir or delete it")
    accelerator.wait_for_everyone()
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        ckpt.clean_partial(run_dir)
        _write_json(old, cfg.to_dict())
        _write_json(run_dir / "versions.json", versions())
    accelerator.wait_for_everyone()
    resume_from = ckpt.latest_checkpoint(run_dir)

    # -- model ---------------------------------------------------------------------
    set_seed(cfg.seed)
    policy = TextPolicy(cfg.max_length, cfg.length_policy, cfg.system_prompt)
    # Sharded: load on the CPU; fully_shard moves each process's shard to its device.
    rm = RewardModel.from_pretrained(cfg.model, policy=policy, device="cpu" if sharded else accelerator.device)
    model = rm.model
    base_cls = type(model).__name__
    from .model_setup import head_parameter_names

    head_modules = {n.split(".")[0] for n in head_parameter_names(model)}
    param_info = set_trainable(model, freeze_backbone=cfg.freeze_backbone, top_layers=cfg.train_top_layers)
    if cfg.disable_dropout:
        disable_dropout(model)
    if cfg.lora:
        model = add_lora(model, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout, target_modules=cfg.lora_target_modules)
        rm.model = model
        param_info.update(count_parameters(model))
    checkpointing = cfg.gradient_checkpointing or (sharded and fsdp.activation_checkpointing)
    if checkpointing:
        target = model.get_base_model() if hasattr(model, "get_base_model") else model
        if hasattr(target, "activation_checkpointing_enable"):  # transformers >= 5.x name
            target.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            target.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(target.config, "use_cache"):
            target.config.use_cache = False
    model.train()
    root = None
    if sharded:  # every process loaded the same weights (a missing head is seeded): no broadcast needed
        root = shard_model(model, accelerator.device, fsdp)
    elif accelerator.num_processes > 1:  # identical start on every process
        with torch.no_grad():
            for p in model.parameters():
                torch.distributed.broadcast(p.data, src=0)
    params = [p for _, p in trainable_parameters(model)]

    # -- data ------------------------------------------------------------------------
    if records is None:
        if not cfg.data:
            raise ValueError("TrainConfig.data is empty: give pool directories to train on")
        recs, sources = read_pools_with_checksums(cfg.data)
    else:
        recs = list(records)
        sources = [{"path": "<in-memory records>", "sha256": records_checksum(recs), "records": len(recs)}]
    data = prepare_pairs(rm, recs, eval_fraction=cfg.eval_fraction, rating_gap=cfg.rating_gap, expand_mode=cfg.expand_mode)
    del recs
    train_pairs, eval_pairs = data.train, data.eval
    if not train_pairs:
        raise ValueError(f"no training pairs left ({data.counts})")
    if main:
        _write_json(run_dir / "data.json", {"sources": sources, "counts": data.counts,
                                            "text_policy": policy.to_dict(), "eval_fraction": cfg.eval_fraction})
        if data.counts["pairs_dropped_length"]:
            print(f"synpref train: {data.counts['pairs_dropped_length']} of {data.counts['pairs']} pairs dropped by the "
                  f"length policy {cfg.length_policy!r} (max_length={cfg.max_length}); see {run_dir / 'data.json'}",
                  file=sys.stderr)
    lengths = [p.length for p in train_pairs]
    margins = torch.tensor([p.margin for p in train_pairs], dtype=torch.float32)
    weights = torch.tensor([p.weight for p in train_pairs], dtype=torch.float32)
    steps_per_epoch = len(epoch_steps(lengths, cfg.pairs_per_step, cfg.group_by_length_window, cfg.seed, 0))
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    warmup = cfg.warmup_steps or int(cfg.warmup_ratio * total_steps)

    optimizer = _optimizer(model, cfg, head_modules)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg.scheduler, warmup, total_steps))

    global_step = 0
    pairs_seen = 0
    if resume_from is not None:
        state = ckpt.load_checkpoint(accelerator, resume_from, model=model, optimizer=optimizer, scheduler=scheduler,
                                     sharded_root=root)
        global_step, pairs_seen = state["step"], state.get("pairs_seen", 0)
        if main:
            print(f"synpref train: resuming from {resume_from} (step {global_step}/{total_steps})", file=sys.stderr)

    # -- logging -----------------------------------------------------------------------
    metrics_path = run_dir / "metrics.jsonl"
    writer = None
    if main:
        if resume_from is not None and metrics_path.exists():  # forget lines past the checkpoint
            kept = [l for l in metrics_path.read_text().splitlines() if l.strip() and json.loads(l).get("step", 0) <= global_step]
            metrics_path.write_text("".join(l + "\n" for l in kept))
        elif resume_from is None and metrics_path.exists():
            metrics_path.unlink()
        if cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=global_step if resume_from else None)
            except Exception:  # tensorboard not installed
                writer = None

    def log(record: dict) -> None:
        if not main:
            return
        with open(metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if writer is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    writer.add_scalar(k.replace("eval_", "eval/") if k.startswith("eval_") else f"train/{k}", v, record["step"])

    autocast = lambda: autocast_context(accelerator.device, cfg.precision)  # noqa: E731
    budget = cfg.max_batch_tokens or default_batch_tokens(accelerator.device.type)
    eval_budget = default_batch_tokens(accelerator.device.type)  # forward only: the scoring default
    bar = None
    if main and cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, initial=global_step, desc="train", unit="step", dynamic_ncols=True)

    # -- the loop ----------------------------------------------------------------------
    rank, world = accelerator.process_index, accelerator.num_processes
    window = {"loss": 0.0, "correct": 0.0, "margin": 0.0, "pairs": 0.0, "tokens": 0.0, "padded": 0.0}
    t_window = time.time()
    t_loop = time.time()
    pairs_at_loop_start = pairs_seen
    tokens_seen = 0  # real (unpadded) tokens trained on in this invocation
    cached_epoch, steps = -1, []
    last_eval: dict = {}
    if cfg.eval_every and eval_pairs and global_step == 0:  # the baseline before any update
        log({"step": 0, **evaluate(rm, eval_pairs, accelerator, autocast=autocast, max_batch_tokens=eval_budget, root=root)})
    # FSDP averages gradients over the processes; the step's loss is a sum over its pairs.
    grad_scale = world if sharded else 1
    while global_step < total_steps:
        epoch, pos = divmod(global_step, steps_per_epoch)
        if epoch != cached_epoch:
            steps, cached_epoch = epoch_steps(lengths, cfg.pairs_per_step, cfg.group_by_length_window, cfg.seed, epoch), epoch
        step = steps[pos]
        n_step = len(step)
        for mb, real in _lockstep(micro_batches(shard(step, rank, world), lengths, budget), step[:1], accelerator, sharded):
            pairs = [train_pairs[i] for i in mb]
            r_c, r_r, padded = _batch_rewards(rm, pairs, autocast, root)
            margin = margins[mb].to(r_c.device) * cfg.margin_scale if cfg.use_margin else None
            per_pair = pair_loss(r_c, r_r, margin=margin, center_coef=cfg.center_rewards_coef, loss=cfg.loss)
            loss = (per_pair * weights[mb].to(r_c.device)).sum() / n_step * grad_scale
            (loss if real else loss * 0.0).backward()
            if not real:
                continue
            with torch.no_grad():
                diff = (r_c - r_r).double()
                window["loss"] += float(per_pair.detach().double().sum())
                window["correct"] += float((diff > 0).sum())
                window["margin"] += float(diff.sum())
                window["pairs"] += len(mb)
                window["tokens"] += sum(len(p.chosen) + len(p.rejected) for p in pairs)
                window["padded"] += padded
        if not sharded:
            _allreduce_grads(params, accelerator)
        grad_norm = None
        if cfg.max_grad_norm:
            norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            grad_norm = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)  # sharded: a DTensor
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        global_step += 1
        pairs_seen += n_step
        tokens_seen += sum(len(train_pairs[i].chosen) + len(train_pairs[i].rejected) for i in step)
        if bar is not None:
            rate = (pairs_seen - pairs_at_loop_start) / max(1e-9, time.time() - t_loop)
            bar.set_postfix({"pairs/s": f"{rate:.2f}", "loss": f"{window['loss'] / max(1, window['pairs']):.4f}"}, refresh=False)
            bar.update(1)

        if global_step % cfg.log_every == 0 or global_step == total_steps:
            loss_s, correct, margin_s, n, tok, padded = _sum_across(accelerator, [window[k] for k in ("loss", "correct", "margin", "pairs", "tokens", "padded")])
            dt = time.time() - t_window
            rec = {"step": global_step, "epoch": round(global_step / steps_per_epoch, 4), "loss": loss_s / max(1, n),
                   "accuracy": correct / max(1, n), "mean_margin": margin_s / max(1, n), "lr": scheduler.get_last_lr()[0],
                   "pairs_per_s": n / max(1e-9, dt), "padding_fraction": 1 - tok / max(1, padded), "pairs_seen": pairs_seen}
            if grad_norm is not None:
                rec["grad_norm"] = grad_norm
            log(rec)
            window = dict.fromkeys(window, 0.0)
            t_window = time.time()
        if cfg.eval_every and eval_pairs and global_step % cfg.eval_every == 0 and global_step < total_steps:
            last_eval = evaluate(rm, eval_pairs, accelerator, autocast=autocast, max_batch_tokens=eval_budget, root=root)
            log({"step": global_step, **last_eval})
        if cfg.save_every and global_step % cfg.save_every == 0 and global_step < total_steps:
            ckpt.save_checkpoint(accelerator, run_dir, step=global_step, model=model, optimizer=optimizer, scheduler=scheduler,
                                 trainer_state={"epoch": epoch, "position": pos + 1, "pairs_seen": pairs_seen,
                                                "steps_per_epoch": steps_per_epoch, "total_steps": total_steps},
                                 sharded_root=root)
    if bar is not None:
        bar.close()
    train_seconds = time.time() - t_loop
    pairs_this_run = pairs_seen - pairs_at_loop_start

    # -- final evaluation, reward statistics, model ------------------------------------
    final_eval = {}
    if eval_pairs:
        final_eval = evaluate(rm, eval_pairs, accelerator, autocast=autocast, max_batch_tokens=eval_budget, root=root)
    if final_eval:
        log({"step": global_step, **final_eval})
    model = merge_lora(model)
    rm.model = model
    if checkpointing:
        disable = getattr(model, "activation_checkpointing_disable", None) or getattr(model, "gradient_checkpointing_disable", None)
        if disable is not None:
            disable()
    stats = reward_stats(rm, train_pairs, accelerator, autocast=autocast, max_batch_tokens=eval_budget,
                         limit=cfg.reward_stats_pairs, seed=cfg.seed, root=root)
    summary = {
        "run_dir": str(run_dir),
        "model_dir": str(run_dir / "model"),
        "base_model": cfg.model,
        "model_class": base_cls,
        "steps": global_step,
        "steps_per_epoch": steps_per_epoch,
        "pairs_seen": pairs_seen,
        "train_seconds": train_seconds,
        "pairs_per_s": pairs_this_run / max(1e-9, train_seconds),
        "tokens_per_s": tokens_seen / max(1e-9, train_seconds),
        "resumed_from": str(resume_from) if resume_from else None,
        "num_processes": world,
        "fsdp": sharded,
        "threads_per_process": torch.get_num_threads(),
        "precision": cfg.precision,
        "bf16": uses_bf16(accelerator.device, cfg.precision),
        "data": data.counts,
        **param_info,
        **final_eval,
        **stats,
        "total_seconds": time.time() - t_start,
    }
    full_weights = full_state(root)[0] if sharded else None  # collective: gathered on the main process
    if main:
        out = run_dir / "model"
        tmp = run_dir / ".model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        if sharded:  # an unsharded copy of the model to save
            rm = RewardModel.from_pretrained(cfg.model, policy=policy, device="cpu")
            rm.model.load_state_dict(full_weights)
        rm.save_pretrained(tmp, reward_mean=stats["reward_mean"], reward_std=stats["reward_std"],
                           training={k: summary[k] for k in ("base_model", "steps", "pairs_seen") if k in summary}
                           | {k: final_eval[k] for k in final_eval} | {"data_counts": data.counts})
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
        _write_json(run_dir / "summary.json", summary)
        if writer is not None:
            writer.close()
    accelerator.wait_for_everyone()
    return summary
