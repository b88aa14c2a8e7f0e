"""Pairwise reward-model losses, all in one place so they are easy to compare.

Every function takes per-pair rewards ``r_c`` (chosen) and ``r_r`` (rejected),
shape (n,), and returns the per-pair loss, shape (n,); the trainer averages over
the pairs of an optimizer step, each pair's loss multiplied by its record's
``weight`` (1 unless the data says otherwise).

* Bradley-Terry: ``-log sigmoid(r_c - r_r)``.
* margin term (``use_margin``): ``-log sigmoid(r_c - r_r - margin)``, where
  ``margin = margin_scale * record.margin`` (0 when the record has none); ratings
  expanded to pairs carry the rating difference as their margin.
* reward centering (``center_rewards_coef``): ``+ coef * (r_c + r_r)^2``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry(r_c: torch.Tensor, r_r: torch.Tensor, margin: torch.Tensor | None = None) -> torch.Tensor:
    """-log sigmoid(r_c - r_r - margin); ``margin`` None means 0 (plain Bradley-Terry)."""
    diff = r_c - r_r
    if margin is not None:
        diff = diff - margin
    return -F.logsigmoid(diff)


def reward_centering(r_c: torch.Tensor, r_r: torch.Tensor, coef: float) -> torch.Tensor:
    """coef * (r_c + r_r)^2: pulls the rewards of each pair towards a zero mean."""
    return coef * (r_c + r_r) ** 2


def pair_loss(
    r_c: torch.Tensor,
    r_r: torch.Tensor,
    *,
    margin: torch.Tensor | None = None,
    center_coef: float = 0.0,
    loss: str = "bradley_terry",
) -> torch.Tensor:
    """The trainer's per-pair loss: the named loss plus the optional centering term."""
    if loss != "bradley_terry":
        raise ValueError(f"unknown loss {loss!r}")
    out = bradley_terry(r_c, r_r, margin)
    if center_coef:
        out = out + reward_centering(r_c, r_r, center_coef)
    return out

