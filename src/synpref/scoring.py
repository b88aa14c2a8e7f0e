"""The one scoring helper: each distinct conversation scored once, rewards handed back per group.

:func:`score_once` serves ``synpref score`` (:func:`score_records`), ``synpref eval``
(every benchmark's items, with a reward cache) and ``synpref bon`` (the candidates of
each prompt). A *group* is the conversations of one record or item (context +
candidate, one per candidate); identical conversations, within a group or across
groups, are scored once. Texts are identified exactly (:func:`text_key`, no
normalisation: a reward may depend on white space).

:func:`rank_indices` and :func:`choose` order one group's rewards best first, for
best-of-N here and in the server.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .schema import Conversation, Record

if TYPE_CHECKING:  # the model (torch) is only needed by callers that score with one
    from .model import RewardModel
    from .text import LengthStats

CHUNK = 256  # conversations per scoring call (and per cache commit)

# score(conversations, names) -> one reward per conversation; names[i] names conversation i in errors.
ScoreFn = Callable[[list[Conversation], list[str]], list[float]]


def text_key(conversation: Conversation) -> str:
    """Exact identity of a scored text (no normalisation: the reward may depend on white space)."""
    body = json.dumps([[m.role, m.content] for m in conversation], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()[:32]


@dataclass
class ScoringStats:
    distinct_texts: int = 0
    from_cache: int = 0
    scored: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        rate = self.scored / self.seconds if self.seconds > 0 else None
        return {**self.__dict__, "texts_per_second": rate}


def score_once(
    score: ScoreFn,
    groups: Sequence[Sequence[Conversation]],
    *,
    names: Sequence[str] | None = None,
    cache=None,
    chunk: int = CHUNK,
    progress: bool = False,
    desc: str = "scoring",
) -> tuple[list[list[float]], ScoringStats]:
    """Rewards of every conversation of every group, each distinct conversation scored once.

    ``names[g]`` names group g: its conversation j is called ``"<name> candidate <j>"``
    where the scorer reports it (a length error, a dropped input). ``cache`` (a
    :class:`~synpref.evaluate.cache.RewardCache`) supplies known rewards and stores
    new ones after every ``chunk`` texts, so an interrupted run resumes. Texts are
    scored longest first, so each call holds texts of similar length (tight batches).
    A ``score`` with a ``score_chunks(requests)`` method (the Ray engine's actor pool,
    :class:`synpref.engine.ray_scoring.RayChunkScorer`) gets every chunk's
    ``(conversations, names)`` at once and yields their rewards in order: the same
    chunks as here, so the same batches and the same rewards.
    """
    start = time.perf_counter()
    keys_per_group: list[list[str]] = []
    texts: dict[str, Conversation] = {}
    labels: dict[str, str] = {}
    for g, group in enumerate(groups):
        keys = []
        for j, conv in enumerate(group):
            key = text_key(conv)
            if key not in texts:
                texts[key] = conv
                labels[key] = f"{names[g]} candidate {j}" if names is not None else f"group {g} candidate {j}"
            keys.append(key)
        keys_per_group.append(keys)
    rewards = cache.get_many(texts) if cache is not None else {}
    stats = ScoringStats(distinct_texts=len(texts), from_cache=len(rewards))
    todo = sorted((k for k in texts if k not in rewards), key=lambda k: -sum(len(m.content) for m in texts[k]))
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=desc, unit="text")
    parts = [todo[begin : begin + chunk] for begin in range(0, len(todo), chunk)]
    requests = (([texts[k] for k in part], [labels[k] for k in part]) for part in parts)
    # A chunk scorer (the Ray engine's actor pool) takes every chunk at once and yields each one's rewards in order.
    results = score.score_chunks(requests) if hasattr(score, "score_chunks") else (score(*request) for request in requests)
    done = 0
    try:
        for part, values in zip(parts, results):
            done += 1
            if len(values) != len(part):
                raise RuntimeError(f"the scorer returned {len(values)} rewards for {len(part)} conversations")
            rewards.update(zip(part, values))
            if cache is not None:
                cache.put_many(zip(part, values))
            if bar is not None:
                bar.update(len(part))
    finally:
        if bar is not None:
            bar.close()
    if done != len(parts):
        raise RuntimeError(f"the scorer returned rewards for {done} of {len(parts)} chunks")
    stats.scored = len(todo)
    stats.seconds = time.perf_counter() - start
    return [[rewards[k] for k in keys] for keys in keys_per_group], stats


def reward_model_scorer(rm: RewardModel, *, stats: LengthStats | None = None, normalize: bool = False, **score_kwargs) -> ScoreFn:
    """A :data:`ScoreFn` over a loaded reward model (``score_kwargs``: ``max_batch_tokens``, ``precision``, ...).

    Each conversation is encoded under its name, so a length error or a dropped input
    names the record or prompt it belongs to.
    """

    def score(conversations: list[Conversation], names: list[str]) -> list[float]:
        encoded = [rm.encode(conv, stats=stats, item_id=name) for conv, name in zip(conversations, names)]
        return rm.score_encoded(encoded, normalize=normalize, **score_kwargs)

    return score


def record_name(rec: Record) -> str:
    """Where a record came from (``file row N``), else its id."""
    prov = rec.provenance
    return f"{prov.source} row {prov.row}" if prov.source else rec.id


def score_records(
    rm: RewardModel,
    records: Iterable[Record],
    *,
    stats: LengthStats | None = None,
    progress: bool = False,
    **score_kwargs,
) -> list[dict]:
    """One row per record: id, kind, meta and the reward of each candidate (NaN if dropped)."""
    return score_records_with(reward_model_scorer(rm, stats=stats, **score_kwargs), records, progress=progress)


def score_records_with(score: ScoreFn, records: Iterable[Record], *, progress: bool = False) -> list[dict]:
    """:func:`score_records` with any :data:`ScoreFn` (a chunk scorer of the Ray engine included)."""
    records = list(records)
    rewards, _ = score_once(
        score,
        [[rec.conversation(i) for i in range(len(rec.candidates))] for rec in records],
        names=[record_name(rec) for rec in records],
        progress=progress,
    )
    return [{"id": rec.id, "kind": rec.kind, "rewards": r, "meta": rec.meta} for rec, r in zip(records, rewards)]


# -- best first ----------------------------------------------------------------------
def rank_indices(rewards: list[float]) -> list[int]:
    """Indices best first; NaN (dropped by the length policy) last; ties keep input order."""
    return sorted(range(len(rewards)), key=lambda i: (math.isnan(rewards[i]), 0.0 if math.isnan(rewards[i]) else -rewards[i], i))


def choose(rewards: list[float]) -> int | None:
    """Index of the highest reward; None when every candidate was dropped (or there is none)."""
    ranking = rank_indices(rewards)
    return ranking[0] if ranking and not math.isnan(rewards[ranking[0]]) else None
