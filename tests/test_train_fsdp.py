"""Sharded (FSDP2) training: two gloo processes on the CPU, launched by accelerate with
configs/accelerate/cpu_2proc_fsdp.yaml, against one plain process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")

from test_train import _initial, _metrics, _weights, synthetic_records  # noqa: E402

from synpref.train import TrainConfig, train  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "accelerate"
TIMEOUT = 300

# argv: model, run_dir, JSON of TrainConfig overrides. STOP_AFTER_CHECKPOINT=1 ends every
# process right after the first checkpoint (a run stopped between steps).
SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    os.environ["HF_HUB_OFFLINE"] = "1"
    sys.path.insert(0, {tests!r})
    from test_train import synthetic_records
    import synpref.train.trainer as trainer
    from synpref.train import TrainConfig, train

    if os.environ.get("STOP_AFTER_CHECKPOINT"):
        real_save = trainer.ckpt.save_checkpoint
        def save(*a, **k):
            real_save(*a, **k)
            os._exit(0)
        trainer.ckpt.save_checkpoint = save
    # 15 pairs a step and ~1 pair per micro-batch: the processes run 8 and 7 micro-batches.
    base = dict(pairs_per_step=15, max_batch_tokens=64, max_steps=4, save_every=2, learning_rate=3e-3,
                eval_fraction=0.2, eval_every=2, progress=False, log_every=1, num_threads=1, precision="fp32")
    cfg = TrainConfig(model=sys.argv[1], run_dir=sys.argv[2], **{{**base, **json.loads(sys.argv[3])}})
    s = train(cfg, records=synthetic_records(96))
    rank = os.environ.get("RANK", "0")
    with open(sys.argv[2] + f".summary-{{rank}}.json", "w") as fh:
        json.dump({{k: s[k] for k in ("num_processes", "fsdp", "steps", "eval_accuracy", "reward_mean")}}, fh)
    """
)


def _run(tmp_path: Path, model: str, run_dir: Path, overrides: dict, *, processes: int, env: dict | None = None):
    script = tmp_path / "fsdp_train.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent)))
    cmd = [sys.executable, str(script)]
    if processes == 2:
        accelerate = shutil.which("accelerate") or str(Path(sys.executable).parent / "accelerate")
        cmd = [accelerate, "launch", "--config_file", str(CONFIGS / "cpu_2proc_fsdp.yaml"), "--main_process_port", "0",
               str(script)]
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    out = subprocess.run(cmd + [model, str(run_dir), json.dumps(overrides)], env=full_env, timeout=TIMEOUT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-4000:]
    return out


ARCH_OPTIONS = {"bert": {}, "llama": {"gradient_checkpointing": True}}


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory, tiny_bert_dir, tiny_llama_dir):
    """run_dir of one uninterrupted 2-process FSDP run per architecture (made once)."""
    runs = {}

    def get(arch: str) -> Path:
        if arch not in runs:
            tmp = tmp_path_factory.mktemp(f"fsdp-{arch}")
            model = str(tiny_bert_dir if arch == "bert" else tiny_llama_dir)
            _run(tmp, model, tmp / "two", ARCH_OPTIONS[arch], processes=2)
            runs[arch] = tmp / "two"
        return runs[arch]

    return get


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_fsdp_two_processes_match_one(arch, fsdp_run, tiny_bert_dir, tiny_llama_dir, tmp_path):
    model = str(tiny_bert_dir if arch == "bert" else tiny_llama_dir)
    two = fsdp_run(arch)
    summaries = [json.loads(p.read_text()) for p in sorted(two.parent.glob("two.summary-*.json"))]
    assert len(summaries) == 2 and summaries[0] == summaries[1]  # every process agrees on the metrics
    assert summaries[0]["fsdp"] is True and summaries[0]["num_processes"] == 2 and summaries[0]["steps"] == 4
    _run(tmp_path, model, tmp_path / "one", ARCH_OPTIONS[arch], processes=1)
    assert json.loads((tmp_path / "one.summary-0.json").read_text())["fsdp"] is False
    # Same criterion as the data-parallel test: the weight gap is tiny next to the update.
    init = _initial(model)
    a, b = _weights(tmp_path / "one"), _weights(two)
    assert set(a) == set(b) == set(init)
    update = torch.cat([(a[k] - init[k]).flatten() for k in a]).norm()
    gap = torch.cat([(a[k] - b[k]).flatten() for k in a]).norm()
    assert update > 0.05 and gap < 0.02 * update, (float(gap), float(update))
    steps_a = [x for x in _metrics(tmp_path / "one") if "loss" in x]
    steps_b = [x for x in _metrics(two) if "loss" in x]
    assert len(steps_a) == 4
    for key in ("loss", "grad_norm"):  # Adam hides a gradient scale error in the weights; the norm shows it
        assert [x[key] for x in steps_a] == pytest.approx([x[key] for x in steps_b], rel=1e-3), key
    ea = [x["eval_accuracy"] for x in _metrics(tmp_path / "one") if "eval_accuracy" in x]
    assert ea == [x["eval_accuracy"] for x in _metrics(two) if "eval_accuracy" in x]


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_fsdp_final_model_is_plain_transformers(arch, fsdp_run):
    from transformers import AutoModelForSequenceClassification

    from synpref.model import RewardModel

    model_dir = fsdp_run(arch) / "model"
    plain = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    rm = RewardModel.from_pretrained(model_dir)
    assert rm.meta["reward_std"] > 0 and rm.meta["training"]["steps"] == 4
    convs = [r.conversation(i) for r in synthetic_records(3, seed=5) for i in (0, 1)]
    expected = []
    with torch.no_grad():
        for conv in convs:  # one unpadded sequence at a time
            batch = rm.collate([rm.encode(conv)])
            if arch == "bert":
                expected.append(float(plain(**batch).logits[0, 0]))
            else:  # the hidden state of the last token through the score head
                hidden = plain.model(input_ids=batch["input_ids"]).last_hidden_state
                expected.append(float(plain.score(hidden[:, -1])[0, 0]))
    assert rm.score(convs) == pytest.approx(expected, abs=1e-5)


