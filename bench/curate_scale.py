"""Does a curation run's memory stay flat as the pool grows? Peak RSS and pairs/s of each step.

For each pool size N (``--sizes``): build a pool of N pairs from the shared data (real pairs, each
copy's last user turn suffixed with a counter so every content id differs; a seeded 30% of the
labels flipped), a gold pool of ``--gold`` other real pairs, then run a Stage-2-only curation
(``synpref curate run``: stage1.iterations 0, the gold pool given) in a child process while a thread
samples its RSS every 0.1 s, per step. The RMs are tiny random BERTs trained on a bounded sample
(``stage2.current_rm_pairs``), and the judge is the OpenAI-compatible stub of ``synpref.llm.testing``
on 127.0.0.1 answering at ``--judge-latency`` s, in this (parent) process, so the figures measure
the pipeline, not the models. Prep, attributes and embeddings are off by default (``--prep``,
``--attributes``, ``--examples N`` turn them on).

``--ingest`` also measures ``synpref ingest`` at each size, in a child process: N UltraFeedback rows
(the shared sample's, each copy's prompt suffixed with its number) written as one JSONL file, read
into a pool; its pairs/s and peak RSS beside those of the named peer, pyarrow's JSON reader
(``pyarrow.json.read_json``, what Hugging Face ``datasets`` loads JSONL with) reading the same file
into a table, with no validation, ids, dedup or quarantine.

    python bench/curate_scale.py --sizes 100000,300000,1000000 --out /tmp/curate_scale
    python bench/curate_scale.py --sizes 100000 --engine local,ray --out /tmp/curate_scale

``--engine local,ray`` runs each size on both engines (``synpref curate run --engine``; Ray: a
local instance with this machine's cores, ``--ray-actors`` model actors) and prints, per step, the
pairs/s of each and their ratio; for the Ray engine also the per-worker throughput (pairs per second
inside one actor's function) and the driver's overhead per batch (the step's seconds not spent
waiting for the actors, per batch: reading, writing, the ledger, the state), which decide how the
engine scales on a cluster. "CPU s" is the child's CPU seconds in the step (Ray: the driver's, not the
actors'); the stub judge's CPU (this process's, while the child runs) ends the whole-run row: on a
shared machine the CPU figures move much less than the wall-clock ones. Prints one table row per
(size, engine, step) and writes OUT/report.json.
Numbers are on the shared sample and this machine, not a claim about any other.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SOURCES = [DATA / "hh-rlhf" / "train-sample", DATA / "ultrafeedback-binarized-sample" / "train_clean.jsonl",
           DATA / "dahoas-full-hh-rlhf-sample", DATA / "prefsets-anthropic-helpful-subset", DATA / "stack-exchange-preferences-sample"]


# -- the pools ----------------------------------------------------------------------------------------
def base_pairs() -> list:
    from synpref.ingest import read_records
    from synpref.schema import expand_to_pairs

    out, seen = [], set()
    for path in SOURCES:
        for rec in read_records([path], errors=[]):  # a few real rows are unusable (reported by ingest, not needed here)
            for p in expand_to_pairs(rec, mode="best-vs-worst"):
                if p.id not in seen and all(c and c[-1].content.strip() for c in p.candidates):
                    seen.add(p.id)
                    out.append(p)
    random.Random(0).shuffle(out)
    return out


def variant(rec, copy: int):
    """The pair with its last user turn suffixed by the copy number: the same text, another content id."""
    from synpref.schema import Message, Record

    ctx = list(rec.context)
    last = max(i for i, m in enumerate(ctx) if m.role == "user")
    ctx[last] = Message(ctx[last].role, f"{ctx[last].content} [{copy}]")
    return Record(tuple(ctx), rec.candidates, rec.kind, margin=rec.margin, weight=rec.weight, provenance=rec.provenance)


def build_pools(out: Path, n: int, n_gold: int, flip_rate: float) -> dict:
    from synpref.curate.util import flip
    from synpref.store.pool import PoolWriter

    base = base_pairs()
    gold, rest = base[:n_gold], base[n_gold:]
    started = time.time()
    rng = random.Random(1)
    if not (out / "gold").exists():
        with PoolWriter(out / "gold") as w:
            w.write_all(gold)
    if not (out / "pool").exists():
        tmp = out / "pool.tmp"
        with PoolWriter(tmp) as w:
            for i in range(n):
                rec = variant(rest[i % len(rest)], i // len(rest))
                w.write(flip(rec) if rng.random() < flip_rate else rec)
        tmp.rename(out / "pool")
    return {"base_pairs": len(base), "seconds": round(time.time() - started, 1)}


def tiny_rm(out: Path) -> Path:
    """A 2-layer, 32-wide random BERT with MiniLM's tokenizer (as the tests use)."""
    path = out / "tiny-bert"
    if (path / "config.json").is_file():
        return path
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from synpref.model import packaged_model_path

    tok = AutoTokenizer.from_pretrained(packaged_model_path("minilm"))
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                                     intermediate_size=64, max_position_embeddings=512, num_labels=1))
    model.config.pad_token_id = tok.pad_token_id
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def curation_config(out: Path, url: str, args) -> dict:
    return {
        "pool": str(out / "pool"), "gold": str(out / "gold"), "data_dir": str(DATA) if args.prep else None,
        "prep": {"enabled": args.prep},
        "endpoints": [{"base_url": url, "model": "stub", "concurrency": args.concurrency, "backoff": 0.05}],
        "judge": {"n_samples": 1, "max_examples": args.examples},
        "attributes": {"enabled": args.attributes},
        "rm": {"model": str(tiny_rm(out.parent)), "max_length": 48, "train_top_layers": 0, "pairs_per_step": 16, "learning_rate": 1e-3,
               "num_threads": args.threads},
        "stage1": {"iterations": 0},
        "stage2": {"band": 0.0, "current_rm_pairs": args.rm_pairs, "current_rm_folds": 2},
        "engine": {"batch_size": args.batch_size},
    }


