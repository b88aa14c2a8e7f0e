"""``--device`` on every command that loads a model: checked at parse time (a usage error naming the
flag, no traceback), and passed through to the model."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from synpref.cli import main
from synpref.schema import make_pair
from synpref.store.pool import PoolWriter


@pytest.fixture()
def pool(tmp_path):
    out = tmp_path / "pool"
    with PoolWriter(out) as writer:
        for i in range(12):
            writer.write(make_pair(f"question {i}: is it right?", f"yes, correct {i}", f"no, wrong {i}"))
    return out


def _commands(model, pool, tmp_path):
    return {
        "train": ["train", "--data", str(pool), "--model", model, "-o", str(tmp_path / "run"), "--max-steps", "1"],
        "score": ["score", model, "--input", str(pool)],
        "eval": ["eval", model, "--pairs", str(pool / "part-00000.parquet"), "-o", str(tmp_path / "eval")],
        "serve": ["serve", model, "--port", "1"],
        "bon": ["bon", model, "-i", str(pool), "-o", str(tmp_path / "bon.jsonl")],
    }


def test_every_model_command_refuses_a_bad_device_before_loading(tiny_bert_dir, pool, tmp_path):
    unavailable = None if torch.cuda.is_available() else "cuda"
    for name, args in _commands(str(tiny_bert_dir), pool, tmp_path).items():
        for device, message in (("cudaa", "not a device name"), (unavailable, "no cuda device")):
            if device is None:
                continue
            result = CliRunner().invoke(main, args + ["--device", device])
            assert result.exit_code == 2, (name, result.output)
            assert "Invalid value for '--device'" in result.output and message in result.output, (name, result.output)
            assert result.exception is None or isinstance(result.exception, SystemExit), name  # no traceback
        assert "--device" in CliRunner().invoke(main, [name, "--help"]).output, name
    assert not (tmp_path / "run").exists() and not (tmp_path / "eval").exists()


def test_device_reaches_the_model(tiny_bert_dir, pool, tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "--data", str(pool), "--model", str(tiny_bert_dir), "-o", str(run),
                                       "--max-steps", "1", "--device", "cpu", "--no-progress", "--no-tensorboard",
                                       "--num-threads", "1", "--eval-fraction", "0"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "config.json").read_text())["device"] == "cpu"
    assert json.loads((run / "summary.json").read_text())["device"] == "cpu"
    scored = CliRunner().invoke(main, ["score", str(run / "model"), "--input", str(pool), "--device", "cpu"])
    assert scored.exit_code == 0 and "pairs: 12" in scored.output, scored.output


def test_train_refuses_a_bad_device_in_python_too(tiny_bert_dir, tmp_path):
    from synpref.model import DeviceError
    from synpref.train import TrainConfig, train

    cfg = TrainConfig(model=str(tiny_bert_dir), run_dir=str(tmp_path / "run"), device="cuda:x", progress=False)
    with pytest.raises(DeviceError, match="--device"):
        train(cfg, records=[make_pair("q", "a", "b")])
