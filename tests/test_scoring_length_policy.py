"""One length-policy decision for scoring (``synpref score``, ``bon``) and evaluation (``synpref eval``):
``synpref.text.scoring_policy``. A checkpoint trained under ``truncate-left`` would drop a response longer
than max_length; scored or evaluated, every input gets a reward, and both outputs say so."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from synpref.cli import main
from synpref.model import RewardModel
from synpref.text import SCORING_LENGTH_POLICY, TextPolicy, scoring_policy

LONG = "a very long answer that goes on " * 20  # far more than 48 tokens


@pytest.fixture(scope="module")
def short_checkpoint(tiny_bert_dir, tmp_path_factory):
    """The tiny BERT saved as trained under truncate-left with max_length 48."""
    rm = RewardModel.from_pretrained(tiny_bert_dir, policy=TextPolicy(48, "truncate-left"), device="cpu")
    return rm.save_pretrained(tmp_path_factory.mktemp("short-ckpt"))


@pytest.fixture
def long_pairs(tmp_path):
    rows = [{"prompt": f"question {i}?", "chosen": LONG if i % 2 else f"short {i}", "rejected": f"no {i}"} for i in range(6)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_scoring_policy_cuts_instead_of_dropping_and_honours_an_override():
    trained = TextPolicy(256, "truncate-left", "be brief")
    assert scoring_policy(trained) == TextPolicy(256, SCORING_LENGTH_POLICY, "be brief") and SCORING_LENGTH_POLICY == "truncate"
    assert scoring_policy(TextPolicy(256, "error")).length_policy == "truncate"
    assert scoring_policy(trained, max_length=64, length_policy="drop") == TextPolicy(64, "drop", "be brief")


def test_score_and_eval_give_every_pair_the_same_rewards_and_say_which_policy(short_checkpoint, long_pairs, tmp_path):
    scores = tmp_path / "scores.jsonl"
    result = CliRunner().invoke(main, ["score", str(short_checkpoint), "--input", str(long_pairs), "-o", str(scores)])
    assert result.exit_code == 0, result.output
    assert "pairs: 6 " in result.output and "not scored" not in result.output
    assert "length policy 'truncate' (max_length 48 tokens): of 12 inputs" in result.output
    assert "3 responses were cut to their beginning, 0 dropped" in result.output
    rows = [json.loads(line) for line in scores.read_text().splitlines()]
    assert all(r is not None and not math.isnan(r) for row in rows for r in row["rewards"])

    out = tmp_path / "eval"
    evaluated = CliRunner().invoke(main, ["eval", str(short_checkpoint), "--pairs", str(long_pairs), "-o", str(out), "--no-baselines"])
    assert evaluated.exit_code == 0, evaluated.output
    assert "length policy 'truncate' (max_length 48 tokens)" in evaluated.output
    block = json.loads((out / "results.json").read_text())["models"][str(short_checkpoint)]
    assert block["text_policy"]["length_policy"] == "truncate"
    assert block["benchmarks"]["pairs:pairs.jsonl"]["n_dropped_candidates"] == 0
    items = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert sorted(r for it in items for r in it["rewards"]) == pytest.approx(sorted(r for row in rows for r in row["rewards"]), abs=1e-5)


def test_an_explicit_drop_policy_is_stated_with_what_it_dropped(short_checkpoint, long_pairs):
    result = CliRunner().invoke(main, ["score", str(short_checkpoint), "--input", str(long_pairs), "--length-policy", "drop"])
    assert result.exit_code == 0, result.output
    assert "pairs not scored (a candidate dropped by --length-policy drop" in result.output and ": 3" in result.output
    assert "length policy 'drop' (max_length 48 tokens)" in result.output and "3 dropped" in result.output
