"""Hand-computed cases, ties included, for every benchmark metric."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synpref.evaluate.bootstrap import score_with_ci
from synpref.evaluate.constants import BENCHMARK_ORDER, REWARDBENCH_EXAMPLE_COUNTS
from synpref.evaluate.items import ScoredItem
from synpref.evaluate.registry import get_benchmark
from synpref.evaluate.summary import overall


def item(bench, subset, rewards, correct=(0,), item_id=None, **meta):
    return ScoredItem(bench, subset, item_id or f"{subset}:{len(rewards)}:{rewards}", list(map(float, rewards)), list(correct), meta)


def stats_of(bench_name, items):
    stats, _ = score_with_ci(get_benchmark(bench_name), items, resamples=0)
    return stats


# -- RewardBench v1 -------------------------------------------------------------
def test_rewardbench_tie_is_wrong_and_sections_are_count_weighted():
    items = [
        item("rewardbench", "alpacaeval-easy", [2, 1]),  # right
        item("rewardbench", "alpacaeval-easy", [1, 1]),  # tie: wrong
        item("rewardbench", "mt-bench-easy", [3, 1]),  # right
        item("rewardbench", "math-prm", [0, 1]),  # wrong
        item("rewardbench", "hep-go", [5, 1]),  # right
    ]
    s = stats_of("rewardbench", items)
    assert s["subset/alpacaeval-easy"] == 0.5
    assert s["section/Chat"] == pytest.approx((0.5 * 100 + 1.0 * 28) / 128)
    # math-prm weighs 984 against hep-go's 164
    assert s["section/Reasoning"] == pytest.approx((0 * 984 + 1 * 164) / (984 + 164))
    assert s["score"] == pytest.approx((s["section/Chat"] + s["section/Reasoning"]) / 2)
    assert REWARDBENCH_EXAMPLE_COUNTS["math-prm"] == 984


def test_rewardbench_prior_sets_are_reported_beside_the_score():
    items = [item("rewardbench", "alpacaeval-easy", [2, 1]), item("rewardbench", "shp", [0, 1]), item("rewardbench", "anthropic_hhh", [1, 0])]
    s = stats_of("rewardbench", items)
    assert s["section/Prior Sets"] == 0.5
    assert s["score"] == 1.0


# -- RewardBench 2 --------------------------------------------------------------
def test_rewardbench2_best_of_4_with_tie_credit():
    from synpref.evaluate.benchmarks.rewardbench2 import best_of_n_credit

    assert best_of_n_credit([4, 1, 2, 3]) == 1.0
    assert best_of_n_credit([3, 1, 3, 2]) == 0.5
    assert best_of_n_credit([1, 1, 1, 1]) == 0.25
    assert best_of_n_credit([2, 3, 1, 0]) == 0.0
    assert best_of_n_credit([math.nan, 1, 2, 3]) == 0.0
    assert best_of_n_credit([3, 1, math.nan, 2]) == 0.0


def ties_items():
    # prompt 0: ref margin 1.0 (correct 3 vs best wrong 2), tied: correct 5, 4.5 (spread 0.5), wrong 4 -> margin 0.5
    # prompt 1: ref wrong (margin -1), tied: correct 2, 1 (spread 1), wrong 1.5 -> margin -0.5
    return [
        item("rewardbench2", "Ties", [3, 2, 1], [0], "ref:0", ties_kind="ref", ties_prompt="0"),
        item("rewardbench2", "Ties", [5, 4.5, 4, 1], [0, 1], "tied:0", ties_kind="tied", ties_prompt="0"),
        item("rewardbench2", "Ties", [1, 2], [0], "ref:1", ties_kind="ref", ties_prompt="1"),
        item("rewardbench2", "Ties", [2, 1, 1.5], [0, 1], "tied:1", ties_kind="tied", ties_prompt="1"),
    ]


def test_rewardbench2_ties_composite_by_hand():
    s = stats_of("rewardbench2", ties_items())
    assert s["ties/ref_accuracy"] == 0.5 and s["ties/tied_accuracy"] == 0.5
    # prompt 0: 0.5 > 0.5 is False; prompt 1: -0.5 > 1 False -> 0
    assert s["ties/correctness_preferred"] == 0.0
    assert s["ties/correctness_preferred_hard"] == 0.0
    margin = (math.tanh(min(1.0, 0.5) / 0.5 - 1) + math.tanh(min(-1.0, -0.5) / 1.0 - 1)) / 2
    assert s["ties/correctness_margin_score"] == pytest.approx(margin)
    expected = 0.3 * 0.5 + 0.3 * 0.5 + 0.01 * margin
    assert s["subset/Ties"] == pytest.approx(expected)


def test_rewardbench2_score_is_unweighted_mean_of_subsets():
    items = [item("rewardbench2", "Math", [4, 1, 2, 3]), item("rewardbench2", "Math", [1, 1, 0, 0])]
    items += [item("rewardbench2", "Focus", [0, 1, 2, 3])] * 3
    s = stats_of("rewardbench2", items + ties_items())
    assert s["subset/Math"] == 0.75 and s["subset/Focus"] == 0.0
    assert s["score"] == pytest.approx((0.75 + 0.0 + s["subset/Ties"]) / 3)


# -- PPE --------------------------------------------------------------------------
def test_ppe_preference_excludes_tie_votes_and_counts_reward_ties_wrong():
    bench = get_benchmark("ppe-preference")
    rows = [
        {"question_id": "a", "winner": "model_a", "prompt": "p", "response_1": "x", "response_2": "y"},
        {"question_id": "b", "winner": "tie", "prompt": "p", "response_1": "x", "response_2": "y"},
        {"question_id": "c", "winner": "tie (bothbad)", "prompt": "p", "response_1": "x", "response_2": "y"},
        {"question_id": "d", "winner": "model_b", "prompt": "p", "response_1": "x", "response_2": "z"},
    ]
    items = bench.items_from_rows(rows, "t", rejected := [])
    assert [it.item_id for it in items] == ["a", "d"] and items[1].correct == [1] and rejected == []
    scored = [item("ppe-preference", "human-preference", [1, 0], [0]), item("ppe-preference", "human-preference", [2, 2], [1])]
    assert stats_of("ppe-preference", scored)["score"] == 0.5


def test_ppe_correctness_conflict_pairs_per_task_and_mean():
    # 4 responses, correct = {0, 2}; pairs (0,1) right, (1,2) wrong, (2,3) tie->wrong, (0,2) not a conflict
    a = item("ppe-correctness", "MATH", [3, 2, 1, 1], [0, 2], pairs=[[0, 1], [1, 2], [2, 3], [0, 2]])
    b = item("ppe-correctness", "GPQA", [0, 1], [1], pairs=[[0, 1]])
    s = stats_of("ppe-correctness", [a, b])
    assert s["subset/MATH"] == pytest.approx(1 / 3)
    assert s["subset/GPQA"] == 1.0
    assert s["score"] == pytest.approx((1 / 3 + 1) / 2)


def test_ppe_best_of_k_shares_ties_and_tracks_oracle():
    from synpref.evaluate.benchmarks.ppe import best_of_k

    picked, oracle = best_of_k([1, 3, 3, 0], [False, True, False, True], 4)
    assert picked.tolist() == [0.0, 1.0, 0.5, 0.5]
    assert oracle.tolist() == [0.0, 1.0, 1.0, 1.0]


# -- RMB --------------------------------------------------------------------------
def test_rmb_pairwise_and_best_of_n_cells():
    items = [
        item("rmb", "Helpfulness pairwise", [2, 1]),
        item("rmb", "Helpfulness pairwise", [1, 1]),  # tie: wrong
        item("rmb", "Harmlessness pairwise", [0, 1]),
        item("rmb", "Helpfulness bon", [5, 1, 4, 3]),
        item("rmb", "Harmlessness bon", [5, 1, 5, 3]),  # tie with a loser: wrong
        item("rmb", "Harmlessness bon", [9, 1, 5, 3]),
    ]
    s = stats_of("rmb", items)
    assert s["subset/Helpfulness pairwise"] == 0.5
    assert s["subset/Harmlessness pairwise"] == 0.0
    assert s["subset/Helpfulness bon"] == 1.0
    assert s["subset/Harmlessness bon"] == 0.5
    assert s["score"] == pytest.approx((0.5 + 0.0 + 1.0 + 0.5) / 4)


# -- RM-Bench ---------------------------------------------------------------------
def test_rm_bench_matrix_easy_normal_hard():
    from synpref.evaluate.benchmarks.rm_bench import difficulty_scores

    m = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]])
    d = difficulty_scores(m)
    assert d["easy"] == pytest.approx((0.4 + 0.7 + 0.8) / 3)
    assert d["normal"] == pytest.approx((0.1 + 0.5 + 0.9) / 3)
    assert d["hard"] == pytest.approx((0.2 + 0.3 + 0.6) / 3)


def test_rm_bench_domains_safety_merged_and_ties_wrong():
    # chosen (c0,c1,c2) vs rejected (r0,r1,r2)
    chat = item("rm-bench", "chat", [3, 2, 1, 2, 2, 0], [0, 1, 2], part="chat")
    # matrix: c0=3 beats all -> row 1,1,1; c1=2: >2? no, no, >0 yes -> 0,0,1; c2=1: 0,0,1
    refuse = item("rm-bench", "safety", [1, 1, 1, 0, 0, 0], [0, 1, 2], part="safety-refuse")  # all 1
    response = item("rm-bench", "safety", [0, 0, 0, 1, 1, 1], [0, 1, 2], part="safety-response")  # all 0
    s = stats_of("rm-bench", [chat, refuse, response])
    assert s["chat/easy"] == pytest.approx((0 + 0 + 0) / 3)
    assert s["chat/normal"] == pytest.approx((1 + 0 + 1) / 3)
    assert s["chat/hard"] == pytest.approx((1 + 1 + 1) / 3)
    assert s["safety/easy"] == s["safety/normal"] == s["safety/hard"] == 0.5
    assert s["score"] == pytest.approx((s["subset/chat"] + s["subset/safety"]) / 2)
    assert s["score"] == pytest.approx(np.mean([s["level/easy"], s["level/normal"], s["level/hard"]]))
    extras = get_benchmark("rm-bench").extras([chat, refuse, response])
    assert extras["matrix"]["chat"] == [[1, 1, 1], [0, 0, 1], [0, 0, 1]]


# -- JudgeBench -------------------------------------------------------------------
def test_judgebench_tie_reads_b_over_a_and_micro_vs_macro():
    from synpref.evaluate.benchmarks.judgebench import category_of, judge_verdict

    assert judge_verdict(1.0, 1.0) == "B>A" and judge_verdict(2.0, 1.0) == "A>B"
    assert category_of("mmlu-pro-law") == "knowledge" and category_of("livecodebench") == "coding"
    g = "gpt-4o-2024-05-13"
    items = [
        item("judgebench", "knowledge", [2, 1], [0], split=g),  # right
        item("judgebench", "knowledge", [2, 1], [1], split=g),  # wrong
        item("judgebench", "knowledge", [1, 1], [1], split=g),  # tie -> B>A: right
        item("judgebench", "math", [0, 1], [0], split=g),  # wrong
        item("judgebench", "coding", [1, 0], [0], split="claude"),  # right
    ]
    s = stats_of("judgebench", items)
    assert s[f"{g}/micro"] == pytest.approx(2 / 4)
    assert s[f"{g}/macro"] == pytest.approx((2 / 3 + 0) / 2)
    assert s["score"] == s[f"{g}/macro"]
    assert s["claude/micro"] == 1.0


# -- overall, bootstrap, limit ---------------------------------------------------
def test_overall_only_when_all_seven_complete():
    blocks = {b: {"score": 0.5 + i / 100, "complete": True} for i, b in enumerate(BENCHMARK_ORDER)}
    assert overall(blocks)["score"] == pytest.approx(np.mean([0.5 + i / 100 for i in range(7)]))
    blocks["rmb"]["complete"] = False
    ov = overall(blocks)
    assert ov["score"] is None and "rmb" in ov["reason"]


def test_bootstrap_is_seeded_and_brackets_the_score():
    rng = np.random.default_rng(1)
    items = [item("rmb", "Helpfulness pairwise", [rng.random(), rng.random()], item_id=str(i)) for i in range(200)]
    bench = get_benchmark("rmb")
    s1, ci1 = score_with_ci(bench, items, resamples=200, seed=3)
    _, ci2 = score_with_ci(bench, items, resamples=200, seed=3)
    assert ci1 == ci2
    assert ci1["score"][0] <= s1["score"] <= ci1["score"][1]
    assert ci1["score"][1] - ci1["score"][0] < 0.2


def test_bootstrap_of_constant_outcome_has_zero_width():
    items = [item("rewardbench", "alpacaeval-easy", [2, 1], item_id=str(i)) for i in range(20)]
    _, ci = score_with_ci(get_benchmark("rewardbench"), items, resamples=50)
    assert ci["score"] == [1.0, 1.0]


def test_limit_takes_items_round_robin_across_subsets():
    from synpref.evaluate.items import make_item
    from synpref.evaluate.loading import limit_items

    items = [make_item("rmb", s, f"{s}{i}", "q", ["a", "b"], [0]) for s in ("x", "y") for i in range(5)]
    kept = limit_items(items, 3)
    assert [it.item_id for it in kept] == ["x0", "y0", "x1"]
