"""Is synpref's MinHash scheme (``synpref.curate.prep.MINHASH_SCHEME``) as accurate as datasketch's
default (SHA-1 of each shingle, ``sha1_hash32``, and datasketch's default permutations), its peer,
measured on the same texts in the same run?

Texts: real pairs from the shared data (as bench/curate_scale.py reads them), each pair's words
(prep's ``words(pair_full_text(rec))``). Comparisons: each text against a copy with a share of its
words replaced (0 to 60%, drawn per text, so the exact Jaccard spreads from 0 to 1), and against
another, unrelated text. For both schemes: the error of the estimated Jaccard (the share of equal
signature values) against the exact Jaccard of the two shingle sets, per band of exact Jaccard;
how often the LSH bands of ``--threshold`` match (a near-duplicate candidate), per band; and the
32-bit shingle hash collisions over all distinct shingles (beside the n**2 / 2**33 a random
32-bit hash gives).

    python bench/minhash_accuracy.py --texts 3000

Prints a table; writes OUT/minhash_accuracy.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
BANDS = [(0.0, 0.2), (0.2, 0.5), (0.5, 0.8), (0.8, 0.9), (0.9, 1.0), (1.0, 1.01)]


def shingle_set(toks: list[str]) -> set[bytes]:
    from synpref.curate.prep import shingles

    return set(shingles(toks))


def datasketch_signatures(token_lists, num_perm: int) -> np.ndarray:
    """datasketch's default MinHash of each text's shingles (the scheme prep followed before synpref-1)."""
    from datasketch import MinHash

    from synpref.curate.prep import shingles

    out = []
    for toks in token_lists:
        m = MinHash(num_perm=num_perm)
        m.update_batch(shingles(toks))
        out.append(m.hashvalues)
    return np.array(out)


def edited(toks: list[str], share: float, rng: random.Random, vocab: list[str]) -> list[str]:
    return [rng.choice(vocab) if rng.random() < share else t for t in toks]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=3000, help="real pairs compared (each against an edited copy and an unrelated text)")
    ap.add_argument("--num-perm", type=int, default=64, help="permutations (prep's --num-perm default)")
    ap.add_argument("--threshold", type=float, default=0.9, help="the LSH threshold whose bands are checked (prep's default)")
    ap.add_argument("--out", default="/tmp/minhash_accuracy")
    args = ap.parse_args(argv)
    from curate_scale import base_pairs
    from datasketch.hashfunc import sha1_hash32

    from synpref.curate.prep import MINHASH_SCHEME, lsh_ranges, minhash_signatures, pair_full_text, shingle_hashes, words
    from synpref.curate.tokens import tokens_of_lists

    rng = random.Random(0)
    texts = [t for t in (words(pair_full_text(r)) for r in base_pairs()) if len(t) >= 10][: args.texts]
    vocab = sorted({w for t in texts for w in t})
    left = texts + texts
    right = [edited(t, rng.uniform(0.0, 0.6 if i % 2 else 0.03), rng, vocab) for i, t in enumerate(texts)] + [texts[(i + 1 + rng.randrange(len(texts) - 1)) % len(texts)]
                                                                          for i in range(len(texts))]
    exact = np.array([len(a & b) / len(a | b) for a, b in ((shingle_set(x), shingle_set(y)) for x, y in zip(left, right))])
    ranges = lsh_ranges(args.threshold, args.num_perm)
    report = {"texts": len(texts), "comparisons": len(left), "num_perm": args.num_perm, "threshold": args.threshold, "schemes": {}}
    for name, signatures in ((MINHASH_SCHEME, lambda ts: minhash_signatures(ts, args.num_perm)),
                             ("datasketch default (sha1_hash32)", lambda ts: datasketch_signatures(ts, args.num_perm))):
        sl, sr = signatures(left), signatures(right)
        est = (sl == sr).mean(axis=1)
        band_hit = np.zeros(len(left), dtype=bool)
        for s, e in ranges:
            band_hit |= (sl[:, s:e] == sr[:, s:e]).all(axis=1)
        rows = []
        for lo, hi in BANDS:
            m = (exact >= lo) & (exact < hi)
            if m.any():
                err = est[m] - exact[m]
                rows.append({"exact": [lo, min(hi, 1.0)], "n": int(m.sum()), "bias": float(err.mean()), "mae": float(np.abs(err).mean()),
                             "rmse": float(np.sqrt((err ** 2).mean())), "theory_rmse": float(np.sqrt((exact[m] * (1 - exact[m])).mean() / args.num_perm)),
                             "lsh_candidates": float(band_hit[m].mean())})
        report["schemes"][name] = {"bands": rows, "lsh_candidates_total": int(band_hit.sum())}
    distinct = sorted({s for t in texts + right for s in shingle_set(t)})
    n = len(distinct)
    new_h, _ = shingle_hashes(*tokens_of_lists([s.decode().split(" ") for s in distinct]))
    old_h = np.array([sha1_hash32(s) for s in distinct], dtype=np.uint64)
    report["collisions"] = {"distinct_shingles": n, "expected_random_32bit": n * (n - 1) / 2 / 2**32,
                            MINHASH_SCHEME: int(n - len(np.unique(new_h))), "sha1_hash32": int(n - len(np.unique(old_h)))}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "minhash_accuracy.json").write_text(json.dumps(report, indent=2))
    print(f"{len(texts)} texts, {len(left)} comparisons, {args.num_perm} permutations, LSH bands of threshold {args.threshold}")
    print(f"{'scheme':<34} {'exact J':<10} {'n':>5} {'bias':>8} {'MAE':>7} {'RMSE':>7} {'theory':>7} {'LSH cand.':>9}")
    for name, r in report["schemes"].items():
        for row in r["bands"]:
            lo, hi = row["exact"]
            print(f"{name:<34} {f'{lo:.1f}-{hi:.2f}':<10} {row['n']:>5} {row['bias']:>8.4f} {row['mae']:>7.4f} {row['rmse']:>7.4f} "
                  f"{row['theory_rmse']:>7.4f} {row['lsh_candidates']:>9.3f}")
        print(f"{name:<34} {r['lsh_candidates_total']} LSH candidates in all")
    c = report["collisions"]
    print(f"32-bit shingle hash collisions over {c['distinct_shingles']:,} distinct shingles: {MINHASH_SCHEME} {c[MINHASH_SCHEME]}, "
          f"sha1_hash32 {c['sha1_hash32']} (a random 32-bit hash: {c['expected_random_32bit']:.1f} expected)")


if __name__ == "__main__":
    main()
