"""``embed``: every pair's embedding (conversation, both responses, attributes) for retrieval.

The vectors go to ``embed/vectors.npy``, a float32 array with one row per pairs row (gold pool
first), created at the first batch and written in place batch by batch through a memory map:
readers map it too, so no step holds the embeddings in RAM. A batch is done once its rows are
flushed to the file and the runner recorded it; a resumed run rewrites the unfinished batch's rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import BatchStep, Done


@dataclass(frozen=True)
class EmbedWork:
    """The embedding of one batch, as the engine runs it (here, or once per Ray actor): the embedder
    loaded once; texts -> float32 vectors (None -> the vectors' length)."""

    model: str
    device: str | None

    def load(self):
        from ..retrieval import Embedder

        embedder = Embedder(self.model, device=self.device)

        def embed(texts):
            return embedder.dim if texts is None else embedder.encode(texts)

        return embed


class EmbedStep(BatchStep):
    name = "embed"
    inputs = ("pairs/", "attributes/")
    outputs = ("embed/vectors.npy",)

    def enabled(self, ctx) -> bool:
        return ctx.needs_embeddings()

    def batches(self, ctx):
        return range(ctx.pairs.n_batches)

    def begin(self, ctx, fresh: bool) -> None:
        path = ctx.dir / "embed" / "vectors.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        from ...model import resolve_device

        device = resolve_device(ctx.device)  # the device each engine's embedder is put on (the driver's default on Ray)
        ctx.log(f"embedding {ctx.pairs.rows} pairs with {ctx.cfg.embedder} on {device} ({ctx.engine.name} engine)")
        self.work = ctx.engine.batch_map(ctx, self.name, EmbedWork(ctx.cfg.embedder, ctx.device), lambda n: self._texts(ctx, n),
                                         self.unfinished(ctx))
        if fresh:
            dim = self.work.once(None)
            self.vectors = np.lib.format.open_memmap(path, mode="w+", dtype="float32", shape=(ctx.pairs.rows, dim))
        else:
            self.vectors = np.load(path, mmap_mode="r+")

    @staticmethod
    def _texts(ctx, n: int) -> list[str]:
        from ..retrieval import pair_text

        return [pair_text(r, a) for r, a in zip(ctx.pairs.records(n), ctx.attributes.batch(n))]

    def run_batch(self, ctx, n: int) -> Done:
        size = ctx.pairs.sizes[n]
        if size:
            start = ctx.pairs.offset(n)
            vectors = self.work(n)
            self.vectors[start : start + size] = vectors
            self.vectors.flush()
        return Done({"n": size})

    def end(self, ctx) -> None:
        if getattr(self, "work", None) is not None:
            self.work.close()
        self.vectors = None
        self.work = None
