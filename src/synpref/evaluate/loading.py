"""Find and load each benchmark's data: a local folder in its published layout, else the hub."""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..formats import Rejection
from .constants import DEFAULT_FOLDERS
from .items import EvalItem
from .registry import get_benchmark

log = logging.getLogger(__name__)


@dataclass
class LoadedBenchmark:
    name: str  # key in results ("rmb", "pairs:my.jsonl")
    module: str  # registry name of its metric module
    items: list[EvalItem] = field(default_factory=list)
    source: str | None = None
    missing: list[str] = field(default_factory=list)
    limited_to: int | None = None
    absent_reason: str | None = None
    notes: list[str] = field(default_factory=list)

    def info(self) -> dict:
        return {
            "module": self.module,
            "source": self.source,
            "missing": self.missing,
            "limited_to": self.limited_to,
            "absent_reason": self.absent_reason,
            "notes": self.notes,
            "n_items": len(self.items),
        }


def find_folder(name: str, data_dir) -> Path | None:
    """The folder for benchmark ``name``: ``data_dir[name]`` or a known sub-folder of ``data_dir``."""
    if data_dir is None:
        return None
    if isinstance(data_dir, dict):
        path = data_dir.get(name)
        return Path(path) if path is not None and Path(path).exists() else None
    base = Path(data_dir)
    for sub in DEFAULT_FOLDERS.get(name, (name,)):
        if (base / sub).exists():
            return base / sub
    return None


def hub_allowed() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() not in ("1", "true", "yes") and os.environ.get("HF_DATASETS_OFFLINE", "").lower() not in ("1", "true", "yes")


def limit_items(items: list[EvalItem], limit: int, strata: list[str] | None = None) -> list[EvalItem]:
    """At most ``limit`` items, taken round-robin across strata (default: subsets) so each stays represented."""
    by_subset: dict[str, list[EvalItem]] = defaultdict(list)
    for it, key in zip(items, strata or [it.subset for it in items]):
        by_subset[key].append(it)
    queues = list(by_subset.values())
    out: list[EvalItem] = []
    depth = 0
    while len(out) < limit and any(depth < len(q) for q in queues):
        for q in queues:
            if depth < len(q) and len(out) < limit:
                out.append(q[depth])
        depth += 1
    return out


def load_benchmark(name: str, data_dir=None, *, limit: int | None = None, use_hub: bool | None = None) -> LoadedBenchmark:
    bench = get_benchmark(name)
    loaded = LoadedBenchmark(name, name)
    folder = find_folder(name, data_dir)
    rejected: list[Rejection] = []
    if folder is not None:
        loaded.source = str(folder)
        try:
            loaded.items = bench.load_local(folder, rejected)
        except OSError as e:  # e.g. an RMB folder without its set folders
            loaded.absent_reason = f"{folder}: {e}"
            return loaded
    elif (hub_allowed() if use_hub is None else use_hub) and (bench.hub is not None or name == "ppe-correctness"):
        try:
            loaded.items, loaded.source = bench.load_hub(rejected), f"hub:{bench.hub[0] if bench.hub else 'lmarena-ai/PPE-*-Best-of-K'}"
        except Exception as e:  # noqa: BLE001 - unreachable hub, missing `datasets`: reported as absent
            loaded.absent_reason = f"no local folder and the hub failed: {type(e).__name__}: {e}"
            return loaded
    else:
        where = f"under {data_dir}" if data_dir is not None else "(no --data-dir given)"
        tried = ", ".join(DEFAULT_FOLDERS.get(name, (name,)))
        loaded.absent_reason = f"no data {where}: looked for {tried}; hub not used"
        return loaded
    return _finish(loaded, bench, limit, rejected)


def load_pairs_file(path, *, limit: int | None = None) -> LoadedBenchmark:
    """A ``--pairs`` file (or pool folder) read through the format readers, as a benchmark of its own."""
    bench = get_benchmark("pairs")
    loaded = LoadedBenchmark(f"pairs:{Path(path).name}", "pairs", source=str(path))
    rejected: list[Rejection] = []
    try:
        loaded.items = bench.load_local(Path(path), rejected)
    except (ValueError, OSError) as e:  # undetectable (UnknownFormatError) or unreadable: reported, not fatal to the others
        loaded.absent_reason = f"{type(e).__name__}: {e}"
        return loaded
    for it in loaded.items:
        it.benchmark = loaded.name
    return _finish(loaded, bench, limit, rejected)


def rejection_summary(rejected: list[Rejection]) -> str:
    reasons = Counter(r.reason for r in rejected)
    counts = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
    return f"{len(rejected)} rows could not be read ({counts}; first: {rejected[0]})"


def _finish(loaded: LoadedBenchmark, bench, limit: int | None, rejected: list[Rejection]) -> LoadedBenchmark:
    if not loaded.items:
        loaded.absent_reason = f"{loaded.source}: no items found" + (f"; {rejection_summary(rejected)}" if rejected else "")
        return loaded
    loaded.missing = bench.missing_parts(loaded.items)
    if rejected:
        log.warning("%s: %s", loaded.name, rejection_summary(rejected))
        (loaded.missing if bench.rejections_make_incomplete else loaded.notes).append(rejection_summary(rejected))
    if limit is not None and len(loaded.items) > limit:
        loaded.items = limit_items(loaded.items, limit, bench.strata(loaded.items))
        loaded.limited_to = limit
    return loaded