# -- ingest: synpref ingest beside pyarrow's JSON reader on the same file ------------------------------
UF_SAMPLE = DATA / "ultrafeedback-binarized-sample" / "train_clean.jsonl"


def build_jsonl(out: Path, n: int) -> Path:
    """N UltraFeedback rows, the shared sample's cycled, each copy's prompt suffixed with its number."""
    path = out / "ingest.jsonl"
    if path.is_file():
        return path
    rows = [json.loads(line) for line in UF_SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for i in range(n):
            row = dict(rows[i % len(rows)])
            row["prompt"] = f"{row['prompt']} [{i // len(rows)}]"
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.rename(path)
    return path


def timed_child(cmd: list[str], env: dict, quiet: bool = False) -> tuple[float, float, int]:
    """(seconds, peak RSS MB, exit status) of one child process (its own rusage, from wait4)."""
    started = time.time()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL if quiet else None)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.time() - started, usage.ru_maxrss / 1024, proc.returncode


def run_ingest(n: int, args) -> dict:
    out = Path(args.out) / f"n{n}"
    out.mkdir(parents=True, exist_ok=True)
    jsonl = build_jsonl(out, n)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    pool = out / "ingested"
    s_ours, rss_ours, rc = timed_child([sys.executable, "-m", "synpref", "ingest", str(jsonl), "-o", str(pool), "--overwrite",
                                        "--report", str(out / "ingest_report.json")], env)
    if rc:
        sys.exit(f"synpref ingest of {n} rows failed (exit {rc})")
    report = json.loads((out / "ingest_report.json").read_text())
    peer = "import pyarrow.json as j, sys; t = j.read_json(sys.argv[1]); print(t.num_rows)"
    s_peer, rss_peer, rc = timed_child([sys.executable, "-c", peer, str(jsonl)], env, quiet=True)
    if rc:
        sys.exit(f"the peer (pyarrow.json.read_json) failed on {jsonl} (exit {rc})")
    return {"rows": n, "mb": round(jsonl.stat().st_size / 2**20), "synpref_ingest": {"seconds": round(s_ours, 1), "peak_rss_mb": round(rss_ours),
            "pairs_per_s": round(n / s_ours), "kept": report.get("kept"), "quarantined": report.get("quarantined"),
            "duplicates": report.get("duplicates")},
            "pyarrow_read_json": {"seconds": round(s_peer, 1), "peak_rss_mb": round(rss_peer), "rows_per_s": round(n / s_peer)}}


def print_ingest(n: int, rep: dict) -> None:
    ours, peer = rep["synpref_ingest"], rep["pyarrow_read_json"]
    print(f"{n:>9} {'ingest':<6} {'synpref ingest':<16} {ours['seconds']:>9.1f} {ours['pairs_per_s']:>9} {ours['peak_rss_mb']:>12} "
          f"{peer['seconds'] / ours['seconds']:>8.2f}x  of pyarrow.json.read_json ({peer['seconds']:.1f} s, {peer['rows_per_s']} rows/s, "
          f"{peer['peak_rss_mb']} MB) on the same {rep['mb']} MB file; kept {ours['kept']}, quarantined {ours['quarantined']}, "
          f"duplicates {ours['duplicates']}", flush=True)


