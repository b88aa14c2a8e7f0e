"""Things that give a reward to a conversation: reward models and length baselines.

Every scorer has a ``name`` (shown in reports), a ``key`` (identifies its
rewards in the cache) and ``score(conversations) -> list[float]``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..text import LengthStats, TextPolicy, scoring_policy


class LengthScorer:
    """Reward = ±(characters in the final response): the 'longer wins' / 'shorter wins' baselines."""

    kind = "baseline"

    def __init__(self, longer: bool):
        self.sign = 1.0 if longer else -1.0
        self.name = "length: longer wins" if longer else "length: shorter wins"
        self.key = "length-longer" if longer else "length-shorter"

    def score(self, conversations) -> list[float]:
        return [self.sign * len(conv[-1].content) for conv in conversations]


def length_baselines() -> list[LengthScorer]:
    return [LengthScorer(longer=True), LengthScorer(longer=False)]


def _saved_policy(path: Path) -> TextPolicy:
    config = path / "config.json"
    if config.is_file():
        saved = (json.loads(config.read_text()).get("synpref") or {}).get("text_policy")
        if saved:
            return TextPolicy(**saved)
    return TextPolicy()


def saved_scoring_policy(reference: str, **overrides) -> TextPolicy:
    """The scoring policy a model loaded from ``reference`` applies (its saved policy through
    :func:`synpref.text.scoring_policy`), read from its files without loading it."""
    from ..model.loading import resolve

    path = Path(resolve(reference))
    return scoring_policy(_saved_policy(path) if path.is_dir() else TextPolicy(), **overrides)


def model_key(reference: str, precision: str) -> tuple[str, TextPolicy]:
    """(cache key, text policy used) from the checkpoint's files (names, sizes, mtimes), policy and precision."""
    from ..model.loading import resolve

    path = Path(resolve(reference))
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        basis = [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]
        policy = scoring_policy(_saved_policy(path))
    else:  # a hub id: the name is all we know without downloading
        basis, policy = str(path), scoring_policy(TextPolicy())
    blob = json.dumps({"files": basis, "policy": policy.to_dict(), "precision": precision}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20], policy


class RewardModelScorer:
    """A RewardModel, loaded only when something must be scored."""

    kind = "reward-model"

    def __init__(self, reference: str, *, precision: str = "fp32", max_batch_tokens: int = 0, device: str | None = None):
        self.name = str(reference)
        self.reference = reference
        self.precision = precision
        self.max_batch_tokens = max_batch_tokens
        self.device = device  # None: the device synpref.model picks
        self.key, self.policy = model_key(reference, precision)
        self.length_stats = LengthStats()
        self._model = None

    @property
    def model(self):
        if self._model is None:
            from ..model import RewardModel

            self._model = RewardModel.from_pretrained(self.reference, policy=self.policy, device=self.device)
        return self._model

    def score(self, conversations) -> list[float]:
        return self.model.score(
            conversations, max_batch_tokens=self.max_batch_tokens, precision=self.precision, stats=self.length_stats
        )

    def describe(self) -> dict:
        return {"model": self.reference, "kind": self.kind, "model_key": self.key, "precision": self.precision, "text_policy": self.policy.to_dict(),
                "length_outcomes_of_texts_scored_this_run": self.length_stats.to_dict()}
