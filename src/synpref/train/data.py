"""Training data: pools -> pairs -> held-out split -> encoded pairs -> step plan.

* Pairs come from :func:`synpref.store.pool.read_pool` and
  :func:`synpref.schema.expand_to_pairs` (ties give no pairs and are counted).
* The held-out split is decided by a hash of ``prompt_id``, so every pair that
  shares a prompt lands on the same side: a prompt never straddles train and eval.
* Both candidates are encoded with the reward model's one ``encode`` function; a
  pair is dropped when either side is dropped by the length policy, and counted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..batching import token_budget_batches
from ..schema import Record, expand_to_pairs
from ..text import Encoded, LengthStats


@dataclass
class EncodedPair:
    chosen: Encoded
    rejected: Encoded
    margin: float
    weight: float
    truncated: bool

    @property
    def length(self) -> int:
        """Padded length of the pair in a batch (both sides pad to the longer)."""
        return max(len(self.chosen), len(self.rejected))

    @cached_property
    def shared_prefix(self) -> int:
        """Leading tokens chosen and rejected have in common (each keeps at least one of its own)."""
        from ..model.packing import shared_prefix_length

        return shared_prefix_length(self.chosen, self.rejected)


@dataclass
class PairData:
    train: list[EncodedPair]
    eval: list[EncodedPair]
    counts: dict = field(default_factory=dict)
    sources: list[dict] = field(default_factory=list)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_eval_prompt(prompt_id: str, eval_fraction: float) -> bool:
    """Deterministic held-out membership from the prompt id alone."""
    if eval_fraction <= 0:
        return False
    bucket = int(hashlib.sha256(("synpref-split|" + prompt_id).encode()).hexdigest()[:12], 16) / float(1 << 48)
    return bucket < eval_fraction


def source_checksums(paths: Sequence[str | Path] | None, records: Sequence[Record] | None = None) -> list[dict]:
    """Path and sha256 of every pool file of ``paths`` (or the checksum of in-memory ``records``), as data.json
    lists them, without reading the records."""
    from ..store.pool import pool_files

    if records is not None:
        return [{"path": IN_MEMORY, "sha256": records_checksum(records)}]
    return [{"path": str(Path(f).resolve()), "sha256": sha256_file(f)} for p in paths or [] for f in pool_files(p)]


IN_MEMORY = "<in-memory records>"


def read_pools_with_checksums(paths: Sequence[str | Path]) -> tuple[list[Record], list[dict]]:
    """Records from pool dirs/shards, plus a checksum entry for every file read."""
    from ..store.pool import pool_files, read_pool

    records: list[Record] = []
    sources = []
    for p in paths:
        for f in pool_files(p):
            n0 = len(records)
            records.extend(read_pool(f))
            sources.append({"path": str(Path(f).resolve()), "sha256": sha256_file(f), "records": len(records) - n0})
    return records, sources


def records_checksum(records: Sequence[Record]) -> str:
    """A checksum of in-memory records (their content ids, in order)."""
    h = hashlib.sha256()
    for r in records:
        h.update(r.id.encode())
    return h.hexdigest()


def prepare_pairs(
    rm,
    records: Iterable[Record],
    *,
    eval_fraction: float,
    rating_gap: float = 0.0,
    expand_mode: str = "all",
) -> PairData:
    """Expand, split by prompt and encode. ``rm`` is a :class:`RewardModel`."""
    counts = {"records": 0, "records_without_pairs": 0, "pairs": 0, "pairs_train": 0, "pairs_eval": 0,
              "pairs_dropped_length": 0, "pairs_truncated": 0, "dropped_train": 0, "dropped_eval": 0}
    stats = LengthStats()
    train, held = [], []
    for rec in records:
        counts["records"] += 1
        pairs = list(expand_to_pairs(rec, rating_gap=rating_gap, mode=expand_mode))
        if not pairs:
            counts["records_without_pairs"] += 1
            continue
        side = "eval" if is_eval_prompt(rec.prompt_id, eval_fraction) else "train"
        for k, pair in enumerate(pairs):
            counts["pairs"] += 1
            item = f"{rec.id}:{k}"
            c = rm.encode(pair.conversation(0), stats=stats, item_id=item + ":chosen")
            r = rm.encode(pair.conversation(1), stats=stats, item_id=item + ":rejected")
            if c is None or r is None:
                counts["pairs_dropped_length"] += 1
                counts[f"dropped_{side}"] += 1
                continue
            ep = EncodedPair(c, r, float(pair.margin or 0.0), float(pair.weight), c.truncated or r.truncated)
            counts["pairs_truncated"] += ep.truncated
            (held if side == "eval" else train).append(ep)
    counts["pairs_train"], counts["pairs_eval"] = len(train), len(held)
    counts["sequences"] = stats.to_dict()
    counts["dropped_examples"] = stats.dropped_ids[:20]
    return PairData(train, held, counts)


def load_training_pairs(cfg, rm, records: Iterable[Record] | None = None) -> PairData:
    """The encoded train/held-out pairs of ``cfg.data`` (or of in-memory ``records``), with their sources.

    ``cfg`` is a :class:`~synpref.train.config.TrainConfig`; ``rm`` the model being trained.
    """
    if records is None:
        if not cfg.data:
            raise ValueError("TrainConfig.data is empty: give pool directories to train on")
        recs, sources = read_pools_with_checksums(cfg.data)
    else:
        recs = list(records)
        sources = [{"path": IN_MEMORY, "sha256": records_checksum(recs), "records": len(recs)}]
    if cfg.progress and _main_process():
        from tqdm.auto import tqdm

        recs = tqdm(recs, desc="encoding pairs", unit="record", dynamic_ncols=True, leave=False)
    data = prepare_pairs(rm, recs, eval_fraction=cfg.eval_fraction, rating_gap=cfg.rating_gap, expand_mode=cfg.expand_mode)
    del recs
    if not data.train:
        from ..errors import UserValueError

        where = ", ".join(cfg.data) if records is None else "the given records"
        raise UserValueError(f"no training pairs left in {where} ({data.counts})")
    data.sources = sources
    return data


def _main_process() -> bool:
    from accelerate import PartialState  # the run's process state (started by synpref.train.launch)

    return PartialState().is_main_process


# -- step plan ------------------------------------------------------------------
def epoch_steps(lengths: Sequence[int], pairs_per_step: int, window: int, seed: int, epoch: int) -> list[list[int]]:
    """The optimizer steps of one epoch: lists of pair indices (see TrainConfig docs)."""
    rng = np.random.RandomState((seed * 1_000_003 + epoch) % (2**32))
    order = rng.permutation(len(lengths)).tolist()
    span = pairs_per_step * window
    steps: list[list[int]] = []
    for w in range(0, len(order), span):
        chunk = sorted(order[w : w + span], key=lambda i: (-lengths[i], i))
        steps.extend(chunk[s : s + pairs_per_step] for s in range(0, len(chunk), pairs_per_step))
    if window > 1:
        # keep the (possibly short) last step last so every other step is full
        full = [s for s in steps if len(s) == pairs_per_step]
        short = [s for s in steps if len(s) != pairs_per_step]
        perm = rng.permutation(len(full)).tolist()
        steps = [full[i] for i in perm] + short
    return steps


def micro_batches(step: Sequence[int], lengths: Sequence[int], max_batch_tokens: int) -> list[list[int]]:
    """Split one process's share of a step into token-budget micro-batches.

    The budget counts both sequences of a pair (chosen and rejected share a batch).
    """
    sub = [lengths[i] for i in step]
    return [[step[j] for j in b] for b in token_budget_batches(sub, max(1, max_batch_tokens // 2))]


def shard(step: Sequence[int], rank: int, world: int) -> list[int]:
    return list(step[rank::world])
