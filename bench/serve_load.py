"""Load test of ``synpref serve``: micro-batching on vs off, same run, loopback only.

Starts the server twice in a subprocess (``python -m synpref.serve MODEL``), once
with dynamic micro-batching and once with ``--no-batching`` (each request scored
alone), and drives each with ``--concurrency`` async httpx clients sending
``--requests`` POST /v1/score requests of one short realistic conversation each
(the RLHF pattern: one rollout per call). Prints throughput, p50/p99 latency and
errors per mode, the throughput ratio (target >= 3x), and the largest difference
between the rewards the two modes returned for the same conversation.

    python bench/serve_load.py [--model minilm] [--requests 2000] [--concurrency 32] [--threads 2] [--precision fp32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

QUESTIONS = [
    "How do I reverse a list in Python?",
    "What's a good way to start learning the guitar as an adult?",
    "Can you explain what inflation is in simple terms?",
    "My tomato plants have yellow leaves. What could be wrong?",
    "Write a short, polite email asking my landlord to fix the heating.",
    "Why is the sky blue?",
    "What are the pros and cons of remote work?",
    "How many hours of sleep does a teenager need?",
    "Suggest a name for a bakery that specialises in sourdough.",
    "What is the difference between a virus and a bacterium?",
    "How can I make my bike chain stop squeaking?",
    "Summarise the plot of Romeo and Juliet in two sentences.",
]
ANSWERS = [
    "Use slicing: my_list[::-1] returns a reversed copy, while my_list.reverse() reverses it in place.",
    "Start with a few open chords, practise ten to fifteen minutes every day, and learn songs you enjoy so you stay motivated.",
    "Inflation means prices rise over time, so the same amount of money buys a little less each year.",
    "Yellow leaves often mean overwatering or a lack of nitrogen. Check that the soil drains well and consider a balanced fertiliser.",
    "Dear Ms. Smith, the heating in my flat has stopped working. Could you arrange a repair at your earliest convenience? Many thanks.",
    "Sunlight is scattered by the molecules in the air, and blue light is scattered much more than red light, so the sky looks blue.",
    "Remote work saves commuting time and offers flexibility, but it can be isolating and blur the line between work and home.",
    "Most teenagers need eight to ten hours of sleep a night.",
    "How about 'Rise & Crumb' or 'The Patient Loaf'?",
    "Bacteria are living single cells that can reproduce on their own; viruses need a host cell to copy themselves.",
    "Clean the chain with a degreaser, dry it, then apply a drop of chain lube to each link and wipe off the excess.",
    "Two young lovers from feuding families marry in secret. A chain of misunderstandings leads both to take their own lives.",
    "I'm not sure.",
    "Sure! " + "Here is some more detail to consider. " * 4,
]


def conversations(n: int, seed: int = 0) -> list[list[dict]]:
    """Short realistic chats: one or two user turns, answers of varied length (about 20-120 tokens)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        msgs = [{"role": "user", "content": rng.choice(QUESTIONS)}]
        if rng.random() < 0.3:
            msgs += [{"role": "assistant", "content": rng.choice(ANSWERS)}, {"role": "user", "content": "Thanks. Can you say a bit more?"}]
        msgs.append({"role": "assistant", "content": " ".join(rng.sample(ANSWERS, rng.randint(1, 2)))})
        out.append(msgs)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seeded_checkpoint(model: str, directory: str) -> str:
    """Save MODEL once with a fixed head: a packaged backbone like 'minilm' has no reward
    head, and each server process would otherwise draw its own random one."""
    import torch

    from synpref.model import RewardModel

    torch.manual_seed(0)
    return str(RewardModel.from_pretrained(model, device="cpu").save_pretrained(directory))


def model_only_ceiling(checkpoint: str, convs: list, budget: int, threads: int, precision: str) -> dict:
    """Per-item scoring time with no server at all: each conversation alone vs token-budget
    batches. Their ratio is the most any micro-batching server can gain on this hardware."""
    import torch

    from synpref.model import RewardModel

    torch.set_num_threads(threads)
    rm = RewardModel.from_pretrained(checkpoint, device="cpu")
    encoded = [rm.encode(c) for c in convs]
    out = {}
    for name, tokens in (("alone", 1), ("batched", budget)):
        rm.score_encoded(encoded[:16], max_batch_tokens=tokens, precision=precision)  # warm-up
        started = time.perf_counter()
        rm.score_encoded(encoded, max_batch_tokens=tokens, precision=precision)
        out[name] = 1000 * (time.perf_counter() - started) / len(encoded)
    return out


def start_server(model: str, port: int, batching: bool, extra: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "synpref.serve", model, "--host", "127.0.0.1", "--port", str(port), "--batching" if batching else "--no-batching", *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "TOKENIZERS_PARALLELISM": "false"}
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (lives as long as the server; a pipe could fill and block it)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            sys.exit(f"server exited early ({proc.returncode}): {log.read()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    sys.exit("server did not become healthy within 120 s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)  # graceful: drain, then exit
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


