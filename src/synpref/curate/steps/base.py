"""What a step is: a name, what it reads and writes, and how it runs (whole, or batch by batch).

A :class:`Step` runs whole (:meth:`Step.run`); a :class:`BatchStep` runs one batch at a time
(:meth:`BatchStep.run_batch`), each batch writing its own part files. Neither marks anything done:
the :class:`~synpref.curate.runner.Runner` does, after the outputs are in place, and writes the
ledger entries the step returns. So a step only has to be deterministic and write its outputs
atomically (a part file renamed into place) for a ``kill -9`` to be harmless.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Sequence

if TYPE_CHECKING:
    from ..runner import RunContext


class RunPaused(Exception):
    """The run stops cleanly before a batch (nothing half done) and resumes when rerun; ``status`` says why."""

    status = "paused"


class WaitingForHumans(RunPaused):
    """A verification batch has no decisions yet (or has unreadable ones); rerun once they are in."""

    status = "waiting for human decisions"


class BudgetExhausted(RunPaused):
    """The next batch would pass ``judge.max_calls`` or ``judge.max_tokens``; rerun once they are raised."""

    status = "stopped at the LLM budget"


@dataclass
class Done:
    """What a step (or one batch of it) reports to the runner.

    ``info``: small JSON facts kept in ``state.json`` (a batch's are numbers, summed over the
    batches); ``ledger``: the entries about pairs it decided (written to the step's ledger file).
    """

    info: dict = field(default_factory=dict)
    ledger: Iterable[dict] = ()


class Step(abc.ABC):
    """A step that runs whole; a subclass must implement :meth:`run` (or derive from :class:`BatchStep`)."""

    name: str = ""  # its key in state.json, e.g. "stage2/judge"
    inputs: tuple[str, ...] = ()  # paths under RUN_DIR (or config keys, in <>) it reads
    outputs: tuple[str, ...] = ()  # paths under RUN_DIR it writes
    ledger: str | None = None  # the ledger file its entries go to (ledger/NAME.jsonl)

    def enabled(self, ctx: "RunContext") -> bool:
        """Whether the config asks for this step (checked when its turn comes)."""
        return True

    @abc.abstractmethod
    def run(self, ctx: "RunContext") -> Done:
        """Do the whole step, writing its outputs atomically; the runner marks it done afterwards."""

    def __repr__(self) -> str:
        return f"<step {self.name}>"


class BatchStep(Step):
    """A step that works through batches (usually the pairs batches); it resumes at the first unfinished one."""

    def run(self, ctx: "RunContext") -> Done:
        raise TypeError(f"{self.name} runs batch by batch: the Runner calls run_batch for each unfinished batch")

    @abc.abstractmethod
    def batches(self, ctx: "RunContext") -> Sequence[int]:
        """The batches it processes, in order (the same on every invocation of the run)."""

    def begin(self, ctx: "RunContext", fresh: bool) -> None:
        """Before the first batch of this invocation; ``fresh``: no batch is done yet (start clean)."""

    @abc.abstractmethod
    def run_batch(self, ctx: "RunContext", n: int) -> Done:
        """Process batch ``n`` and write its part files atomically."""

    def llm_calls_per_pair(self, ctx: "RunContext") -> int:
        """LLM calls the step pays for each pair it sends to the LLM (0: it pays none), repairs of invalid answers aside."""
        return 0

    def llm_pairs(self, ctx: "RunContext", n: int) -> int:
        """Pairs of batch ``n`` the step sends to the LLM (its inputs exist: it is the step's turn)."""
        return 0

    def llm_plan(self, ctx: "RunContext") -> tuple[int, bool]:
        """``(pairs, exact)``: the pairs its unfinished batches will send to the LLM; before the step's
        inputs exist, an upper bound (``exact`` False). Nothing is paid or trained to know it."""
        return 0, True

    def unfinished(self, ctx: "RunContext") -> Sequence[int]:
        """The batches not done yet (the step's inputs exist)."""
        return list(self.batches(ctx))[ctx.state.batches_done(self.name):]

    def end(self, ctx: "RunContext") -> None:
        """After the last batch of this invocation, or when it stops (free models, connections)."""

    def finish(self, ctx: "RunContext", totals: dict) -> dict:
        """The step's info once every batch is done; ``totals``: the sums of the batches' infos."""
        return totals
