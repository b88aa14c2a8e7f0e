"""Padding-free layouts (synpref.model.packing, synpref.train.layout): the packed and shared-prefix micro-batches
give the padded path's rewards, losses and gradients (float32, tiny random Llama and BERT), and the trainer uses them."""

from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from synpref.schema import make_pair  # noqa: E402
from synpref.train import TrainConfig, train  # noqa: E402
from synpref.train.data import prepare_pairs  # noqa: E402
from synpref.train.evaluation import batch_rewards  # noqa: E402
from synpref.train.layout import PADDED, Layout, choose_layout  # noqa: E402
from synpref.train.losses import pair_loss  # noqa: E402

WORDS = "apple banana cherry river mountain table chair window green blue stone cloud paper music light".split()
PACKED, SHARED, SHARED_PACKED = Layout(packed=True), Layout(shared_prefix=True), Layout(packed=True, shared_prefix=True)


def multi_turn_records(n: int, seed: int = 0):
    """Pairs with a multi-turn context (a long shared prefix) and answers of different lengths."""
    rng = random.Random(seed)

    def words(lo, hi):
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))

    recs = []
    for i in range(n):
        context = [{"role": "user", "content": f"q{i} " + words(3, 30)}, {"role": "assistant", "content": words(2, 25)},
                   {"role": "user", "content": words(1, 12)}]
        recs.append(make_pair(context, words(1, 15) + " correct", words(1, 15) + " wrong"))
    return recs


def _model(path, attention: str):
    from synpref.model import RewardModel
    from synpref.train.model_setup import disable_dropout

    rm = RewardModel.from_pretrained(path, device="cpu")
    rm.model.set_attn_implementation(attention)
    disable_dropout(rm.model)
    return rm


def _loss_and_grads(rm, pairs, layout: Layout):
    rm.model.zero_grad(set_to_none=True)
    done = batch_rewards(rm, pairs, contextlib.nullcontext, layout=layout)
    loss = pair_loss(done.chosen, done.rejected).mean()
    loss.backward()
    loss = loss.detach()
    grads = {n: p.grad.detach().clone() for n, p in rm.model.named_parameters() if p.grad is not None}
    return done, float(loss), grads


def _assert_same(rm, pairs, layout: Layout):
    ref, ref_loss, ref_grads = _loss_and_grads(rm, pairs, PADDED)
    got, loss, grads = _loss_and_grads(rm, pairs, layout)
    assert torch.allclose(got.chosen, ref.chosen, atol=1e-5) and torch.allclose(got.rejected, ref.rejected, atol=1e-5)
    assert loss == pytest.approx(ref_loss, abs=1e-5)
    assert grads.keys() == ref_grads.keys()
    for name, g in ref_grads.items():
        assert torch.allclose(grads[name], g, rtol=1e-5, atol=1e-5), (name, float((grads[name] - g).abs().max()))
    return ref, got


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("arch", ["llama", "bert"])
def test_packed_rows_give_the_padded_loss_and_gradients(arch, attention, tiny_llama_dir, tiny_bert_dir):
    rm = _model(tiny_llama_dir if arch == "llama" else tiny_bert_dir, attention)
    pairs = prepare_pairs(rm, multi_turn_records(8), eval_fraction=0).train
    ref, got = _assert_same(rm, pairs, PACKED)
    assert got.positions == got.tokens == sum(len(p.chosen) + len(p.rejected) for p in pairs)  # one row, no padding
    assert ref.positions > got.positions


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("layout", [SHARED, SHARED_PACKED], ids=["row-per-pair", "one-row"])
def test_shared_prefix_gives_the_unshared_rewards_and_gradients(layout, attention, tiny_llama_dir):
    rm = _model(tiny_llama_dir, attention)
    pairs = prepare_pairs(rm, multi_turn_records(8), eval_fraction=0).train
    _, got = _assert_same(rm, pairs, layout)
    shared = sum(p.shared_prefix for p in pairs)
    assert shared > 0.25 * sum(len(p.chosen) + len(p.rejected) for p in pairs)  # the prefix is long and computed once
    assert got.tokens == sum(len(p.chosen) + len(p.rejected) for p in pairs) - shared


def test_shared_prefix_layout_positions_and_mask():
    """prefix | rest of chosen | rest of rejected: positions continue from the prefix, the rests never see each other."""
    from synpref.model.packing import attention_for, pack_shared_prefix, segment_mask_mod
    from synpref.text import Encoded

    chosen, rejected = Encoded([5, 6, 7, 8, 9]), Encoded([5, 6, 7, 3])
    batch = pack_shared_prefix([(chosen, rejected)], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9, 3]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 4, 3]]
    assert batch["reward_index"].tolist() == [[0, 4], [0, 5]]  # each sequence's last token
    mask = attention_for(batch, "sdpa", causal=True, dtype=torch.float32)[0, 0]
    assert mask[5].tolist() == [True, True, True, False, False, True]  # rejected's token: prefix and itself only
    assert mask[4].tolist() == [True, True, True, True, True, False]
    eager = attention_for(batch, "eager", causal=True, dtype=torch.float32)[0, 0]
    assert torch.equal(eager == 0, mask)
    # identical sequences still get one token of their own each
    same = pack_shared_prefix([(Encoded([1, 2]), Encoded([1, 2]))], pad_id=0)
    assert same["input_ids"].tolist() == [[1, 2, 2]] and same["reward_index"].tolist() == [[0, 1], [0, 2]]
    # the flex-attention mask_mod is the same rule
    from torch.nn.attention.flex_attention import create_mask

    mod = segment_mask_mod(batch["segment_ids"], batch["segment_parent"], causal=True)
    assert torch.equal(create_mask(mod, 1, 1, 6, 6, device="cpu")[0, 0], mask)
    # FlashAttention-2's varlen kernel takes one packed row without a mask, and nothing else
    from synpref.model.packing import pack_sequences

    assert attention_for(pack_sequences([chosen, rejected], 0), "flash_attention_2", causal=True, dtype=torch.bfloat16) is None
    with pytest.raises(ValueError, match="one row without shared prefixes"):
        attention_for(batch, "flash_attention_2", causal=True, dtype=torch.bfloat16)


