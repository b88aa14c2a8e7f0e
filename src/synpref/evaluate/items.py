"""What an evaluation item is, before and after scoring.

Items are built from records (:meth:`EvalItem.from_record`): every benchmark, the
``--pairs`` files and ``synpref bon`` read their files through the format readers
(:mod:`synpref.formats.reading`) and turn each record into an item.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..schema import Conversation, Record, as_candidate, as_conversation
from ..scoring import text_key  # noqa: F401  (re-exported: the judge keys its verdict cache by it)


@dataclass
class EvalItem:
    """One scored unit: a shared context and its candidates, and which candidates are correct.

    ``correct`` lists the indices of the candidates the benchmark labels good (the
    chosen response of a pair, the correct answers of a best-of-K row); None for an
    unlabelled best-of-N prompt. ``meta`` holds what a metric needs beyond that
    (e.g. PPE conflict pairs).
    """

    benchmark: str
    subset: str
    item_id: str
    context: Conversation
    candidates: list[Conversation]
    correct: list[int] | None
    meta: dict = field(default_factory=dict)

    def conversations(self) -> list[Conversation]:
        return [self.context + c for c in self.candidates]

    @classmethod
    def from_record(cls, rec: Record, benchmark: str, subset: str, item_id, *, order: list[int] | None = None, **meta) -> EvalItem:
        """The item of a record; its label gives ``correct`` (:attr:`Record.correct_candidates`).

        ``order`` lists the record's candidate indices in the order the item shows them
        (e.g. a benchmark's original A/B order where the record puts the winner first).
        """
        order = list(range(len(rec.candidates))) if order is None else order
        correct = rec.correct_candidates
        if correct is not None:
            correct = sorted(order.index(i) for i in correct)
        return cls(benchmark, subset, str(item_id), rec.context, [rec.candidates[i] for i in order], correct, meta)

    def scored(self, rewards: list[float]) -> ScoredItem:
        return ScoredItem(self.benchmark, self.subset, self.item_id, list(rewards), self.correct, self.meta)


@dataclass
class ScoredItem:
    """An item's labels with the reward of every candidate (NaN = dropped by the length policy)."""

    benchmark: str
    subset: str
    item_id: str
    rewards: list[float]
    correct: list[int] | None
    meta: dict = field(default_factory=dict)

    def to_row(self, model: str) -> dict:
        return {
            "model": model,
            "benchmark": self.benchmark,
            "subset": self.subset,
            "item_id": self.item_id,
            "rewards": [None if math.isnan(r) else r for r in self.rewards],
            "correct": self.correct,
            "meta": self.meta,
        }

    @classmethod
    def from_row(cls, row: dict) -> ScoredItem:
        rewards = [float("nan") if r is None else float(r) for r in row["rewards"]]
        correct = None if row["correct"] is None else list(row["correct"])
        return cls(row["benchmark"], row["subset"], str(row["item_id"]), rewards, correct, row.get("meta") or {})


def make_item(benchmark: str, subset: str, item_id, context, candidates, correct, **meta) -> EvalItem:
    """Build an item from loose data: a prompt string or message list, response strings or message lists."""
    return EvalItem(
        benchmark,
        subset,
        str(item_id),
        as_conversation(context, "context") if context else (),
        [as_candidate(c, f"candidates[{i}]") for i, c in enumerate(candidates)],
        None if correct is None else list(correct),
        meta,
    )
