"""Offline best-of-N (``synpref bon``): score every candidate of every prompt, pick the highest reward.

Inputs are read through the format readers (:func:`synpref.ingest.read_records`, the one
row -> record path), so any file or pool whose records have two or more candidates
works, each file's format detected from its first row:

* candidate files (format ``candidates``): ``{"id"?, "prompt", "candidates" | "responses", "correct"?}``;
* PPE best-of-K (format ``ppe-correctness``): ids ``task:question_id:model_name``, the
  same as the ``ppe-correctness`` benchmark's (the task is named by the file's path
  below the given folder, as the benchmark names it; else the file name);
* any other format, e.g. RMB ``BoN_set`` (a ranking: ``bon_best`` is correct).

Which candidates are correct is the record's label (:attr:`synpref.schema.Record.correct_candidates`);
unlabelled prompts get a choice but no correctness. Empty responses and identical
candidates are kept (``allow_degenerate``): they are candidates like any other.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ..formats import Rejection, expand_sources, strip_data_suffix
from ..ingest import ReadError, is_pool, read_records
from ..schema import Record
from ..scoring import choose, rank_indices, reward_model_scorer, score_once
from ..text import LengthStats
from .benchmarks.ppe import correctness_item_id, task_of
from .items import EvalItem

BENCHMARK = "bon"


def bon_item_id(rec: Record, rel: str) -> str:
    """The id of a best-of-N prompt: the PPE benchmark's for PPE rows, else the row's id / ``bon_uid`` / content id."""
    if rec.provenance.format == "ppe-correctness":
        return correctness_item_id(rec, task_of(rel) or strip_data_suffix(rel))
    return str(rec.meta.get("id") or rec.meta.get("bon_uid") or rec.id)


def read_bon_items(inputs: Iterable[str | Path], rejected: list[Rejection] | None = None) -> Iterator[EvalItem]:
    """Best-of-N items (subset = the file below its input) from files, folders or pools.

    A row that cannot be read, or a record with fewer than two candidates, is
    appended to ``rejected`` (raised as :class:`~synpref.ingest.ReadError` when it is None).
    """

    for root in map(Path, inputs):
        paths = [root] if is_pool(root) else expand_sources([root])
        for path in paths:
            rel = path.relative_to(root).as_posix() if root.is_dir() and path != root else path.name
            for rec in read_records([path], errors=rejected, allow_degenerate=True):
                if len(rec.candidates) < 2:
                    message = f"a {rec.kind} record with {len(rec.candidates)} candidate(s): best-of-N needs two or more"
                    rejection = Rejection(rec.provenance.source, rec.provenance.row, "too_few_candidates", "candidates", message, record=rec)
                    if rejected is None:
                        raise ReadError(rejection)
                    rejected.append(rejection)
                    continue
                yield EvalItem.from_record(rec, BENCHMARK, rel, bon_item_id(rec, rel), source=rec.provenance.source)


def run_bon(
    rm,
    items: Iterable[EvalItem],
    *,
    normalize: bool = False,
    chunk_items: int = 256,
    stats: LengthStats | None = None,
    on_chunk: Callable[[int], None] | None = None,
    **score_kwargs,
) -> Iterator[dict]:
    """One row per item: id, chosen index, rewards, ranking (and correctness when labelled).

    Items are scored ``chunk_items`` prompts at a time by :func:`synpref.scoring.score_once`
    (each distinct conversation once; a length error names the prompt and candidate),
    so output streams and memory stays flat. ``on_chunk(prompts)`` is called after each
    chunk is scored, with its number of prompts (progress, time estimates).
    """
    score = reward_model_scorer(rm, stats=stats, normalize=normalize, **score_kwargs)
    chunk: list[EvalItem] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= chunk_items:
            yield from _score_chunk(score, chunk, on_chunk)
            chunk = []
    if chunk:
        yield from _score_chunk(score, chunk, on_chunk)


def _score_chunk(score, chunk: list[EvalItem], on_chunk: Callable[[int], None] | None) -> Iterator[dict]:
    rewards, _ = score_once(score, [item.conversations() for item in chunk], names=[item.item_id for item in chunk])
    if on_chunk is not None:
        on_chunk(len(chunk))
    for item, mine in zip(chunk, rewards):
        chosen = choose(mine)
        row = {
            "id": item.item_id,
            "n": len(mine),
            "chosen": chosen,
            "rewards": [None if math.isnan(r) else r for r in mine],
            "ranking": rank_indices(mine),
        }
        if item.correct is not None:
            correct = [i in item.correct for i in range(len(mine))]
            row["correct"] = correct
            row["chosen_correct"] = None if chosen is None else correct[chosen]
        yield row
