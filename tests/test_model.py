"""RewardModel: batch/padding invariance, saving to a standard checkpoint, GGUF conversion."""

import math

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from synpref.model import RewardModel, resolve
from synpref.schema import Message as M
from synpref.text import LengthStats, TextPolicy


def conversations(n=40):
    out = []
    for i in range(n):
        ctx = [M("user", f"Question {i}: " + "tell me more " * (i * 7 % 40))]
        if i % 5 == 0:
            ctx += [M("assistant", "Sure."), M("user", "Go on " * (i % 9 + 1))]
        out.append(tuple(ctx) + (M("assistant", "Here is an answer " * (i % 13 + 1)),))
    return out


@pytest.mark.parametrize("which", ["tiny_bert_dir", "tiny_llama_dir"])
def test_scores_do_not_depend_on_batch_size_or_order(which, request):
    rm = RewardModel.from_pretrained(request.getfixturevalue(which), device="cpu")
    convs = conversations()
    one = rm.score(convs, max_batch_items=1)
    many = rm.score(convs, max_batch_items=32)
    small_budget = rm.score(convs, max_batch_tokens=300)
    reversed_scores = rm.score(convs[::-1], max_batch_items=32)[::-1]
    for other in (many, small_budget, reversed_scores):
        assert max(abs(a - b) for a, b in zip(one, other)) < 1e-4
    assert len(set(round(s, 6) for s in one)) > 10  # the model really separates inputs


def test_decoder_reward_matches_transformers_own_pooling(tiny_llama_dir):
    rm = RewardModel.from_pretrained(tiny_llama_dir, device="cpu")
    conv = conversations(3)[2]
    enc = rm.encode(conv)
    ours = rm.score([conv])[0]
    with torch.no_grad():
        theirs = rm.model(input_ids=torch.tensor([enc.input_ids])).logits[0, 0].item()
    assert abs(ours - theirs) < 1e-5


def test_save_is_a_standard_checkpoint(tiny_bert_dir, tmp_path):
    rm = RewardModel.from_pretrained(tiny_bert_dir, device="cpu", policy=TextPolicy(max_length=128, length_policy="truncate-left"))
    convs = conversations(6)
    before = rm.score(convs)
    rm.save_pretrained(tmp_path / "ckpt", reward_mean=0.5, reward_std=2.0)
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "ckpt")
    tok = AutoTokenizer.from_pretrained(tmp_path / "ckpt")
    info = plain.config.synpref
    assert info["text_policy"] == {"max_length": 128, "length_policy": "truncate-left", "system_prompt": None}
    assert info["reward_mean"] == 0.5 and len(info["template_fingerprint"]) == 16
    enc = rm.encode(convs[1])
    with torch.no_grad():
        direct = plain(input_ids=torch.tensor([enc.input_ids]), token_type_ids=torch.tensor([enc.token_type_ids])).logits[0, 0].item()
    assert abs(direct - before[1]) < 1e-5
    assert tok("hello")["input_ids"] == rm.tokenizer("hello")["input_ids"]
    again = RewardModel.from_pretrained(tmp_path / "ckpt", device="cpu")
    assert again.policy == rm.policy
    assert max(abs(a - b) for a, b in zip(before, again.score(convs))) < 1e-6
    norm = again.score(convs, normalize=True)
    assert abs(norm[0] - (before[0] - 0.5) / 2.0) < 1e-5


def test_dropped_items_score_nan_and_are_counted(tiny_bert_dir):
    rm = RewardModel.from_pretrained(tiny_bert_dir, device="cpu", policy=TextPolicy(max_length=16, length_policy="drop"))
    stats = LengthStats()
    scores = rm.score([(M("user", "hi"), M("assistant", "ok")), conversations(10)[9]], stats=stats)
    assert not math.isnan(scores[0]) and math.isnan(scores[1])
    assert stats.dropped == 1 and stats.dropped_ids == [1]


def test_score_pairs(tiny_bert_dir):
    from synpref.schema import make_pair

    rm = RewardModel.from_pretrained(tiny_bert_dir, device="cpu")
    pair = make_pair("q", "good", "bad")
    (c, r), = rm.score_pairs([pair])
    assert (c, r) == tuple(rm.score([pair.conversation(0), pair.conversation(1)]))


@pytest.mark.integration
def test_real_backbones_are_batch_invariant(smollm_dir):
    """MiniLM (packaged) and SmolLM2-135M (converted from its GGUF), real weights."""
    convs = conversations(12)[::2]  # short and long, multi-turn included
    for ref in ("minilm", smollm_dir):
        rm = RewardModel.from_pretrained(ref, device="cpu")
        one, many = rm.score(convs, max_batch_items=1), rm.score(convs, max_batch_items=32)
        assert max(abs(a - b) for a, b in zip(one, many)) < 1e-4, ref


@pytest.mark.integration
def test_gguf_conversion_is_cached(smollm_dir, monkeypatch):
    def no_reconversion(*a, **k):
        raise AssertionError("the GGUF was converted again")

    monkeypatch.setattr(AutoModelForSequenceClassification, "from_pretrained", no_reconversion)
    assert resolve("smollm2-135m") == str(smollm_dir)
    monkeypatch.undo()
    model = AutoModelForSequenceClassification.from_pretrained(smollm_dir)
    assert getattr(model.config, "quantization_config", None) is None
    assert model.config.architectures == ["LlamaForSequenceClassification"]


# -- the device: one default, one --device override ---------------------------------------
def test_resolve_device_defaults_and_refuses_bad_names_naming_the_flag():
    from synpref.model import DeviceError, default_device, resolve_device

    assert resolve_device(None) == resolve_device("") == default_device()
    assert resolve_device("cpu") == torch.device("cpu") and resolve_device(torch.device("cpu")) == torch.device("cpu")
    for bad, why in (("cudaa", "not a device name"), ("gpu:1", "not a device name"), ("meta", "cpu, cuda, mps or xpu")):
        with pytest.raises(DeviceError, match=why) as err:
            resolve_device(bad)
        assert "--device" in str(err.value)
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        assert resolve_device("cuda") == torch.device("cuda") and resolve_device(f"cuda:{n - 1}").index == n - 1
        with pytest.raises(DeviceError, match=f"has {n} cuda device"):
            resolve_device(f"cuda:{n}")
    else:
        with pytest.raises(DeviceError, match="no cuda device.*--device cpu"):
            resolve_device("cuda")


def test_reward_model_loads_on_the_resolved_device(tiny_bert_dir):
    from synpref.model import DeviceError, default_device

    assert RewardModel.from_pretrained(tiny_bert_dir).device.type == default_device().type
    assert RewardModel.from_pretrained(tiny_bert_dir, device="cpu").device == torch.device("cpu")
    with pytest.raises(DeviceError, match="--device"):
        RewardModel.from_pretrained(tiny_bert_dir, device="tpu")
