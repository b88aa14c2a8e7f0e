"""Fault injection: ``synpref eval`` killed (SIGKILL) at seeded points, then rerun, ends with the outputs
of a run that was never interrupted: the same results.json numbers and the same items.jsonl.

The kill points are calls in the evaluation: a reward-cache commit (the chunk in flight is lost),
an items.jsonl row, a benchmark summary, and the results.json write (torn halfway). A reference run
in this process counts how often each happens; each seed picks a point and a call number, a child
process runs the same evaluation and kills itself there, and the rerun in the same folder must give
the reference's outputs. Model: the tiny random BERT; data: a generated ``--pairs`` file; scoring
chunks of 16 texts, so that there are commits to fall between.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from synpref.evaluate import run_evaluation
from synpref.scoring import score_once

CHUNK = 16
SEEDS = (3, 17, 29, 41)
POINTS = ("commit", "row", "summary", "results")
_CHILD = r"""
import os, pathlib, signal, sys
from synpref.evaluate import cache, items, runner
from synpref.scoring import score_once

model, pairs, out, point, when, chunk = sys.argv[1:7]
when, calls = int(when), {}
score_once.__kwdefaults__["chunk"] = int(chunk)


def kill_on(name, fn, before=None):
    def wrapped(*args, **kwargs):
        calls[name] = calls.get(name, 0) + 1
        if name == point and calls[name] == when:
            if before:
                before(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)
        return fn(*args, **kwargs)
    return wrapped


def half_written(path, text, *a, **k):  # the results.json write torn in the middle
    if path.name == "results.json":
        with open(path, "w", encoding="utf-8") as f:
            f.write(text[: len(text) // 2])
            f.flush()
            os.fsync(f.fileno())


cache.RewardCache.put_many = kill_on("commit", cache.RewardCache.put_many)
items.ScoredItem.to_row = kill_on("row", items.ScoredItem.to_row)
runner.summarize_benchmark = kill_on("summary", runner.summarize_benchmark)
write_text = pathlib.Path.write_text
pathlib.Path.write_text = lambda self, text, *a, **k: (kill_on("results", write_text, half_written)(self, text, *a, **k)
                                                          if self.name == "results.json" else write_text(self, text, *a, **k))
runner.run_evaluation([model], [], None, out, pairs_files=[pairs], progress=False, resamples=50, write_report=False)
"""


def _pairs_file(path: Path, n: int = 90) -> Path:
    rng = random.Random(5)
    words = ["tell", "me", "why", "the", "sky", "is", "blue", "because", "light", "scatters", "ok"]
    text = lambda k: " ".join(rng.choice(words) for _ in range(k))  # noqa: E731
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"prompt": f"q{i} " + text(5), "chosen": text(rng.randint(3, 30)), "rejected": text(rng.randint(3, 30))}) + "\n")
    return path


def _outputs(out: Path) -> tuple[dict, list[str]]:
    """What a finished evaluation leaves: results.json's numbers (not its timestamp, nor the counters of what
    this very run scored and read from the cache), and items.jsonl."""
    res = json.loads((out / "results.json").read_text(encoding="utf-8"))
    per_run = ("scoring", "length_outcomes_of_texts_scored_this_run")
    numbers = {"benchmarks": res["benchmarks"],
               "models": {m: {k: v for k, v in e.items() if k not in per_run} for m, e in res["models"].items()}}
    return numbers, (out / "items.jsonl").read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def reference(tiny_bert_dir, tmp_path_factory):
    """An uninterrupted run, counting the calls at each kill point."""
    from synpref.evaluate import cache, items, runner

    folder = tmp_path_factory.mktemp("eval-kill")
    pairs = _pairs_file(folder / "pairs.jsonl")
    calls = dict.fromkeys(POINTS, 0)
    mp = pytest.MonkeyPatch()

    def counting(name, fn):
        def wrapped(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapped

    write_text = Path.write_text

    def counted_write_text(self, *args, **kwargs):
        calls["results"] += self.name == "results.json"
        return write_text(self, *args, **kwargs)

    try:
        mp.setitem(score_once.__kwdefaults__, "chunk", CHUNK)
        mp.setattr(cache.RewardCache, "put_many", counting("commit", cache.RewardCache.put_many))
        mp.setattr(items.ScoredItem, "to_row", counting("row", items.ScoredItem.to_row))
        mp.setattr(runner, "summarize_benchmark", counting("summary", runner.summarize_benchmark))
        mp.setattr(Path, "write_text", counted_write_text)
        run_evaluation([str(tiny_bert_dir)], [], None, folder / "ref", pairs_files=[pairs], progress=False, resamples=50, write_report=False)
    finally:
        mp.undo()
    assert calls["commit"] >= 4 and calls["row"] > 0 and calls["results"] == 1, calls
    return pairs, _outputs(folder / "ref"), calls


@pytest.mark.parametrize("seed", SEEDS)
def test_eval_killed_at_a_seeded_point_then_rerun_gives_the_uninterrupted_outputs(seed, reference, tiny_bert_dir, tmp_path):
    pairs, expected, calls = reference
    rng = random.Random(seed)
    point = POINTS[SEEDS.index(seed) % len(POINTS)]  # every point is hit by one seed; the call number is drawn
    when = rng.randint(1, calls[point])
    out = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.run([sys.executable, "-c", _CHILD, str(tiny_bert_dir), str(pairs), str(out), point, str(when), str(CHUNK)],
                           env=env, capture_output=True, text=True, timeout=300)
    assert child.returncode == -signal.SIGKILL, f"the child was to die at {point} #{when}: rc {child.returncode}\n{child.stderr[-2000:]}"
    mp = pytest.MonkeyPatch()
    try:
        mp.setitem(score_once.__kwdefaults__, "chunk", CHUNK)
        res = run_evaluation([str(tiny_bert_dir)], [], None, out, pairs_files=[pairs], progress=False, resamples=50, write_report=False)
    finally:
        mp.undo()
    got = _outputs(out)
    assert got[1] == expected[1], f"items.jsonl differs after a kill at {point} #{when}"
    assert got[0] == expected[0], f"results.json numbers differ after a kill at {point} #{when}"
    scoring = res["models"][str(tiny_bert_dir)]["scoring"]
    assert scoring["from_cache"] + scoring["scored"] == scoring["distinct_texts"], scoring
    if point == "commit":  # the chunks committed before the kill are not scored again; only the one in flight is
        assert scoring["from_cache"] >= CHUNK * (when - 1), scoring
