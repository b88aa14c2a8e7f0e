"""The one function that turns a conversation into reward-model input.

Training, scoring, evaluation and serving all call :func:`encode`; nothing else
in synpref builds token ids from text. The rules:

* **Chat template** (the tokenizer has one): the conversation is rendered with
  it, with no generation prompt. The scored response is the final assistant turn.
* **No system prompt unless asked**: when the conversation has no system turn and
  ``TextPolicy.system_prompt`` is None, synpref adds none. Some templates
  (Qwen2.5, SmolLM2) inject their own default system text when the first turn is
  not a system turn; for those we pass an empty system turn so that no
  unrequested instructions reach the model. Set ``system_prompt`` to add yours.
* **No template, encoder tokenizer** (it has a separator token, e.g. BERT): the
  context is rendered as a transcript ("User: ...\\nAssistant: ...") and the final
  response is the second text of a text pair: ``[CLS] context [SEP] response [SEP]``
  with the tokenizer's own token type ids.
* **No template, decoder tokenizer**: the transcript with the response appended as
  the last ``Assistant:`` turn, plus the EOS token when the tokenizer has one.
* **Exactly one BOS**: text is tokenized without added special tokens; leading
  duplicate BOS tokens collapse to one, and a BOS is prepended when the tokenizer
  normally starts sequences with one and the rendering did not.
* **Length policy** (``max_length`` tokens): ``error`` raises :class:`LengthError`
  naming the item; ``drop`` returns None; ``truncate-left`` removes the oldest
  context tokens (after the BOS) and always keeps the final response whole; a
  response that alone exceeds the budget is dropped, never cut. ``truncate`` does
  the same, but a response that alone exceeds the budget keeps its beginning:
  the context keeps its last quarter of the budget (or less, if shorter) and the
  response fills the rest from its start (its end-of-turn tokens may be cut).
  Use it to evaluate short-context models on long answers; every such cut is
  counted as ``response_truncated``.
  :class:`LengthStats` counts each outcome.
* **Scoring is not training**: ``synpref score``, ``eval`` and ``bon`` score with
  :func:`scoring_policy`, the checkpoint's policy with ``truncate`` in place of its
  length policy (unless ``--length-policy`` names one), so every input gets a reward;
  :func:`length_summary` states the policy and its outcomes in their outputs.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, field, replace
from typing import Sequence

from .schema import Message

LENGTH_POLICIES = ("error", "drop", "truncate-left", "truncate")

log = logging.getLogger(__name__)


class LengthError(ValueError):
    """An input is longer than ``max_length`` under the ``error`` policy."""


@dataclass(frozen=True)
class TextPolicy:
    max_length: int = 512
    length_policy: str = "error"
    system_prompt: str | None = None

    def __post_init__(self):
        if self.length_policy not in LENGTH_POLICIES:
            raise ValueError(f"length_policy must be one of {LENGTH_POLICIES}, got {self.length_policy!r}")
        if self.max_length < 8:
            raise ValueError(f"max_length must be >= 8, got {self.max_length}")

    def to_dict(self) -> dict:
        return asdict(self)

    def override(self, *, max_length: int | None = None, length_policy: str | None = None) -> "TextPolicy":
        """This policy with the given length settings replaced (None keeps the current one)."""
        changes = {k: v for k, v in {"max_length": max_length, "length_policy": length_policy}.items() if v is not None}
        return replace(self, **changes)


# Scoring and evaluation give every input a reward: one too long is cut, never dropped or refused.
SCORING_LENGTH_POLICY = "truncate"


def scoring_policy(policy: TextPolicy, *, max_length: int | None = None, length_policy: str | None = None) -> TextPolicy:
    """The text policy to score with a checkpoint trained under ``policy``: the one decision for score, eval and bon.

    A trained model keeps its max_length, chat rendering and system prompt, but not
    the length policy it was trained with: training may drop a pair (``truncate-left``
    drops a response longer than max_length) or refuse it (``error``), while scoring
    must give every input a reward. Inputs that do not fit are therefore cut under
    :data:`SCORING_LENGTH_POLICY` (``truncate``: oldest context first, then a response
    longer than the budget keeps its beginning), and every cut is counted.
    ``max_length`` and ``length_policy`` (``--max-length``, ``--length-policy``)
    override; ``length_policy='drop'`` then gives dropped inputs a NaN reward.
    """
    return policy.override(max_length=max_length, length_policy=length_policy or SCORING_LENGTH_POLICY)


@dataclass
class Encoded:
    input_ids: list[int]
    token_type_ids: list[int] | None = None
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class LengthStats:
    """How many inputs fitted, were truncated, or were dropped."""

    fitted: int = 0
    truncated: int = 0
    response_truncated: int = 0
    dropped: int = 0
    dropped_ids: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "fitted": self.fitted,
            "truncated": self.truncated,
            "response_truncated": self.response_truncated,
            "dropped": self.dropped,
        }

    def merge(self, other: "LengthStats") -> None:
        self.fitted += other.fitted
        self.truncated += other.truncated
        self.response_truncated += other.response_truncated
        self.dropped += other.dropped
        self.dropped_ids.extend(other.dropped_ids)


def length_summary(policy: TextPolicy | dict, outcomes: "LengthStats | dict") -> str:
    """One line stating a length policy and what it did, e.g. in ``synpref score`` and ``synpref eval`` output."""
    policy = policy.to_dict() if isinstance(policy, TextPolicy) else policy
    counts = outcomes.to_dict() if isinstance(outcomes, LengthStats) else outcomes
    total = sum(counts.get(k, 0) for k in ("fitted", "truncated", "response_truncated", "dropped"))
    return (f"length policy {policy.get('length_policy')!r} (max_length {policy.get('max_length')} tokens): of {total} inputs, "
            f"{counts.get('fitted', 0)} fitted, {counts.get('truncated', 0)} lost old context, "
            f"{counts.get('response_truncated', 0)} responses were cut to their beginning, {counts.get('dropped', 0)} dropped")


# -- tokenizer facts, computed once per tokenizer ---------------------------
_FACTS_ATTR = "_synpref_text_facts"
_UNCACHEABLE: set[type] = set()  # tokenizer classes that refuse the cached facts attribute (warned about once)


@dataclass(frozen=True)
class _TokenizerFacts:
    mode: str  # "template" | "pair" | "transcript"
    injects_system: bool
    starts_with_bos: bool
    pair_layout: tuple | None  # (prefix, middle, suffix, types of each) for "pair"


def _probe_pair_layout(tok) -> tuple:
    a = tok("a", add_special_tokens=False)["input_ids"]
    b = tok("b", add_special_tokens=False)["input_ids"]
    enc = tok("a", "b", add_special_tokens=True)
    ids = enc["input_ids"]
    types = enc.get("token_type_ids") or [0] * len(ids)
    ia = next(i for i in range(len(ids)) if ids[i : i + len(a)] == a)
    ib = next(i for i in range(ia + len(a), len(ids)) if ids[i : i + len(b)] == b)
    prefix, middle, suffix = ids[:ia], ids[ia + len(a) : ib], ids[ib + len(b) :]
    type_a, type_b = types[ia], types[ib]
    return (
        prefix,
        middle,
        suffix,
        types[:ia],
        types[ia + len(a) : ib],
        types[ib + len(b) :],
        type_a,
        type_b,
        "token_type_ids" in enc,
    )


def _tokenizer_name(tok) -> str:
    return getattr(tok, "name_or_path", None) or type(tok).__name__


def _template_injects_system(tok) -> bool:
    try:
        plain = tok.apply_chat_template([{"role": "user", "content": "\u2603"}], tokenize=False)
        with_sys = tok.apply_chat_template(
            [{"role": "system", "content": "\u2604"}, {"role": "user", "content": "\u2603"}], tokenize=False
        )
    except Exception as e:  # e.g. templates that refuse a system role (Gemma's)
        log.warning(
            "the chat template of %s cannot render synpref's probe conversations (%s: %s), so synpref assumes it adds "
            "no system prompt of its own: if it does, that text reaches the model unasked; if it refuses system "
            "turns, conversations with one and the system_prompt setting fail to encode.",
            _tokenizer_name(tok), type(e).__name__, e)
        return False
    # Injection means the bare rendering already holds a system block: it then has
    # the same shape as the explicit one, differing only in the system text.
    if "\u2604" not in with_sys:
        return False
    head, tail = with_sys.split("\u2604", 1)
    return plain.startswith(head) and plain.endswith(tail) and len(plain) > len(head) + len(tail)


def _facts(tok) -> _TokenizerFacts:
    cached = getattr(tok, _FACTS_ATTR, None)
    if cached is not None:
        return cached
    bos = tok.bos_token_id
    probe = tok("x", add_special_tokens=True)["input_ids"]
    starts_with_bos = bos is not None and len(probe) > 0 and probe[0] == bos
    if getattr(tok, "chat_template", None):
        facts = _TokenizerFacts("template", _template_injects_system(tok), starts_with_bos, None)
    elif tok.sep_token_id is not None:
        facts = _TokenizerFacts("pair", False, starts_with_bos, _probe_pair_layout(tok))
    else:
        facts = _TokenizerFacts("transcript", False, starts_with_bos, None)
    try:
        setattr(tok, _FACTS_ATTR, facts)
    except AttributeError as e:
        if type(tok) not in _UNCACHEABLE:  # once per tokenizer class: this runs on every encode
            _UNCACHEABLE.add(type(tok))
            log.warning("cannot remember the rendering facts of tokenizer %s (%s); synpref works them out again for "
                        "every encoded conversation, which is slower but gives the same ids", _tokenizer_name(tok), e)
    return facts


def template_fingerprint(tok, policy: TextPolicy) -> str:
    """A hash of everything that decides the token ids; saved with checkpoints."""
    facts = _facts(tok)
    basis = "|".join(
        [facts.mode, getattr(tok, "chat_template", None) or "", type(tok).__name__, str(policy.to_dict())]
    )
    return hashlib.sha256(basis.encode()).hexdigest()[:16]


def transcript(messages: Sequence[Message]) -> str:
    """Plain-text rendering used when the tokenizer has no chat template."""
    return "\n".join(f"{m.role.capitalize()}: {m.content}" for m in messages)


def _split(conversation: Sequence[Message]) -> tuple[list[Message], Message]:
    if not conversation:
        raise ValueError("cannot encode an empty conversation")
    last = conversation[-1]
    if last.role != "assistant":
        raise ValueError(f"the scored turn must be an assistant message, got {last.role!r}")
    return list(conversation[:-1]), last


def _ids(tok, text: str) -> list[int]:
    # verbose=False: lengths are policed here, not by the tokenizer's warning.
    return tok(text, add_special_tokens=False, verbose=False)["input_ids"] if text else []


def _ids_via(tok, memo: dict | None):
    """:func:`_ids` of ``tok``, remembering each text's ids in ``memo`` (None: no memory)."""
    if memo is None:
        return lambda text: _ids(tok, text)

    def ids(text: str) -> list[int]:
        got = memo.get(text)
        if got is None:
            got = memo[text] = _ids(tok, text)
        return list(got)  # a copy: the caller may extend it

    return ids


