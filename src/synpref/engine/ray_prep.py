"""``synpref curate prep`` as Ray Data stages over the pool's Parquet shards.

The outputs equal the local engine's (:func:`synpref.curate.prep.prep`): the same kept
pairs in the same order, the same removed pairs with the same reasons and details, the
same report. Every pair gets a *position*: (shard, row, expanded pair) packed into an
int64 that sorts in pool order, so "first seen" means "lowest position" everywhere.

1. ``PairFeatures`` (an actor pool, one Decontaminator per actor from one object ref):
   reads a row group, expands records to pairs, flags ties and empty responses, finds the
   benchmark a pair is contaminated by, computes its MinHash band keys.
2. Exact duplicates: ``groupby(id)``, the lowest position kept (a hash shuffle, no
   driver-side set). The first copy is then ``contaminated`` or a near-dup candidate.
3. Near duplicates (optional): candidates exploded to (band key, position),
   ``groupby(band)`` gives the buckets; a bucket of k pairs gives k-1 edges; a Ray task
   joins the edges into components (union-find over the pairs that share a bucket
   with another, not the pool); ``groupby(component)`` replays the local rule in
   position order: a pair sharing a band with an earlier kept pair is removed, naming
   the earliest such pair.
4. ``groupby(shard)``: each shard's task reads its shard again, looks up the removed
   positions and writes its kept pairs (``PoolWriter``) and removed lines into a staging
   folder (replaced whole on a retry); the driver renames the shards' parts into the
   output in shard order and sums the counts.

A worker killed mid-stage has its task (or actor) rerun by Ray; every stage's output is
a function of its input, and each shard's files are replaced, never appended, so no
pair is lost or written twice.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..curate.prep import REMOVED, has_empty_response, lsh_ranges, minhash_signatures, pair_full_text, removed_line, words
from ..schema import expand_to_pairs
from ..store.pool import PoolWriter, pool_files, row_to_record
from .ray_cluster import RayCluster

log = logging.getLogger(__name__)

SHARD_BITS, ROW_BITS, PAIR_BITS = 20, 27, 16  # position = shard | row in shard | pair of the record
STAGING = ".ray-prep"

FEATURES = pa.schema([("pos", pa.int64()), ("id", pa.string()), ("status", pa.string()), ("detail", pa.string()),
                      ("contaminated", pa.string()), ("bands", pa.list_(pa.binary()))])
STATUS = pa.schema([("pos", pa.int64()), ("shard", pa.int64()), ("status", pa.string()), ("detail", pa.string())])


def position(shard: int, row: int, pair: int) -> int:
    if shard >= 1 << SHARD_BITS or row >= 1 << ROW_BITS or pair >= 1 << PAIR_BITS:
        raise ValueError(f"shard {shard} row {row}: a pool for --engine ray holds at most {1 << SHARD_BITS} shards of "
                         f"{1 << ROW_BITS} rows, each record expanding to at most {1 << PAIR_BITS} pairs; "
                         "re-shard the pool (synpref ingest writes 200,000-row shards) or use --engine local")
    return (shard << (ROW_BITS + PAIR_BITS)) | (row << PAIR_BITS) | pair


def shard_of(pos: pa.Array) -> pa.Array:
    return pc.shift_right(pos, ROW_BITS + PAIR_BITS)


def read_units(files: list[Path]) -> list[dict]:
    """One unit per Parquet row group: its shard, file, row group and first row in the shard."""
    units = []
    for shard, f in enumerate(files):
        meta = pq.ParquetFile(f).metadata
        first = 0
        for rg in range(meta.num_row_groups):
            units.append({"shard": shard, "path": str(f), "row_group": rg, "first_row": first})
            first += meta.row_group(rg).num_rows
        position(shard, max(first - 1, 0), 0)  # bounds checked before anything runs
    return units


def unit_pairs(shard: int, rows: list[dict], first_row: int):
    """(position, source record, pair or None for a tie) in pool order: the loop of the local engine."""
    for offset, row in enumerate(rows):
        src = row_to_record(row)
        row_index = first_row + offset
        if src.kind == "tie":
            yield position(shard, row_index, 0), src, None
            continue
        for k, pair in enumerate(expand_to_pairs(src)):
            yield position(shard, row_index, k), src, pair


def band_keys(values, ranges) -> list[bytes]:
    """A pair's LSH bands (its MinHash ``values``) as exact keys: the band's index and its values' bytes."""
    return [struct.pack(">H", i) + values[start:end].tobytes() for i, (start, end) in enumerate(ranges)]


