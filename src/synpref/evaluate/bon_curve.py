"""Best-of-N curves: accuracy of picking by reward as N grows, against oracle and random.

A prompt's candidates here are its *scored* candidates: one the length policy
dropped (reward NaN) has no reward to pick by, so it is left out of all three
curves alike (neither a wrong pick nor a correct one), and counted
(:func:`dropped_counts`). For each N from 1 to the most scored candidates of any
prompt, every prompt with at least N of them (n scored, k of them correct) contributes,
over the uniformly random N-subsets of its n candidates, computed exactly:

* ``reward_model``: the chance that the highest-reward candidate of the subset is
  correct; candidates tied at the highest reward share the credit (as the PPE
  best-of-K curves do). With the candidates grouped by reward, best first, a
  group of s candidates (c of them correct) below ``a`` better ones holds the
  subset's best with chance ``(C(n-a, N) - C(n-a-s, N)) / C(n, N)``, and then
  gives ``c / s``;
* ``oracle``: the chance that the subset holds a correct candidate, ``1 - C(n-k, N) / C(n, N)``;
* ``random``: the chance that a random pick is correct, ``k / n``.

Each value is averaged over prompts. At N = 1 there is no choice, so
``reward_model`` equals ``random`` exactly; at N = n it is the top group's share of
correct candidates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import groupby
from pathlib import Path


def reward_groups(rewards: Sequence[float], correct: Sequence[bool]) -> list[tuple[int, int]]:
    """(candidates, correct ones) of each distinct reward, best first; dropped candidates (NaN) left out."""
    scored = sorted(((r, bool(c)) for r, c in zip(rewards, correct) if not math.isnan(r)), key=lambda rc: -rc[0])
    return [(len(g), sum(c for _, c in g)) for g in (list(members) for _, members in groupby(scored, key=lambda rc: rc[0]))]


def best_pick_credit(groups: Sequence[tuple[int, int]], n: int) -> float:
    """Expected correctness of the highest-reward candidate of a uniformly random ``n``-subset (ties share credit).

    ``groups``: :func:`reward_groups` of the prompt's candidates.
    """
    m = sum(size for size, _ in groups)
    total = math.comb(m, n)
    credit, above = 0.0, 0
    for size, right in groups:
        holds_best = math.comb(m - above, n) - math.comb(m - above - size, n)
        credit += holds_best / total * right / size
        above += size
    return credit


def bon_curves(rewards: Sequence[Sequence[float]], correct: Sequence[Sequence[bool]], *, max_n: int | None = None) -> list[dict]:
    """One row per N: ``n``, ``prompts`` (those with at least N scored candidates), ``reward_model``, ``oracle``, ``random``."""
    if len(rewards) != len(correct):
        raise ValueError("rewards and correct need one entry per prompt")
    prompts = [reward_groups(r, c) for r, c in zip(rewards, correct)]
    sizes = [(sum(s for s, _ in g), sum(k for _, k in g)) for g in prompts]  # (scored candidates, correct ones)
    largest = max((m for m, _ in sizes), default=0)
    max_n = largest if max_n is None else min(max_n, largest)
    rows = []
    for n in range(1, max_n + 1):
        picked = oracle = rand = 0.0
        count = 0
        for groups, (m, k) in zip(prompts, sizes):
            if m < n:
                continue
            picked += best_pick_credit(groups, n)
            oracle += 1.0 - math.comb(m - k, n) / math.comb(m, n)
            rand += k / m
            count += 1
        if count:
            rows.append({"n": n, "prompts": count, "reward_model": picked / count, "oracle": oracle / count, "random": rand / count})
    return rows


def dropped_counts(rewards: Sequence[Sequence[float]]) -> dict:
    """Candidates without a reward (dropped by the length policy), which the curves leave out."""
    per_prompt = [sum(math.isnan(x) for x in r) for r in rewards]
    return {
        "dropped_candidates": sum(per_prompt),
        "prompts_with_dropped_candidates": sum(1 for d in per_prompt if d),
        "prompts_without_scored_candidates": sum(1 for d, r in zip(per_prompt, rewards) if d and d == len(r)),
    }


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
