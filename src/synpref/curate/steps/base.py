"""What a step is: a name, what it reads and writes, and how it runs (whole, or batch by batch).

A :class:`Step` runs whole (:meth:`Step.run`); a :class:`BatchStep` runs one batch at a time
(:meth:`BatchStep.run_batch`), each batch writing its own part files. Neither marks anything done:
the :class:`~synpref.curate.runner.Runner` does, after the outputs are in place, and writes the
ledger entries the step returns. So a step only has to be deterministic and write its outputs
atomically (a part file renamed into place) for a ``kill -9`` to be harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Sequence

if TYPE_CHECKING:
    from ..runner import RunContext


class WaitingForHumans(Exception):
    """A verification batch has no decisions yet (or has unreadable ones); rerun once they are in."""


@dataclass
class Done:
    """What a step (or one batch of it) reports to the runner.

    ``info``: small JSON facts kept in ``state.json`` (a batch's are numbers, summed over the
    batches); ``ledger``: the entries about pairs it decided (written to the step's ledger file).
    """

    info: dict = field(default_factory=dict)
    ledger: Iterable[dict] = ()


class Step:
    name: str = ""  # its key in state.json, e.g. "stage2/judge"
    inputs: tuple[str, ...] = ()  # paths under RUN_DIR (or config keys, in <>) it reads
    outputs: tuple[str, ...] = ()  # paths under RUN_DIR it writes
    ledger: str | None = None  # the ledger file its entries go to (ledger/NAME.jsonl)

    def enabled(self, ctx: "RunContext") -> bool:
        """Whether the config asks for this step (checked when its turn comes)."""
        return True

    def run(self, ctx: "RunContext") -> Done:
        raise NotImplementedError(f"{type(self).__name__} runs in batches")

    def __repr__(self) -> str:
        return f"<step {self.name}>"


class BatchStep(Step):
    """A step that works through batches (usually the pairs batches); it resumes at the first unfinished one."""

    def batches(self, ctx: "RunContext") -> Sequence[int]:
        """The batches it processes, in order (the same on every invocation of the run)."""
        raise NotImplementedError

    def begin(self, ctx: "RunContext", fresh: bool) -> None:
        """Before the first batch of this invocation; ``fresh``: no batch is done yet (start clean)."""

    def run_batch(self, ctx: "RunContext", n: int) -> Done:
        raise NotImplementedError

    def end(self, ctx: "RunContext") -> None:
        """After the last batch of this invocation, or when it stops (free models, connections)."""

    def finish(self, ctx: "RunContext", totals: dict) -> dict:
        """The step's info once every batch is done; ``totals``: the sums of the batches' infos."""
        return totals