# -- stage 1: per-pair features (an actor pool: the Decontaminator is built once per actor) -----------------
class PairFeatures:
    def __init__(self, deco_ref: list, near_dup: bool, threshold: float, num_perm: int):
        import ray

        self.deco = ray.get(deco_ref[0]) if deco_ref else None
        self.ranges = lsh_ranges(threshold, num_perm) if near_dup else None
        self.num_perm = num_perm

    def __call__(self, batch: dict) -> pa.Table:
        out = {name: [] for name in FEATURES.names}
        for shard, path, rg, first in zip(batch["shard"], batch["path"], batch["row_group"], batch["first_row"]):
            rows = pq.ParquetFile(path).read_row_group(int(rg)).to_pylist()
            units = list(unit_pairs(int(shard), rows, int(first)))
            todo = [k for k, (_, _, pair) in enumerate(units) if pair is not None and not has_empty_response(pair)]
            toks = [words(pair_full_text(units[k][2])) for k in todo] if self.deco is not None or self.ranges else []
            contaminated = dict(zip(todo, self.deco.match_tokens(toks))) if self.deco is not None else {}
            bands = {}
            if self.ranges is not None:  # the same matching as the local engine, a row group at a time
                bands = dict(zip(todo, (band_keys(v, self.ranges) for v in minhash_signatures(toks, self.num_perm))))
            for k, (pos, src, pair) in enumerate(units):
                status = detail = None
                if pair is None:
                    rec, status, detail = src, "not_a_pair", "tie"
                elif has_empty_response(pair):
                    rec, status = pair, "empty_response"
                else:
                    rec = pair
                for name, value in zip(FEATURES.names, (pos, rec.id, status, detail, contaminated.get(k), bands.get(k, []))):
                    out[name].append(value)
        return pa.table(out, schema=FEATURES)


# -- stage 2: exact duplicates -------------------------------------------------------------------------
def _undecided(table: pa.Table) -> pa.Table:
    return table.filter(pc.is_null(table["status"]))


def first_copy(group: pa.Table) -> pa.Table:
    """One content id: the lowest position is kept (or contaminated), the others are duplicates."""
    first = pc.index(group["pos"], pc.min(group["pos"])).as_py()
    status = ["duplicate"] * group.num_rows
    detail = [None] * group.num_rows
    status[first] = "contaminated" if group["contaminated"][first].is_valid else None
    detail[first] = group["contaminated"][first].as_py()
    return pa.table({"pos": group["pos"], "id": group["id"], "status": pa.array(status, pa.string()),
                     "detail": pa.array(detail, pa.string()), "bands": group["bands"]})


# -- stage 3: near duplicates -----------------------------------------------------------------------------
def explode_bands(batch: pa.Table) -> pa.Table:
    parents = pc.list_parent_indices(batch["bands"])
    return pa.table({"band": pc.list_flatten(batch["bands"]), "pos": pc.take(batch["pos"], parents)})


def bucket_edges(group: pa.Table) -> pa.Table:
    """Pairs sharing one band key: an edge from the earliest to each other one (k-1 edges)."""
    pos = group["pos"]
    first = pc.min(pos).as_py()
    others = pc.filter(pos, pc.not_equal(pos, first))
    return pa.table({"a": pa.array([first] * len(others), pa.int64()), "b": others})


