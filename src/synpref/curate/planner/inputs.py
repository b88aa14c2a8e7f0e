"""What the planner is given: signals measured on the gold set and on a sample of the pool.

The caller measures them (the planner runs nothing): RM probabilities come from
cross-fitted models, so no pair is scored by a model trained on it, and the judges
are asked with the run's own judge settings. Probabilities are of the pair's GIVEN
label; a judge's label is "A" (candidate 0 better), "B", or None when it was
undecided. On the gold set the given label is the truth (human-verified).

Every gold pair and every pool-sample pair must be put to every judge: a judge
asked only on some pairs (those the current RM is unsure of, say) would be measured
on a selected subset, and its accuracy and its agreement with the pool's labels
would be biased.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ...train.config import _f

LABELS = ("A", "B")


class PlanInputError(ValueError):
    """Signals the planner cannot use; the message is one line naming the field and the pair."""


@dataclass
class GoldSignals:
    """Signals on the gold set, one entry per gold pair (truth known: the gold label)."""

    labels: Sequence[str]  # the human-verified label of each pair: "A" or "B"
    p_gold: Sequence[float]  # out-of-fold gold-RM probability of that label
    p_current: Sequence[float]  # current-RM probability of that label (out of fold)
    judges: Mapping[str, Sequence[str | None]] = field(default_factory=dict)  # judge endpoint -> its label per pair


@dataclass
class PoolSample:
    """Signals on a random sample of the pool (truth unknown), one entry per sampled pair."""

    labels: Sequence[str]  # the pool's given label
    p_current: Sequence[float]  # current-RM probability of the given label (out of fold)
    judges: Mapping[str, Sequence[str | None]] = field(default_factory=dict)
    p_gold: Sequence[float] | None = None  # gold-RM probability of the given label, when scored


@dataclass
class JudgeCost:
    """What one judge call costs, measured on the calls made for the gold set and the pool sample."""

    prompt_tokens: float = _f(0.0, "Mean prompt tokens per judge call.", min=0.0)
    completion_tokens: float = _f(0.0, "Mean completion tokens per judge call.", min=0.0)
    calls_per_vote: float = _f(1.0, "Mean calls per judge vote (1 + repair rounds of invalid answers).", min=1.0)


@dataclass
class PlanOptions:
    """How the planner computes its figures."""

    bootstrap: int = _f(1000, "Poisson-bootstrap resamples of the gold set and the pool sample behind every "
                        "derived interval (0: point estimates only).", min=0)
    seed: int = _f(0, "Seed of the bootstrap.")
    confidence: float = _f(0.95, "Level of every interval (Wilson for accuracies, bootstrap percentiles otherwise).",
                           min=0.5, max=0.999)
    noise_rate: float | None = _f(None, "Pool label-noise rate to assume instead of the estimate (needed when every "
                                  "signal is at chance, so the rate cannot be estimated).", min=0.0, max=1.0)
    sweep_points: int = _f(11, "Judge accuracies from 0.5 to 1 at which the residual noise is predicted (the plot).", min=2)

    def __post_init__(self):
        for name, lo, hi in (("confidence", 0.5, 0.999), ("noise_rate", 0.0, 1.0)):
            v = getattr(self, name)
            if v is not None and not lo <= v <= hi:
                raise PlanInputError(f"planner option {name} must be in [{lo}, {hi}]; got {v}")
        for name, lo in (("bootstrap", 0), ("sweep_points", 2)):
            if getattr(self, name) < lo:
                raise PlanInputError(f"planner option {name} must be >= {lo}; got {getattr(self, name)}")


def label_array(values: Sequence[str], where: str) -> np.ndarray:
    """Labels as booleans (True: "A"), refusing anything else."""
    out = np.empty(len(values), dtype=bool)
    for i, v in enumerate(values):
        if v not in LABELS:
            raise PlanInputError(f"{where}[{i}] must be 'A' or 'B'; got {v!r}")
        out[i] = v == "A"
    return out


def prob_array(values: Sequence[float], n: int, where: str) -> np.ndarray:
    if len(values) != n:
        raise PlanInputError(f"{where} has {len(values)} entries for {n} pairs: give one per pair")
    arr = np.asarray(values, dtype=float)
    bad = np.flatnonzero(~((arr >= 0.0) & (arr <= 1.0)))  # also catches NaN
    if bad.size:
        i = int(bad[0])
        raise PlanInputError(f"{where}[{i}] must be a probability in [0, 1]; got {values[i]!r}")
    return arr


def judge_codes(values: Sequence[str | None], n: int, where: str) -> np.ndarray:
    """A judge's labels as int8: 1 = "A", 0 = "B", -1 = undecided."""
    if len(values) != n:
        raise PlanInputError(f"{where} has {len(values)} labels for {n} pairs: give one per pair (None when undecided)")
    out = np.empty(n, dtype=np.int8)
    for i, v in enumerate(values):
        if v is not None and v not in LABELS:
            raise PlanInputError(f"{where}[{i}] must be 'A', 'B' or None (undecided); got {v!r}")
        out[i] = -1 if v is None else int(v == "A")
    return out


def finite_or_none(x) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)