def test_token_sum_batches_cover_everything_within_budget():
    from synpref.batching import token_sum_batches

    rng = random.Random(1)
    lengths = [rng.randint(1, 300) for _ in range(57)] + [900]
    batches = token_sum_batches(lengths, 600)
    assert sorted(i for b in batches for i in b) == list(range(58))
    assert all(len(b) == 1 or sum(lengths[i] for i in b) <= 600 for b in batches)
    assert [57] in batches  # longer than the budget: alone


def _cfg(model, run_dir, **kw) -> TrainConfig:
    base = dict(model=str(model), run_dir=str(run_dir), pairs_per_step=8, max_batch_tokens=512, learning_rate=3e-3,
                eval_fraction=0.25, eval_every=2, max_steps=4, progress=False, log_every=1, num_threads=1,
                precision="fp32", tensorboard=False)
    base.update(kw)
    return TrainConfig(**base)


def _lines(run_dir):
    drop = ("pairs_per_s", "padding_fraction")
    return [{k: v for k, v in json.loads(l).items() if k not in drop}
            for l in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("arch", ["llama", "bert"])
def test_training_with_packing_matches_padded(arch, tiny_llama_dir, tiny_bert_dir, tmp_path, capfd):
    from safetensors.torch import load_file

    model = tiny_llama_dir if arch == "llama" else tiny_bert_dir
    recs = multi_turn_records(48)
    layouts = {"padded": dict(packing="off", shared_prefix="off"), "packed": dict(packing="on", shared_prefix="off")}
    if arch == "llama":
        layouts["shared prefix"] = dict(packing="off", shared_prefix="on")
    runs = {}
    for name, options in layouts.items():
        summary = train(_cfg(model, tmp_path / name, **options), records=recs)
        assert summary["layout"] == name
        assert f"micro-batch layout: {name} (" in capfd.readouterr().err
        runs[name] = _lines(tmp_path / name)
    for name in layouts:
        assert len(runs[name]) == len(runs["padded"])
        for a, b in zip(runs[name], runs["padded"]):
            assert a.keys() == b.keys()
            for k in a:  # losses, accuracies, margins, held-out metrics, gradient norms
                assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-5), (name, k)
        # Adam divides by sqrt(v): near-zero gradients amplify rounding, so compare with the size of the update
        weights, ref = (load_file(str(tmp_path / run / "model" / "model.safetensors")) for run in (name, "padded"))
        init = load_file(str(Path(model) / "model.safetensors"))
        update = torch.cat([(ref[k] - init[k]).flatten() for k in ref]).norm()
        gap = torch.cat([(weights[k] - ref[k]).flatten() for k in ref]).norm()
        assert update > 0.1 and gap < 0.01 * update, (name, float(gap), float(update))


def test_auto_rules_and_refusals(tiny_llama_dir, tiny_bert_dir, capsys):
    from synpref.model import RewardModel
    from synpref.train.data import prepare_pairs as encode_pairs

    llama, bert = RewardModel.from_pretrained(tiny_llama_dir, device="cpu"), RewardModel.from_pretrained(tiny_bert_dir, device="cpu")
    long_prefix = multi_turn_records(16)
    short_prefix = [make_pair("hi", " ".join(WORDS) + " yes", " ".join(reversed(WORDS)) + " no") for _ in range(16)]

    def layout(rm, recs, **options):
        pairs = encode_pairs(rm, recs, eval_fraction=0).train
        return choose_layout(TrainConfig(**options), rm, pairs)

    # On the CPU (SDPA): auto never packs (a masked row attends over the whole row) and shares a long prefix only.
    assert layout(llama, long_prefix) == SHARED
    assert "micro-batch layout: shared prefix (sdpa attention with a mask" in capsys.readouterr().err
    assert layout(llama, short_prefix) == PADDED
    assert "would save" in capsys.readouterr().err
    assert layout(bert, long_prefix) == PADDED  # an encoder cannot share a prefix
    assert layout(bert, long_prefix, packing="on") == PACKED
    assert layout(llama, long_prefix, packing="on", shared_prefix="off") == PACKED
    with pytest.raises(ValueError, match=r"--shared-prefix on: BertForSequenceClassification is not a causal decoder"):
        layout(bert, long_prefix, shared_prefix="on")
    with pytest.raises(ValueError, match="packing"):
        TrainConfig(packing="yes")


def test_models_packing_cannot_read_exactly_are_named():
    from transformers import BertConfig, BertForSequenceClassification, MistralConfig, MistralForSequenceClassification
    from transformers import RobertaConfig, RobertaForSequenceClassification

    from synpref.model.reward_model import layout_unsupported

    small = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=100, num_labels=1)
    mistral = MistralForSequenceClassification(MistralConfig(**small, num_key_value_heads=2, sliding_window=16))
    assert "sliding-window attention" in layout_unsupported(mistral)
    roberta = RobertaForSequenceClassification(RobertaConfig(**small))
    assert "neither" in layout_unsupported(roberta)  # its positions start after the padding index: not packed
    bert = BertForSequenceClassification(BertConfig(**small))
    assert layout_unsupported(bert) is None and "not a causal decoder" in layout_unsupported(bert, shared_prefix=True)
