"""Best-of-N curves: accuracy of picking by reward as N grows, against oracle and random.

For each N from 1 to the largest candidate count, every prompt with at least N
of its n candidates (k of them correct) contributes:

* ``reward_model``: how often the highest-reward candidate of a random N-subset is
  correct, averaged over ``trials`` random subsets;
* ``oracle``: the chance that a random N-subset holds a correct candidate, exactly
  ``1 - C(n-k, N) / C(n, N)``;
* ``random``: the chance that a random pick is correct, exactly ``k / n``.

Each value is averaged over prompts.
A dropped candidate (reward NaN) is never picked by the reward model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def bon_curves(
    rewards: Sequence[Sequence[float]],
    correct: Sequence[Sequence[bool]],
    *,
    max_n: int | None = None,
    trials: int = 100,
    seed: int = 0,
) -> list[dict]:
    if len(rewards) != len(correct):
        raise ValueError("rewards and correct need one entry per prompt")
    rng = np.random.default_rng(seed)
    prompts = [(np.nan_to_num(np.asarray(r, float), nan=-np.inf), np.asarray(c, bool)) for r, c in zip(rewards, correct)]
    largest = max((len(r) for r, _ in prompts), default=0)
    max_n = largest if max_n is None else min(max_n, largest)
    rows = []
    for n in range(1, max_n + 1):
        picked, oracle, rand, count = 0.0, 0.0, 0.0, 0
        for r, c in prompts:
            if len(r) < n:
                continue
            subsets = rng.random((trials, len(r))).argsort(axis=1)[:, :n]
            best = r[subsets].argmax(axis=1)
            picked += c[subsets][np.arange(trials), best].mean()
            k = int(c.sum())
            oracle += 1.0 - math.comb(len(r) - k, n) / math.comb(len(r), n)
            rand += k / len(r)
            count += 1
        if count:
            rows.append({"n": n, "prompts": count, "reward_model": float(picked / count), "oracle": oracle / count, "random": rand / count})
    return rows


def curve_table(rows: list[dict]) -> str:
    lines = ["| N | prompts | reward model | oracle | random |", "|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['n']} | {row['prompts']} | {row['reward_model']:.3f} | {row['oracle']:.3f} | {row['random']:.3f} |")
    return "\n".join(lines)


def plot_curves(rows: list[dict], path: str | Path, title: str = "Best-of-N") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    ns = [row["n"] for row in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ns, [row["oracle"] for row in rows], "k--", label="oracle")
    ax.plot(ns, [row["reward_model"] for row in rows], "o-", label="reward model")
    ax.plot(ns, [row["random"] for row in rows], ":", label="random")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("N (candidates per prompt; only prompts with >= N count)")
    ax.set_ylabel("fraction correct")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
