"""What ``synpref train`` shows: defaults in --help, progress in every long phase, a short summary table,
and reward statistics sized to the run."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from synpref.cli import main
from synpref.schema import make_pair
from synpref.store.pool import PoolWriter


def test_reward_statistics_score_no_more_pairs_than_the_run_trained():
    from synpref.train.evaluation import reward_stats_sample_size

    assert reward_stats_sample_size(5000, 1000, trained=640) == 640  # a 20-step run of 32 pairs
    assert reward_stats_sample_size(5000, 1000, trained=40_000) == 1000  # the cap
    assert reward_stats_sample_size(300, 1000, trained=None) == 300
    assert reward_stats_sample_size(5000, 0, trained=3000) == 3000  # 0: no cap, still the pairs trained


def test_train_help_shows_defaults():
    result = CliRunner().invoke(main, ["train", "--help"])
    text = " ".join(result.output.split())
    assert result.exit_code == 0
    for shown in ("[default: 512]", "[default: truncate-left]", "[default: minilm]", "[default: 1000]", "[default: --progress]"):
        assert shown in text, shown


@pytest.fixture
def pool(tmp_path):
    with PoolWriter(tmp_path / "pool") as writer:
        for i in range(40):
            writer.write(make_pair(f"question {i}: is it right?", f"yes, correct {i}", f"no, wrong {i}"))
    return tmp_path / "pool"


def test_train_shows_progress_and_ends_with_a_short_table(tiny_bert_dir, pool, tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "--data", str(pool), "--model", str(tiny_bert_dir), "-o", str(run),
                                       "--max-steps", "2", "--pairs-per-step", "4", "--eval-fraction", "0.25",
                                       "--no-tensorboard", "--num-threads", "1", "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    for phase in ("encoding pairs", "held-out evaluation", "reward statistics", "saving the model to", "saved in"):
        assert phase in result.stderr, phase
    summary = json.loads((run / "summary.json").read_text())
    assert summary["reward_stats_pairs"] == 8  # 2 steps of 4 pairs, not the 1,000 of the cap
    lines = result.stdout.strip().splitlines()
    assert len(lines) <= 10 and "{" not in result.stdout  # a table, not the JSON
    assert lines[-1] == f"full summary: {run / 'summary.json'}"
    assert any(line.startswith("held-out accuracy") for line in lines)
    assert any(line.startswith("reward mean / std") and "(on 8 training pairs)" in line for line in lines)