# -- the child: one curation, its RSS sampled per step -------------------------------------------------
def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def child(config: str, run_dir: str, report: str, threads: int, engine: str = "local", ray_actors: int = 0) -> None:
    import torch

    from synpref.curate import runner
    from synpref.curate.run import run_curation

    torch.set_num_threads(threads)  # the scoring RMs' threads (rm.num_threads sets the training's)
    current = {"step": "startup"}
    peaks: dict[str, float] = {}
    cpu: dict[str, float] = {}  # CPU seconds of this process per step (Ray: the driver's, not the actors')
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            step = current["step"]
            peaks[step] = max(peaks.get(step, 0.0), rss_mb())
            stop.wait(0.1)

    def tracked(real):
        def run(self, step):
            current["step"] = step.name
            cpu0 = time.process_time()
            try:
                return real(self, step)
            finally:
                cpu[step.name] = cpu.get(step.name, 0.0) + time.process_time() - cpu0
                peaks[step.name] = max(peaks.get(step.name, 0.0), rss_mb())
                current["step"] = "between steps"
        return run

    runner.Runner._run_batches = tracked(runner.Runner._run_batches)
    runner.Runner._run_whole = tracked(runner.Runner._run_whole)
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    started = time.time()
    if engine == "ray":
        from synpref.engine.ray_cluster import RayCluster

        with RayCluster(actors=ray_actors) as cluster:
            ray_started = time.time() - started
            summ = run_curation(config, run_dir, engine=cluster)
            summ["ray_start_seconds"] = round(ray_started, 2)
    else:
        summ = run_curation(config, run_dir)
    stop.set()
    thread.join()
    Path(report).write_text(json.dumps({"summary": summ, "peak_rss_mb": peaks, "cpu_seconds": cpu, "seconds": time.time() - started,
                                        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}, default=str))


