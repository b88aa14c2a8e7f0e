"""Find and load each benchmark's data: a local folder in its published layout, else the hub."""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..formats import Rejection
from ..hub import hub_unavailable
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


# Where benchmark data is looked for when no folder is given (curate prep's decontamination):
# $SYNPREF_DATA_DIR (folders separated by os.pathsep; when set, only these), else ./data and
# ../shared/data (the layout of the README: the data beside a clone of synpref).
DATA_DIR_VARIABLE = "SYNPREF_DATA_DIR"
DEFAULT_DATA_DIRS = ("data", "../shared/data")


def default_data_dirs() -> list[Path]:
    """The existing folders searched for benchmark data when none is given (see ``DEFAULT_DATA_DIRS``)."""
    listed = os.environ.get(DATA_DIR_VARIABLE)
    candidates = [d for d in listed.split(os.pathsep) if d] if listed is not None else list(DEFAULT_DATA_DIRS)
    return [Path(d) for d in candidates if Path(d).is_dir()]


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
    """The items of benchmark ``name``: from its local folder, else from the hub.

    ``use_hub`` False never uses the hub; None or True use it for a benchmark without a
    local folder, unless the hub cannot be used (offline mode or no connection, decided
    once and quickly by :func:`synpref.hub.hub_unavailable`): the benchmark is then
    absent, with the reason, and nothing is retried.
    """
    bench = get_benchmark(name)
    loaded = LoadedBenchmark(name, name)
    folder = find_folder(name, data_dir)
    rejected: list[Rejection] = []
    has_hub = bench.hub is not None or name == "ppe-correctness"
    if folder is not None:
        loaded.source = str(folder)
        try:
            loaded.items = bench.load_local(folder, rejected)
        except OSError as e:  # e.g. an RMB folder without its set folders
            loaded.absent_reason = f"{folder}: {e}"
            return loaded
        return _finish(loaded, bench, limit, rejected)
    where = f"under {data_dir}" if data_dir is not None else "(no --data-dir given)"
    no_folder = f"no data {where}: looked for {', '.join(DEFAULT_FOLDERS.get(name, (name,)))}"
    if use_hub is False or not has_hub:
        loaded.absent_reason = f"{no_folder}; " + ("hub not used (--no-hub)" if has_hub else "it has no hub dataset")
    elif (why_not := hub_unavailable()) is not None:
        loaded.absent_reason = f"{no_folder}; the hub cannot be used ({why_not}), so it was not tried"
    else:
        try:
            loaded.items, loaded.source = bench.load_hub(rejected), f"hub:{bench.hub[0] if bench.hub else 'lmarena-ai/PPE-*-Best-of-K'}"
        except Exception as e:  # noqa: BLE001 - a hub failure, missing `datasets`: reported as absent
            loaded.absent_reason = f"{no_folder}; loading it from the hub failed: {type(e).__name__}: {e}"
            return loaded
        return _finish(loaded, bench, limit, rejected)
    return loaded


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
