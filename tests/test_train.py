"""Reward-model trainer tests on tiny randomly initialised models (fast, CPU)."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from safetensors.torch import load_file  # noqa: E402

from synpref.schema import make_pair  # noqa: E402
from synpref.store.pool import PoolWriter  # noqa: E402
from synpref.train import TrainConfig, bradley_terry, find_layer_list, pair_loss, reward_centering, train  # noqa: E402
from synpref.train.data import epoch_steps, is_eval_prompt, micro_batches  # noqa: E402

WORDS = "apple banana cherry river mountain table chair window green blue stone cloud paper music light".split()


def synthetic_records(n: int, seed: int = 0, long_every: int = 0):
    """Easy task: the chosen answer contains 'correct', the rejected one 'wrong', at random positions."""
    rng = random.Random(seed)
    recs = []
    for i in range(n):
        q = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 10)))

        def answer(marker):
            ws = [rng.choice(WORDS) for _ in range(rng.randint(2, 8))]
            ws.insert(rng.randint(0, len(ws)), marker)
            return " ".join(ws)

        good, bad = answer("correct"), answer("wrong")
        if long_every and i % long_every == 0:
            bad = " ".join(rng.choice(WORDS) for _ in range(200))
        recs.append(make_pair(f"question {i}: {q}", good, bad))
    return recs


def _save_tiny(model, tok, path: Path) -> str:
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def minilm_tokenizer():
    from transformers import AutoTokenizer

    from synpref.model import packaged_model_path

    try:
        return AutoTokenizer.from_pretrained(packaged_model_path("minilm"))
    except FileNotFoundError as e:
        pytest.skip(str(e))


def _tiny_bert(tok, path: Path, dropout: float = 0.1) -> str:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512, num_labels=1,
                     hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    return _save_tiny(BertForSequenceClassification(cfg), tok, path)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory, minilm_tokenizer):
    return _tiny_bert(minilm_tokenizer, tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_bert_nodropout(tmp_path_factory, minilm_tokenizer):
    return _tiny_bert(minilm_tokenizer, tmp_path_factory.mktemp("tiny-bert-nd"), dropout=0.0)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    from synpref.model import resolve

    try:
        tok = AutoTokenizer.from_pretrained(resolve("smollm2-135m"))
    except FileNotFoundError as e:
        pytest.skip(str(e))
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, num_labels=1,
                      pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    return _save_tiny(LlamaForSequenceClassification(cfg), tok, tmp_path_factory.mktemp("tiny-llama"))


def _cfg(model, run_dir, **kw) -> TrainConfig:
    base = dict(model=model, run_dir=str(run_dir), pairs_per_step=16, max_batch_tokens=1024, learning_rate=3e-3,
                eval_fraction=0.2, progress=False, log_every=1, num_threads=1, precision="fp32")
    base.update(kw)
    return TrainConfig(**base)


def _metrics(run_dir) -> list[dict]:
    return [json.loads(l) for l in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if l.strip()]


def _weights(run_dir) -> dict:
    return load_file(str(Path(run_dir) / "model" / "model.safetensors"))


# -- losses ----------------------------------------------------------------------------
def test_losses_match_hand_computed_values():
    r_c, r_r = torch.tensor([1.0, -0.5]), torch.tensor([0.5, 0.5])
    # -log sigmoid(0.5) = log(1 + e^-0.5); -log sigmoid(-1) = log(1 + e)
    assert torch.allclose(bradley_terry(r_c, r_r), torch.tensor([math.log1p(math.exp(-0.5)), math.log1p(math.e)]))
    # margin 1: -log sigmoid(0.5 - 1) = log(1 + e^0.5); margin 0 leaves pair 2 unchanged
    m = torch.tensor([1.0, 0.0])
    assert torch.allclose(bradley_terry(r_c, r_r, m), torch.tensor([math.log1p(math.exp(0.5)), math.log1p(math.e)]))
    # centering: coef * (r_c + r_r)^2 = 0.01 * 1.5^2, 0.01 * 0^2
    assert torch.allclose(reward_centering(r_c, r_r, 0.01), torch.tensor([0.0225, 0.0]))
    total = pair_loss(r_c, r_r, margin=m, center_coef=0.01)
    assert torch.allclose(total, torch.tensor([math.log1p(math.exp(0.5)) + 0.0225, math.log1p(math.e)]))
    assert torch.equal(pair_loss(r_c, r_r), bradley_terry(r_c, r_r))


def test_margin_and_centering_reach_the_training_loss(tiny_bert_nodropout, tmp_path):
    """With lr=0 the logged step loss must equal the hand formula on the model's own rewards."""
    from synpref.model import RewardModel
    from synpref.schema import Record

    recs = [Record(r.context, r.candidates, "pair", margin=0.5 + (i % 3)) for i, r in enumerate(synthetic_records(16))]
    rm = RewardModel.from_pretrained(tiny_bert_nodropout)
    rc, rr = torch.tensor(rm.score_pairs(recs)).T.double()
    margins = torch.tensor([r.margin for r in recs], dtype=torch.float64)
    losses = {}
    for name, kw in {"plain": {}, "margin": {"use_margin": True, "margin_scale": 2.0},
                     "center": {"center_rewards_coef": 0.1}}.items():
        run = tmp_path / name
        train(_cfg(tiny_bert_nodropout, run, learning_rate=0.0, max_steps=1, eval_fraction=0.0, **kw), records=recs)
        losses[name] = _metrics(run)[0]["loss"]
    assert losses["plain"] == pytest.approx(float(torch.nn.functional.softplus(-(rc - rr)).mean()), rel=1e-4)
    assert losses["margin"] == pytest.approx(float(torch.nn.functional.softplus(-(rc - rr - 2.0 * margins)).mean()), rel=1e-4)
    assert losses["center"] - losses["plain"] == pytest.approx(float((0.1 * (rc + rr) ** 2).mean()), rel=1e-3, abs=1e-6)


