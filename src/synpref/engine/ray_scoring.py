"""Reward-model scoring on a Ray Data actor pool, a model per actor.

:func:`synpref.scoring.score_once` cuts the distinct texts, longest first, into chunks;
:class:`RayChunkScorer` is a chunk scorer: it hands every chunk to
``map_batches`` over an actor pool (one chunk per call, ``num_gpus`` per actor when the
cluster has GPUs) and yields the rewards back in chunk order. Each actor scores a chunk
with the same function as the local engine (``reward_model_scorer`` or
``RewardModelScorer.score``, hence the same token-budget batches), so rewards equal the
local engine's. A killed actor is restarted by Ray Data and its chunk retried; chunks
come back by index, each exactly once, or the run fails saying which one.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import time
from dataclasses import dataclass, field

from ..evaluate.scorers import RewardModelScorer
from ..schema import Conversation, Message
from ..text import LengthStats
from .ray_cluster import ActorPlan, RayCluster


def encode_conversations(conversations: list[Conversation]) -> str:
    return json.dumps([[[m.role, m.content] for m in conv] for conv in conversations], ensure_ascii=False)


def decode_conversations(text: str) -> list[Conversation]:
    return [tuple(Message(role, content) for role, content in conv) for conv in json.loads(text)]


# -- what an actor loads -----------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    """A reward model as each actor loads it: the command's own model arguments."""

    reference: str
    precision: str = "fp32"
    max_batch_tokens: int = 0
    device: str | None = None


@dataclass(frozen=True)
class RecordModel(ModelSpec):
    """The model of ``synpref score`` (the scoring length policy of ``synpref.text.scoring_policy``, with --max-length/--length-policy)."""

    max_length: int | None = None
    length_policy: str | None = None

    def load(self):
        from ..model import RewardModel
        from ..scoring import reward_model_scorer
        from ..text import scoring_policy

        rm = RewardModel.from_pretrained(self.reference, device=self.device)
        rm.policy = scoring_policy(rm.policy, max_length=self.max_length, length_policy=self.length_policy)

        def score(conversations, names, stats: LengthStats) -> list[float]:
            fn = reward_model_scorer(rm, stats=stats, precision=self.precision, max_batch_tokens=self.max_batch_tokens)
            return fn(conversations, names)

        return score


@dataclass(frozen=True)
class BenchmarkModel(ModelSpec):
    """The model of ``synpref eval``: a :class:`RewardModelScorer` (evaluation length policy) per actor."""

    def load(self):
        scorer = RewardModelScorer(self.reference, precision=self.precision, max_batch_tokens=self.max_batch_tokens, device=self.device)

        def score(conversations, names, stats: LengthStats) -> list[float]:
            scorer.length_stats = stats
            return scorer.score(conversations)

        return score


# -- the actor ---------------------------------------------------------------------------------
class ScoringActor:
    """Holds one loaded model; scores one chunk per call and says how long it took and where."""

    def __init__(self, model, threads: int | None):
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.load_error = b""
        try:
            self.score = model.load()
        except (OSError, ValueError) as e:  # a bad model reference or device: reported on the driver as locally
            self.load_error = _pickled_error(e)

    def __call__(self, batch: dict) -> dict:
        out = {"chunk": [], "rewards": [], "stats": [], "error": [], "seconds": [], "worker": []}
        for chunk, texts, names in zip(batch["chunk"], batch["texts"], batch["names"]):
            conversations, names = decode_conversations(texts), json.loads(names)
            stats = LengthStats()
            start = time.perf_counter()
            try:
                if self.load_error:
                    rewards, error = [], self.load_error
                else:
                    rewards, error = self.score(conversations, names, stats), b""
            except ValueError as e:  # a user-facing error naming the record (a length error): raised again on the driver
                rewards, error = [], _pickled_error(e)
            out["chunk"].append(int(chunk))
            out["rewards"].append(json.dumps([float(r) for r in rewards]))
            out["stats"].append(pickle.dumps(stats))
            out["error"].append(error)
            out["seconds"].append(time.perf_counter() - start)
            out["worker"].append(self.worker)
        return out


