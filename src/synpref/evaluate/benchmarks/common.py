"""Helpers shared by the metric modules (per-item outcomes, limits)."""

from __future__ import annotations

import numpy as np

from ..items import ScoredItem


def pair_won(items: list[ScoredItem]) -> np.ndarray:
    """1.0 where the labelled candidate strictly outscores the other one (a tie is wrong)."""
    good = np.array([it.rewards[it.correct[0]] for it in items], dtype=float)
    bad = np.array([it.rewards[1 - it.correct[0]] for it in items], dtype=float)
    return (good > bad).astype(float)


def best_beats_all(items: list[ScoredItem]) -> np.ndarray:
    """1.0 where every correct candidate strictly outscores every other candidate."""
    out = np.zeros(len(items))
    for n, it in enumerate(items):
        good = [it.rewards[i] for i in it.correct]
        bad = [r for i, r in enumerate(it.rewards) if i not in it.correct]
        out[n] = float(min(good) > max(bad)) if good and bad else float("nan")
    return out