def test_dropout_is_off_while_training_unless_asked(tiny_bert, tmp_path):
    """tiny_bert has dropout 0.1: with lr=0 the logged loss equals the eval-mode loss only
    when the trainer switched dropout off (the default), and differs when it was kept."""
    from synpref.model import RewardModel

    recs = synthetic_records(16)
    rc, rr = torch.tensor(RewardModel.from_pretrained(tiny_bert).score_pairs(recs)).T.double()
    expected = float(torch.nn.functional.softplus(-(rc - rr)).mean())
    losses = {}
    for name, off in (("off", True), ("kept", False)):
        train(_cfg(tiny_bert, tmp_path / name, learning_rate=0.0, max_steps=1, eval_fraction=0.0, disable_dropout=off), records=recs)
        losses[name] = _metrics(tmp_path / name)[0]["loss"]
    assert losses["off"] == pytest.approx(expected, rel=1e-5)
    assert losses["kept"] != pytest.approx(expected, rel=1e-5)


def test_disable_dropout_reaches_modules_and_float_attributes():
    from torch import nn

    from synpref.train.model_setup import disable_dropout

    class Attention(nn.Module):  # Llama-style: the probability is a float attribute
        def __init__(self):
            super().__init__()
            self.attention_dropout = 0.1

    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.1), Attention(), nn.Dropout(0.0))
    assert disable_dropout(model) == 2
    assert model[1].p == 0.0 and model[2].attention_dropout == 0.0


def test_length_groups_cover_everything_and_cut_padding():
    from synpref.batching import length_groups

    rng = random.Random(3)
    for n in (1, 2, 7, 40):
        lengths = [rng.choice([rng.randint(5, 20), rng.randint(200, 260)]) for _ in range(n)]
        groups = length_groups(lengths, max_groups=4, overhead_tokens=16)
        assert sorted(i for g in groups for i in g) == list(range(n)) and 1 <= len(groups) <= 4
        padded = sum(len(g) * max(lengths[i] for i in g) for g in groups)
        assert padded + 16 * len(groups) <= n * max(lengths) + 16
    bimodal = [10, 250, 12, 240, 11, 255]
    assert sorted(sorted(g) for g in length_groups(bimodal)) == [[0, 2, 4], [1, 3, 5]]
    assert length_groups([100] * 5) == [[0, 1, 2, 3, 4]]  # equal lengths: one forward
    assert length_groups([]) == []


