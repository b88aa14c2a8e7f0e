"""Benchmark loaders: the shared data in its published layouts, and hand-built files for the
benchmarks the shared data lacks (RewardBench 2, PPE Preference, PPE Correctness)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synpref.evaluate import run_evaluation
from synpref.evaluate.loading import load_benchmark


# -- shared data ------------------------------------------------------------------
def test_judgebench_loads_both_splits_complete(shared_data):
    lb = load_benchmark("judgebench", shared_data)
    splits = {}
    for it in lb.items:
        splits[it.meta["split"]] = splits.get(it.meta["split"], 0) + 1
    assert splits == {"gpt-4o-2024-05-13": 350, "claude-3-5-sonnet-20240620": 270}
    assert {it.subset for it in lb.items} == {"knowledge", "reasoning", "math", "coding"}
    assert lb.missing == []


def test_rm_bench_names_missing_math(shared_data):
    lb = load_benchmark("rm-bench", shared_data)
    assert len(lb.items) == 798 and lb.missing == ["math"]
    assert {it.subset for it in lb.items} == {"chat", "code", "safety"}
    assert all(len(it.candidates) == 6 and it.correct == [0, 1, 2] for it in lb.items)


def test_rmb_names_the_missing_pairwise_files(shared_data):
    lb = load_benchmark("rmb", shared_data)
    assert len(lb.items) == 18329
    assert sorted(lb.missing) == [
        "pairwise: Harmlessness/S11",
        "pairwise: Helpfulness/Brainstorming/Idea Development",
        "pairwise: Helpfulness/Generation/Creative Writing",
    ]
    bon = [it for it in lb.items if it.subset.endswith("bon")]
    assert len(bon) == 3786 and all(len(it.candidates) >= 2 for it in bon)


def test_rewardbench_sample_is_incomplete_with_counts(shared_data):
    lb = load_benchmark("rewardbench", shared_data, limit=50)
    assert lb.limited_to == 50 and len(lb.items) == 50
    assert "math-prm" in lb.missing and "llmbar-adver-neighbor (5/134 rows)" in lb.missing


def test_absent_benchmark_is_reported_not_raised(tmp_path):
    lb = load_benchmark("rewardbench2", tmp_path, use_hub=False)
    assert lb.items == [] and "no data" in lb.absent_reason


# -- hand-built published layouts ---------------------------------------------------
def _rb2_rows():
    rows = [
        {"id": "1", "prompt": "2+2?", "chosen": ["four, because 2+2=4"], "rejected": ["five", "six", "3"], "num_correct": 1, "subset": "Math"},
        {"id": "2", "prompt": "say hi", "chosen": ["hi"], "rejected": ["hello there", "greetings", "hey you"], "num_correct": 1, "subset": "Focus"},
        {"id": "ref:0", "prompt": "name a colour", "chosen": ["red is a colour"], "rejected": ["dog"], "num_correct": 1, "subset": "Ties"},
        {"id": "tied:0", "prompt": "name a colour", "chosen": ["blue hue", "green!"], "rejected": ["cat"], "num_correct": 2, "subset": "Ties"},
    ]
    for subset in ("Factuality", "Precise IF", "Safety"):
        rows.append({"id": subset, "prompt": "q", "chosen": ["a long good answer"], "rejected": ["b", "c", "d"], "num_correct": 1, "subset": subset})
    return rows


def test_rewardbench2_parquet_layout_with_length_baseline(tmp_path):
    folder = tmp_path / "reward-bench-2" / "data"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(_rb2_rows()), folder / "test-00000-of-00001.parquet")
    res = run_evaluation([], "rewardbench2", tmp_path, tmp_path / "out", progress=False, resamples=20, write_report=False)
    block = res["models"]["length: longer wins"]["benchmarks"]["rewardbench2"]
    assert block["complete"] and block["n_items"] == 7
    assert block["subsets"]["Math"]["score"] == 1.0 and block["subsets"]["Focus"]["score"] == 0.0
    # Ties by hand: ref margin 15-3=12 > 0; tied: correct 8, 6 (spread 2), wrong 3 (margin 3)
    import math

    ties = 0.3 * 1 + 0.3 * 1 + 0.2 * 1 + 0.2 * 1 + 0.01 * math.tanh(min(12, 3) / 2 - 1)
    assert block["subsets"]["Ties"]["score"] == pytest.approx(ties)
    assert block["score"] == pytest.approx((1 + 0 + 1 + 1 + 1 + ties) / 6)


def test_ppe_preference_layout_drops_tie_votes(tmp_path):
    folder = tmp_path / "ppe-preference"
    folder.mkdir()
    rows = [
        {"question_id": "q1", "winner": "model_a", "prompt": "p", "response_1": "long answer", "response_2": "short", "language": "English"},
        {"question_id": "q2", "winner": "model_b", "prompt": "p", "response_1": "long answer", "response_2": "short", "language": "English"},
        {"question_id": "q3", "winner": "tie (bothbad)", "prompt": "p", "response_1": "x", "response_2": "y", "language": "English"},
        {
            "question_id": "q4",
            "winner": "model_a",
            "prompt": "hi",
            "response_1": "",
            "response_2": "",
            "conversation_a": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello friend"}],
            "conversation_b": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
        },
    ]
    (folder / "test.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    res = run_evaluation([], "ppe-preference", tmp_path, tmp_path / "out", progress=False, resamples=20, write_report=False)
    block = res["models"]["length: longer wins"]["benchmarks"]["ppe-preference"]
    assert block["n_items"] == 3 and block["score"] == pytest.approx(2 / 3)


def test_ppe_correctness_layout_per_task_files(tmp_path):
    folder = tmp_path / "ppe-correctness"
    folder.mkdir()
    row = {
        "question_id": "m1",
        "model_name": "gpt",
        "prompt": "solve",
        **{f"response_{i}": "x" * n for i, n in enumerate([5, 1, 3, 2], start=1)},
        "scores": [True, False, False, True],
        "sampled_conflict_pairs": [[0, 1], [1, 3], [2, 3]],
    }
    (folder / "math_best_of_k.jsonl").write_text(json.dumps(row))
    (folder / "gpqa_best_of_k.jsonl").write_text(json.dumps({**row, "question_id": "g1"}))
    res = run_evaluation([], "ppe-correctness", tmp_path, tmp_path / "out", progress=False, resamples=20, write_report=False)
    block = res["models"]["length: longer wins"]["benchmarks"]["ppe-correctness"]
    # lengths 5,1,3,2: (0>1) right, (3>1) right, (3 vs 2): 2 < 3 wrong -> 2/3 per task
    assert block["subsets"]["MATH"]["score"] == pytest.approx(2 / 3)
    assert block["score"] == pytest.approx(2 / 3)
    assert not block["complete"] and set(block["missing"]) == {"MMLU-Pro", "IFEval", "MBPP-Plus"}
    curve = block["extras"]["best_of_k"]["MATH"]
    assert curve["model"] == [1.0, 1.0, 1.0, 1.0] and curve["oracle"] == [1.0, 1.0, 1.0, 1.0]


def test_limit_keeps_every_split_and_category(shared_data):
    lb = load_benchmark("judgebench", shared_data, limit=8)
    assert {(it.meta["split"], it.subset) for it in lb.items} == {
        (s, c) for s in ("gpt-4o-2024-05-13", "claude-3-5-sonnet-20240620") for c in ("knowledge", "reasoning", "math", "coding")
    }


def test_report_draws_best_of_k_curves(tmp_path):
    folder = tmp_path / "ppe-correctness"
    folder.mkdir()
    row = {"prompt": "p", **{f"response_{i}": "y" * i for i in range(1, 5)}, "scores": [False, True, False, True], "sampled_conflict_pairs": [[0, 1]]}
    (folder / "ifeval.jsonl").write_text(json.dumps(row))
    run_evaluation([], "ppe-correctness", tmp_path, tmp_path / "out", progress=False, resamples=5)
    assert "Best-of-K accuracy" in (tmp_path / "out" / "report.md").read_text()
    pytest.importorskip("matplotlib", reason="plots need matplotlib")
    assert 'alt="ppe-correctness best-of-K"' in (tmp_path / "out" / "report.html").read_text()


def test_a_benchmark_without_item_must_load_its_own_way():
    from synpref.evaluate.registry import Benchmark

    scoring = {"outcomes": lambda self, items: {}, "statistics": lambda self, out, strata, names: {}}
    with pytest.raises(TypeError, match="defines no item"):
        type("NoItem", (Benchmark,), dict(scoring))
    with pytest.raises(TypeError, match="defines no item"):
        type("NoItemHub", (Benchmark,), {**scoring, "load_local": lambda self, f, r: [], "hub": ("some/dataset", "test")})
    own = type("OwnLoading", (Benchmark,), {**scoring, "load_local": lambda self, f, r: []})
    assert own().load_local(None, []) == []
