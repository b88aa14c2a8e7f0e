"""The shape Stage 2's batch steps share: on with ``stage2.enabled``, over the pool's batches."""

from __future__ import annotations

from ...stages import Stage2Rule, stage2_rule
from ..base import BatchStep


def configured_rule(ctx) -> Stage2Rule:
    """The rule ``stage2.rule`` names, with ``stage2.band``."""
    return stage2_rule(ctx.cfg.stage2.rule, ctx.cfg.stage2.band)


def objectivity_of(ctx, rule: Stage2Rule, n: int) -> dict[str, str | None]:
    """Each pair of pairs batch ``n``: its ``objectivity`` attribute (None without); empty when the rule does not use it."""
    if "objectivity" not in rule.uses:
        return {}
    return {pid: (a or {}).get("objectivity") for pid, a in zip(ctx.pairs.ids(n), ctx.attributes.batch(n))}


class PoolBatchStep(BatchStep):
    def enabled(self, ctx) -> bool:
        return ctx.cfg.stage2.enabled

    def batches(self, ctx):
        return ctx.pairs.pool_range