def test_fsdp_trains_packed_rows_like_padded_ones(fsdp_run, tiny_bert_dir, tmp_path):
    """The packed layout goes through the FSDP root module (RewardPooling) like the padded one."""
    packed = tmp_path / "packed"
    _run(tmp_path, str(tiny_bert_dir), packed, {**ARCH_OPTIONS["bert"], "packing": "on"}, processes=2)
    assert json.loads((packed / "summary.json").read_text())["layout"] == "packed"
    for key in ("loss", "grad_norm", "eval_accuracy"):
        padded = [x[key] for x in _metrics(fsdp_run("bert")) if key in x]
        assert len(padded) >= 3 and [x[key] for x in _metrics(packed) if key in x] == pytest.approx(padded, rel=1e-4), key


def test_fsdp_stopped_run_resumes_to_the_same_result(fsdp_run, tiny_bert_dir, tmp_path):
    model, run = str(tiny_bert_dir), tmp_path / "stopped"
    _run(tmp_path, model, run, ARCH_OPTIONS["bert"], processes=2, env={"STOP_AFTER_CHECKPOINT": "1"})
    assert not (run / "model").exists()
    assert [p.name for p in (run / "checkpoints").glob("checkpoint-*")] == ["checkpoint-2"]
    assert json.loads((run / "checkpoints" / "checkpoint-2" / "trainer_state.json").read_text())["sharded"] is True
    out = _run(tmp_path, model, run, ARCH_OPTIONS["bert"], processes=2)
    assert "resuming from" in out.stderr
    a, b = _weights(fsdp_run("bert")), _weights(run)
    for k in a:  # bit-identical, as for a data-parallel resume
        assert torch.equal(a[k], b[k]), k
    la = [x["loss"] for x in _metrics(fsdp_run("bert")) if "loss" in x]
    lb = [x["loss"] for x in _metrics(run) if "loss" in x]
    assert la == pytest.approx(lb, rel=1e-6)


def test_fsdp_top_layers_freeze_the_rest(tiny_llama_dir, tmp_path):
    model = str(tiny_llama_dir)
    _run(tmp_path, model, tmp_path / "top", {"train_top_layers": 1, "max_steps": 2, "save_every": 0}, processes=2)
    init, after = _initial(model), _weights(tmp_path / "top")
    changed = {k for k in init if not torch.equal(init[k], after[k])}
    assert all(k.startswith(("model.layers.1.", "model.norm.", "score.")) for k in changed), changed
    assert any(k.startswith("model.layers.1.") for k in changed) and any(k.startswith("score.") for k in changed)


def test_unsupported_fsdp_options_are_refused(monkeypatch):
    """(DeepSpeed's refusals are in test_train_zero.py.)"""
    from synpref.train.sharding import check_compatible, fsdp_launch_options

    assert fsdp_launch_options() is None
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "2")
    monkeypatch.setenv("FSDP_ACTIVATION_CHECKPOINTING", "true")
    assert fsdp_launch_options().activation_checkpointing
    for var, value, message in (("FSDP_VERSION", "1", "FSDP2"), ("FSDP_OFFLOAD_PARAMS", "true", "fsdp_offload_params"),
                                ("FSDP_CPU_RAM_EFFICIENT_LOADING", "true", "fsdp_cpu_ram_efficient_loading")):
        with monkeypatch.context() as m:
            m.setenv(var, value)
            with pytest.raises(ValueError, match=message):
                fsdp_launch_options()
    with pytest.raises(ValueError, match="lora"):
        check_compatible(TrainConfig(lora=True))
