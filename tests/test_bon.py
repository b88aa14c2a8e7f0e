"""Best-of-N: input layouts, the choice, the curves, and the ``bon`` command."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from synpref.evaluate.bon import read_bon_items, run_bon
from synpref.evaluate.bon_curve import bon_curves, curve_table
from synpref.model import RewardModel
from synpref.schema import Message as M
from synpref.scoring import choose, rank_indices
from synpref.serve.cli import bon_command


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def candidates_file(tmp_path):
    rows = [
        {"id": f"p{i}", "prompt": f"Question {i}?", "candidates": [f"answer {j} " * (j + 1) for j in range(3 + i % 3)], "correct": [j == i % 2 for j in range(3 + i % 3)]}
        for i in range(6)
    ]
    rows.append({"id": "unlabelled", "prompt": [{"role": "user", "content": "hi"}], "responses": ["hello", [{"role": "assistant", "content": "hey"}]]})
    rows.append({"id": "broken", "prompt": "q", "candidates": "not a list"})
    return write_jsonl(tmp_path / "cands.jsonl", rows)


def test_reads_candidates_ppe_and_rmb_layouts(tmp_path, candidates_file):
    rejected = []
    items = list(read_bon_items([candidates_file], rejected))
    assert [it.item_id for it in items][-1] == "unlabelled" and len(rejected) == 1
    assert (rejected[0].row, rejected[0].reason, rejected[0].field) == (7, "wrong_type", "candidates")
    assert items[0].correct == [0] and len(items[0].candidates) == 3 and items[-1].correct is None
    assert items[-1].candidates[1] == (M("assistant", "hey"),)

    ppe = write_jsonl(tmp_path / "math_best_of_k.jsonl", [{"question_id": "q1", "model_name": "m", "prompt": "2+2?", "response_1": "4", "response_2": "5", "scores": [1, 0]}])
    (item,) = read_bon_items([ppe])
    assert item.item_id == "MATH:q1:m" and item.correct == [0] and item.context == (M("user", "2+2?"),)

    rmb_row = {
        "bon_uid": "b1",
        "conversation_input": [{"role": "user", "content": "Help me plan a trip.", "language": "English"}],
        "bon_best": {"llm_name": "x", "answer": "Here is a plan."},
        "loser_list": [{"llm_name": "y", "answer": "No."}, {"llm_name": "z", "answer": "Maybe later."}],
    }
    rmb = tmp_path / "rmb.json"
    rmb.write_text(json.dumps([rmb_row]))
    (item,) = read_bon_items([rmb])
    assert item.item_id == "b1" and len(item.candidates) == 3 and item.correct == [0]


def test_run_bon_picks_the_highest_reward(tiny_bert_dir, candidates_file):
    rm = RewardModel.from_pretrained(tiny_bert_dir, device="cpu")
    items = list(read_bon_items([candidates_file], rejected := []))
    assert len(rejected) == 1  # the "broken" row
    rows = list(run_bon(rm, items, chunk_items=4))  # chunking must not matter
    for item, row in zip(items, rows):
        expected = rm.score(item.conversations())
        assert max(abs(a - b) for a, b in zip(row["rewards"], expected)) < 1e-4
        assert row["chosen"] == max(range(len(expected)), key=lambda i: expected[i])
        if item.correct is not None:
            assert row["correct"] == [j in item.correct for j in range(len(expected))]
            assert row["chosen_correct"] == (row["chosen"] in item.correct)
    assert "correct" not in rows[-1]


def test_ranking_puts_dropped_candidates_last():
    assert rank_indices([0.1, math.nan, 0.5, 0.5]) == [2, 3, 0, 1]
    assert choose([math.nan, math.nan]) is None


def test_curves_against_oracle_and_random():
    correct = [[True, False, False, False], [False, False, True, False]]
    perfect = [[1.0, 0.0, 0.5, 0.25], [0.0, 0.25, 1.0, 0.5]]
    rows = bon_curves(perfect, correct)
    assert [r["n"] for r in rows] == [1, 2, 3, 4]
    for r in rows:  # a perfect reward model is the oracle, exactly; random stays at 1/4
        assert r["reward_model"] == pytest.approx(r["oracle"]) and r["random"] == pytest.approx(0.25)
    assert [r["oracle"] for r in rows] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    inverted = bon_curves([[-x for x in p] for p in perfect], correct)
    assert inverted[-1]["reward_model"] == 0.0  # picks a wrong answer whenever it can
    # prompts with fewer than N candidates only count up to their size
    short = bon_curves([[0.0, 1.0], [0.0, 1.0, 2.0]], [[False, True], [True, False, False]])
    assert [r["prompts"] for r in short] == [2, 2, 1]
    assert "| N | prompts |" in curve_table(short)


def test_curve_at_one_candidate_is_random_exactly():
    """N = 1 is no choice: the reward model's accuracy is the random pick's, whatever the rewards."""
    import random

    rng = random.Random(0)
    rewards = [[rng.choice([0.0, 0.5, 1.0, 2.0]) for _ in range(rng.randint(2, 9))] for _ in range(300)]
    correct = [[rng.random() < 0.3 for _ in r] for r in rewards]
    first = bon_curves(rewards, correct)[0]
    assert first["n"] == 1 and first["reward_model"] == pytest.approx(first["random"], abs=1e-12)


def test_curve_matches_every_subset_and_shares_ties():
    from itertools import combinations

    from synpref.evaluate.bon_curve import best_pick_credit, reward_groups

    rewards, correct = [2.0, 2.0, 1.0, 0.0, 1.0], [True, False, False, True, True]
    for n in range(1, 6):
        credits = []
        for subset in combinations(range(5), n):
            top = max(rewards[i] for i in subset)
            tied = [i for i in subset if rewards[i] == top]
            credits.append(sum(correct[i] for i in tied) / len(tied))
        assert best_pick_credit(reward_groups(rewards, correct), n) == pytest.approx(sum(credits) / len(credits))


def test_dropped_candidates_are_left_out_and_counted():
    """A candidate without a reward is neither picked nor a wrong pick: the prompt is its scored candidates."""
    from synpref.evaluate.bon_curve import dropped_counts

    nan = math.nan
    rewards = [[1.0, nan, 0.0], [nan, nan], [0.5, 0.2]]
    correct = [[False, True, True], [True, False], [True, False]]
    rows = bon_curves(rewards, correct)
    assert rows == bon_curves([[1.0, 0.0], [0.5, 0.2]], [[False, True], [True, False]])
    assert rows[0]["prompts"] == 2 and rows[1]["reward_model"] == pytest.approx(0.5)
    assert dropped_counts(rewards) == {"dropped_candidates": 3, "prompts_with_dropped_candidates": 2,
                                       "prompts_without_scored_candidates": 1}


def test_bon_command_writes_choices_curve_and_plot(tiny_bert_dir, candidates_file, tmp_path):
    out = tmp_path / "out" / "bon.jsonl"
    result = CliRunner().invoke(bon_command, [str(tiny_bert_dir), "--input", str(candidates_file), "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 7 and all(len(r["rewards"]) == r["n"] for r in rows)
    curve = json.loads((tmp_path / "out" / "bon.jsonl.curve.json").read_text())
    assert [r["n"] for r in curve["rows"]] == [1, 2, 3, 4, 5]
    assert (tmp_path / "out" / "bon.jsonl.curve.png").stat().st_size > 1000
    assert "| 5 |" in result.output


def test_bon_on_shared_rmb_sample(tiny_bert_dir, shared_data, tmp_path):
    rmb = shared_data / "rmb" / "RMB_dataset" / "BoN_set" / "Harmlessness" / "S1.json"
    rejected = []
    items = []
    for item in read_bon_items([rmb], rejected):
        items.append(item)
        if len(items) == 5:
            break
    assert len(items) == 5 and all(it.correct == [0] and len(it.candidates) >= 2 for it in items) and rejected == []


def test_bon_reports_dropped_candidates_and_leaves_them_out_of_the_curve(tiny_bert_dir, tmp_path):
    long = "a long answer that goes on and on " * 20
    rows = [{"id": f"p{i}", "prompt": "Which is right?", "candidates": [long, f"right {i}", f"wrong {i}"], "correct": [True, True, False]}
            for i in range(4)]
    rows.append({"id": "all-long", "prompt": "q", "candidates": [long, long + "!"], "correct": [True, False]})
    src = write_jsonl(tmp_path / "c.jsonl", rows)
    out = tmp_path / "bon.jsonl"
    args = [str(tiny_bert_dir), "--input", str(src), "-o", str(out), "--no-plot", "--no-progress", "--max-length", "32"]
    result = CliRunner().invoke(bon_command, args + ["--length-policy", "drop"])
    assert result.exit_code == 0, result.output
    assert "6 candidates of 5 prompts were dropped by --length-policy drop" in result.output
    assert "1 prompts had no scored candidate, so no choice, and are not counted" in result.output
    assert "labelled prompts" in result.output and "/4 labelled prompts" in result.output
    curve = json.loads((tmp_path / "bon.jsonl.curve.json").read_text())
    assert curve["dropped_candidates"] == 6 and curve["prompts_without_scored_candidates"] == 1
    assert [r["prompts"] for r in curve["rows"]] == [4, 4]  # each prompt's 2 scored candidates
    assert curve["rows"][0]["reward_model"] == pytest.approx(curve["rows"][0]["random"]) == pytest.approx(0.5)
    # by default nothing is dropped: long candidates are cut and scored (synpref.text.scoring_policy)
    default = CliRunner().invoke(bon_command, args)
    assert default.exit_code == 0 and "dropped by" not in default.output, default.output
    assert "length policy 'truncate' (max_length 32 tokens)" in default.output
    assert json.loads((tmp_path / "bon.jsonl.curve.json").read_text())["rows"][0]["prompts"] == 5


def test_bon_names_the_model_and_estimates_the_time(tiny_bert_dir, tmp_path):
    from synpref.model import model_title

    assert model_title("runs/rm/model", {"training": {"base_model": "minilm"}}) == "runs/rm/model (trained from minilm)"
    assert model_title("minilm", {}) == "minilm"
    rows = [{"id": f"p{i}", "prompt": f"q{i}", "candidates": [f"a{i}", f"b{i}"], "correct": [True, False]} for i in range(300)]
    src = write_jsonl(tmp_path / "many.jsonl", rows)
    out = tmp_path / "run" / "model-out.jsonl"
    result = CliRunner().invoke(bon_command, [str(tiny_bert_dir), "--input", str(src), "-o", str(out), "--no-plot"])
    assert result.exit_code == 0, result.output
    assert "bon: 256 of 300 prompts scored in" in result.output and "all of them will take about" in result.output
    assert "--limit N scores the first N prompts only" in result.output
    assert json.loads(out.with_name(out.name + ".curve.json").read_text())["model"] == str(tiny_bert_dir)
