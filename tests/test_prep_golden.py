"""Prep's fast matching gives exactly the outputs of the first, plain implementation
(`tests/prep_reference.py`: a string per n-gram, datasketch's MinHash fed one shingle
at a time with synpref's shingle hash written out byte by byte, datasketch's MinHashLSH): the same kept pairs in the same order, the same removed
pairs with the same reasons and details, the same counts, on a synthetic pool with planted
benchmark n-grams and near duplicates, and on real pairs from the shared data."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from synpref.curate.prep import prep, read_prompt_file
from prep_reference import clean_reference
from synpref.schema import Message, Record, make_pair
from synpref.store.pool import PoolWriter, pool_files

pytest.importorskip("datasketch")

LONG = [  # benchmark prompts of 13+ words
    "please explain in detail how the quick brown fox jumps over the lazy dog every single morning at dawn",
    "Write a Python function that returns the longest palindromic substring of a given string in linear time.",
    "Describe the causes of the French Revolution, and explain which of them mattered most to the peasants of 1789.",
    "Über die Straße gehen zwölf Männer mit großen Hüten und singen laut ein fröhliches Lied für die Kinder",
    "总结 这 篇 文章 的 主要 观点 并 给出 三 个 支持 这些 观点 的 例子 以及 一个 反例 说明",
]
SHORT = ["what is the capital city", "translate this sentence into French please", "sort a list in python",
         "four words at least", "too few words"]  # the last one (3 words) is never matched


def _rows(directory: Path) -> list[dict]:
    return [row for f in pool_files(directory) for row in pq.read_table(f).to_pylist()]


def _removed(directory: Path) -> list[str]:
    return sorted((directory / "removed.jsonl").read_text(encoding="utf-8").splitlines())


def _same_as_reference(tmp_path: Path, pool: Path, prompts: dict | None, name: str, *, benches=(), bench_dir=None, workers=0,
                       **kw) -> dict:
    """prep's outputs equal the reference's; returns prep's report.

    ``prompts``: None (no decontamination), or prompt file name -> prompts (given to prep as
    ``--prompts`` files); ``benches``: benchmarks read from ``bench_dir`` as well.
    """
    from synpref.curate.prep import gather_benchmark_prompts

    if prompts is None:
        ref_prompts, prep_kw = None, {"decontaminate": False}
    else:
        ref_prompts = gather_benchmark_prompts(bench_dir, benches)[0] if benches else {}
        files = []
        for stem, ps in prompts.items():
            path = tmp_path / f"{stem}.txt"
            path.write_text("\n".join(ps) + "\n", encoding="utf-8")
            files.append(path)
            ref_prompts[f"file:{path.name}"] = read_prompt_file(path)
        prep_kw = {"data_dir": bench_dir if benches else tmp_path, "benches": benches, "extra_prompts": files}
    ref_counts, ref_contaminated = clean_reference(pool, tmp_path / f"{name}-ref", ref_prompts, **kw)
    report = prep(pool, tmp_path / name, workers=workers, **prep_kw, **kw)
    assert report["read"] == ref_counts.pop("read") and report["kept"] == ref_counts.pop("kept")
    assert report["removed"] == dict(sorted(ref_counts.items()))
    assert report["contaminated_by"] == dict(ref_contaminated)
    assert _rows(tmp_path / name) == _rows(tmp_path / f"{name}-ref")
    assert _removed(tmp_path / name) == _removed(tmp_path / f"{name}-ref")
    return report


def _edit(text: str, rng: random.Random, k: int = 1) -> str:
    toks = text.split()
    for _ in range(k):
        toks[rng.randrange(len(toks))] = f"edit{rng.randrange(10**6)}"
    return " ".join(toks)


def synthetic_pool(path: Path, n: int = 400, seed: int = 0) -> Path:
    """Unique pairs, exact copies, near copies (one or a few words changed), planted benchmark
    n-grams (with other case and punctuation, in the context or a response), whole short prompts,
    12-word near misses, ties, empty responses, rankings and ratings, non-ASCII text, tiny texts."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(300)] + ["the", "a", "of", "and", "to", "in", "is", "über", "naïve", "日本"]

    def sentence(k):
        return " ".join(rng.choice(vocab) for _ in range(k))

    recs = []
    for i in range(n):
        recs.append(make_pair(f"question {i}: " + sentence(rng.randint(5, 40)), sentence(rng.randint(20, 120)), sentence(rng.randint(3, 60))))
    out = list(recs)
    for i in range(n // 2):
        base = rng.choice(recs)
        roll = rng.random()
        if roll < 0.25:
            out.append(base)  # exact duplicate
        elif roll < 0.6:  # near copy: one word of the long response changed
            out.append(make_pair(base.context[0].content, _edit(base.candidates[0][-1].content, rng, rng.choice([1, 1, 2, 5])),
                                 base.candidates[1][-1].content))
        else:  # planted benchmark text
            prompt = rng.choice(LONG + SHORT)
            toks = prompt.split()
            start = rng.randrange(max(1, len(toks) - 12))
            window = toks[start : start + rng.choice([13, 13, 12, len(toks)])]
            planted = " ".join(w.upper() if rng.random() < 0.3 else w + rng.choice(["", "", ",", "!"]) for w in window)
            where = rng.randrange(3)
            texts = [base.context[0].content, base.candidates[0][-1].content, base.candidates[1][-1].content]
            texts[where] = f"{texts[where]} ({planted}) {sentence(3)}"
            out.append(make_pair(*texts))
    rng.shuffle(out)
    answers = tuple((Message("assistant", f"ranked answer {k} " + sentence(30)),) for k in range(4))
    out += [
        Record((Message("user", "rank these " + sentence(10)),), answers, kind="ranking", ranks=(0, 1, 1, 2)),
        Record((Message("user", "rate these " + sentence(10)),), answers, kind="ratings", ratings=(3.0, 1.0, 2.0, 2.5)),
        Record((Message("user", "tie?"),), ((Message("assistant", "a"),), (Message("assistant", "b"),)), kind="tie"),
        Record((Message("user", "hi"),), ((Message("assistant", "  "),), (Message("assistant", "x"),))),
        make_pair("!!!", "?", "..."),  # no word at all
        make_pair("hi", "yo", "no"),  # fewer than 5 words: one shingle of all of them
        make_pair("hi", "yo", "no!"),  # the same words: a near duplicate at any threshold
        make_pair(f"see: {LONG[0]} and {SHORT[0]}", "x y", "z"),  # both a 13-gram and a short prompt
        make_pair(f"{SHORT[2]} then {SHORT[0]}", "x y", "z"),  # two short prompts: the shorter one is named
        make_pair("Ｕｎｉｃｏｄｅ ＷＩＤＥ text and İstanbul ǅemal e\u0301cole", "ok fine", "no way"),
    ]
    with PoolWriter(path, row_group_size=37, rows_per_shard=250) as w:
        w.write_all(out)
    return path


def synthetic_prompts() -> dict[str, list[str]]:
    # a prompt in two sources: the first source is the one named
    return {"alpha": LONG[:3] + SHORT[:2], "beta": LONG[2:] + SHORT[2:]}


def test_prep_equals_reference_on_a_synthetic_pool(tmp_path):
    pool = synthetic_pool(tmp_path / "pool")
    report = _same_as_reference(tmp_path, pool, synthetic_prompts(), "all", near_dup=True, near_dup_threshold=0.8)
    assert {"duplicate", "contaminated", "near_duplicate", "empty_response", "not_a_pair"} <= set(report["removed"])
    assert report["removed"]["contaminated"] >= 40 and report["removed"]["near_duplicate"] >= 40
    assert set(report["contaminated_by"]) == {"file:alpha.txt", "file:beta.txt"}
    assert report["benchmarks_checked"] == {}


@pytest.mark.parametrize("threshold,num_perm", [(0.9, 64), (0.5, 128), (0.3, 32)])
def test_near_duplicates_equal_reference(tmp_path, threshold, num_perm):
    pool = synthetic_pool(tmp_path / "pool", n=250, seed=num_perm)
    _same_as_reference(tmp_path, pool, None, "nd", near_dup=True, near_dup_threshold=threshold, num_perm=num_perm)


@pytest.mark.parametrize("ngram", [13, 8])
def test_decontamination_equals_reference(tmp_path, ngram):
    pool = synthetic_pool(tmp_path / "pool", seed=ngram)
    report = _same_as_reference(tmp_path, pool, synthetic_prompts(), "deco", ngram=ngram)
    assert report["removed"]["contaminated"] >= 40


def _real_pool(path: Path, shared_data: Path, limit: int) -> Path:
    """Real pairs (hh-rlhf, UltraFeedback, Stack Exchange), with copies and one-word edits, and
    RewardBench and JudgeBench rows, whose prompts are benchmark prompts."""
    from synpref.ingest import read_records

    rng = random.Random(3)
    rows = []
    for source in ("hh-rlhf/train-sample", "ultrafeedback-binarized-sample/train_clean.jsonl", "stack-exchange-preferences-sample"):
        rows += list(read_records([shared_data / source], errors=[]))[: limit // 3]
    bench = list(read_records([shared_data / "reward-bench-v1-sample"], errors=[]))[:30]
    pairs = [r for r in rows if r.kind == "pair"]
    near = []
    for r in rng.sample(pairs, min(80, len(pairs))):
        text = r.candidates[0][-1].content
        if len(text.split()) > 30:
            near.append(make_pair(r.context, _edit(text, rng), r.candidates[1][-1].content))
    recs = rows + bench + rng.sample(rows, len(rows) // 10) + near
    rng.shuffle(recs)
    with PoolWriter(path, row_group_size=200, rows_per_shard=1000) as w:
        w.write_all(recs)
    return path


def test_prep_equals_reference_on_real_pairs(tmp_path, shared_data):
    pool = _real_pool(tmp_path / "pool", shared_data, 450)
    report = _same_as_reference(tmp_path, pool, {"extra": LONG}, "real", benches=["rewardbench", "judgebench", "rm-bench"], bench_dir=shared_data,
                                near_dup=True)
    assert report["removed"]["duplicate"] >= 30 and report["removed"].get("contaminated", 0) >= 10
    assert report["removed"].get("near_duplicate", 0) >= 20


def test_worker_processes_give_the_same_outputs(tmp_path):
    """--workers 1: the features come from a spawned process (the Decontaminator pickled as it is)."""
    pool = synthetic_pool(tmp_path / "pool", n=150, seed=5)
    _same_as_reference(tmp_path, pool, synthetic_prompts(), "w1", near_dup=True, near_dup_threshold=0.8, workers=1)


@pytest.mark.parametrize("num_perm", [16, 64, 128])
def test_minhash_signatures_equal_the_plain_definition(num_perm):
    """Every text's signature equals datasketch's MinHash fed its shingles one at a time with
    synpref's shingle hash written out byte by byte, and its permutations (0 to 40 words, ASCII
    and not, a batch cut into small chunks)."""
    from datasketch import MinHash

    from synpref.curate.prep import minhash_permutations, minhash_signatures
    from prep_reference import reference_shingle_hash

    rng = random.Random(num_perm)
    vocab = ["a", "bb", "über", "naïve", "日本語", "x1", "_", "Ω"] + [f"w{i}" for i in range(40)]
    texts = [[rng.choice(vocab) for _ in range(rng.randint(0, 40))] for _ in range(120)]
    got = minhash_signatures(texts, num_perm, chunk=97)
    a, b = minhash_permutations(num_perm)
    for toks, row in zip(texts, got):
        m = MinHash(num_perm=num_perm, hashfunc=reference_shingle_hash, permutations=(a.ravel(), b.ravel()), scheme="affine32")
        for i in range(max(1, len(toks) - 4)):
            m.update(" ".join(toks[i : i + 5]).encode())
        assert row.dtype == m.hashvalues.dtype and row.tolist() == m.hashvalues.tolist()


def test_a_batch_beyond_the_kept_powers_hashes_the_same(monkeypatch):
    """A batch longer than the powers kept between batches computes its own: the same hashes, nothing kept."""
    import importlib

    from prep_reference import reference_shingle_hash
    from synpref.curate.tokens import tokens_of_lists

    prep_module = importlib.import_module("synpref.curate.prep")
    monkeypatch.setattr(prep_module, "_POWERS", [prep_module._POWERS[0][:1], prep_module._POWERS[1][:1]])
    monkeypatch.setattr(prep_module, "_POWERS_KEPT", 64)
    toks = [f"w{i}" for i in range(200)]
    hashes, texts = prep_module.shingle_hashes(*tokens_of_lists([toks]))
    assert hashes.tolist() == [reference_shingle_hash(" ".join(toks[i : i + 5]).encode()) for i in range(len(toks) - 4)]
    assert len(prep_module._POWERS[0]) == 1


def test_minhash_scheme_is_pinned():
    """The scheme's values do not change with datasketch's version, numpy's or the batch: these
    hashes were computed by the plain definition when the scheme (synpref-1) was fixed; a change
    here changes every near-duplicate decision and needs a new MINHASH_SCHEME name."""
    from synpref.curate.prep import MINHASH_SCHEME, minhash_permutations
    from prep_reference import reference_shingle_hash

    assert MINHASH_SCHEME == "synpref-1"
    assert [reference_shingle_hash(s) for s in (b"", b"a", b"the quick brown fox jumps", "über naïve 日本語 x1 _".encode())] == PINNED_HASHES
    a, b = minhash_permutations(4)
    assert (a.ravel().tolist(), b.ravel().tolist()) == PINNED_PERMUTATIONS


PINNED_HASHES = [0, 1331538296, 737993246, 2395418204]
PINNED_PERMUTATIONS = ([1885405041, 4262388093, 4110481329, 3698590723], [197090489, 2472732949, 2685560893, 796705366])