def components(*edge_tables: pa.Table) -> pa.Table:
    """Union-find over the edges: each pair that shares a bucket -> its component (lowest position)."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    for table in edge_tables:
        for a, b in zip(table["a"].to_pylist(), table["b"].to_pylist()):
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    nodes = list(parent.keys() | {r for r in parent.values()})
    return pa.table({"pos": pa.array(nodes, pa.int64()), "root": pa.array([find(n) for n in nodes], pa.int64())})


def attach_component(batch: pa.Table, roots_ref: list) -> pa.Table:
    """Candidates that share a bucket with another pair, with their component."""
    import ray

    roots = ray.get(roots_ref[0])
    index = pc.index_in(batch["pos"], value_set=roots["pos"])
    keep = pc.is_valid(index)
    return pa.table({"pos": pc.filter(batch["pos"], keep), "id": pc.filter(batch["id"], keep),
                     "bands": pc.filter(batch["bands"], keep),
                     "root": pc.take(roots["root"], pc.filter(index, keep))})


def replay_component(group: pa.Table) -> pa.Table:
    """The local rule over one component, in pool order: a pair sharing a band with an
    earlier *kept* pair is a near duplicate of the earliest such pair."""
    order = pc.sort_indices(group["pos"]).to_pylist()
    pos, ids, bands = group["pos"].to_pylist(), group["id"].to_pylist(), group["bands"].to_pylist()
    earliest_kept: dict[bytes, tuple[int, str]] = {}
    removed_pos, removed_detail = [], []
    for i in order:
        hits = [earliest_kept[b] for b in bands[i] if b in earliest_kept]
        if hits:
            removed_pos.append(pos[i])
            removed_detail.append(min(hits)[1])
        else:
            for b in bands[i]:
                earliest_kept.setdefault(b, (pos[i], ids[i]))
    return status_table(removed_pos, ["near_duplicate"] * len(removed_pos), removed_detail)


# -- stage 4: write each shard ------------------------------------------------------------------------
def status_table(pos, status, detail) -> pa.Table:
    """Removed positions with their shard, reason and detail."""
    pos = pa.array(pos, pa.int64())
    return pa.table({"pos": pos, "shard": shard_of(pos), "status": pa.array(status, pa.string()),
                     "detail": pa.array(detail, pa.string())}, schema=STATUS)


def removed_statuses(table: pa.Table) -> pa.Table:
    table = table.filter(pc.is_valid(table["status"]))
    return status_table(table["pos"], table["status"], table["detail"])


def write_shard(group: pa.Table, files: list[str], staging: str) -> pa.Table:
    """Write one shard's kept pairs and removed lines into ``staging/shard-N`` (replaced whole); return its counts."""
    shard = group["shard"][0].as_py()
    removed_at = {p: (s, d) for p, s, d in zip(group["pos"].to_pylist(), group["status"].to_pylist(), group["detail"].to_pylist())
                  if s is not None}
    final = Path(staging) / f"shard-{shard:05d}"
    work = Path(staging) / f"shard-{shard:05d}.tmp{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    counts, contaminated_by = Counter(), Counter()
    pf = pq.ParquetFile(files[shard])
    first = 0
    with PoolWriter(work) as writer, open(work / REMOVED, "w", encoding="utf-8") as removed:
        for rg in range(pf.metadata.num_row_groups):
            rows = pf.read_row_group(rg).to_pylist()
            counts["read"] += len(rows)
            for pos, src, pair in unit_pairs(shard, rows, first):
                if pos in removed_at:
                    reason, detail = removed_at.pop(pos)
                    counts[reason] += 1
                    if reason == "contaminated":
                        contaminated_by[detail] += 1
                    removed.write(removed_line(src if pair is None else pair, reason, detail))
                else:
                    writer.write(pair)
                    counts["kept"] += 1
            first += len(rows)
    if removed_at:
        raise RuntimeError(f"shard {shard}: {len(removed_at)} removed positions match no pair of {files[shard]} "
                           "(the pool changed during the run?)")
    shutil.rmtree(final, ignore_errors=True)
    os.rename(work, final)
    return pa.table({"shard": [shard], "counts": [json.dumps(counts)], "contaminated_by": [json.dumps(contaminated_by)]})


# -- the driver --------------------------------------------------------------------------------------
ROWS_PER_PARTITION = 250_000  # rows of one shuffle partition (one map_groups task)


