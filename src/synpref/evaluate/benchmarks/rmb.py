"""RMB: pairwise and best-of-N accuracy for Helpfulness and Harmlessness.

Pairwise: correct iff reward(chosen) > reward(rejected) (a tie is wrong).
Best-of-N: correct iff the best response strictly outscores every loser.
Four cells (Helpfulness/Harmlessness x pairwise/BoN), each a micro accuracy over
its items; the score is the mean of the four cells.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...formats import Rejection, expand_sources, strip_data_suffix
from ...schema import Record
from ..constants import RMB_CATEGORY_FILES, RMB_GOALS, RMB_SETS
from ..items import EvalItem, ScoredItem
from ..registry import Benchmark, group_mean, register
from .common import best_beats_all

CELLS = tuple(f"{goal} {kind}" for goal in RMB_GOALS for kind in RMB_SETS)
SET_FORMATS = {"pairwise": "rmb-pairwise", "bon": "rmb-best-of-n"}  # the format reader of each set


@register("rmb")
class RMB(Benchmark):
    title = "RMB"
    hub = None  # published on GitHub only (RMB_dataset/ folder)

    def load_local(self, folder: Path, rejected: list[Rejection]) -> list[EvalItem]:
        folder = Path(folder)
        if not any((folder / d).is_dir() for d in RMB_SETS.values()) and (folder / "RMB_dataset").is_dir():
            folder = folder / "RMB_dataset"
        items = []
        for kind, dirname in RMB_SETS.items():
            if not (folder / dirname).is_dir():
                continue
            for path in expand_sources([folder / dirname]):
                rel = path.relative_to(folder / dirname)
                category = (rel.parent / strip_data_suffix(rel)).as_posix()
                items += self.items(self.read(path, rejected, format=SET_FORMATS[kind]), rejected, kind=kind, category=category)
        if not items and not rejected:
            raise FileNotFoundError(f"{folder}: no RMB files (expected {'/ and '.join(RMB_SETS.values())}/)")
        return items

    def item(self, rec: Record, kind: str, category: str) -> EvalItem:
        goal = category.split("/")[0]
        uid = rec.meta.get("pair_uid" if kind == "pairwise" else "bon_uid", f"{category}:{rec.provenance.row}")
        return EvalItem.from_record(rec, self.name, f"{goal} {kind}", f"{kind}:{uid}", category=category)

    def missing_parts(self, items: list[EvalItem]) -> list[str]:
        missing = []
        for kind in RMB_SETS:
            have = {it.meta["category"] for it in items if it.subset.endswith(kind)}
            missing += [f"{kind}: {c}" for c in RMB_CATEGORY_FILES if c not in have]
        return missing

    def outcomes(self, items: list[ScoredItem]) -> dict[str, np.ndarray]:
        return {"correct": best_beats_all(items)}

    def statistics(self, out, strata, names) -> dict[str, float]:
        means = dict(zip(names, group_mean(out["correct"], strata, len(names)).tolist()))
        cells = [means[c] for c in CELLS if c in means]
        return {"score": float(np.mean(cells)) if cells else float("nan"), **{f"subset/{k}": v for k, v in means.items()}}
