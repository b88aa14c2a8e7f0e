"""The one text function: templates, system prompts, BOS, fallbacks and length policies."""

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from synpref.schema import Message as M
from synpref.text import LengthError, LengthStats, TextPolicy, encode, template_fingerprint

CONV = (M("user", "What is 2+2?"), M("assistant", "It is 4."), M("user", "And 3+3?"), M("assistant", "It is 6."))


def word_tokenizer(*, template=None, add_bos=False, sep=False):
    """A tiny word-level tokenizer, to pin down BOS and fallback behaviour exactly."""
    words = "<pad> <s> </s> [SEP] <unk> {{ }} user assistant system : what is 2+2? it 4. and 3+3? 6. hello x a b User: Assistant:".split()
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
    if sep:
        fast.sep_token = "[SEP]"
    if template:
        fast.chat_template = template
    return fast


BOS_TEMPLATE = "{{ bos_token }}{% for m in messages %}{{ m['role'] + ' : ' + m['content'] + ' ' }}{% endfor %}"


def test_exactly_one_bos_when_template_and_tokenizer_both_add_it():
    tok = word_tokenizer(template=BOS_TEMPLATE, add_bos=True)
    naive = tok(tok.apply_chat_template([m.to_dict() for m in CONV], tokenize=False))["input_ids"]
    assert naive[:2] == [tok.bos_token_id, tok.bos_token_id]  # the classic double BOS
    ids = encode(tok, CONV).input_ids
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1


def test_bos_added_when_tokenizer_expects_it_and_template_omits_it():
    tok = word_tokenizer(template=BOS_TEMPLATE.replace("{{ bos_token }}", ""), add_bos=True)
    ids = encode(tok, CONV).input_ids
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    no_bos = word_tokenizer(template=BOS_TEMPLATE.replace("{{ bos_token }}", ""), add_bos=False)
    assert tok.bos_token_id not in encode(no_bos, CONV).input_ids


def test_chat_template_has_no_default_system_prompt(smollm_tokenizer):
    rendered = smollm_tokenizer.apply_chat_template([m.to_dict() for m in CONV], tokenize=False)
    assert "You are a helpful AI assistant named SmolLM" in rendered  # what the template injects
    text = smollm_tokenizer.decode(encode(smollm_tokenizer, CONV).input_ids)
    assert "SmolLM" not in text
    assert text.endswith("<|im_start|>assistant\nIt is 6.<|im_end|>\n")
    asked = smollm_tokenizer.decode(encode(smollm_tokenizer, CONV, TextPolicy(system_prompt="Be terse.")).input_ids)
    assert asked.startswith("<|im_start|>system\nBe terse.<|im_end|>")
    own = (M("system", "Mine."),) + CONV
    assert smollm_tokenizer.decode(encode(smollm_tokenizer, own).input_ids).startswith("<|im_start|>system\nMine.<|im_end|>")


def test_chat_template_ids_match_rendered_text(smollm_tokenizer):
    enc = encode(smollm_tokenizer, CONV)
    msgs = [{"role": "system", "content": ""}] + [m.to_dict() for m in CONV]
    expected = smollm_tokenizer(smollm_tokenizer.apply_chat_template(msgs, tokenize=False), add_special_tokens=False)["input_ids"]
    assert enc.input_ids == expected


def test_encoder_fallback_is_a_text_pair(minilm_tokenizer):
    enc = encode(minilm_tokenizer, CONV)
    ref = minilm_tokenizer("User: What is 2+2?\nAssistant: It is 4.\nUser: And 3+3?", "It is 6.")
    assert enc.input_ids == ref["input_ids"]
    assert enc.token_type_ids == ref["token_type_ids"]


def test_decoder_without_template_gets_transcript_and_eos():
    tok = word_tokenizer(add_bos=True)
    conv = (M("user", "hello"), M("assistant", "x"))
    enc = encode(tok, conv)
    assert tok.convert_ids_to_tokens(enc.input_ids) == ["<s>", "User:", "hello", "Assistant:", "x", "</s>"]


def test_length_policy_error_names_the_item(minilm_tokenizer):
    with pytest.raises(LengthError, match="item 'pair-7'.*max_length=10"):
        encode(minilm_tokenizer, CONV, TextPolicy(max_length=10), item_id="pair-7")


def test_length_policy_drop_counts(minilm_tokenizer):
    stats = LengthStats()
    assert encode(minilm_tokenizer, CONV, TextPolicy(max_length=10, length_policy="drop"), stats=stats, item_id=3) is None
    assert encode(minilm_tokenizer, CONV, TextPolicy(max_length=64, length_policy="drop"), stats=stats) is not None
    assert stats.to_dict() == {"fitted": 1, "truncated": 0, "response_truncated": 0, "dropped": 1}
    assert stats.dropped_ids == [3]


