"""What a training run checks before it writes anything to RUN_DIR: the model reference and the pools.

A mistake here (a misspelled model, a pool that ingest kept nothing in) is a
:class:`~synpref.errors.UserError` naming the model or the pool and why, and leaves
RUN_DIR as it was (no config.json, no versions.json).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputNotFoundError, UserValueError
from .config import TrainConfig


def check_inputs(cfg: TrainConfig, *, in_memory: bool = False) -> None:
    """Raise a UserError unless ``cfg.model`` names a loadable model and every pool of ``cfg.data`` holds records.

    ``in_memory``: the run trains on records handed to ``train`` (``cfg.data`` is not read).
    """
    from ..model.loading import check_reference

    check_reference(cfg.model)
    if in_memory:
        return
    if not cfg.data:
        raise UserValueError("no pools to train on", cli="give --data POOL (a folder written by synpref ingest)",
                             api="set TrainConfig.data to pool folders")
    for pool in cfg.data:
        check_pool(pool)


def check_pool(pool: str | Path) -> int:
    """The number of records in ``pool``; a UserError when it is missing, not a pool, or empty."""
    import pyarrow as pa

    from ..store.pool import count_pool

    path = Path(pool)
    if not path.exists():
        raise InputNotFoundError(f"pool {str(path)!r} does not exist", cli="give --data a folder written by synpref ingest")
    try:
        records = count_pool(path)
    except FileNotFoundError:  # a folder without shards: an ingest that kept nothing, or no pool at all
        raise UserValueError(f"pool {str(path)!r} holds no records to train on: {_why_empty(path)}") from None
    except (pa.ArrowInvalid, OSError) as e:
        raise UserValueError(f"pool {str(path)!r} is not a pool shard (Parquet written by synpref ingest): {e}") from None
    if records == 0:
        raise UserValueError(f"pool {str(path)!r} holds no records to train on: {_why_empty(path)}")
    return records


def _why_empty(path: Path) -> str:
    report = path / "report.json"
    if path.is_dir() and report.is_file():
        try:
            counts = json.loads(report.read_text(encoding="utf-8"))
            return (f"its ingest read {counts.get('read')} records and kept {counts.get('kept')} "
                    f"({counts.get('quarantined')} quarantined, {counts.get('duplicates')} duplicates; see {report})")
        except (OSError, ValueError, AttributeError):
            pass
    return "it has no part-*.parquet shards (write one with synpref ingest FILES -o POOL)"
