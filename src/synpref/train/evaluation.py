"""Rewards of encoded pairs during training: the micro-batch forward, and the one no-grad
lock-step pass that both the held-out evaluation and the final reward statistics use."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..batching import length_groups
from .data import EncodedPair
from .layout import PADDED, Layout
from .launch import lockstep, sum_across
from .losses import pair_loss


@dataclass
class Forwarded:
    """The rewards of a micro-batch's pairs, and the token positions the forward computed."""

    chosen: torch.Tensor
    rejected: torch.Tensor
    positions: int  # every position forwarded, padding included
    tokens: int  # the real tokens among them (a shared prefix counts once)


def batch_rewards(rm, pairs: Sequence[EncodedPair], autocast, root=None, layout: Layout = PADDED) -> Forwarded:
    """Rewards of the chosen and rejected sequences of a micro-batch (for one backward pass).

    Padded, the 2n sequences are forwarded in a few groups of similar length rather than
    padded to one common length (rewards do not depend on the batch, so only the padding
    changes); packed or with a shared prefix, in the layout's rows (see ``layout.py``).
    ``root``: the FSDP root of a sharded model; every forward is then a collective, so a
    micro-batch is one forward on every process.
    """
    if root is None:
        forward = rm.forward
    else:
        forward = lambda batch: root({k: v.to(rm.device) for k, v in batch.items()})  # noqa: E731
    n = len(pairs)
    if layout != PADDED:
        batch = layout.collate(rm, pairs)
        with autocast():
            rewards = forward(batch)
        return Forwarded(rewards[:n], rewards[n:], batch["input_ids"].numel(), int((batch["segment_ids"] >= 0).sum()))
    seqs = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    groups = length_groups([len(s) for s in seqs]) if root is None else [list(range(len(seqs)))]
    parts = []
    with autocast():
        for group in groups:
            parts.append(forward(rm.collate([seqs[i] for i in group])))
    order = torch.tensor([i for group in groups for i in group])
    rewards = torch.cat(parts)[torch.argsort(order).to(parts[0].device)]  # back to input order
    padded = sum(len(group) * max(len(seqs[i]) for i in group) for group in groups)
    return Forwarded(rewards[:n], rewards[n:], padded, sum(len(s) for s in seqs))


@torch.no_grad()
def forward_pairs(rm, pairs: Sequence[EncodedPair], indices: Sequence[int], accelerator, *, autocast,
                  max_batch_tokens: int, root=None, layout: Layout = PADDED, desc: str | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(chosen rewards, rejected rewards) of each micro-batch of ``pairs[indices]``, in eval mode.

    ``indices`` is this process's share; sharded (``root`` given), every process runs
    as many micro-batches as the busiest one (see :func:`~synpref.train.launch.lockstep`).
    The model's train/eval mode is restored afterwards. ``desc``: show a progress bar
    (over this process's pairs) with this title.
    """
    was_training = rm.model.training
    rm.model.eval()
    out = []
    bar = None
    if desc is not None:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(indices), desc=desc, unit="pair", dynamic_ncols=True, leave=False)
    batches = layout.micro_batches(indices, pairs, max_batch_tokens)
    for mb, real in lockstep(batches, [0], accelerator, root is not None):
        done = batch_rewards(rm, [pairs[i] for i in mb], autocast, root, layout)
        if real:
            out.append((done.chosen, done.rejected))
            if bar is not None:
                bar.update(len(mb))
    if bar is not None:
        bar.close()
    if was_training:
        rm.model.train()
    return out


def evaluate(rm, pairs: Sequence[EncodedPair], accelerator, *, autocast, max_batch_tokens: int, root=None,
             layout: Layout = PADDED, progress: bool = False) -> dict:
    """Held-out accuracy (ties count as wrong), mean margin and loss, over all processes.

    ``root``: the FSDP root module when the model is sharded; ``layout``: the micro-batches' layout;
    ``progress``: a progress bar."""
    mine = list(range(accelerator.process_index, len(pairs), accelerator.num_processes))
    correct = margin = loss = 0.0
    for r_c, r_r in forward_pairs(rm, pairs, mine, accelerator, autocast=autocast, max_batch_tokens=max_batch_tokens,
                                  root=root, layout=layout, desc="held-out evaluation" if progress else None):
        diff = (r_c - r_r).double()
        correct += float((diff > 0).sum())
        margin += float(diff.sum())
        loss += float(pair_loss(r_c.double(), r_r.double()).sum())
    correct, margin, loss, n = sum_across(accelerator, [correct, margin, loss, len(mine)])
    if n == 0:
        return {"eval_pairs": 0}
    return {"eval_accuracy": correct / n, "eval_mean_margin": margin / n, "eval_loss": loss / n, "eval_pairs": int(n)}


def reward_stats_sample_size(available: int, limit: int, trained: int | None) -> int:
    """How many training pairs the reward statistics score: at most ``limit`` (0: no cap) and at
    most the pairs the run trained on (a short run does not score more pairs than it trained)."""
    size = available if not limit else min(available, limit)
    return size if trained is None else min(size, max(1, trained))


def reward_stats(rm, pairs: Sequence[EncodedPair], accelerator, *, autocast, max_batch_tokens: int, limit: int, seed: int,
                 root=None, layout: Layout = PADDED, trained: int | None = None, progress: bool = False) -> dict:
    """Mean and std of the model's rewards on a seeded sample of the training pairs.

    The sample has :func:`reward_stats_sample_size` pairs (``trained``: the pairs the run
    trained on); ``layout``: the micro-batches' layout; ``progress``: a progress bar."""
    idx = list(range(len(pairs)))
    size = reward_stats_sample_size(len(idx), limit, trained)
    if size < len(idx):
        idx = sorted(np.random.RandomState(seed).choice(len(idx), size, replace=False).tolist())
    mine = idx[accelerator.process_index :: accelerator.num_processes]
    s = ss = 0.0
    for r_c, r_r in forward_pairs(rm, pairs, mine, accelerator, autocast=autocast, max_batch_tokens=max_batch_tokens,
                                  root=root, layout=layout, desc="reward statistics" if progress else None):
        r = torch.cat([r_c, r_r]).double()
        s += float(r.sum())
        ss += float((r * r).sum())
    s, ss, n = sum_across(accelerator, [s, ss, 2 * len(mine)])
    if n == 0:
        return {"reward_mean": 0.0, "reward_std": 1.0, "reward_stats_pairs": 0}
    mean = s / n
    var = max(0.0, ss / n - mean * mean) * n / max(1, n - 1)
    return {"reward_mean": mean, "reward_std": math.sqrt(var), "reward_stats_pairs": int(n // 2)}
