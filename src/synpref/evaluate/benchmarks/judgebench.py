"""JudgeBench with a reward model as the judge.

Labels are ``A>B`` or ``B>A``; the reward-model judge says ``A>B`` iff
reward(A) > reward(B), else ``B>A`` (so a tie reads as ``B>A``). Per
response-model split we report the official micro accuracy over all pairs and
the macro mean over the four categories (knowledge = mmlu-pro-*, reasoning =
livebench-reasoning, math = livebench-math, coding = livecodebench) that
Skywork reports. The score is the macro accuracy of the GPT-4o split (the
split the JudgeBench leaderboard ranks on), or of the only split present.
"""

from __future__ import annotations

import numpy as np

from ..constants import JUDGEBENCH_CATEGORIES, JUDGEBENCH_CATEGORY_OF_SOURCE, JUDGEBENCH_HEADLINE_SPLIT, JUDGEBENCH_HUB
from ...formats import FormatError, strip_data_suffix
from ...schema import Record
from ..items import EvalItem, ScoredItem
from ..registry import Benchmark, meta_field, register

LABELS = ("A>B", "B>A")


def category_of(source: str) -> str | None:
    for prefix, category in JUDGEBENCH_CATEGORY_OF_SOURCE:
        if source.startswith(prefix):
            return category
    return None


def judge_verdict(reward_a: float, reward_b: float) -> str:
    return "A>B" if reward_a > reward_b else "B>A"


@register("judgebench")
class JudgeBench(Benchmark):
    title = "JudgeBench"
    hub = JUDGEBENCH_HUB
    format = "judgebench"

    def item(self, rec: Record) -> EvalItem:
        split = rec.meta.get("response_model") or strip_data_suffix(rec.provenance.source)
        source = meta_field(rec, "source")
        category = category_of(source)
        if category is None:
            known = ", ".join(prefix + "*" for prefix, _ in JUDGEBENCH_CATEGORY_OF_SOURCE)
            raise FormatError(f"unknown JudgeBench source {source!r} (expected {known})", "source", "invalid_record")
        # The reader puts the winner first; the item keeps the published A/B order.
        order = [1, 0] if rec.meta.get("original_order") == ["B", "A"] else [0, 1]
        item_id = f"{split}:{rec.meta.get('pair_id', rec.provenance.row)}"
        return EvalItem.from_record(rec, self.name, category, item_id, order=order, split=split, source=source)

    def missing_parts(self, items: list[EvalItem]) -> list[str]:
        missing = []
        for split in sorted({it.meta["split"] for it in items}):
            have = {it.subset for it in items if it.meta["split"] == split}
            missing += [f"{split}: {c}" for c in JUDGEBENCH_CATEGORIES if c not in have]
        return missing

    def strata(self, items: list[ScoredItem]) -> list[str]:
        return [f"{it.meta['split']}/{it.subset}" for it in items]

    def outcomes(self, items: list[ScoredItem]) -> dict[str, np.ndarray]:
        # A NaN reward (dropped input, unparseable judge answer) is always wrong.
        right = [
            it.rewards[0] == it.rewards[0] and it.rewards[1] == it.rewards[1] and judge_verdict(it.rewards[0], it.rewards[1]) == LABELS[it.correct[0]]
            for it in items
        ]
        return {"correct": np.array(right, dtype=float)}

    def statistics(self, out, strata, names) -> dict[str, float]:
        k = len(names)
        hits = np.bincount(strata, weights=out["correct"], minlength=k)
        counts = np.bincount(strata, minlength=k)
        splits = sorted({n.split("/")[0] for n in names})
        stats = {}
        for split in splits:
            codes = [c for c, n in enumerate(names) if n.split("/")[0] == split]
            per_cat = {names[c].split("/", 1)[1]: hits[c] / counts[c] for c in codes if counts[c]}
            stats[f"{split}/micro"] = float(hits[codes].sum() / counts[codes].sum())
            stats[f"{split}/macro"] = float(np.mean([per_cat[c] for c in JUDGEBENCH_CATEGORIES if c in per_cat]))
            stats.update({f"{split}/{c}": float(v) for c, v in per_cat.items()})
        headline = JUDGEBENCH_HEADLINE_SPLIT if JUDGEBENCH_HEADLINE_SPLIT in splits else (splits[0] if splits else None)
        if headline:
            stats.update({f"subset/{c}": stats[f"{headline}/{c}"] for c in JUDGEBENCH_CATEGORIES if f"{headline}/{c}" in stats})
            stats["headline_split_micro"] = stats[f"{headline}/micro"]
        return {"score": stats[f"{headline}/macro"] if headline else float("nan"), **stats}
