"""The shape Stage 2's batch steps share: on with ``stage2.enabled``, over the pool's batches."""

from __future__ import annotations

from ..base import BatchStep


class PoolBatchStep(BatchStep):
    def enabled(self, ctx) -> bool:
        return ctx.cfg.stage2.enabled

    def batches(self, ctx):
        return ctx.pairs.pool_range
