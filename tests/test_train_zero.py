"""DeepSpeed ZeRO stages 1 and 2: two gloo processes on the CPU, launched by accelerate's DeepSpeed plugin, against
one plain process; and the precise refusals of what synpref does not support (checked before deepspeed is imported). The launches need deepspeed installed
(pip install deepspeed, or synpref[deepspeed]); DeepSpeed runs on the CPU with gloo when oneCCL is absent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")

from test_train import _initial, _metrics, _weights, synthetic_records  # noqa: E402
from test_train_fsdp import SCRIPT  # noqa: E402

from synpref.train import TrainConfig, train  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "accelerate"
TIMEOUT = 300

# The FSDP tests' training script (argv: model, run_dir, JSON of TrainConfig overrides; STOP_AFTER_CHECKPOINT=1):
# 15 pairs a step in ~1-pair micro-batches, so the processes run 8 and 7 micro-batches. log_every=3: a metrics
# line spans the checkpoint at step 2.
OVERRIDES = {"log_every": 3, "tensorboard": False}


def _config(tmp_path: Path, stage: int) -> Path:
    """The repository's ZeRO config for ``stage``, made to start two processes on the CPU."""
    text = (CONFIGS / f"deepspeed_zero{stage}.yaml").read_text()
    assert f"zero_stage: {stage}" in text and "distributed_type: DEEPSPEED" in text
    text = text.replace("num_processes: 8", "num_processes: 2").replace("use_cpu: false", "use_cpu: true")
    path = tmp_path / f"cpu_2proc_zero{stage}.yaml"
    path.write_text(text)
    return path


def _run(tmp_path: Path, model: str, run_dir: Path, *, stage: int | None, env: dict | None = None):
    script = tmp_path / "zero_train.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent)))
    cmd = [sys.executable, str(script)]
    if stage is not None:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(_config(tmp_path, stage)),
               "--main_process_port", "0", str(script)]
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    full_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full_env.get('PATH', '')}"  # deepspeed's JIT ops: ninja
    out = subprocess.run(cmd + [model, str(run_dir), json.dumps(OVERRIDES)], env=full_env, timeout=TIMEOUT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, tiny_bert_dir):
    pytest.importorskip("deepspeed")
    tmp = tmp_path_factory.mktemp("zero-one")
    _run(tmp, str(tiny_bert_dir), tmp / "one", stage=None)
    return tmp / "one"


@pytest.mark.parametrize("stage", [1, 2])
def test_zero_two_processes_match_one(stage, one_process, tiny_bert_dir, tmp_path):
    pytest.importorskip("deepspeed")
    two = tmp_path / "two"
    out = _run(tmp_path, str(tiny_bert_dir), two, stage=stage)
    assert "synpref train: WARNING" not in out.stderr
    summaries = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("two.summary-*.json"))]
    assert len(summaries) == 2 and summaries[0] == summaries[1] and summaries[0]["num_processes"] == 2
    state = json.loads((two / "checkpoints" / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["deepspeed"] is True and (two / "checkpoints" / "checkpoint-2" / "zero").is_dir()
    init, a, b = _initial(tiny_bert_dir), _weights(one_process), _weights(two)
    update = torch.cat([(a[k] - init[k]).flatten() for k in a]).norm()
    gap = torch.cat([(a[k] - b[k]).flatten() for k in a]).norm()
    assert update > 0.05 and gap < 0.01 * update, (float(gap), float(update))
    for key in ("loss", "grad_norm", "eval_accuracy"):  # the gradient norm shows a gradient scale error
        ref = [x[key] for x in _metrics(one_process) if key in x]
        assert len(ref) >= 2 and [x[key] for x in _metrics(two) if key in x] == pytest.approx(ref, rel=1e-3), key


def test_zero_stopped_run_resumes_to_the_same_result(tiny_bert_dir, tmp_path):
    pytest.importorskip("deepspeed")
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    _run(tmp_path, str(tiny_bert_dir), straight, stage=2)
    _run(tmp_path, str(tiny_bert_dir), stopped, stage=2, env={"STOP_AFTER_CHECKPOINT": "1"})
    assert not (stopped / "model").exists()
    out = _run(tmp_path, str(tiny_bert_dir), stopped, stage=2)
    assert "resuming from" in out.stderr
    a, b = _weights(straight), _weights(stopped)
    for k in a:  # the engine restored its float32 master weights and Adam moments
        assert torch.equal(a[k], b[k]), k
    drop = ("pairs_per_s",)
    assert [{k: v for k, v in x.items() if k not in drop} for x in _metrics(stopped)] == \
        [{k: v for k, v in x.items() if k not in drop} for x in _metrics(straight)]


@pytest.mark.parametrize("env, message", [
    ({"ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}, r"zero_stage: 3 partitions the parameters.*use FSDP"),
    ({"ACCELERATE_DEEPSPEED_ZERO_STAGE": "0"}, r"zero_stage: 0: .*multi_gpu_ddp.yaml"),
    ({"ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE": "cpu"}, r"offload_optimizer_device: offloading is not supported"),
    ({"ACCELERATE_MIXED_PRECISION": "bf16"}, r"mixed_precision: bf16 with DeepSpeed: set mixed_precision: 'no'.*--precision"),
    ({"ACCELERATE_DEEPSPEED_CONFIG_FILE": "ds.json"}, r"deepspeed_config_file: synpref builds the DeepSpeed config"),
])
def test_unsupported_deepspeed_settings_are_refused(env, message, tiny_bert_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    cfg = TrainConfig(model=str(tiny_bert_dir), run_dir=str(tmp_path / "ds"), max_steps=1, progress=False, num_threads=1)
    with pytest.raises(ValueError, match=message):
        train(cfg, records=synthetic_records(8))


def test_deepspeed_launch_without_deepspeed_says_what_to_install(tiny_bert_dir, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else real(name, *a))
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    cfg = TrainConfig(model=str(tiny_bert_dir), run_dir=str(tmp_path / "ds"), max_steps=1, progress=False, num_threads=1)
    with pytest.raises(ValueError, match=r"deepspeed is not installed: pip install deepspeed"):
        train(cfg, records=synthetic_records(8))