# -- the parent -----------------------------------------------------------------------------------------
def run_size(n: int, args, srv, engine: str = "local") -> dict:
    import yaml

    out = Path(args.out) / f"n{n}"
    out.mkdir(parents=True, exist_ok=True)
    built = build_pools(out, n, args.gold, args.flip)
    cfg_path = out / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(curation_config(out, srv.base_url, args)))
    run_dir = out / ("run" if engine == "local" else f"run-{engine}")
    if run_dir.exists() and not args.resume:
        import shutil

        shutil.rmtree(run_dir)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    report = out / f"child-{engine}.json"
    stub_cpu = time.process_time()  # this process's CPU while the child runs: the stub judge's threads
    res = subprocess.run([sys.executable, __file__, "--child", str(cfg_path), str(run_dir), str(report), "--threads",
                          str(args.threads), "--engine", engine, "--ray-actors", str(args.ray_actors)], env=env)
    if res.returncode:
        sys.exit(f"the curation of {n} pairs failed (exit {res.returncode}); see {run_dir / 'run.log'}")
    rep = json.loads(report.read_text())
    rep["stub_cpu_seconds"] = round(time.process_time() - stub_cpu, 2)
    rep["built"] = built
    return rep


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,300000,1000000", help="pool sizes, comma-separated")
    ap.add_argument("--out", default="/tmp/curate_scale")
    ap.add_argument("--gold", type=int, default=500, help="gold pairs (real pairs, not in the pool)")
    ap.add_argument("--flip", type=float, default=0.3, help="fraction of the pool's labels flipped")
    ap.add_argument("--batch-size", type=int, default=1000, help="engine.batch_size of the run")
    ap.add_argument("--rm-pairs", type=int, default=1000, help="stage2.current_rm_pairs: the current RMs' training sample")
    ap.add_argument("--judge-latency", type=float, default=0.0, help="seconds the stub judge takes per answer")
    ap.add_argument("--concurrency", type=int, default=8, help="judge requests in flight")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the RMs (1: no oversubscription on a small shared machine)")
    ap.add_argument("--prep", action="store_true", help="also run prep (dedup and 13-gram decontamination against the shared benchmarks)")
    ap.add_argument("--attributes", action="store_true", help="also ask the stub for every pair's attributes")
    ap.add_argument("--examples", type=int, default=0, help="judge.max_examples (> 0 also embeds every pair with MiniLM)")
    ap.add_argument("--resume", action="store_true", help="keep an existing run directory (resume it) instead of starting over")
    ap.add_argument("--ingest", action="store_true", help="also measure synpref ingest of N JSONL rows (beside pyarrow's JSON reader)")
    ap.add_argument("--no-curation", action="store_true", help="skip the curation runs (with --ingest: measure ingest only)")
    ap.add_argument("--engine", default="local", help="local, ray, or both (local,ray): the engines to run each size on")
    ap.add_argument("--ray-actors", type=int, default=0, help="model actors of the Ray engine (0: one per 4 cores, at least 1)")
    ap.add_argument("--child", nargs=3, metavar=("CONFIG", "RUN_DIR", "REPORT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(*args.child, args.threads, args.engine, args.ray_actors)
    if not DATA.is_dir():
        sys.exit(f"{DATA} is absent: this benchmark needs the shared data folder")
    from synpref.llm.testing import FakeOpenAIServer, scripted_judge

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    engines = [e.strip() for e in args.engine.split(",") if e.strip()]
    reports = {}
    print(f"{'pairs':>9} {'engine':<6} {'step':<16} {'seconds':>9} {'pairs/s':>9} {'peak RSS MB':>12} {'vs local':>9} "
          f"{'per worker':>11} {'driver ms/batch':>16} {'CPU s':>7}", flush=True)
    with FakeOpenAIServer(scripted_judge, delay=args.judge_latency, blocking=False) as srv:
        def forget():  # the stub keeps every request it served: drop them, or the parent grows with the pool
            while True:
                time.sleep(5)
                with srv._lock:
                    srv.completed.clear()
                    srv.requests.clear()

        threading.Thread(target=forget, daemon=True).start()
        for n in sizes:
            if args.ingest:
                rep = run_ingest(n, args)
                reports[f"{n}/ingest"] = rep
                print_ingest(n, rep)
                (Path(args.out) / "report.json").write_text(json.dumps(reports, indent=2, default=str))
            for engine in ([] if args.no_curation else engines):
                rep = run_size(n, args, srv, engine)
                reports[f"{n}/{engine}"] = rep
                print_rows(n, engine, rep, reports.get(f"{n}/local"))
                (Path(args.out) / "report.json").write_text(json.dumps(reports, indent=2, default=str))


def engine_figures(rep: dict, step: str, n: int) -> tuple[str, str]:
    """Per-worker pairs/s inside the actors' function and the driver's ms per batch outside waiting for them."""
    times = (rep["summary"].get("engine") or {}).get("steps", {}).get(step)
    if not times or not times["batches"]:
        return "", ""
    seconds = rep["summary"]["seconds_per_step"][step]
    per_worker = times["items"] / times["worker_seconds"] if times["worker_seconds"] else float("inf")
    driver = (seconds - times["wait_seconds"]) / times["batches"] * 1000
    rep.setdefault("figures", {})[step] = {"pairs_per_worker_second": round(per_worker, 1), "driver_ms_per_batch": round(driver, 1),
                                           "batches": times["batches"], "workers": times["workers"]}
    return f"{per_worker:>11.0f}", f"{driver:>16.1f}"


def print_rows(n: int, engine: str, rep: dict, local: dict | None) -> None:
    seconds = rep["summary"]["seconds_per_step"]
    for step, peak in rep["peak_rss_mb"].items():
        if step in seconds:
            s = seconds[step]
            ratio = ""
            if local is not None and engine != "local" and local["summary"]["seconds_per_step"].get(step):
                ratio = f"{local['summary']['seconds_per_step'][step] / s:>8.2f}x" if s else ""
            per_worker, driver = engine_figures(rep, step, n)
            print(f"{n:>9} {engine:<6} {step:<16} {s:>9.1f} {n / s if s else float('inf'):>9.0f} {peak:>12.0f} {ratio:>9} "
                  f"{per_worker:>11} {driver:>16} {rep.get('cpu_seconds', {}).get(step, float('nan')):>7.1f}", flush=True)
    print(f"{n:>9} {engine:<6} {'(whole run)':<16} {rep['seconds']:>9.1f} {n / rep['seconds']:>9.0f} {rep['max_rss_mb']:>12.0f}"
          f"   stage2 {rep['summary']['stage2']}, {rep['summary']['llm_this_invocation']['total']['calls']} judge calls, "
          f"stub judge CPU {rep['stub_cpu_seconds']:.1f} s",
          flush=True)


if __name__ == "__main__":
    main()
