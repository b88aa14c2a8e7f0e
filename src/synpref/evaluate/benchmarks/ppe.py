"""PPE (Preference Proxy Evaluations): human preference and correctness.

* ``ppe-preference``: pairwise accuracy against the Chatbot Arena vote; tie
  votes are excluded when loading; a reward tie is wrong.
* ``ppe-correctness``: each row has K=32 responses with a correctness label and
  ``sampled_conflict_pairs`` (index pairs of responses that differ in
  correctness). Accuracy per task = correct pairs / pairs over all rows
  (the pair's correct response must strictly outscore the other); the score is
  the mean over MMLU-Pro, MATH, GPQA, IFEval, MBPP-Plus. Best-of-K for K=1..32:
  the correctness of the top-reward response among the first K (ties share the
  credit), against the oracle (any of the first K correct).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...formats import Rejection, expand_sources
from ...schema import Record
from ..constants import PPE_CORRECTNESS_TASKS, PPE_MAX_K, PPE_PREFERENCE_HUB
from ..items import EvalItem, ScoredItem
from ..registry import Benchmark, group_mean, register
from .common import pair_won


@register("ppe-preference")
class PPEPreference(Benchmark):
    title = "PPE Preference"
    hub = PPE_PREFERENCE_HUB
    format = "ppe-preference"

    def item(self, rec: Record) -> EvalItem | None:
        if rec.kind == "tie":
            return None  # tie votes are not part of the benchmark
        # The reader puts the winner first; the item keeps the published (a, b) order.
        order = [1, 0] if rec.meta.get("winner") == "model_b" else [0, 1]
        return EvalItem.from_record(rec, self.name, "human-preference", rec.meta.get("question_id", rec.provenance.row), order=order)

    def outcomes(self, items: list[ScoredItem]) -> dict[str, np.ndarray]:
        return {"correct": pair_won(items)}

    def statistics(self, out, strata, names) -> dict[str, float]:
        means = group_mean(out["correct"], strata, len(names))
        return {"score": float(out["correct"].mean()), **{f"subset/{k}": float(v) for k, v in zip(names, means)}}


def task_of(path: str) -> str | None:
    low = path.lower()
    for task, (_, _, keys) in PPE_CORRECTNESS_TASKS.items():
        if any(k in low for k in keys):
            return task
    return None


def correctness_item_id(rec: Record, task: str) -> str:
    """``task:question_id:model_name``: the id of a best-of-K row here and in ``synpref bon``."""
    return f"{task}:{rec.meta.get('question_id', rec.provenance.row)}:{rec.meta.get('model_name', '')}"


def best_of_k(rewards: list[float], correct: list[bool], max_k: int) -> tuple[np.ndarray, np.ndarray]:
    """(expected correctness of the top-reward pick among the first K, oracle), K = 1..max_k."""
    r = np.nan_to_num(np.array(rewards, dtype=float), nan=-np.inf)
    c = np.array(correct, dtype=float)
    picked, oracle = np.zeros(max_k), np.zeros(max_k)
    for k in range(1, max_k + 1):
        top = r[:k] == r[:k].max()
        picked[k - 1] = c[:k][top].mean()
        oracle[k - 1] = c[:k].max()
    return picked, oracle


@register("ppe-correctness")
class PPECorrectness(Benchmark):
    title = "PPE Correctness"
    hub = None  # five hub datasets: see load_hub
    format = "ppe-correctness"

    def load_local(self, folder: Path, rejected: list[Rejection]) -> list[EvalItem]:
        items = []
        for path in expand_sources([folder]):
            task = task_of(str(path.relative_to(folder) if path != folder else path.name))
            if task is None:
                message = f"cannot tell which PPE task this file is (expected one of {', '.join(PPE_CORRECTNESS_TASKS)} in its name); file skipped"
                rejected.append(Rejection(str(path), None, "unknown_task", None, message))
                continue
            items += self.items(self.read(path, rejected), rejected, task=task)
        return items

    def load_hub(self, rejected: list[Rejection]) -> list[EvalItem]:
        from ..sources import hub_rows

        items = []
        for task, (dataset_id, split, _) in PPE_CORRECTNESS_TASKS.items():
            items += self.items_from_rows(hub_rows(dataset_id, split), dataset_id, rejected, task=task)
        return items

    def item(self, rec: Record, task: str) -> EvalItem:
        return EvalItem.from_record(rec, self.name, task, correctness_item_id(rec, task), pairs=rec.meta["conflict_pairs"], n_responses=len(rec.candidates))

    def missing_parts(self, items: list[EvalItem]) -> list[str]:
        have = {it.subset for it in items}
        return [t for t in PPE_CORRECTNESS_TASKS if t not in have]

    def outcomes(self, items: list[ScoredItem]) -> dict[str, np.ndarray]:
        won, total = np.zeros(len(items)), np.zeros(len(items))
        for n, it in enumerate(items):
            good = set(it.correct)
            for i, j in it.meta.get("pairs", []):
                if (i in good) == (j in good):
                    continue  # not a conflict pair
                hi, lo = (i, j) if i in good else (j, i)
                won[n] += float(it.rewards[hi] > it.rewards[lo])
                total[n] += 1
        return {"won": won, "pairs": total}

    def statistics(self, out, strata, names) -> dict[str, float]:
        k = len(names)
        won = np.bincount(strata, weights=out["won"], minlength=k)
        pairs = np.bincount(strata, weights=out["pairs"], minlength=k)
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = won / pairs
        stats = {f"subset/{name}": float(a) for name, a in zip(names, acc)}
        ordered = [stats[f"subset/{t}"] for t in PPE_CORRECTNESS_TASKS if f"subset/{t}" in stats]
        return {"score": float(np.nanmean(ordered)) if ordered else float("nan"), **stats}

    def extras(self, items: list[ScoredItem]) -> dict:
        curves = {}
        for task in PPE_CORRECTNESS_TASKS:
            rows = [it for it in items if it.subset == task]
            if not rows:
                continue
            max_k = min(PPE_MAX_K, min(len(it.rewards) for it in rows))
            picks, oracles = zip(*(best_of_k(it.rewards, [i in set(it.correct) for i in range(len(it.rewards))], max_k) for it in rows))
            curves[task] = {"k": list(range(1, max_k + 1)), "model": np.mean(picks, axis=0).tolist(), "oracle": np.mean(oracles, axis=0).tolist()}
        return {"best_of_k": curves}
