"""Scoring throughput: synpref's RewardModel.score against a plain transformers loop.

Both sides score the same token ids (made by synpref's one text function, so
inputs are identical) with the same model and precision; only batching differs:

* peer: batches of 32 in data order, each padded to its longest (the usual loop);
* synpref: sorted by length, batched by a token budget.

Prints conversations/s for each, the ratio (target >= 2x), the largest score
difference between the two (they must agree), and synpref's achieved FLOP/s as a
fraction of a large float32 matmul timed in the same run.

    python bench/score_throughput.py [--n 400] [--model minilm] [--max-length 512]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

from synpref.ingest import read_records  # noqa: E402
from synpref.model import RewardModel  # noqa: E402
from synpref.schema import Message  # noqa: E402
from synpref.text import LengthStats  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def load_conversations(n: int) -> list[tuple[Message, ...]]:
    """Real conversations of varied length: hh-rlhf transcripts and UltraFeedback answers."""
    files = [DATA / "hh-rlhf" / "official" / "harmless-base_test.jsonl.gz", DATA / "ultrafeedback-binarized-sample" / "train_clean.jsonl"]
    if not all(f.exists() for f in files):
        sys.exit(f"shared data not found under {DATA}: this benchmark needs ../shared/data")
    per_file = n // len(files)
    convs: list = []
    for f in files:
        taken = 0
        for rec in read_records([f], errors=[]):  # a few real rows are unusable (empty answers)
            if rec.kind == "pair" and taken < per_file:
                convs.append(rec.conversation(0))
                taken += 1
            if taken >= per_file:
                break
    return convs


def peer_loop(rm: RewardModel, encoded, batch_size: int) -> list[float]:
    """The plain loop: fixed batches in data order, padded to the longest."""
    scores = []
    with torch.inference_mode():
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start : start + batch_size]
            features = [{"input_ids": e.input_ids, **({"token_type_ids": e.token_type_ids} if e.token_type_ids else {})} for e in chunk]
            batch = rm.tokenizer.pad(features, padding="longest", return_tensors="pt")
            scores += rm.model(**batch).logits[:, 0].float().tolist()
    return scores


def forward_flops(config, lengths) -> float:
    """Forward FLOPs on the real tokens (2 per multiply-add): projections, MLP, attention scores."""
    h, layers = config.hidden_size, config.num_hidden_layers
    ffn = config.intermediate_size
    total = 0.0
    for n in lengths:
        per_layer = 2 * n * (4 * h * h + 2 * h * ffn) + 2 * 2 * n * n * h
        total += layers * per_layer
    return total


def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=400, help="conversations to score")
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--peer-batch", type=int, default=32)
    ap.add_argument("--max-batch-tokens", type=int, default=0, help="synpref token budget (0: its automatic default for the device)")
    args = ap.parse_args()

    from synpref.text import TextPolicy

    rm = RewardModel.from_pretrained(args.model, device="cpu", policy=TextPolicy(args.max_length, "truncate-left"))
    convs = load_conversations(args.n)
    stats = LengthStats()
    encoded = [rm.encode(c, stats=stats, item_id=i) for i, c in enumerate(convs)]
    kept = [e for e in encoded if e is not None]
    lengths = [len(e) for e in kept]
    print(f"model {args.model}, {len(kept)} conversations from ../shared/data (on the shared sample), "
          f"tokens: mean {sum(lengths) / len(lengths):.0f}, max {max(lengths)}; length policy: {stats.to_dict()}")
    print(f"torch threads: {torch.get_num_threads()}")

    rm.score_encoded(kept[:8])  # warm-up both paths
    peer_loop(rm, kept[:8], args.peer_batch)

    peer_scores, peer_s = timed(lambda: peer_loop(rm, kept, args.peer_batch))
    ours, ours_s = timed(lambda: rm.score_encoded(kept, max_batch_tokens=args.max_batch_tokens))
    ours_bf16, bf16_s = timed(lambda: rm.score_encoded(kept, max_batch_tokens=args.max_batch_tokens, precision="bf16"))
    peak = matmul_peak()

    diff = max(abs(a - b) for a, b in zip(peer_scores, ours))
    bf16_diff = max(abs(a - b) for a, b in zip(peer_scores, ours_bf16))
    flops = forward_flops(rm.model.config, lengths)
    n = len(kept)
    print(f"peer (transformers loop, batches of {args.peer_batch} padded to longest, fp32): {n / peer_s:7.1f} conv/s")
    print(f"synpref score (length-sorted token budget {args.max_batch_tokens or rm.default_batch_tokens}, fp32): {n / ours_s:7.1f} conv/s")
    print(f"ratio synpref / peer (fp32, like with like): {peer_s / ours_s:.2f}x  (target >= 2x)")
    print(f"max |score difference| synpref vs peer: {diff:.2e}")
    print(f"synpref with bf16 autocast: {n / bf16_s:7.1f} conv/s ({peer_s / bf16_s:.2f}x the fp32 peer; max |diff| {bf16_diff:.2e})")
    print(f"float32 matmul peak (2048^3, same run): {peak / 1e9:.1f} GFLOP/s")
    print(f"synpref fp32 achieved {flops / ours_s / 1e9:.1f} GFLOP/s on real tokens = {flops / ours_s / peak:.0%} of the matmul peak "
          f"(peer: {flops / peer_s / 1e9:.1f} GFLOP/s = {flops / peer_s / peak:.0%})")


if __name__ == "__main__":
    main()
