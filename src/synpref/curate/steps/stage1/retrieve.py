"""``stage1/iter-NN/retrieve``: for each gold pair, its ``k_for(p)`` nearest unverified pool pairs.

Exact cosine search streamed over the memory-mapped embeddings, batch by batch
(:func:`synpref.curate.retrieval.top_k_streaming`): memory is one batch of vectors plus the
``k_max`` best per gold pair. Candidates are pool pairs that are not gold, not LLM- or
human-labelled silver and not rejected. Writes ``retrieved.json`` (ids, in retrieval order) and
``retrieved_rows.json`` (their pairs rows).
"""

from __future__ import annotations


import numpy as np

from ...retrieval import k_for, top_k_streaming
from ...util import atomic_write_json, read_jsonl
from ..base import Done, Step
from .common import IterationStep, iteration_dir


class Stage1Retrieve(IterationStep, Step):
    kind = "retrieve"
    inputs = ("stage1/iter-NN/gold_scores.jsonl", "labels/", "embed/vectors.npy", "pairs/")
    outputs = ("stage1/iter-NN/retrieved.json", "stage1/iter-NN/retrieved_rows.json")

    def run(self, ctx) -> Done:
        d = iteration_dir(ctx, self.it)
        k_max = ctx.cfg.stage1.k_max
        scores = {r["pair_id"]: r["p"] for r in read_jsonl(d / "gold_scores.jsonl")}
        gold, silver = ctx.labels("gold"), ctx.labels("silver")
        used = set(gold) | {p for p, v in silver.items() if v["source"] != "dataset"} | ctx.rejected()
        gold_rows = ctx.pairs.rows_of(gold)
        wanted = [(g, k_for(scores[g], k_max)) for g in gold if g in gold_rows and g in scores]
        vectors = ctx.vectors()
        ids_at: dict[int, str] = {}

        def candidates():
            for n in ctx.pairs.pool_range:
                ids, start = ctx.pairs.ids(n), ctx.pairs.offset(n)
                rows = np.array([start + i for i, p in enumerate(ids) if p not in used], dtype="int64")
                yield rows, vectors[rows] if len(rows) else vectors[:0]

        hits = top_k_streaming(vectors[[gold_rows[g] for g, _ in wanted]], candidates(), k_max) if wanted else []
        picked: dict[int, None] = {}
        for (_g, k), h in zip(wanted, hits):
            for row, _sim in h[:k]:
                picked.setdefault(row)
        rows = list(picked)
        for n in {ctx.pairs.batch_of(r)[0] for r in rows}:
            ids, start = ctx.pairs.ids(n), ctx.pairs.offset(n)
            ids_at.update((start + i, p) for i, p in enumerate(ids))
        atomic_write_json(d / "retrieved.json", [ids_at[r] for r in rows])
        atomic_write_json(d / "retrieved_rows.json", rows)
        return Done({"retrieved": len(rows)})



