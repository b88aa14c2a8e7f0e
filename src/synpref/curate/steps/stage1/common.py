"""What the Stage 1 steps share: an iteration's folder and name."""

from __future__ import annotations

from pathlib import Path


def iteration_tag(it: int) -> str:
    return f"stage1/iter-{it:02d}"


def iteration_dir(ctx, it: int) -> Path:
    return ctx.dir / "stage1" / f"iter-{it:02d}"


class IterationStep:
    """Mixin: a step of Stage 1 iteration ``it`` (its name is ``stage1/iter-NN/<kind>``)."""

    kind = ""

    def __init__(self, it: int):
        self.it = it
        self.name = f"{iteration_tag(it)}/{self.kind}"

    def enabled(self, ctx) -> bool:
        return True