def _one_bos(tok, facts: _TokenizerFacts, ids: list[int]) -> list[int]:
    bos = tok.bos_token_id
    if bos is None:
        return ids
    start = 0
    while start < len(ids) and ids[start] == bos:
        start += 1
    if start > 0 or facts.starts_with_bos:
        return [bos] + ids[start:]
    return ids


def _with_system(facts: _TokenizerFacts, messages: list[Message], policy: TextPolicy) -> list[dict]:
    out = [m.to_dict() for m in messages]
    has_system = bool(out) and out[0]["role"] == "system"
    if not has_system:
        if policy.system_prompt is not None:
            out.insert(0, {"role": "system", "content": policy.system_prompt})
        elif facts.injects_system:
            out.insert(0, {"role": "system", "content": ""})
    elif policy.system_prompt is not None:
        out[0] = {"role": "system", "content": policy.system_prompt}
    return out


def _texts(tok, facts: _TokenizerFacts, context: list[Message], response: Message, policy: TextPolicy) -> tuple[str, str]:
    """The two texts a conversation's ids are tokenized from: the context's rendering and the final turn's."""
    if facts.mode == "template":
        msgs = _with_system(facts, context + [response], policy)
        full = tok.apply_chat_template(msgs, tokenize=False)
        prefix = tok.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True) if msgs[:-1] else ""
        if not full.startswith(prefix):
            raise ValueError("the chat template renders the context differently with and without the final turn")
        return prefix, full[len(prefix) :]
    msgs = context
    if policy.system_prompt is not None and not (msgs and msgs[0].role == "system"):
        msgs = [Message("system", policy.system_prompt)] + msgs
    if facts.mode == "pair":
        return transcript(msgs), response.content
    # transcript mode (decoder without a template)
    return transcript(msgs) + ("\n" if msgs else "") + "Assistant: ", response.content