# -- data plumbing ------------------------------------------------------------------------
def test_split_by_prompt_and_step_plan():
    recs = synthetic_records(200)
    ids = [r.prompt_id for r in recs]
    frac = sum(is_eval_prompt(p, 0.25) for p in ids) / len(ids)
    assert 0.12 < frac < 0.38
    assert all(is_eval_prompt(p, 0.25) == is_eval_prompt(p, 0.25) for p in ids)
    lengths = [random.Random(i).randint(5, 300) for i in range(103)]
    steps = epoch_steps(lengths, 10, 4, seed=1, epoch=0)
    assert sorted(i for s in steps for i in s) == list(range(103))
    assert [len(s) for s in steps[:-1]] == [10] * 10 and len(steps[-1]) == 3
    assert steps != epoch_steps(lengths, 10, 4, seed=1, epoch=1)
    assert steps == epoch_steps(lengths, 10, 4, seed=1, epoch=0)
    for s in steps:
        for mb in micro_batches(s, lengths, 600):  # both sequences of a pair count
            assert len(mb) == 1 or 2 * len(mb) * max(lengths[i] for i in mb) <= 600


# -- learning, run directory ----------------------------------------------------------------
def test_bert_learns_and_writes_run_dir(tiny_bert, tmp_path):
    from synpref.model import RewardModel

    pool = tmp_path / "pool"
    with PoolWriter(pool) as w:
        for r in synthetic_records(240, long_every=40):
            w.write(r)
    run = tmp_path / "run"
    s = train(_cfg(tiny_bert, run, data=[str(pool)], epochs=4, eval_every=10, max_length=128,
                   length_policy="truncate-left", warmup_steps=3, precision="auto", tensorboard=True))
    m = _metrics(run)
    train_lines = [x for x in m if "loss" in x]
    evals = [x for x in m if "eval_accuracy" in x]
    assert evals[0]["step"] == 0 and evals[-1]["step"] == s["steps"]
    assert sum(x["loss"] for x in train_lines[-3:]) / 3 < 0.5 * sum(x["loss"] for x in train_lines[:3]) / 3
    assert evals[-1]["eval_accuracy"] >= 0.9 > evals[0]["eval_accuracy"]
    assert evals[-1]["eval_mean_margin"] > evals[0]["eval_mean_margin"]
    # run directory contents
    assert json.loads((run / "config.json").read_text())["pairs_per_step"] == 16
    assert {"python", "torch", "transformers", "synpref"} <= set(json.loads((run / "versions.json").read_text()))
    data = json.loads((run / "data.json").read_text())
    assert len(data["sources"]) == 1 and len(data["sources"][0]["sha256"]) == 64
    c = data["counts"]
    assert c["records"] == 240 and c["pairs_dropped_length"] == 6  # the 200-word rejected answers don't fit
    assert c["pairs_train"] + c["pairs_eval"] + c["pairs_dropped_length"] == 240
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    # the final model: standard checkpoint with reward statistics
    rm = RewardModel.from_pretrained(run / "model")
    assert rm.meta["reward_std"] > 0 and "reward_mean" in rm.meta
    assert rm.policy.max_length == 128 and rm.policy.length_policy == "truncate-left"
    good = synthetic_records(20, seed=99)
    scores = rm.score_pairs(good)
    assert sum(a > b for a, b in scores) >= 18


def test_length_policy_drop_is_counted(tiny_bert, tmp_path):
    recs = synthetic_records(60, long_every=6)
    s = train(_cfg(tiny_bert, tmp_path / "run", max_length=64, length_policy="drop", max_steps=1, eval_fraction=0), records=recs)
    assert s["data"]["pairs_dropped_length"] == 10
    assert s["data"]["pairs_train"] == 50
    assert s["data"]["sequences"]["dropped"] == 10


# -- what to train -------------------------------------------------------------------------
def _changed(before: dict, after: dict) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


def _initial(model_dir) -> dict:
    return load_file(str(Path(model_dir) / "model.safetensors"))


