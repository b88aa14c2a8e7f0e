"""Merge evaluation folders, and compare models only on the items they share.

A number the report shows beside another is computed on the same items. Per benchmark,
every model is scored on the items all of them were scored on (the *shared items*, read
from items.jsonl). A model whose own run covered other items keeps that result under
``own_items`` (with its item count, and the length baselines on those same items when
rows for them exist); a model that cannot be cut down to the shared items (its folder has
no items.jsonl) is ``not_comparable``. Nothing is rescored.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path

from .constants import BOOTSTRAP_RESAMPLES
from .items import ScoredItem
from .runner import ITEMS_FILE, RESULTS_FILE
from .summary import overall, summarize_benchmark
from .tables import BASELINE

ItemKey = tuple[str, str]  # (subset, item_id): unique within a benchmark


@dataclass
class Origin:
    """Where one model's result on one benchmark came from."""

    folder: Path
    info: dict  # that folder's benchmark info (LoadedBenchmark.info())
    rows: list[dict] | None  # that folder's items.jsonl rows for it; None when it has none


@dataclass
class MergedRun:
    """Merged results.json content, with where each (model, benchmark) result came from."""

    results: dict
    origins: dict[tuple[str, str], Origin] = field(default_factory=dict)

    def rows(self) -> list[dict]:
        """The item rows behind the merged results (one folder per (model, benchmark))."""
        return [r for origin in self.origins.values() for r in origin.rows or ()]


def _key(row: dict) -> ItemKey:
    return (str(row["subset"]), str(row["item_id"]))


def _read_folder(folder: Path) -> tuple[dict, dict[tuple[str, str], list[dict]] | None]:
    path = folder / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no {RESULTS_FILE}; give a folder written by `synpref eval`")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e}); rerun `synpref eval` to rewrite it") from None
    items_path = folder / ITEMS_FILE
    if not items_path.is_file():
        return results, None
    rows: dict[tuple[str, str], list[dict]] = {}
    with items_path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{items_path}:{number}: not valid JSON ({e}); rerun `synpref eval` to rewrite it") from None
            rows.setdefault((row["model"], row["benchmark"]), []).append(row)
    return results, rows


def _own_block(block: dict) -> dict:
    """A model's result on its own items (undoing an earlier comparison written to results.json)."""
    own = dict(block.get("own_items") or block)
    own.pop("baselines_on_these_items", None)
    return own


def _wins(entry: dict, new: dict, old: dict | None) -> bool:
    """Whether ``new`` replaces ``old`` for one (model, benchmark): a later result does, unless it is absent.

    A length baseline is the same function in every run, so the run that scored it on the
    most items wins (its rows can then sit beside any model's own items).
    """
    if old is None or old.get("absent"):
        return True
    if new.get("absent"):
        return False
    return entry.get("kind") != BASELINE or new.get("n_items", 0) >= old.get("n_items", 0)


def merge_results(out_dirs) -> MergedRun:
    """Merge result folders; a later folder wins on the same (model, benchmark), except as :func:`_wins` says."""
    merged = {"benchmarks": {}, "models": {}, "sources": []}
    run = MergedRun(merged)
    for folder in map(Path, out_dirs):
        res, rows = _read_folder(folder)
        for name, info in res["benchmarks"].items():
            old = merged["benchmarks"].get(name)
            if old is None or (old.get("absent_reason") and not info.get("absent_reason")):
                merged["benchmarks"][name] = {k: v for k, v in info.items() if k != "comparison"}
        for model, entry in res["models"].items():
            target = merged["models"].setdefault(model, {**entry, "benchmarks": {}})
            for bench, block in entry["benchmarks"].items():
                own = _own_block(block)
                if _wins(entry, own, target["benchmarks"].get(bench)):
                    target["benchmarks"][bench] = own
                    found = (rows or {}).get((model, bench)) or None  # None: this folder kept no rows for it
                    run.origins[(model, bench)] = Origin(folder, res["benchmarks"].get(bench, {}), [] if own.get("absent") else found)
        merged["sources"].append(str(folder))
        for k in ("synpref_version", "created"):
            merged[k] = res.get(k)
    for entry in merged["models"].values():
        entry["overall"] = overall(entry["benchmarks"])
    return run


def recompute(run: MergedRun, *, resamples: int = BOOTSTRAP_RESAMPLES) -> MergedRun:
    """Recompute every model's own benchmark blocks from its item rows (the metric modules' current code)."""
    results = run.results
    for model, entry in results["models"].items():
        for bench, info in results["benchmarks"].items():
            origin = run.origins.get((model, bench))
            if not info.get("absent_reason") and not (origin and origin.rows):
                continue
            own = entry["benchmarks"].get(bench) or {}
            kept = [r for r in own.get("reasons", []) if "skipped" in r]
            items = [ScoredItem.from_row(r) for r in (origin.rows or ())] if origin else []
            run_info = {**origin.info, **{k: own[k] for k in ("missing", "limited_to") if k in own}} if origin else info
            entry["benchmarks"][bench] = summarize_benchmark(run_info, items, resamples=resamples, extra_reasons=kept)
        entry["overall"] = overall(entry["benchmarks"])
    return run