def _render_parts(tok, facts: _TokenizerFacts, context: list[Message], response: Message, policy: TextPolicy,
                  memo: dict | None = None):
    """Return (context_ids, response_ids, builder) where builder(ctx, resp) -> Encoded."""
    ids_of = _ids_via(tok, memo)
    ctx_text, resp_text = _texts(tok, facts, context, response, policy)
    if facts.mode == "template":
        ctx_ids = _one_bos(tok, facts, ids_of(ctx_text))  # an empty context: no ids, maybe a BOS
        resp_ids = ids_of(resp_text)
        keep_head = 1 if (ctx_ids and tok.bos_token_id is not None and ctx_ids[0] == tok.bos_token_id) else 0
        return ctx_ids, resp_ids, keep_head, lambda c, r: Encoded(c + r)
    if facts.mode == "pair":
        prefix, middle, suffix, t_pre, t_mid, t_suf, type_a, type_b, has_types = facts.pair_layout
        ctx_ids = ids_of(ctx_text)
        resp_ids = ids_of(resp_text)

        def build(c, r):
            ids = prefix + c + middle + r + suffix
            types = t_pre + [type_a] * len(c) + t_mid + [type_b] * len(r) + t_suf if has_types else None
            return Encoded(ids, types)

        return ctx_ids, resp_ids, 0, build
    ctx_ids = _one_bos(tok, facts, ids_of(ctx_text))
    resp_ids = ids_of(resp_text) + ([tok.eos_token_id] if tok.eos_token_id is not None else [])
    keep_head = 1 if (ctx_ids and tok.bos_token_id is not None and ctx_ids[0] == tok.bos_token_id) else 0
    return ctx_ids, resp_ids, keep_head, lambda c, r: Encoded(c + r)


