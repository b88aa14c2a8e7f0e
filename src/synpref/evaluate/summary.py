"""Per-model, per-benchmark results (scores, CIs, completeness) from scored items."""

from __future__ import annotations

import math

from .bootstrap import score_with_ci
from .constants import BENCHMARK_ORDER, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED
from .items import ScoredItem
from .registry import get_benchmark


def _clean(x):
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def summarize_benchmark(
    info: dict, items: list[ScoredItem], *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED, extra_reasons=()
) -> dict:
    """Result block of one benchmark for one model. ``info`` is LoadedBenchmark.info()."""
    if info.get("absent_reason"):
        return {"absent": True, "complete": False, "score": None, "n_items": 0, "reasons": [info["absent_reason"]], "missing": []}
    bench = get_benchmark(info["module"])
    stats, ci = score_with_ci(bench, items, resamples=resamples, seed=seed)
    reasons = list(extra_reasons)
    if not items:
        return {"absent": True, "complete": False, "score": None, "n_items": 0, "reasons": reasons or ["no items scored"], "missing": []}
    if info.get("missing"):
        reasons.append("missing: " + ", ".join(info["missing"]))
    if info.get("limited_to"):
        reasons.append(f"limited to {info['limited_to']} items")
    dropped = sum(1 for it in items for r in it.rewards if math.isnan(r))
    result = {
        "absent": False,
        "score": stats["score"],
        "ci95": ci.get("score"),
        "n_items": len(items),
        "complete": not reasons,
        "reasons": reasons,
        "missing": info.get("missing", []),
        "limited_to": info.get("limited_to"),
        "subsets": {k.split("/", 1)[1]: {"score": stats[k], "ci95": ci.get(k)} for k in bench.subset_keys(stats)},
        "stats": {k: {"score": v, "ci95": ci.get(k)} for k, v in stats.items() if k != "score"},
        "n_dropped_candidates": dropped,
        "extras": bench.extras(items),
        "source": info.get("source"),
    }
    return _clean(result)


def overall(benchmarks: dict[str, dict]) -> dict:
    """Plain mean of the seven benchmark scores, only when all seven are complete (as Skywork reports)."""
    not_ready = [b for b in BENCHMARK_ORDER if not (benchmarks.get(b) or {}).get("complete")]
    if not_ready:
        return {"score": None, "complete": False, "reason": "needs all seven complete; not complete: " + ", ".join(not_ready)}
    return {"score": sum(benchmarks[b]["score"] for b in BENCHMARK_ORDER) / len(BENCHMARK_ORDER), "complete": True, "reason": None}
