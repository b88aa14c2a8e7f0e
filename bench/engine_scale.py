"""The Ray engine beside the local engine on the same pool: prep and RM scoring.

Builds a pool of ``--pairs`` pairs from ../shared/data (real pairs, each reused with a
seeded share of its words replaced so that variants are distinct; 4% exact copies and
2% near copies of earlier pairs; RewardBench rows so decontamination has work), then

* prep (decontamination against the shared benchmarks, --near-dup on): local vs Ray,
  pairs/s, the ratio, seconds per Ray stage, and for each stage the seconds inside
  synpref's functions (summed over workers: pool pairs per such second is the per-worker
  throughput) and the overhead per task: the slot time (stage seconds x workers) not
  spent in those functions, divided by the tasks;
* scoring of the first ``--score-pairs`` pairs with ``--model``: local vs a Ray actor
  pool, texts/s, the ratio, texts/s per actor (inside the model), the driver's own
  seconds per chunk (encoding texts out, decoding rewards back), the actors' share of
  the wall time spent in the model, the time to the first chunk (actor start + model
  load) and the largest reward difference.

On one small machine Ray cannot be much faster than local (it has the same cores and
adds scheduling); the per-worker throughput and the per-batch overhead are what decide
how it scales on a cluster (docs/scaling.md). The machine's load average is printed
before and after: the figures are only as good as the machine was quiet.

    python bench/engine_scale.py [--pairs 50000] [--score-pairs 2000] [--model minilm] [--out bench_engine.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from synpref.curate.prep import prep  # noqa: E402
from synpref.engine.ray_cluster import RayCluster  # noqa: E402
from synpref.ingest import read_records  # noqa: E402
from synpref.schema import Message, Record  # noqa: E402
from synpref.store.pool import PoolWriter, read_pool  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SOURCES = ["hh-rlhf/official/harmless-base_test.jsonl.gz", "ultrafeedback-binarized-sample", "dahoas-full-hh-rlhf-sample",
           "prefsets-anthropic-helpful-subset", "hh-rlhf/train-sample"]
_WORD = re.compile(r"\S+")
LENGTH_POLICY = "truncate-left"  # real conversations longer than the model's max_length keep their last turns


def load_load() -> str:
    """The 1, 5 and 15-minute load averages (how busy the machine was)."""
    path = Path("/proc/loadavg")
    return " ".join(path.read_text().split()[:3]) if path.exists() else "n/a"


def base_pairs() -> list[Record]:
    missing = [s for s in SOURCES if not (DATA / s).exists()]
    if missing:
        sys.exit(f"shared data not found under {DATA} ({', '.join(missing)}): this benchmark needs ../shared/data")
    return [r for r in read_records([DATA / s for s in SOURCES], errors=[]) if r.kind == "pair"]


def vary(rec: Record, rng: random.Random, vocabulary: list[str], share: float = 0.3) -> Record:
    """The same conversation with ``share`` of its words replaced (seeded): a distinct pair, not a near copy."""

    def text(s: str) -> str:
        return " ".join(rng.choice(vocabulary) if rng.random() < share else w for w in _WORD.findall(s))

    context = tuple(Message(m.role, text(m.content)) for m in rec.context)
    candidates = tuple(tuple(Message(m.role, text(m.content) if m is c[-1] else m.content) for m in c) for c in rec.candidates)
    return Record(context, candidates, provenance=rec.provenance)


def build_pool(path: Path, n: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    bases = base_pairs()
    vocabulary = sorted({w for r in bases[:500] for m in r.context for w in _WORD.findall(m.content)})
    bench = [r for r in read_records([DATA / "reward-bench-v1-sample"], errors=[]) if r.kind == "pair"][:200]
    written: list[Record] = []
    with PoolWriter(path, rows_per_shard=max(1000, n // 8)) as writer:
        for j in range(n):
            if j % 25 == 24 and j > 1000:
                rec = written[j - 1000]  # an exact copy, usually in an earlier shard
            elif j % 50 == 13 and j > 500:
                prev = written[j - 500]  # a near copy: one word added to the chosen answer
                first = prev.candidates[0]
                rec = Record(prev.context, (first[:-1] + (Message(first[-1].role, first[-1].content + " indeed"),),) + prev.candidates[1:],
                             provenance=prev.provenance)
            elif j % 200 == 77:
                rec = bench[(j // 200) % len(bench)]  # a benchmark prompt: contaminated
            else:
                rec = vary(bases[j % len(bases)], rng, vocabulary) if j >= len(bases) else bases[j]
            written.append(rec)
            writer.write(rec)
    return {"pairs": n, "base_pairs": len(bases), "shards": len(list(path.glob("part-*.parquet")))}


def prep_figures(pool: Path, work: Path, cluster: RayCluster) -> dict:
    from synpref.engine.ray_prep import StageTimer

    settings = dict(data_dir=DATA, near_dup=True)
    start = time.perf_counter()
    local = prep(pool, work / "local", **settings)
    local_s = time.perf_counter() - start
    start = time.perf_counter()
    on_ray = prep(pool, work / "ray", engine=cluster, **settings)
    ray_s = time.perf_counter() - start
    identical = ([r.id for r in read_pool(work / "local")] == [r.id for r in read_pool(work / "ray")]
                 and local["removed"] == on_ray["removed"] and local["kept"] == on_ray["kept"])
    pairs = local["kept"] + sum(local["removed"].values())
    workers = cluster.cpu_workers()
    stages = {}
    for stage, info in StageTimer.last.items():
        function_s = sum(op["function_seconds"] for op in info["operators"].values())
        tasks = sum(op["tasks"] for op in info["operators"].values())
        stages[stage] = {
            "seconds": round(info["seconds"], 2),
            "pool_pairs_per_s": round(pairs / info["seconds"], 1),
            # seconds inside synpref's functions (summed over workers); pool pairs per such second = per-worker throughput
            "function_s": round(function_s, 2),
            "pool_pairs_per_function_s": round(pairs / function_s, 1) if function_s else None,
            "tasks": tasks,
            # slot time (stage seconds x workers) not inside those functions, per task: scheduling, shuffles, idle slots
            "overhead_per_task_s": round((info["seconds"] * workers - function_s) / tasks, 4) if tasks else None,
            "operators": info["operators"],
        }
    return {"pairs": pairs, "removed": local["removed"], "identical_outputs": identical,
            "local_s": round(local_s, 2), "ray_s": round(ray_s, 2),
            "local_pairs_per_s": round(pairs / local_s, 1), "ray_pairs_per_s": round(pairs / ray_s, 1),
            "ray_over_local": round(local_s / ray_s, 3), "workers": workers, "ray_stages": stages}


def score_figures(pool: Path, n: int, model: str, cluster: RayCluster) -> dict:
    from synpref.engine.ray_scoring import RayChunkScorer, RecordModel
    from synpref.model import RewardModel
    from synpref.scoring import score_records, score_records_with

    records = []
    for rec in read_pool(pool):
        records.append(rec)
        if len(records) >= n:
            break
    start = time.perf_counter()
    rm = RewardModel.from_pretrained(model, device="cpu")
    rm.policy = rm.policy.override(length_policy=LENGTH_POLICY)
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    local = score_records(rm, records)
    local_s = time.perf_counter() - start
    scorer = RayChunkScorer(cluster, RecordModel(model, device="cpu", length_policy=LENGTH_POLICY), device="cpu")
    start = time.perf_counter()
    on_ray = score_records_with(scorer, records)
    ray_s = time.perf_counter() - start
    texts = sum(t.texts for t in scorer.timings)
    per_actor: dict[str, list] = {}
    for t in scorer.timings:
        per_actor.setdefault(t.worker, []).append(t)
    plan = scorer.plan
    diff = max(abs(a - b) for x, y in zip(local, on_ray) for a, b in zip(x["rewards"], y["rewards"]))
    return {"records": len(records), "texts": texts, "model": model, "model_load_s": round(load_s, 2),
            "local_s": round(local_s, 2), "ray_s_including_actor_start": round(ray_s, 2),
            "local_texts_per_s": round(texts / local_s, 1), "ray_texts_per_s": round(texts / ray_s, 1),
            "ray_over_local": round(local_s / ray_s, 3),
            "actors": plan.count, "cpus_per_actor": plan.num_cpus, "threads_per_actor": plan.threads,
            "texts_per_actor_second": {w: round(sum(t.texts for t in ts) / sum(t.seconds for t in ts), 1) for w, ts in per_actor.items()},
            "chunks": len(scorer.timings),
            # until the first chunk is back: actors start, load the model, score the longest chunk
            "first_chunk_s": round(scorer.timings[0].received_at - start, 2),
            # the driver's own work per chunk (encode the texts, decode the rewards): 1 / this = chunks/s one driver feeds
            "driver_seconds_per_chunk": round(scorer.driver_seconds / len(scorer.timings), 5),
            # actor seconds in the model / (wall x actors): the rest is start-up, scheduling and waiting
            "actor_utilisation": round(sum(t.seconds for t in scorer.timings) / (ray_s * plan.count), 3),
            "max_abs_reward_difference": diff}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=50_000, help="pairs in the pool (prep)")
    ap.add_argument("--score-pairs", type=int, default=2000, help="pairs scored by the reward model (0: skip scoring)")
    ap.add_argument("--model", default="minilm", help="reward model for the scoring step")
    ap.add_argument("--actors", type=int, default=0, help="Ray scoring actors (0: the engine's default plan)")
    ap.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="engine-scale-"))
    try:
        figures = {"load_before": load_load()}
        start = time.perf_counter()
        figures["pool"] = build_pool(work / "pool", args.pairs)
        figures["pool"]["build_s"] = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        with RayCluster(actors=args.actors) as cluster:
            figures["ray_start_s"] = round(time.perf_counter() - start, 2)
            figures["ray_cpus"] = cluster.cpu_workers()
            figures["prep"] = prep_figures(work / "pool", work, cluster)
            if args.score_pairs:
                figures["score"] = score_figures(work / "pool", args.score_pairs, args.model, cluster)
        figures["load_after"] = load_load()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