async def drive(url: str, convs: list, n_requests: int, concurrency: int) -> dict:
    latencies: list[float] = []
    rewards: dict[int, float] = {}
    errors = 0
    next_index = 0

    async def client(http: httpx.AsyncClient):
        nonlocal errors, next_index
        while next_index < n_requests:
            i = next_index
            next_index += 1
            conv_id = i % len(convs)
            started = time.perf_counter()
            try:
                r = await http.post("/v1/score", json={"conversations": [convs[conv_id]]})
                if r.status_code != 200:
                    errors += 1
                    continue
                rewards[conv_id] = r.json()["rewards"][0]
            except httpx.HTTPError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    async def batch_shape(http: httpx.AsyncClient) -> tuple[float, float]:
        """Mean conversations and requests per model call, from the server's /metrics."""
        values = {}
        for line in (await http.get("/metrics")).text.splitlines():
            name, _, value = line.partition(" ")
            values[name] = float(value) if value and not line.startswith("#") else values.get(name)
        calls = values.get("synpref_batch_items_count") or float("nan")
        return values.get("synpref_batch_items_sum", 0) / calls, values.get("synpref_batch_requests_sum", 0) / calls

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
        # warm-up (not timed): first forward passes, connection set-up
        await asyncio.gather(*(http.post("/v1/score", json={"conversations": [c]}) for c in convs[:concurrency]))
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        wall = time.perf_counter() - started
        items_per_call, requests_per_call = await batch_shape(http)
    latencies.sort()
    return {
        "requests": n_requests,
        "errors": errors,
        "seconds": wall,
        "throughput": len(latencies) / wall,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else float("nan"),
        "rewards": rewards,
        "items_per_call": items_per_call,
        "requests_per_call": requests_per_call,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--conversations", type=int, default=500, help="distinct conversations cycled through")
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    ap.add_argument("--max-batch-tokens", type=int, default=512, help="on CPU small budgets win: tight length groups, little padding")
    ap.add_argument("--threads", type=int, default=2, help="torch threads in the server (same in both modes)")
    ap.add_argument("--precision", choices=["fp32", "bf16", "auto"], default="fp32", help="server precision (same in both modes)")
    args = ap.parse_args()

    convs = conversations(args.conversations)
    results = {}
    server_args = ["--max-wait-ms", str(args.max_wait_ms), "--max-batch-tokens", str(args.max_batch_tokens), "--threads", str(args.threads), "--precision", args.precision]
    tmp = tempfile.TemporaryDirectory(prefix="serve-load-")
    checkpoint = seeded_checkpoint(args.model, tmp.name)
    for mode, batching in (("micro-batching", True), ("no batching", False)):
        port = free_port()
        proc = start_server(checkpoint, port, batching, server_args)
        try:
            results[mode] = asyncio.run(drive(f"http://127.0.0.1:{port}", convs, args.requests, args.concurrency))
        finally:
            stop_server(proc)

    ceiling = model_only_ceiling(checkpoint, convs, args.max_batch_tokens, args.threads, args.precision)
    tmp.cleanup()
    print(
        f"model={args.model} requests={args.requests} concurrency={args.concurrency} threads={args.threads} precision={args.precision} "
        f"max_batch_tokens={args.max_batch_tokens} max_wait_ms={args.max_wait_ms} cpus={os.cpu_count()} (loopback)"
    )
    print(f"{'mode':<16}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}{'seconds':>9}{'req/model call':>16}")
    for mode, r in results.items():
        print(
            f"{mode:<16}{r['throughput']:>10.1f}{r['p50_ms']:>10.1f}{r['p99_ms']:>10.1f}{r['errors']:>8}{r['seconds']:>9.1f}"
            f"{r['requests_per_call']:>16.1f}"
        )
    on, off = results["micro-batching"], results["no batching"]
    ratio = on["throughput"] / off["throughput"]
    common = on["rewards"].keys() & off["rewards"].keys()
    diff = max((abs(on["rewards"][k] - off["rewards"][k]) for k in common), default=float("nan"))
    print(f"throughput ratio (micro-batching / none): {ratio:.2f}x (target >= 3x)")
    print(f"model alone, no server: {ceiling['alone']:.1f} ms/conversation scored one at a time, {ceiling['batched']:.1f} ms batched "
          f"-> at most {ceiling['alone'] / ceiling['batched']:.2f}x from batching on this hardware")
    print(f"max |reward difference| between modes over {len(common)} conversations: {diff:.2e}")
    if on["errors"] or off["errors"]:
        sys.exit("errors occurred")


if __name__ == "__main__":
    main()
