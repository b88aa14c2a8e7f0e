"""Pairwise LLM judges: seeded candidate order, self-consistency within a model, vote across models.

For each judge model and each sample ``i < n_samples`` the pair is shown as
"Candidate 1" / "Candidate 2" in an order drawn from a hash of (seed, pair id,
model, i), so the same run always asks the same questions (and hits the cache).
The prompt is the shared pairwise judge prompt (:mod:`synpref.llm.pairwise`, which
the evaluation judge uses too); here it carries the pair's instance guideline and up
to ``max_examples`` retrieved human-verified examples with their attributes and verdicts.

Voting: within a model, the majority of its valid samples (a tie: that model
abstains); across models, the majority of the models that did not abstain (a tie
or no valid vote: undecided, label None). ``confidence`` is the share of all valid
sample votes that agree with the final label (0 when undecided). Labels are in the
record's own orientation: "A" = candidate 0 is better, "B" = candidate 1.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from ..llm import LLMClient
from ..llm.pairwise import JUDGE_SCHEMA, ask_judge, judge_messages, shown_order
from ..schema import Record

__all__ = ["JUDGE_SCHEMA", "JudgePanel", "Judgement", "combine", "majority"]


@dataclass
class Judgement:
    label: str | None  # "A" (candidate 0 better), "B", or None (undecided)
    confidence: float
    votes: list[dict] = field(default_factory=list)  # one per (model, sample)
    per_model: dict = field(default_factory=dict)  # model -> "A" | "B" | None

    def to_dict(self) -> dict:
        # asdict's copy, written out: asdict deep-copies field by field, ~60 us a pair (votes hold scalars)
        return {"label": self.label, "confidence": self.confidence, "votes": [dict(v) for v in self.votes],
                "per_model": dict(self.per_model)}

    @classmethod
    def from_dict(cls, d: dict) -> "Judgement":
        return cls(**d)


def majority(labels: list[str | None]) -> str | None:
    c = Counter(x for x in labels if x is not None)
    if not c:
        return None
    (top, n), *rest = c.most_common()
    if rest and rest[0][1] == n:
        return None
    return top


def combine(votes: list[dict]) -> Judgement:
    """Self-consistency per model, then a vote across models (see the module docstring)."""
    models = list(dict.fromkeys(v["model"] for v in votes))
    per_model = {m: majority([v["vote"] for v in votes if v["model"] == m]) for m in models}
    label = majority(list(per_model.values()))
    valid = [v["vote"] for v in votes if v["vote"] is not None]
    conf = (sum(1 for x in valid if x == label) / len(valid)) if (label and valid) else 0.0
    return Judgement(label, round(conf, 4), votes, per_model)


class JudgePanel:
    """Several judge endpoints, ``n_samples`` each, voted (see the module docstring)."""

    def __init__(self, clients: list[LLMClient], *, n_samples: int = 3, seed: int = 0, max_examples: int = 8,
                 max_chars: int = 1500, example_chars: int = 300, params: dict | None = None, max_repairs: int = 2):
        if not clients:
            raise ValueError("a JudgePanel needs at least one endpoint")
        self.clients = clients
        self.n_samples = n_samples
        self.seed = seed
        self.max_examples = max_examples
        self.max_chars = max_chars
        self.example_chars = example_chars
        self.params = params or {}
        self.max_repairs = max_repairs

    def order(self, pair_id: str, model: str, sample: int) -> tuple[int, int]:
        """Which candidate is shown as Candidate 1 and which as Candidate 2 for this (pair, model, sample)."""
        return shown_order(self.seed, pair_id, model, sample)

    async def _one_vote(self, client: LLMClient, rec: Record, pair_id: str, sample: int, attributes, examples) -> dict:
        model = client.endpoint.label
        order = self.order(pair_id, model, sample)
        msgs = judge_messages(rec.context, rec.candidates[order[0]], rec.candidates[order[1]], attributes=attributes,
                              examples=examples[: self.max_examples], max_chars=self.max_chars, example_chars=self.example_chars)
        answer = await ask_judge(client, msgs, params=self.params, sample=sample, max_repairs=self.max_repairs)
        winner = answer.winner(order)
        vote = {"model": model, "sample": sample, "order": "ba" if order == (1, 0) else "ab", "answer": answer.better,
                "vote": None if winner is None else "AB"[winner]}
        if answer.error is not None:
            vote["error"] = answer.error
        return vote

    async def judge(self, rec: Record, *, attributes: dict | None = None, examples: list[dict] = (), pair_id: str | None = None) -> Judgement:
        pid = pair_id or rec.id
        votes = await asyncio.gather(*(self._one_vote(c, rec, pid, i, attributes, list(examples))
                                       for c in self.clients for i in range(self.n_samples)))
        return combine(list(votes))

    async def _judge_all(self, items: list[dict]) -> list[Judgement]:
        try:
            return await asyncio.gather(*(self.judge(it["record"], attributes=it.get("attributes"), examples=it.get("examples", ()),
                                                     pair_id=it.get("pair_id")) for it in items))
        finally:
            for c in self.clients:
                await c.aclose()

    def judge_many(self, items: list[dict]) -> list[Judgement]:
        """Judge ``[{"record", "attributes"?, "examples"?, "pair_id"?}]`` (sync)."""
        return asyncio.run(self._judge_all(items))
