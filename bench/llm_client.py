"""CPU per judge call on the client's side: LLMClient's HTTP/1.1 transport beside httpx, the named peer.

The judge panel (one endpoint, one sample per pair, as ``bench/curate_scale.py`` runs it) judges N real
pairs of the shared data (``--pairs``, in batches of ``--batch`` as the judge step does) against the
OpenAI-compatible stub of ``synpref.llm.testing`` answering at zero latency in a child process, twice
per transport: on an empty answer cache (every call paid) and again on the full one (every call a
hit). The transports: ``http1`` (:mod:`synpref.llm.http1`, what ``LLMClient`` uses for a plain-http
endpoint) and ``httpx`` (``httpx.AsyncClient``, what it used before and still uses for https or a
proxy). Prints, per (transport, cache), the seconds, calls/s, this process's CPU ms per call and the
stub's, and the ratio of httpx's client CPU per paid call to http1's; checks that both transports
gave the same judgements and the same cache rows. Numbers are on this machine, not a claim about any
other; the wall-clock figures depend on what else runs here, the CPU ones much less.

    python bench/llm_client.py --pairs 3000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

STUB = ("import sys\nfrom synpref.llm.testing import FakeOpenAIServer, scripted_judge\n"
        "srv = FakeOpenAIServer(scripted_judge, blocking=False).__enter__()\nprint(srv.port, flush=True)\nsys.stdin.read()")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (/proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def judge(records, url: str, cache_path: Path, transport, concurrency: int, batch: int):
    """(judgements, seconds, client CPU s, stub CPU s, usage) of the panel judging ``records``."""
    from synpref.curate.judges import JudgePanel
    from synpref.llm import Endpoint, LLMCache, LLMClient

    cache = LLMCache(cache_path)
    client = LLMClient(Endpoint(url, "stub", concurrency=concurrency), cache, transport=transport)
    panel = JudgePanel([client], n_samples=1, max_examples=0)
    started, cpu = time.perf_counter(), time.process_time()
    out = []
    for i in range(0, len(records), batch):
        out += [j.to_dict() for j in panel.judge_many([{"record": r, "pair_id": r.id} for r in records[i : i + batch]])]
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    rows = sorted(cache.db.execute("SELECT key, model, text, prompt_tokens, completion_tokens FROM calls").fetchall())
    cache.close()
    return out, seconds, cpu, client.usage, rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=3000, help="pairs judged (real pairs of the shared data, cycled)")
    ap.add_argument("--batch", type=int, default=1000, help="pairs per judge_many call (engine.batch_size of a run)")
    ap.add_argument("--concurrency", type=int, default=8, help="requests in flight (the endpoint's concurrency)")
    args = ap.parse_args(argv)
    import httpx

    from curate_scale import DATA, base_pairs

    if not DATA.is_dir():
        sys.exit(f"{DATA} is absent: this benchmark needs the shared data folder")
    base = base_pairs()
    records = [base[i % len(base)] for i in range(args.pairs)]
    srv = subprocess.Popen([sys.executable, "-c", STUB], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{int(srv.stdout.readline())}/v1"
        print(f"{'transport':<10} {'cache':<6} {'seconds':>8} {'calls/s':>8} {'client CPU ms/call':>19} {'stub CPU ms/call':>17}", flush=True)
        results = {}
        with tempfile.TemporaryDirectory() as tmp:
            for name, transport in (("httpx", httpx.AsyncHTTPTransport()), ("http1", None)):
                for state in ("empty", "full"):
                    stub_cpu = cpu_seconds(srv.pid)
                    out, seconds, cpu, usage, rows = judge(records, url, Path(tmp) / f"{name}.sqlite", transport, args.concurrency, args.batch)
                    stub_cpu = cpu_seconds(srv.pid) - stub_cpu
                    calls = usage.calls + usage.cache_hits
                    results[name, state] = (out, rows, cpu / calls)
                    print(f"{name:<10} {state:<6} {seconds:>8.2f} {calls / seconds:>8.0f} {cpu / calls * 1e3:>19.3f} {stub_cpu / calls * 1e3:>17.3f}",
                          flush=True)
    finally:
        srv.stdin.close()
        srv.wait()
    same = all(results["httpx", s][:2] == results["http1", s][:2] for s in ("empty", "full"))
    print(f"httpx's client CPU per paid call is {results['httpx', 'empty'][2] / results['http1', 'empty'][2]:.2f}x http1's; "
          f"same judgements and cache rows: {same}")
    if not same:
        sys.exit("the transports disagree: a bug")


if __name__ == "__main__":
    main()
