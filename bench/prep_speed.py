"""How fast is ``synpref curate prep``? Pairs/s and peak RSS of the vectorised prep against the
first implementation (`tests/prep_reference.py`: a string per n-gram, datasketch's
MinHash fed one shingle at a time, datasketch's MinHashLSH), measured in the same run. The
reference's shingle hash is synpref's written out byte by byte in Python (slower than the SHA-1
it used before synpref-1), so its --near-dup rate, and the ratio, are not comparable with runs
before that scheme.

The pool: real pairs from the shared data, each copy's last user turn suffixed with a counter (as
bench/curate_scale.py builds it), every 50th pair written twice (exact duplicates). Each
measurement runs in its own child process (its peak RSS is its own): prep with exact dedup and
13-gram decontamination against the shared benchmarks, then also with ``--near-dup``. The
benchmark prompts are read before the clock starts (the same for both; printed separately). The
reference is slow, so it runs on the first ``--old-pairs`` pairs only.

    python bench/prep_speed.py --pairs 100000 --old-pairs 10000 --out /tmp/prep_speed

Prints one row per (mode, implementation) and the ratio new/old; writes OUT/report.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))  # the first implementation, kept beside the golden test


def build_pool(path: Path, n: int) -> None:
    from curate_scale import base_pairs, variant

    from synpref.store.pool import PoolWriter

    if path.exists():
        return
    base = base_pairs()
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    written = 0
    with PoolWriter(tmp) as w:
        i = 0
        while written < n:
            rec = variant(base[i % len(base)], i // len(base))
            w.write(rec)
            written += 1
            if i % 50 == 49 and written < n:
                w.write(rec)
                written += 1
            i += 1
    tmp.rename(path)


def child(mode: str, impl: str, pool: str, out: str, workers: int) -> None:
    from synpref.curate.prep import gather_benchmark_prompts, prep
    from prep_reference import clean_reference

    started = time.perf_counter()
    prompts = gather_benchmark_prompts(DATA)[0]
    loaded = time.perf_counter() - started
    near = mode == "near-dup"
    started = time.perf_counter()
    if impl == "new":
        rep = prep(pool, out, data_dir=DATA, near_dup=near, overwrite=True, workers=workers)
        read, kept, removed = rep["read"], rep["kept"], rep["removed"]
    else:
        counts, _ = clean_reference(pool, out, prompts, near_dup=near)
        read, kept = counts.pop("read"), counts.pop("kept")
        removed = dict(sorted(counts.items()))
    seconds = time.perf_counter() - started
    print(json.dumps({"read": read, "kept": kept, "removed": removed, "seconds": seconds, "prompts_seconds": loaded,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def measure(mode: str, impl: str, pool: Path, out: Path, workers: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, __file__, "--child", mode, impl, str(pool), str(out), "--workers", str(workers)],
                         env=env, capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"{impl} prep ({mode}) failed:\n{res.stderr[-3000:]}")
    shutil.rmtree(out, ignore_errors=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=100_000, help="pairs in the pool the new prep cleans")
    ap.add_argument("--old-pairs", type=int, default=10_000, help="pairs the reference cleans (a pool of the first ones)")
    ap.add_argument("--modes", default="decontaminate,near-dup", help="decontaminate (exact dedup + 13-gram), near-dup (also MinHash LSH)")
    ap.add_argument("--workers", type=int, default=0, help="feature worker processes of the new prep (synpref curate prep --workers)")
    ap.add_argument("--out", default="/tmp/prep_speed")
    ap.add_argument("--child", nargs=4, metavar=("MODE", "IMPL", "POOL", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(*args.child, args.workers)
    if not DATA.is_dir():
        sys.exit(f"{DATA} is absent: this benchmark needs the shared data folder")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pools = {"new": out / f"pool-{args.pairs}", "old": out / f"pool-{args.old_pairs}"}
    for impl, n in (("new", args.pairs), ("old", args.old_pairs)):
        build_pool(pools[impl], n)
    print(f"{'mode':<14} {'impl':<5} {'pairs':>8} {'seconds':>8} {'pairs/s':>8} {'peak RSS MB':>12}  (prompts read in s)", flush=True)
    report = {}
    for mode in args.modes.split(","):
        rows = {}
        for impl in ("old", "new"):
            r = rows[impl] = measure(mode, impl, pools[impl], out / f"out-{mode}-{impl}", args.workers)
            r["pairs_per_s"] = r["read"] / r["seconds"]
            print(f"{mode:<14} {impl:<5} {r['read']:>8} {r['seconds']:>8.1f} {r['pairs_per_s']:>8.0f} {r['peak_rss_mb']:>12.0f}  "
                  f"({r['prompts_seconds']:.1f})  kept {r['kept']}, removed {r['removed']}", flush=True)
        ratio = rows["new"]["pairs_per_s"] / rows["old"]["pairs_per_s"]
        print(f"{mode:<14} new/old pairs/s: {ratio:.1f}x", flush=True)
        report[mode] = {**rows, "ratio": ratio, "workers": args.workers}
        (out / "report.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