def test_find_layer_list_generic(tiny_bert, tiny_llama):
    from synpref.model import RewardModel

    assert find_layer_list(RewardModel.from_pretrained(tiny_bert).model)[0] == "bert.encoder.layer"
    assert find_layer_list(RewardModel.from_pretrained(tiny_llama).model)[0] == "model.layers"


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_freeze_backbone_and_top_layers(arch, tiny_bert, tiny_llama, tmp_path):
    model_dir = tiny_bert if arch == "bert" else tiny_llama
    init = _initial(model_dir)
    recs = synthetic_records(48)
    head = "classifier." if arch == "bert" else "score."
    s = train(_cfg(model_dir, tmp_path / "frozen", freeze_backbone=True, max_steps=2, eval_fraction=0), records=recs)
    changed = _changed({k: v for k, v in init.items() if not k.startswith(head)}, _weights(tmp_path / "frozen"))
    assert changed == set()
    assert s["trainable_parameters"] < s["parameters"]

    s = train(_cfg(model_dir, tmp_path / "top1", train_top_layers=1, max_steps=2, eval_fraction=0), records=recs)
    after = _weights(tmp_path / "top1")
    changed = _changed({k: v for k, v in init.items() if k in after}, after)
    if arch == "bert":
        top, frozen = "bert.encoder.layer.1.", ("bert.embeddings.", "bert.encoder.layer.0.")
        after_stack = "bert.pooler."
    else:
        top, frozen = "model.layers.2.", ("model.embed_tokens.", "model.layers.0.", "model.layers.1.")
        after_stack = "model.norm."
    assert not [k for k in changed if k.startswith(frozen)]
    assert [k for k in changed if k.startswith(top)]
    assert [k for k in changed if k.startswith(after_stack)]
    assert s["layers"]["trained"] == ([1] if arch == "bert" else [2])


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_lora_trains_and_saves_merged_checkpoint(arch, tiny_bert, tiny_llama, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from synpref.model import RewardModel

    model_dir = tiny_bert if arch == "bert" else tiny_llama
    init = _initial(model_dir)
    recs = synthetic_records(64)
    run = tmp_path / "lora"
    s = train(_cfg(model_dir, run, lora=True, lora_r=4, max_steps=4, eval_fraction=0, learning_rate=1e-2), records=recs)
    assert s["trainable_parameters"] < s["parameters"]
    after = _weights(run)
    assert set(after) == set(init), "the merged checkpoint has exactly the base model's tensors (no lora_* keys)"
    changed = _changed(init, after)
    assert any(".layer" in k or "layers." in k for k in changed), "merged adapters changed backbone weights"
    assert any(k.startswith(("classifier.", "score.")) for k in changed), "the head trained"
    plain = AutoModelForSequenceClassification.from_pretrained(run / "model")  # plain transformers, no peft
    rm = RewardModel.from_pretrained(run / "model")
    batch = rm.collate([rm.encode(recs[0].conversation(0))])
    plain.eval()
    with torch.no_grad():
        if arch == "bert":
            assert torch.allclose(plain(**batch).logits[:, 0], rm.forward(batch), atol=1e-5)
    assert isinstance(rm.score([recs[0].conversation(0)])[0], float)


def test_gradient_checkpointing_gives_same_result(tiny_bert, tmp_path):
    recs = synthetic_records(48)
    train(_cfg(tiny_bert, tmp_path / "a", max_steps=3, eval_fraction=0), records=recs)
    train(_cfg(tiny_bert, tmp_path / "b", max_steps=3, eval_fraction=0, gradient_checkpointing=True), records=recs)
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert _changed(_initial(tiny_bert), a)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


# -- fine-tuning a released reward model -----------------------------------------------------
def test_finetuning_a_trained_reward_model_keeps_its_head(tiny_llama, tmp_path, capfd):
    """A checkpoint synpref trained, reloaded as the base of a new run: its head and reward scale are kept."""
    from synpref.model import RewardModel

    recs = synthetic_records(16)
    first = tmp_path / "first"
    train(_cfg(tiny_llama, first, max_steps=4, eval_fraction=0), records=synthetic_records(64, seed=1))
    rc, rr = torch.tensor(RewardModel.from_pretrained(first / "model").score_pairs(recs)).T.double()
    assert float((rc - rr).abs().mean()) > 1e-3, "the first run moved the rewards"
    capfd.readouterr()
    second = tmp_path / "second"  # lr=0: the logged loss is the loss of the rewards the run starts from
    train(_cfg(str(first / "model"), second, max_steps=1, learning_rate=0.0, eval_fraction=0), records=recs)
    err = capfd.readouterr().err
    assert "keeps its trained reward head (score, num_labels=1), not re-initialised" in err
    assert "its rewards had mean" in err and "new reward head" not in err
    assert _metrics(second)[0]["loss"] == pytest.approx(float(torch.nn.functional.softplus(-(rc - rr)).mean()), rel=1e-5)
    after = torch.tensor(RewardModel.from_pretrained(second / "model").score_pairs(recs)).T.double()
    assert torch.allclose(after, torch.stack([rc, rr]), atol=1e-6)


@pytest.mark.parametrize("base", ["two_labels", "bare_backbone"])
def test_a_base_without_a_reward_head_gets_a_new_one(base, minilm_tokenizer, tmp_path, capfd):
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    torch.manual_seed(1)
    shape = dict(vocab_size=minilm_tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64, max_position_embeddings=512)
    model = BertForSequenceClassification(BertConfig(**shape, num_labels=2)) if base == "two_labels" else BertModel(BertConfig(**shape))
    path = _save_tiny(model, minilm_tokenizer, tmp_path / base)
    capfd.readouterr()
    train(_cfg(path, tmp_path / "run", max_steps=1, learning_rate=0.0, eval_fraction=0), records=synthetic_records(16))
    err = capfd.readouterr().err
    why = ("the checkpoint's head has num_labels=2, a reward model needs 1" if base == "two_labels"
           else "the checkpoint has no sequence-classification head (classifier.bias, classifier.weight missing)")
    assert f"new reward head (classifier), initialised from a fixed seed, because {why}" in err
    saved, backbone = _weights(tmp_path / "run"), load_file(str(Path(path) / "model.safetensors"))
    prefix = "bert." if base == "two_labels" else ""
    for k in ("embeddings.word_embeddings.weight", "encoder.layer.1.output.dense.weight"):  # the backbone loaded
        assert torch.equal(saved["bert." + k], backbone[prefix + k]), k
    assert saved["classifier.weight"].shape == (1, 32)


# -- kill -9 and resume ----------------------------------------------------------------------
RESUME_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    os.environ["HF_HUB_OFFLINE"] = "1"
    sys.path.insert(0, {tests!r})
    from test_train import synthetic_records
    import synpref.train.trainer as trainer
    from synpref.train import TrainConfig, train

    if os.environ.get("SLOW_AFTER_CHECKPOINT"):
        real_save = trainer.ckpt.save_checkpoint
        import torch
        real_step = torch.optim.AdamW.step
        saved = []
        def save(*a, **k):
            out = real_save(*a, **k)
            saved.append(out)
            print("CHECKPOINT", out, flush=True)
            return out
        def step(self, *a, **k):
            if saved:
                time.sleep(0.3)   # slow down after the first checkpoint so the test can kill mid-run
            return real_step(self, *a, **k)
        trainer.ckpt.save_checkpoint = save
        torch.optim.AdamW.step = step
    cfg = TrainConfig(model=sys.argv[1], run_dir=sys.argv[2], pairs_per_step=8, max_batch_tokens=512, epochs=2,
                      learning_rate=3e-3, eval_fraction=0.2, eval_every=3, save_every=4, progress=False,
                      log_every=3, num_threads=1, precision="auto")
    print("SUMMARY", train(cfg, records=synthetic_records(96)), flush=True)
    """
)


def test_kill9_resume_equals_uninterrupted(tiny_bert, tmp_path):
    script = tmp_path / "run_train.py"
    script.write_text(RESUME_SCRIPT.format(tests=str(Path(__file__).parent)))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    straight = tmp_path / "straight"
    subprocess.run([sys.executable, str(script), tiny_bert, str(straight)], check=True, env=env, timeout=120,
                   capture_output=True)

    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(script), tiny_bert, str(run)], env={**env, "SLOW_AFTER_CHECKPOINT": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("CHECKPOINT"):
                break
        deadline = time.time() + 60  # wait until the run is past its checkpoint (steps are slowed to 0.3 s)
        while time.time() < deadline and not any(x["step"] > 5 for x in _metrics(run)):
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "model").exists()
    ckpts = list((run / "checkpoints").glob("checkpoint-*"))
    assert ckpts and max(int(p.name.split("-")[1]) for p in ckpts) >= 4
    assert max(x["step"] for x in _metrics(run)) > 4, "the killed run got past its checkpoint"

    out = subprocess.run([sys.executable, str(script), tiny_bert, str(run)], check=True, env=env, timeout=120,
                         capture_output=True, text=True)
    assert "resuming from" in out.stderr
    a, b = _weights(straight), _weights(run)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert _metrics(run) == [] or [x["step"] for x in _metrics(run)] == [x["step"] for x in _metrics(straight)]
    # log_every=3, checkpoint at step 4: the step-6 line spans the resume and still averages steps 4-6
    timing = ("pairs_per_s",)
    assert [{k: v for k, v in x.items() if k not in timing} for x in _metrics(run)] == \
        [{k: v for k, v in x.items() if k not in timing} for x in _metrics(straight)]

    # Rerunning the finished run does nothing: no resume from its last checkpoint, the model stays as it is.
    model_file = run / "model" / "model.safetensors"
    written, metrics = model_file.stat().st_mtime_ns, _metrics(run)
    again = subprocess.run([sys.executable, str(script), tiny_bert, str(run)], check=True, env=env, timeout=120,
                           capture_output=True, text=True)
    assert "is complete" in again.stderr and "resuming from" not in again.stderr
    assert model_file.stat().st_mtime_ns == written and _metrics(run) == metrics


def test_finished_run_is_not_trained_again(tiny_bert, tmp_path, capfd):
    recs = synthetic_records(48)
    run = tmp_path / "run"
    first = train(_cfg(tiny_bert, run, max_steps=3, eval_fraction=0), records=recs)
    written = (run / "model" / "model.safetensors").stat().st_mtime_ns
    capfd.readouterr()
    again = train(_cfg(tiny_bert, run, max_steps=3, eval_fraction=0, progress=True), records=recs)  # a resumable change
    err = capfd.readouterr().err
    assert "is complete (3 steps" in err and "nothing to do" in err
    assert again == json.loads((run / "summary.json").read_text()) and again["steps"] == first["steps"] == 3
    assert (run / "model" / "model.safetensors").stat().st_mtime_ns == written
    # other data or other settings: a new run, said so (there is no checkpoint to refuse)
    train(_cfg(tiny_bert, run, max_steps=3, eval_fraction=0), records=recs[:40])
    assert "finished run of other data" in capfd.readouterr().err
    train(_cfg(tiny_bert, run, max_steps=2, eval_fraction=0), records=recs[:40])
    assert "finished run of other settings (max_steps); training anew replaces it" in capfd.readouterr().err
    assert json.loads((run / "summary.json").read_text())["steps"] == 2


# -- multi-process ----------------------------------------------------------------------------
MP_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    os.environ["HF_HUB_OFFLINE"] = "1"
    sys.path.insert(0, {tests!r})
    from test_train import synthetic_records
    from synpref.train import TrainConfig, train
    cfg = TrainConfig(model=sys.argv[1], run_dir=sys.argv[2], pairs_per_step=16, max_batch_tokens=512, max_steps=4,
                      learning_rate=3e-3, eval_fraction=0.2, eval_every=2, progress=False, log_every=1,
                      num_threads=1, precision="fp32")
    s = train(cfg, records=synthetic_records(96))
    rank = os.environ.get("RANK", "0")  # one file per process: interleaved stdout lines are unreliable
    with open(sys.argv[2] + f".summary-{{rank}}.json", "w") as fh:
        json.dump({{k: s[k] for k in ("num_processes", "steps", "eval_accuracy", "reward_mean")}}, fh)
    """
)


