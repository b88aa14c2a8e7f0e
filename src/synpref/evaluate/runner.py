"""``run_evaluation``: load benchmarks, score every model once per distinct text, write results."""

from __future__ import annotations

import datetime as _dt
import difflib
import json
from pathlib import Path

from .. import __version__
from ..errors import UserValueError
from ..scoring import score_once
from .cache import RewardCache
from .constants import BENCHMARK_ORDER, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED
from .loading import LoadedBenchmark, load_benchmark, load_pairs_file
from .scorers import RewardModelScorer, length_baselines
from .summary import overall, summarize_benchmark

RESULTS_FILE, ITEMS_FILE = "results.json", "items.jsonl"


def parse_benches(benches) -> list[str]:
    """'all', 'a,b' or a list -> benchmark names in canonical order of appearance."""
    if benches is None:
        return []
    if isinstance(benches, str):
        benches = [b.strip() for b in benches.split(",") if b.strip()]
    if any(b == "all" for b in benches):
        return list(BENCHMARK_ORDER)
    unknown = [b for b in benches if b not in BENCHMARK_ORDER]
    if unknown:
        close = [m for b in unknown for m in difflib.get_close_matches(b, BENCHMARK_ORDER, n=1)]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserValueError(f"unknown benchmark(s) {', '.join(unknown)}{hint}; choose from {', '.join(BENCHMARK_ORDER)} or 'all'",
                             cli="e.g. --bench judgebench,rm-bench or --bench all")
    return list(dict.fromkeys(benches))


def run_evaluation(
    models: list[str],
    benches,
    data_dir,
    out_dir: Path,
    *,
    pairs_files=(),
    limit: int | None = None,
    precision: str = "fp32",
    progress: bool = True,
    baselines: bool = True,
    cache_dir: Path | None = None,
    use_hub: bool | None = None,
    max_batch_tokens: int = 0,
    device: str | None = None,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    write_report: bool = True,
    judges=(),
    engine=None,
) -> dict:
    """Score ``models`` on ``benches`` (and ``pairs_files``); write results.json, items.jsonl, report.md/.html.

    ``data_dir`` is a folder holding each benchmark's published layout in a known
    sub-folder, or a dict benchmark -> folder. Rewards are cached per model under
    ``cache_dir`` (default ``out_dir/cache``), so a rerun does not rescore.
    ``judges`` adds generative judges (:class:`~synpref.evaluate.judge.OpenAIJudge`)
    to the same tables. ``device``: where the reward models run (see ``synpref.model.resolve_device``).
    ``engine``: None (this process) or a started :class:`~synpref.engine.ray_cluster.RayCluster`
    (each reward model scored by a Ray actor pool; the same rewards and cache).
    Returns the results dict written to results.json.
    """
    out_dir = Path(out_dir)
    cache_dir = Path(cache_dir) if cache_dir is not None else out_dir / "cache"
    loaded: list[LoadedBenchmark] = [load_benchmark(b, data_dir, limit=limit, use_hub=use_hub) for b in parse_benches(benches)]
    loaded += [load_pairs_file(p, limit=limit) for p in pairs_files]
    all_items = [it for lb in loaded for it in lb.items]
    if loaded and not all_items:
        raise UserValueError("nothing to evaluate: " + "; ".join(f"{lb.name}: {lb.absent_reason}" for lb in loaded),
                             cli="give --data-dir DIR holding the benchmarks, or --pairs FILE with pairs")
    evaluators = [  # a reward model's reference is checked here (ModelNotFoundError), before anything is written
        *(length_baselines() if baselines else []),
        *(_reward_model_scorer(engine, m, precision=precision, max_batch_tokens=max_batch_tokens, device=device) for m in models),
        *judges,
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {
        "synpref_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "benchmarks": {lb.name: lb.info() for lb in loaded},
        "models": {},
    }
    with (out_dir / ITEMS_FILE).open("w", encoding="utf-8") as items_out:
        for evaluator in evaluators:
            scored, stats = _evaluate(evaluator, all_items, cache_dir, progress)
            for it in scored:
                items_out.write(json.dumps(it.to_row(evaluator.name), ensure_ascii=False) + "\n")
            by_bench = {lb.name: [] for lb in loaded}
            for it in scored:
                by_bench[it.benchmark].append(it)
            per_bench = {}
            for lb in loaded:
                skipped = len(lb.items) - len(by_bench[lb.name])
                extra = [f"{skipped} items this evaluator cannot judge were skipped"] if skipped and not lb.absent_reason else []
                per_bench[lb.name] = summarize_benchmark(lb.info(), by_bench[lb.name], resamples=resamples, seed=seed, extra_reasons=extra)
            describe = evaluator.describe() if hasattr(evaluator, "describe") else {"model": evaluator.name, "kind": evaluator.kind}
            results["models"][evaluator.name] = {**describe, "scoring": stats, "benchmarks": per_bench, "overall": overall(per_bench)}
    (out_dir / RESULTS_FILE).write_text(json.dumps(results, indent=1, ensure_ascii=False))
    if write_report:
        from .report import build_report

        build_report([out_dir], out_dir, resamples=resamples)
    return results


def _reward_model_scorer(engine, reference, **kw) -> RewardModelScorer:
    if engine is None:
        return RewardModelScorer(reference, **kw)
    from ..engine.ray_scoring import RayRewardModelScorer

    return RayRewardModelScorer(engine, reference, **kw)


def _evaluate(evaluator, items, cache_dir: Path, progress: bool) -> tuple[list, dict]:
    """Per-item rewards from a reward model / baseline (per text, cached) or a judge (per item)."""
    if hasattr(evaluator, "evaluate_items"):
        return evaluator.evaluate_items(items, cache_dir=cache_dir, progress=progress)
    cache = RewardCache(cache_dir / f"{evaluator.key}.sqlite") if evaluator.kind == "reward-model" else None
    try:
        rewards, stats = score_once(
            getattr(evaluator, "score_fn", None) or (lambda conversations, names: evaluator.score(conversations)),
            [it.conversations() for it in items],
            names=[f"{it.benchmark} item {it.item_id}" for it in items],
            cache=cache,
            progress=progress,
            desc=f"scoring {evaluator.name}",
        )
    finally:
        if cache is not None:
            cache.close()
    return [it.scored(r) for it, r in zip(items, rewards)], stats.to_dict()


def run_judge_evaluation(
    endpoint: str,
    judge_model: str,
    benches,
    data_dir,
    out_dir: Path,
    *,
    api_key_env: str | None = None,
    both_orders: bool = False,
    seed: int = 0,
    models: list[str] = (),
    **kw,
) -> dict:
    """Evaluate an OpenAI-compatible chat model as a pairwise judge (beside ``models`` and the baselines).

    ``api_key_env`` names the environment variable holding the endpoint's key."""
    from .judge import OpenAIJudge

    judge = OpenAIJudge(endpoint, judge_model, api_key_env=api_key_env, both_orders=both_orders, seed=seed)
    return run_evaluation(list(models), benches, data_dir, out_dir, judges=[judge], **kw)