def compare_on_shared_items(run: MergedRun, *, resamples: int = BOOTSTRAP_RESAMPLES) -> dict:
    """Put every model of each benchmark on the items they all share; returns the results dict.

    Where the models' item sets differ, the benchmark's info gets ``comparison`` (the shared
    count, each model's own count, the models that cannot be compared and why) and its
    ``n_items`` becomes the shared count.
    """
    results = run.results
    for bench, info in results["benchmarks"].items():
        if info.get("absent_reason"):
            continue
        present = [m for m, e in results["models"].items() if e["benchmarks"].get(bench) and not e["benchmarks"][bench].get("absent")]
        if present:
            _compare_benchmark(run, bench, present, resamples)
    for entry in results["models"].values():
        entry["overall"] = overall(entry["benchmarks"])
    return results


def _compare_benchmark(run: MergedRun, bench: str, present: list[str], resamples: int) -> None:
    models, info = run.results["models"], run.results["benchmarks"][bench]
    own = {m: models[m]["benchmarks"][bench] for m in present}
    origins = {m: run.origins[(m, bench)] for m in present}
    items_of = {m: Counter(map(_key, origins[m].rows)) for m in present if origins[m].rows}
    rowless = [m for m in present if m not in items_of]
    one_run = len({o.folder for o in origins.values()}) == 1 and len({b["n_items"] for b in own.values()}) == 1
    shared = reduce(lambda a, b: a & b, items_of.values()) if items_of else Counter()
    if all(c == shared for c in items_of.values()) and (not rowless or one_run):
        info["n_items"] = own[present[0]]["n_items"]  # every model was scored on the same items
        return
    not_comparable = {
        m: f"{origins[m].folder} has no {ITEMS_FILE} rows for it, so it cannot be cut down to the items the other models share"
        for m in rowless
    }
    if not shared:
        counts = ", ".join(f"{m}: {b['n_items']}" for m, b in own.items())
        not_comparable.update({m: f"no item was scored for every model (items per model: {counts})" for m in items_of})
    n_shared = sum(shared.values())
    missing = list(dict.fromkeys(part for b in own.values() for part in b.get("missing") or []))
    for m in present:
        if m in not_comparable:
            models[m]["benchmarks"][bench] = {
                "absent": False, "score": None, "ci95": None, "n_items": 0, "complete": False, "missing": missing,
                "reasons": [not_comparable[m]], "not_comparable": not_comparable[m], "own_items": _with_baselines(run, bench, m, own[m], resamples),
            }
        elif items_of[m] != shared:
            reason = f"compared on the {n_shared} items every model here was scored on (its own run: {own[m]['n_items']} items, under own_items)"
            shared_info = {**origins[m].info, "module": info.get("module", bench), "missing": missing, "limited_to": None, "absent_reason": None}
            block = summarize_benchmark(shared_info, _take(origins[m].rows, shared), resamples=resamples, extra_reasons=[reason])
            models[m]["benchmarks"][bench] = {**block, "own_items": _with_baselines(run, bench, m, own[m], resamples)}
    info["n_items"], info["limited_to"] = n_shared, None  # each model keeps its own run's limit in its block
    info["comparison"] = {
        "shared_items": n_shared,
        "own_items": {m: b["n_items"] for m, b in own.items()},
        "not_comparable": not_comparable,
    }


def _take(rows: list[dict], wanted: Counter) -> list[ScoredItem]:
    """The rows whose items are in ``wanted`` (as many of each as it holds), as scored items."""
    left, out = Counter(wanted), []
    for row in rows:
        key = _key(row)
        if left[key] > 0:
            left[key] -= 1
            out.append(ScoredItem.from_row(row))
    return out


def _with_baselines(run: MergedRun, bench: str, model: str, own: dict, resamples: int) -> dict:
    """``own`` plus each length baseline scored on exactly the same items, where it has rows for all of them."""
    rows = run.origins[(model, bench)].rows
    if not rows or run.results["models"][model].get("kind") == BASELINE:
        return own
    on_same = {}
    for baseline, entry in run.results["models"].items():
        origin = run.origins.get((baseline, bench))
        if entry.get("kind") != BASELINE or origin is None or not origin.rows:
            continue
        by_key = {_key(r): r for r in origin.rows}
        picked = [by_key.get(_key(r)) for r in rows]
        if all(p is not None for p in picked):
            block = summarize_benchmark(origin.info, [ScoredItem.from_row(p) for p in picked], resamples=resamples)
            on_same[baseline] = {"score": block["score"], "ci95": block.get("ci95"), "n_items": block["n_items"]}
    return {**own, "baselines_on_these_items": on_same} if on_same else own
