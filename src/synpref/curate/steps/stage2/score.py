"""``stage2/score``: p(label) under the current RM(s) and the gold RM for every pool pair that is
not gold and not rejected; part n of ``stage2/scores/`` = those pairs of pairs batch n, in order.
A pair's label is its silver label (Stage 1's LLM judges), else the pool's ("A")."""

from __future__ import annotations

from dataclasses import dataclass

from ...parts import SCORES, PartDir
from ...rm import CrossFitScorer, CurrentRMs, PairEncodings, RMScorer
from ..base import Done
from .common import PoolBatchStep


@dataclass(frozen=True)
class ScoreWork:
    """The scoring of one batch, as the engine runs it (here, or once per Ray actor): the current RM(s)
    and the gold RM loaded once; ``(ids, records, labels)`` -> the batch's score rows."""

    current: dict  # CurrentRMs.to_dict()
    gold_rm: str
    device: str | None

    def load(self):
        current = CrossFitScorer(CurrentRMs.from_dict(self.current), self.device)
        gold_rm = RMScorer(self.gold_rm, self.device)

        def score(payload):
            ids, records, labels = payload
            encodings = PairEncodings(records)  # encoded once for every RM that shares a tokenizer
            pc = current.probs(ids, records, labels, encodings)
            pg = gold_rm.probs(records, labels, encodings)
            return [{"pair_id": p, "label": lab, "p_current": a, "p_gold": b} for p, lab, a, b in zip(ids, labels, pc, pg)]

        return score


class Stage2Score(PoolBatchStep):
    name = "stage2/score"
    inputs = ("pairs/", "stage2/gold_rm/", "stage2/current_rm*/", "labels/")
    outputs = ("stage2/scores/part-NNNNN.parquet",)

    def begin(self, ctx, fresh: bool) -> None:
        trained = ctx.state.get("stage2/rms")
        self.parts = PartDir(ctx.dir / "stage2" / "scores", SCORES)
        if fresh:
            self.parts.clear()
        self.skip = set(ctx.gold()) | ctx.rejected()  # gold pairs are decided; rejected ones are out for good
        self.silver = ctx.labels("silver")
        ctx.log(f"stage2: scoring {ctx.pairs.pool_rows} pool pairs with the current and gold RMs")
        work = ScoreWork(trained["current"], str(trained["gold_rm"]), ctx.device)
        self.work = ctx.engine.batch_map(ctx, self.name, work, lambda n: self._inputs(ctx, n), self.unfinished(ctx))

    def _inputs(self, ctx, n: int):
        ids, records = ctx.pairs.ids(n), ctx.pairs.records(n)
        mine = [i for i, p in enumerate(ids) if p not in self.skip]
        ids, records = [ids[i] for i in mine], [records[i] for i in mine]
        return ids, records, [self.silver.get(p, {}).get("label", "A") for p in ids]

    def run_batch(self, ctx, n: int) -> Done:
        rows = self.work(n)
        self.parts.write(n, rows)
        return Done({"scored": len(rows)})

    def end(self, ctx) -> None:
        if getattr(self, "work", None) is not None:
            self.work.close()
        self.work = None
