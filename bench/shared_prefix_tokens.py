"""Count the tokens a shared prompt saves: each pair forwarded as two sequences vs as prefix + two rests.

Not a test. Reads hh-rlhf (the shared sample: ``../shared/data/hh-rlhf/train-sample``)
with synpref's own reader, encodes both candidates of every pair with ``encode`` under
the training defaults (max 512 tokens, truncate-left), and counts

* ``unshared``: len(chosen) + len(rejected), what the padded and packed layouts forward
  (before padding);
* ``shared``: the same minus the common prefix of the two token id lists, what the
  shared-prefix layout forwards (``--shared-prefix on``; causal backbones);

for the SmolLM2 tokenizer (its chat template) and the MiniLM tokenizer (a text pair).
MiniLM is an encoder, which cannot share (its prefix attends to the response): its
line shows the size of the prefix only. Multi-turn pairs (an earlier assistant turn
in the context) are also counted apart.

    python bench/shared_prefix_tokens.py [--max-length 512] [--limit 0]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SYNPREF_SHARED_DATA", ROOT.parent / "shared" / "data")) / "hh-rlhf" / "train-sample"


def count(tokenizer, records, policy) -> dict:
    from synpref.model.packing import shared_prefix_length
    from synpref.schema import expand_to_pairs
    from synpref.text import encode

    out = {"pairs": 0, "dropped": 0, "unshared": 0, "shared": 0, "multi_turn_pairs": 0, "multi_turn_unshared": 0,
           "multi_turn_shared": 0}
    for rec in records:
        for pair in expand_to_pairs(rec):
            c, r = encode(tokenizer, pair.conversation(0), policy), encode(tokenizer, pair.conversation(1), policy)
            if c is None or r is None:
                out["dropped"] += 1
                continue
            both = len(c) + len(r)
            saved = shared_prefix_length(c, r)
            out["pairs"] += 1
            out["unshared"] += both
            out["shared"] += both - saved
            if any(m.role == "assistant" for m in rec.context):
                out["multi_turn_pairs"] += 1
                out["multi_turn_unshared"] += both
                out["multi_turn_shared"] += both - saved
    out["saving"] = 1 - out["shared"] / max(1, out["unshared"])
    out["multi_turn_saving"] = 1 - out["multi_turn_shared"] / max(1, out["multi_turn_unshared"])
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--limit", type=int, default=0, help="records per file (0: all)")
    args = p.parse_args(argv)
    if not DATA.is_dir():
        print(f"SKIP: {DATA} not found; set SYNPREF_SHARED_DATA", file=sys.stderr)
        return 0
    from transformers import AutoTokenizer

    from synpref.ingest import read_records
    from synpref.model import packaged_model_path, resolve
    from synpref.text import TextPolicy

    records = []
    for f in sorted(DATA.glob("*.jsonl")):
        got = []
        for rec in read_records([f], errors=[]):
            got.append(rec)
            if args.limit and len(got) >= args.limit:
                break
        records += got
    policy = TextPolicy(args.max_length, "truncate-left")
    for name, ref in (("smollm2-135m", resolve("smollm2-135m")), ("minilm", packaged_model_path("minilm"))):
        figures = count(AutoTokenizer.from_pretrained(ref), records, policy)
        print(json.dumps({"tokenizer": name, "records": len(records), "max_length": args.max_length, **figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