@pytest.mark.parametrize("which", ["minilm", "smollm"])
def test_truncate_left_keeps_the_response_whole(which, minilm_tokenizer, smollm_tokenizer):
    tok = minilm_tokenizer if which == "minilm" else smollm_tokenizer
    long_conv = (M("user", "word " * 300 + "final question?"), M("assistant", "The final answer is 42."))
    full = encode(tok, long_conv, TextPolicy(max_length=4096))
    stats = LengthStats()
    cut = encode(tok, long_conv, TextPolicy(max_length=40, length_policy="truncate-left"), stats=stats)
    assert len(cut) == 40 and cut.truncated and stats.truncated == 1
    assert cut.input_ids[-12:] == full.input_ids[-12:]  # the response tail is untouched
    assert cut.input_ids[0] == full.input_ids[0]  # BOS / CLS kept
    assert "42" in tok.decode(cut.input_ids)
    huge_answer = (M("user", "q"), M("assistant", "long " * 200))
    assert encode(tok, huge_answer, TextPolicy(max_length=40, length_policy="truncate-left"), stats=stats) is None
    assert stats.dropped == 1


def test_fingerprint_changes_with_policy(minilm_tokenizer):
    a = template_fingerprint(minilm_tokenizer, TextPolicy(max_length=256))
    assert a == template_fingerprint(minilm_tokenizer, TextPolicy(max_length=256))
    assert a != template_fingerprint(minilm_tokenizer, TextPolicy(max_length=512))


def test_rejects_conversations_not_ending_with_assistant(minilm_tokenizer):
    with pytest.raises(ValueError, match="assistant"):
        encode(minilm_tokenizer, (M("user", "hi"),))


def test_truncate_keeps_the_start_of_an_overlong_response(minilm_tokenizer):
    conv = (M("user", "question " * 100), M("assistant", "first " + "filler " * 300 + "last"))
    stats = LengthStats()
    enc = encode(minilm_tokenizer, conv, TextPolicy(max_length=64, length_policy="truncate"), stats=stats)
    text = minilm_tokenizer.decode(enc.input_ids)
    assert len(enc) == 64 and enc.truncated
    assert "first" in text and "last" not in text and "question" in text
    assert stats.response_truncated == 1 and stats.dropped == 0
    ctx_tokens = enc.token_type_ids.count(0) - 2  # minus [CLS] and the middle [SEP]
    assert ctx_tokens == (64 - 3) // 4


NO_SYSTEM_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{{ m['role'] + ' : ' + m['content'] + ' ' }}{% endfor %}"
)


def test_a_template_that_refuses_system_turns_is_reported(caplog):
    tok = word_tokenizer(template=NO_SYSTEM_TEMPLATE)
    with caplog.at_level("WARNING", logger="synpref.text"):
        ids = encode(tok, CONV).input_ids  # conversations without a system turn still encode
    plain = "{% for m in messages %}{{ m['role'] + ' : ' + m['content'] + ' ' }}{% endfor %}"
    assert ids == encode(word_tokenizer(template=plain), CONV).input_ids
    [record] = [r for r in caplog.records if r.name == "synpref.text"]
    assert "System role not supported" in record.getMessage() and "system_prompt" in record.getMessage()
    with pytest.raises(Exception, match="System role not supported"):  # asked for one: the template's own error
        encode(tok, CONV, TextPolicy(system_prompt="Be terse."))


def test_a_tokenizer_that_cannot_hold_the_cached_facts_is_reported_once(caplog):
    class Frozen(PreTrainedTokenizerFast):
        def __setattr__(self, name, value):
            if name == "_synpref_text_facts":
                raise AttributeError(f"{type(self).__name__} is read-only")
            super().__setattr__(name, value)

    plain = word_tokenizer(template=BOS_TEMPLATE)
    frozen = Frozen(tokenizer_object=plain.backend_tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                    unk_token="<unk>")
    frozen.chat_template = BOS_TEMPLATE
    with caplog.at_level("WARNING", logger="synpref.text"):
        first, second = encode(frozen, CONV).input_ids, encode(frozen, CONV).input_ids
    assert first == second == encode(plain, CONV).input_ids
    warnings = [r.getMessage() for r in caplog.records if r.name == "synpref.text"]
    assert len(warnings) == 1 and "read-only" in warnings[0] and "slower" in warnings[0]
