"""Any preference file the format readers understand (or a pool folder): pairwise accuracy.

Records are read by :func:`synpref.ingest.read_records` with the guards ``ingest``
applies (a row it would quarantine is reported in the notes, never fatal); each
becomes pairs by :func:`synpref.schema.expand_to_pairs` (ties give none). A pair is
correct iff reward(preferred) > reward(other), a tie is wrong. One subset per
file; the score is the micro accuracy over all pairs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...formats import Rejection
from ...ingest import read_records
from ...schema import expand_to_pairs
from ..items import EvalItem, ScoredItem
from ..registry import Benchmark, group_mean, register
from .common import pair_won


@register("pairs")
class Pairs(Benchmark):
    title = "Preference pairs"
    rejections_make_incomplete = False  # a user's file has no published size: rejected rows are notes

    def load_local(self, path: Path, rejected: list[Rejection]) -> list[EvalItem]:
        items = []
        for rec in read_records([Path(path)], errors=rejected):
            for k, pair in enumerate(expand_to_pairs(rec)):
                items.append(EvalItem.from_record(pair, self.name, Path(path).name, f"{rec.id}:{k}"))
        return items

    def outcomes(self, items: list[ScoredItem]) -> dict[str, np.ndarray]:
        return {"correct": pair_won(items)}

    def statistics(self, out, strata, names) -> dict[str, float]:
        means = group_mean(out["correct"], strata, len(names))
        return {"score": float(out["correct"].mean()), **{f"subset/{k}": float(v) for k, v in zip(names, means)}}