def tokenize_ahead(tokenizer, conversations: Sequence[Sequence[Message]], policy: TextPolicy, memo: dict) -> None:
    """Fill ``memo`` (see :func:`encode`) with the ids of every text ``conversations`` are tokenized from, in one
    call of the tokenizer (a fast tokenizer's batch: in parallel, and the same ids as one call per text); their
    :func:`encode` with ``memo`` then tokenizes nothing. (A chat template is rendered here and again there.)"""
    facts = _facts(tokenizer)
    texts: dict[str, None] = {}
    for conversation in conversations:
        context, response = _split(conversation)
        texts.update(dict.fromkeys(_texts(tokenizer, facts, context, response, policy)))
    todo = [t for t in texts if t and t not in memo]
    if todo:
        memo.update(zip(todo, tokenizer(todo, add_special_tokens=False, verbose=False)["input_ids"]))


def encode(
    tokenizer,
    conversation: Sequence[Message],
    policy: TextPolicy = TextPolicy(),
    *,
    stats: LengthStats | None = None,
    item_id=None,
    memo: dict | None = None,
) -> Encoded | None:
    """Token ids for scoring the final assistant turn of ``conversation``.

    ``memo`` (a dict the caller keeps, for one tokenizer) remembers the ids of each text tokenized,
    so conversations that share a context (a pair's two candidates) tokenize it once.

    Returns None when the input is dropped (``drop``, or ``truncate-left`` with a
    response longer than the budget); ``stats`` counts it and keeps ``item_id``.
    """
    facts = _facts(tokenizer)
    context, response = _split(conversation)
    ctx_ids, resp_ids, keep_head, build = _render_parts(tokenizer, facts, context, response, policy, memo)
    overhead = len(build([], []))
    total = overhead + len(ctx_ids) + len(resp_ids)
    if total <= policy.max_length:
        if stats is not None:
            stats.fitted += 1
        return build(ctx_ids, resp_ids)
    fits_response = overhead + keep_head + len(resp_ids) <= policy.max_length
    if policy.length_policy in ("truncate-left", "truncate") and fits_response:
        room = policy.max_length - overhead - len(resp_ids) - keep_head
        kept = ctx_ids[:keep_head] + (ctx_ids[len(ctx_ids) - room :] if room > 0 else [])
        if stats is not None:
            stats.truncated += 1
        enc = build(kept, resp_ids)
        enc.truncated = True
        return enc
    if policy.length_policy == "truncate":
        budget = policy.max_length - overhead - keep_head
        ctx_room = min(len(ctx_ids) - keep_head, budget // 4)
        kept = ctx_ids[:keep_head] + (ctx_ids[len(ctx_ids) - ctx_room :] if ctx_room > 0 else [])
        if stats is not None:
            stats.response_truncated += 1
        enc = build(kept, resp_ids[: budget - ctx_room])
        enc.truncated = True
        return enc
    if policy.length_policy == "error":
        what = f"item {item_id!r}" if item_id is not None else "an input"
        raise LengthError(
            f"{what} has {total} tokens, more than max_length={policy.max_length}; "
            "raise max_length or choose length_policy 'drop' or 'truncate-left'"
        )
    # 'drop', or 'truncate-left' when the final response alone does not fit.
    if stats is not None:
        stats.dropped += 1
        if item_id is not None:
            stats.dropped_ids.append(item_id)
    return None
