"""Stage 2, no humans, fully streaming: ``rms`` (training the gold RM and the current RMs), then, batch by
batch over the pool, ``score`` -> ``judge`` -> ``decide`` -> ``write`` (one module each).

Each batch step reads part n of its inputs and writes part n of its output, so the pool, its
scores, its judgements and its decisions are never held: only one batch of each at a time, plus
the labels (gold, silver, rejected: small) and the models.
"""

from __future__ import annotations

from .decide import Stage2Decide
from .judge import Stage2Judge
from .rms import Stage2RMs
from .score import Stage2Score
from .write import Stage2Write


def stage2_steps(cfg) -> list:
    return [Stage2RMs(), Stage2Score(), Stage2Judge(), Stage2Decide(), Stage2Write()]


__all__ = ["Stage2Decide", "Stage2Judge", "Stage2RMs", "Stage2Score", "Stage2Write", "stage2_steps"]