def shuffle_partitions(rows: int, workers: int) -> int:
    """Partitions of a groupby: one per worker, more when each would hold over ROWS_PER_PARTITION rows."""
    return max(workers, -(-rows // ROWS_PER_PARTITION))


class StageTimer:
    """Seconds per stage, logged; with each stage's Ray Data operator statistics (rows, tasks,
    seconds inside our functions) kept in ``StageTimer.last`` for bench/engine_scale.py."""

    last: dict[str, dict] = {}

    def __init__(self):
        self.start = time.perf_counter()
        StageTimer.last = {}

    def done(self, stage: str, *datasets) -> None:
        now = time.perf_counter()
        seconds, self.start = now - self.start, now
        seen = {name for earlier in StageTimer.last.values() for name in earlier["operators"]}
        operators = {}
        for ds in datasets:
            for op in ds.get_stats_summary().operators_stats:  # this stage's operators (a dataset's stats include its parents')
                if op.operator_name in seen:
                    continue
                body = op.function_body_time
                operators[op.operator_name] = {"tasks": body.count if body else 0, "function_seconds": body.sum if body else 0.0,
                                               "rows": op.total_input_num_rows}
        StageTimer.last[stage] = {"seconds": seconds, "operators": operators}
        log.info("ray prep: %s took %.1f s", stage, seconds)


def clean_on_ray(cluster: RayCluster, pool, out_dir: Path, deco, near_dup: bool, near_dup_threshold: float,
                 num_perm: int, counts: Counter, contaminated_by: Counter) -> None:
    """Run the prep steps on Ray; write ``out_dir``'s pool and removed.jsonl; fill ``counts``."""
    from ray.data import DataContext
    from ray.data.context import ShuffleStrategy

    context = DataContext.get_current()
    previous = context.shuffle_strategy
    # The pull-based sort shuffle: on a 100-pair pool each groupby took 1-3 s with it, 3-7 s with the
    # default (hash shuffle aggregator actors started per groupby), for the same result.
    context.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    try:
        _clean(cluster, pool, Path(out_dir), deco, near_dup, near_dup_threshold, num_perm, counts, contaminated_by)
    finally:
        context.shuffle_strategy = previous


def _clean(cluster, pool, out_dir: Path, deco, near_dup, near_dup_threshold, num_perm, counts, contaminated_by) -> None:
    import ray
    from ray.data import ActorPoolStrategy

    files = pool_files(pool)
    units = read_units(files)
    if not units:  # shards without a row: nothing to read, an empty output (as the local engine writes)
        (Path(out_dir) / REMOVED).write_text("")
        return
    staging = Path(out_dir) / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    workers = cluster.cpu_workers()
    timer = StageTimer()

    deco_ref = [ray.put(deco)] if deco is not None else []
    features = ray.data.from_items(units, override_num_blocks=max(1, len(units))).map_batches(
        PairFeatures,
        fn_constructor_args=(deco_ref, near_dup, near_dup_threshold, num_perm),
        batch_size=1,
        batch_format="default",
        compute=ActorPoolStrategy(size=min(workers, len(units))),
        num_cpus=1,
    ).materialize()

    timer.done("features", features)
    partitions = shuffle_partitions(features.count(), workers)
    pairs = features.map_batches(_undecided, batch_format="pyarrow")
    copies = pairs.groupby("id", num_partitions=partitions).map_groups(first_copy, batch_format="pyarrow").materialize()
    timer.done("exact duplicates", copies)

    statuses = [features.map_batches(removed_statuses, batch_format="pyarrow"),
                copies.map_batches(removed_statuses, batch_format="pyarrow")]
    if near_dup:
        statuses.append(_near_duplicates(copies, partitions, timer))
    markers = ray.data.from_arrow(pa.table({"pos": [-1] * len(files), "shard": list(range(len(files))),
                                            "status": [None] * len(files), "detail": [None] * len(files)}, schema=STATUS))
    written = statuses[0].union(*statuses[1:], markers).groupby("shard", num_partitions=min(len(files), partitions)).map_groups(
        write_shard, batch_format="pyarrow", fn_kwargs={"files": [str(f) for f in files], "staging": str(staging)})
    results = sorted(written.take_all(), key=lambda r: r["shard"])
    if [r["shard"] for r in results] != list(range(len(files))):
        raise RuntimeError(f"the Ray prep wrote shards {[r['shard'] for r in results]} of {len(files)}")
    _assemble(Path(out_dir), staging, len(files))
    timer.done("write", written)
    for r in results:
        counts.update(json.loads(r["counts"]))
        contaminated_by.update(json.loads(r["contaminated_by"]))


def _near_duplicates(copies, partitions: int, timer: StageTimer):
    import ray

    candidates = copies.map_batches(_undecided, batch_format="pyarrow")
    edges = (candidates.map_batches(explode_bands, batch_format="pyarrow")
             .groupby("band", num_partitions=partitions).map_groups(bucket_edges, batch_format="pyarrow").materialize())
    timer.done("near duplicates: buckets", edges)
    roots_ref = ray.remote(components).remote(*edges.to_arrow_refs())
    ray.wait([roots_ref], num_returns=1, timeout=None)
    timer.done("near duplicates: components (one task)")
    removed = (candidates.map_batches(attach_component, batch_format="pyarrow", fn_kwargs={"roots_ref": [roots_ref]})
               .groupby("root", num_partitions=partitions).map_groups(replay_component, batch_format="pyarrow").materialize())
    timer.done("near duplicates: replay", removed)
    return removed


def _assemble(out_dir: Path, staging: Path, shards: int) -> None:
    """The shards' parts renamed into ``out_dir`` in shard order; their removed lines concatenated."""
    n = 0
    with open(out_dir / REMOVED, "w", encoding="utf-8") as removed:
        for shard in range(shards):
            folder = staging / f"shard-{shard:05d}"
            for part in sorted(folder.glob("part-*.parquet")):
                os.replace(part, out_dir / f"part-{n:05d}.parquet")
                n += 1
            with open(folder / REMOVED, encoding="utf-8") as f:
                shutil.copyfileobj(f, removed)
    shutil.rmtree(staging)