def _pickled_error(e: Exception) -> bytes:
    try:
        blob = pickle.dumps(e)
        pickle.loads(blob)
        return blob
    except Exception:  # an exception type that does not survive pickling: keep its type's base and message
        return pickle.dumps((OSError if isinstance(e, OSError) else ValueError)(str(e)))


# -- the driver side -------------------------------------------------------------------------
@dataclass
class ChunkTiming:
    """One chunk: the actor that scored it, its texts, the seconds inside the model, when the driver had it."""

    worker: str
    texts: int
    seconds: float
    received_at: float  # time.perf_counter() on the driver


@dataclass
class RayChunkScorer:
    """A chunk scorer for :func:`~synpref.scoring.score_once`: ``model`` (:class:`RecordModel`,
    :class:`BenchmarkModel`) loaded once per actor; length outcomes merged into ``stats``."""

    cluster: RayCluster
    model: object
    device: str | None = None
    stats: LengthStats = field(default_factory=LengthStats)
    timings: list[ChunkTiming] = field(default_factory=list)
    driver_seconds: float = 0.0  # the driver's own work: chunks encoded out, rewards decoded back

    @property
    def plan(self) -> ActorPlan:
        return self.cluster.actor_plan(self.device)

    def __call__(self, conversations, names) -> list[float]:
        return next(iter(self.score_chunks([(conversations, names)])))

    def score_chunks(self, requests):
        import ray
        from ray.data import ActorPoolStrategy

        start = time.perf_counter()
        items = [{"chunk": i, "texts": encode_conversations(convs), "names": json.dumps(list(names))}
                 for i, (convs, names) in enumerate(requests)]
        self.driver_seconds += time.perf_counter() - start
        if not items:
            return
        plan = self.plan
        ds = ray.data.from_items(items, override_num_blocks=len(items))  # a block per chunk: the unit of work and of retry
        ds = ds.map_batches(
            ScoringActor,
            fn_constructor_args=(self.model, plan.threads if not plan.num_gpus else None),
            batch_size=1,
            compute=ActorPoolStrategy(size=min(plan.count, len(items))),
            num_cpus=plan.num_cpus,
            num_gpus=plan.num_gpus,
        )
        expected = 0
        for row in ds.iter_rows():
            start = time.perf_counter()
            if row["chunk"] != expected:
                raise RuntimeError(f"the Ray actor pool returned chunk {row['chunk']} where chunk {expected} was due "
                                   "(a chunk lost or repeated); nothing was written for this run")
            if row["error"]:
                raise pickle.loads(row["error"])
            self.stats.merge(pickle.loads(row["stats"]))
            rewards = json.loads(row["rewards"])
            self.timings.append(ChunkTiming(row["worker"], len(rewards), row["seconds"], time.perf_counter()))
            expected += 1
            self.driver_seconds += time.perf_counter() - start
            yield rewards
        if expected != len(items):
            raise RuntimeError(f"the Ray actor pool returned {expected} of {len(items)} chunks")


class RayRewardModelScorer(RewardModelScorer):
    """A :class:`RewardModelScorer` whose model runs in a Ray actor pool (same name, cache key, report)."""

    def __init__(self, cluster: RayCluster, reference: str, *, precision: str = "fp32", max_batch_tokens: int = 0,
                 device: str | None = None):
        super().__init__(reference, precision=precision, max_batch_tokens=max_batch_tokens, device=device)
        model = BenchmarkModel(str(reference), precision=precision, max_batch_tokens=max_batch_tokens, device=device)
        self.score_fn = RayChunkScorer(cluster, model, device=device, stats=self.length_stats)

    def score(self, conversations) -> list[float]:
        return self.score_fn(list(conversations), [f"text {i}" for i in range(len(conversations))])

    def describe(self) -> dict:
        plan = self.score_fn.plan
        return {**super().describe(), "engine": {"name": "ray", "actors": plan.count, "gpus_per_actor": plan.num_gpus}}
