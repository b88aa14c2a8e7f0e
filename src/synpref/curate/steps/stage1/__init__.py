"""Stage 1, the human-in-the-loop rounds: ``init`` and ``seed`` once, then per iteration ``train``,
``retrieve``, ``label``, ``verify`` and ``merge`` (one module each).

Stage 1 works on small sets only: the gold and silver labels, the pairs retrieved in a round
(at most ``k_max`` per gold pair) and the ones sent to verification. The pool itself is read in
batches (its ids, or its embeddings through the memory map), never held.
"""

from __future__ import annotations

from .init import Stage1Init
from .label import Stage1Label
from .merge import Stage1Merge
from .retrieve import Stage1Retrieve
from .seed import Stage1Seed
from .train import Stage1Train
from .verify import Stage1Verify


def stage1_steps(cfg) -> list:
    steps = [Stage1Init(), Stage1Seed()]
    for it in range(cfg.stage1.iterations):
        steps += [Stage1Train(it), Stage1Retrieve(it), Stage1Label(it), Stage1Verify(it), Stage1Merge(it)]
    return steps


__all__ = ["Stage1Init", "Stage1Label", "Stage1Merge", "Stage1Retrieve", "Stage1Seed", "Stage1Train", "Stage1Verify", "stage1_steps"]