def test_accelerate_two_processes_matches_one(tiny_bert_nodropout, tmp_path):
    import shutil

    accelerate = shutil.which("accelerate") or str(Path(sys.executable).parent / "accelerate")
    script = tmp_path / "mp_train.py"
    script.write_text(MP_SCRIPT.format(tests=str(Path(__file__).parent)))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    config = Path(__file__).resolve().parents[1] / "configs" / "accelerate" / "cpu_2proc_gloo.yaml"
    out = subprocess.run([accelerate, "launch", "--config_file", str(config), "--main_process_port", "0", str(script),
                          tiny_bert_nodropout, str(tmp_path / "two")], env=env, timeout=180, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    summaries = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("two.summary-*.json"))]
    assert len(summaries) == 2 and all(s["num_processes"] == 2 and s["steps"] == 4 for s in summaries)
    assert summaries[0] == summaries[1]  # every process agrees on the metrics
    one = subprocess.run([sys.executable, str(script), tiny_bert_nodropout, str(tmp_path / "one")], env=env,
                         timeout=120, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr[-3000:]
    # Data-parallel steps are the same steps: 2 processes give the single-process weights (up to rounding).
    # Adam divides by sqrt(v), so near-zero gradients amplify rounding: compare the
    # weight difference with the size of the update instead of element-wise.
    init = _initial(tiny_bert_nodropout)
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    update = torch.cat([(a[k] - init[k]).flatten() for k in a]).norm()
    gap = torch.cat([(a[k] - b[k]).flatten() for k in a]).norm()
    assert update > 0.1 and gap < 0.02 * update, (float(gap), float(update))
    la = [x["loss"] for x in _metrics(tmp_path / "one") if "loss" in x]
    lb = [x["loss"] for x in _metrics(tmp_path / "two") if "loss" in x]
    assert la == pytest.approx(lb, rel=1e-3)


def test_config_help_and_validation(tmp_path):
    from dataclasses import fields

    helps = TrainConfig.help()
    assert all(helps[f.name] for f in fields(TrainConfig)), [k for k, v in helps.items() if not v]
    assert TrainConfig().max_length == 512 and TrainConfig().length_policy == "truncate-left"
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp16")
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.from_dict({"nope": 1})
    cfg = TrainConfig(data="pool", lora=True)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


# -- TensorBoard is a view of metrics.jsonl: its failures are reported, never fatal -------------
def test_tensorboard_failures_are_reported_and_metrics_kept(tiny_bert, tmp_path, capfd, monkeypatch):
    pytest.importorskip("tensorboard")
    recs = synthetic_records(32)
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "tensorboard").write_text("a file where the event folder should be")
    train(_cfg(tiny_bert, blocked, max_steps=2, tensorboard=True), records=recs)
    err = capfd.readouterr().err
    assert "TensorBoard logging is off for this run because FileExistsError" in err and "metrics.jsonl" in err
    assert [x["step"] for x in _metrics(blocked) if "loss" in x] == [1, 2]

    with monkeypatch.context() as m:  # not installed
        m.setitem(sys.modules, "torch.utils.tensorboard", None)
        train(_cfg(tiny_bert, tmp_path / "absent", max_steps=1, tensorboard=True), records=recs)
    err = capfd.readouterr().err
    assert "TensorBoard logging is off for this run because ModuleNotFoundError" in err and "--no-tensorboard" in err

    from torch.utils.tensorboard import SummaryWriter

    def disk_full(self, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(SummaryWriter, "add_scalar", disk_full)
    summary = train(_cfg(tiny_bert, tmp_path / "full", max_steps=3, tensorboard=True), records=recs)
    err = capfd.readouterr().err
    assert err.count("TensorBoard logging stopped at step 1 because OSError") == 1  # once, then off
    assert summary["steps"] == 3 and [x["step"] for x in _metrics(tmp_path / "full") if "loss" in x] == [1, 2, 3]

    train(_cfg(tiny_bert, tmp_path / "off", max_steps=1, tensorboard=False), records=recs)
    assert "TensorBoard" not in capfd.readouterr().err
