"""What the Stage 1 steps share: an iteration's folder and name, the pool's ids in order."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator


def iteration_tag(it: int) -> str:
    return f"stage1/iter-{it:02d}"


def iteration_dir(ctx, it: int) -> Path:
    return ctx.dir / "stage1" / f"iter-{it:02d}"


def pool_ids(ctx) -> Iterator[str]:
    """The ids of the pool being curated (not the gold pool), in order; reads only the id column."""
    for n in ctx.pairs.pool_range:
        yield from ctx.pairs.ids(n)


class IterationStep:
    """Mixin: a step of Stage 1 iteration ``it`` (its name is ``stage1/iter-NN/<kind>``)."""

    kind = ""

    def __init__(self, it: int):
        self.it = it
        self.name = f"{iteration_tag(it)}/{self.kind}"

    def enabled(self, ctx) -> bool:
        return True
