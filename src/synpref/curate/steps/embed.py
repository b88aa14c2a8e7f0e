"""``embed``: every pair's embedding (conversation, both responses, attributes) for retrieval.

The vectors go to ``embed/vectors.npy``, a float32 array with one row per pairs row (gold pool
first), created at the first batch and written in place batch by batch through a memory map:
readers map it too, so no step holds the embeddings in RAM. A batch is done once its rows are
flushed to the file and the runner recorded it; a resumed run rewrites the unfinished batch's rows.
"""

from __future__ import annotations

import numpy as np

from .base import BatchStep, Done


class EmbedStep(BatchStep):
    name = "embed"
    inputs = ("pairs/", "attributes/")
    outputs = ("embed/vectors.npy",)

    def enabled(self, ctx) -> bool:
        return ctx.needs_embeddings()

    def batches(self, ctx):
        return range(ctx.pairs.n_batches)

    def begin(self, ctx, fresh: bool) -> None:
        from ..retrieval import Embedder

        self.embedder = Embedder(ctx.cfg.embedder, device=ctx.device)
        path = ctx.dir / "embed" / "vectors.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        ctx.log(f"embedding {ctx.pairs.rows} pairs with {ctx.cfg.embedder} on {self.embedder.model.device}")
        if fresh:
            dim = self.embedder.dim
            self.vectors = np.lib.format.open_memmap(path, mode="w+", dtype="float32", shape=(ctx.pairs.rows, dim))
        else:
            self.vectors = np.load(path, mmap_mode="r+")

    def run_batch(self, ctx, n: int) -> Done:
        from ..retrieval import pair_text

        records, attrs = ctx.pairs.records(n), ctx.attributes.batch(n)
        if records:
            start = ctx.pairs.offset(n)
            self.vectors[start : start + len(records)] = self.embedder.encode([pair_text(r, a) for r, a in zip(records, attrs)])
            self.vectors.flush()
        return Done({"n": len(records)})

    def end(self, ctx) -> None:
        self.vectors = None
        self.embedder = None
