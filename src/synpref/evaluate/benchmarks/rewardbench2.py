"""RewardBench 2: best-of-4 accuracy with tie credit, and the Ties composite.

Non-Ties rows have one chosen (candidate 0) and three rejected responses; a row
earns 1/k when the chosen reward equals the maximum and k candidates share it,
else 0 (so a strict maximum earns 1). Ties rows (ids ``ref:<n>`` with one
correct answer, ``tied:<n>`` with several) score per prompt:
accurate = worst correct > best incorrect, spread = best correct - worst
correct, margin = worst correct - best incorrect; the subset score is
0.30 tied accuracy + 0.30 ref accuracy + 0.20 P(margin_tied > spread)
+ 0.20 P(min(margin_ref, margin_tied) > spread)
+ 0.01 mean tanh(min(margin_ref, margin_tied) / spread - 1), the last three
over prompts that have both a ref and a tied row (the tanh term only over
prompts with spread > 0), as ``rewardbench.utils.process_single_model`` in the
``rewardbench`` 0.1.4 package computes it. The score is
the unweighted mean of the six subsets.
"""

from __future__ import annotations

import math

import numpy as np

from ..constants import REWARDBENCH2_HUB, REWARDBENCH2_SUBSETS, REWARDBENCH2_TIES, TIES_WEIGHTS
from ...schema import Record
from ..items import EvalItem, ScoredItem
from ..registry import Benchmark, group_mean, meta_field, register

TIED, REF = "tied", "ref"


def best_of_n_credit(rewards: list[float], chosen: int = 0) -> float:
    """1/k if ``rewards[chosen]`` is the maximum shared by k candidates, else 0 (any NaN: 0)."""
    if any(math.isnan(r) for r in rewards):
        return 0.0
    top = max(rewards)
    return 1.0 / sum(1 for r in rewards if r == top) if rewards[chosen] == top else 0.0


def ties_prompt_stats(rewards: list[float], n_correct: int) -> tuple[float, float, float]:
    """(accurate, spread among correct answers or NaN, worst correct - best incorrect)."""
    good, bad = rewards[:n_correct], rewards[n_correct:]
    spread = max(good) - min(good) if len(good) > 1 else math.nan
    margin = min(good) - max(bad)
    return float(margin > 0), spread, margin


def ties_composite(kind: np.ndarray, accurate: np.ndarray, spread: np.ndarray, margin: np.ndarray, ref_margin: np.ndarray) -> dict[str, float]:
    """The published Ties score from per-row numbers (kind 1 = tied row, 0 = ref row)."""
    tied, ref = kind == 1, kind == 0
    parts = {
        "tied_accuracy": float(accurate[tied].mean()) if tied.any() else 0.0,
        "ref_accuracy": float(accurate[ref].mean()) if ref.any() else 0.0,
    }
    shared = tied & ~np.isnan(ref_margin) & ~np.isnan(spread)
    if shared.any():
        d, mt, mr = spread[shared], margin[shared], ref_margin[shared]
        hard = np.minimum(mr, mt)
        positive = d > 0  # a zero spread has no ratio: left out of the tie-breaker mean
        parts["correctness_preferred"] = float(np.mean(mt > d))
        parts["correctness_preferred_hard"] = float(np.mean(hard > d))
        ratios = np.tanh(hard[positive] / d[positive] - 1)
        parts["correctness_margin_score"] = float(ratios.mean()) if ratios.size else 0.0
    else:
        parts.update(correctness_preferred=0.0, correctness_preferred_hard=0.0, correctness_margin_score=0.0)
    parts["score"] = sum(TIES_WEIGHTS[k] * parts[k] for k in TIES_WEIGHTS)
    return parts


def _split_ties_id(item_id: str) -> tuple[str, str]:
    kind, _, prompt = str(item_id).partition(":")
    return (kind, prompt) if kind in (TIED, REF) and prompt else ("", str(item_id))


@register("rewardbench2")
class RewardBench2(Benchmark):
    title = "RewardBench 2"
    hub = REWARDBENCH2_HUB
    format = "rewardbench2"

    def item(self, rec: Record) -> EvalItem:
        subset = meta_field(rec, "subset")
        meta = {}
        if subset == REWARDBENCH2_TIES:
            kind, prompt = _split_ties_id(meta_field(rec, "id"))
            meta = {"ties_kind": kind or (REF if sum(rec.correct) == 1 else TIED), "ties_prompt": prompt}
        return EvalItem.from_record(rec, self.name, subset, rec.meta.get("id", f"{rec.provenance.source}:{rec.provenance.row}"), **meta)

    def missing_parts(self, items: list[EvalItem]) -> list[str]:
        have = {it.subset for it in items}
        missing = [s for s in REWARDBENCH2_SUBSETS if s not in have]
        kinds = {it.meta.get("ties_kind") for it in items if it.subset == REWARDBENCH2_TIES}
        if REWARDBENCH2_TIES in have:
            missing += [f"Ties {k} rows" for k in (REF, TIED) if k not in kinds]
        return missing

    def strata(self, items: list[ScoredItem]) -> list[str]:
        return [f"{it.subset}/{it.meta['ties_kind']}" if it.subset == REWARDBENCH2_TIES else it.subset for it in items]

    def outcomes(self, items: list[ScoredItem]) -> dict[str, np.ndarray]:
        n = len(items)
        credit, kind = np.full(n, np.nan), np.full(n, -1.0)
        accurate, spread, margin, ref_margin = (np.full(n, np.nan) for _ in range(4))
        ref_by_prompt = {}
        for i, it in enumerate(items):
            if it.subset != REWARDBENCH2_TIES:
                credit[i] = best_of_n_credit(it.rewards, it.correct[0])
                continue
            rewards = [-math.inf if math.isnan(r) else r for r in it.rewards]
            accurate[i], spread[i], margin[i] = ties_prompt_stats(rewards, len(it.correct))
            kind[i] = 1.0 if it.meta["ties_kind"] == TIED else 0.0
            if kind[i] == 0:
                ref_by_prompt[it.meta["ties_prompt"]] = margin[i]
        for i, it in enumerate(items):
            if kind[i] == 1:
                ref_margin[i] = ref_by_prompt.get(it.meta["ties_prompt"], np.nan)
        return {"credit": credit, "kind": kind, "accurate": accurate, "spread": spread, "margin": margin, "ref_margin": ref_margin}

    def statistics(self, out, strata, names) -> dict[str, float]:
        means = group_mean(np.nan_to_num(out["credit"]), strata, len(names))
        stats = {f"subset/{name}": float(m) for name, m in zip(names, means) if not name.startswith(REWARDBENCH2_TIES)}
        ties_codes = [k for k, name in enumerate(names) if name.startswith(REWARDBENCH2_TIES)]
        if ties_codes:
            rows = np.isin(strata, ties_codes)
            parts = ties_composite(*(out[k][rows] for k in ("kind", "accurate", "spread", "margin", "ref_margin")))
            stats[f"subset/{REWARDBENCH2_TIES}"] = parts.pop("score")
            stats.update({f"ties/{k}": v for k, v in parts.items()})
        subsets = [stats[f"subset/{s}"] for s in REWARDBENCH2_SUBSETS if f"subset/{s}" in stats]
        return {"score": float(np.mean(subsets)) if subsets else float("nan"), **stats}
