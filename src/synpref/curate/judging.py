"""Judging pairs of a run: the panel, with each pair's attributes and its nearest human-verified examples.

Stage 1's label step and Stage 2's judge step both judge through :func:`judge_pairs`.
:class:`ExampleFinder` holds the gold pairs only (their records, attributes and embeddings: the
human-verified set, small next to the pool) and finds, for a batch of pairs, up to
``judge.max_examples`` nearest of them by the pairs' memory-mapped embeddings.
"""

from __future__ import annotations

from ..schema import Record


class ExampleFinder:
    def __init__(self, ctx, gold: dict):
        self.m = ctx.cfg.judge.max_examples
        self.index = None
        if self.m <= 0 or not gold or not ctx.has_vectors():
            return
        from .retrieval import NeighbourIndex

        rows = ctx.pairs.rows_of(gold)
        gids = [g for g in gold if g in rows]
        self.vectors = ctx.vectors()
        records = ctx.pairs.take(rows.values())
        attrs = ctx.attributes.take(rows.values())
        self.examples = {g: {"record": records[rows[g]], "attributes": attrs[rows[g]], "label": gold[g]["label"]} for g in gids}
        self.index = NeighbourIndex(gids, self.vectors[[rows[g] for g in gids]] if gids else self.vectors[:0])

    def for_rows(self, rows: list[int], ids: list[str] | None = None) -> list[list[dict]]:
        """The examples of the pairs at global ``rows``, nearest first; with ``ids`` (the pairs' own ids), a
        gold pair is never its own example (``synpref curate plan`` judges gold pairs)."""
        if self.index is None or not rows:
            return [[] for _ in rows]
        if ids is None:
            hits = self.index.search(self.vectors[rows], self.m)
        else:
            hits = [h for r, pid in zip(rows, ids) for h in self.index.search(self.vectors[[r]], self.m, exclude={pid})]
        return [[self.examples[g] for g, _ in h] for h in hits]


def panel_calls_per_pair(cfg) -> int:
    """LLM calls the panel pays for one pair: ``judge.n_samples`` per endpoint (the embedded judge without endpoints)."""
    return cfg.judge.n_samples * max(1, len(cfg.endpoints))


def judge_pairs(panel, finder: ExampleFinder, ids: list[str], records: list[Record], attributes: list, rows: list[int],
                *, not_own_example: bool = False) -> list[dict]:
    """The panel's judgement (``Judgement.to_dict()``) of each pair, in order (``not_own_example``: a gold pair
    is not shown itself, with its verdict, as an example)."""
    if not ids:
        return []
    examples = finder.for_rows(rows, ids if not_own_example else None)
    items = [{"record": r, "pair_id": p, "attributes": a, "examples": ex} for p, r, a, ex in zip(ids, records, attributes, examples)]
    return [j.to_dict() for j in panel.judge_many(items)]


def judgement_row(pair_id: str, j: dict) -> dict:
    """A judgement as a row of the judgements table (:data:`synpref.curate.parts.JUDGEMENTS`)."""
    import json

    return {"pair_id": pair_id, "label": j["label"], "confidence": j["confidence"], "votes": json.dumps(j["votes"], ensure_ascii=False),
            "per_model": json.dumps(j["per_model"], ensure_ascii=False)}


def judgement_of(row: dict) -> dict:
    """The inverse of :func:`judgement_row`."""
    import json

    return {"label": row["label"], "confidence": row["confidence"], "votes": json.loads(row["votes"]),
            "per_model": json.loads(row["per_model"])}
