"""RewardModel: load any ``*ForSequenceClassification(num_labels=1)``, score, save.

Checkpoints are plain Hugging Face directories: ``transformers`` loads them with
no synpref code. synpref's own facts (text policy, template fingerprint, reward
mean/std on the training data) live under ``config.synpref``.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Iterable, Sequence

import torch

from ..batching import AUTO, default_batch_tokens, token_budget_batches
from ..schema import Message, as_conversation
from ..text import Encoded, LengthStats, TextPolicy, encode, template_fingerprint, tokenize_ahead
from .device import resolve_device
from .loading import is_gguf, resolve
from .packing import MASKED_ATTENTION, attention_for, is_layout

SYNPREF_CONFIG_KEY = "synpref"


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        checker = getattr(torch.backends.cpu, "get_cpu_capability", None)
        return checker is not None and checker() in ("AVX512", "AVX512_BF16", "AMX") and _cpu_has_bf16()
    return False


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def uses_bf16(device: torch.device, precision: str) -> bool:
    """Whether ``precision`` (fp32 | bf16 | auto) means bf16 autocast on ``device``."""
    if precision not in ("fp32", "bf16", "auto"):
        raise ValueError(f"precision must be fp32, bf16 or auto, got {precision!r}")
    return precision == "bf16" or (precision == "auto" and bf16_supported(device))


def autocast_context(device: torch.device, precision: str):
    """``fp32`` (exact), ``bf16`` (autocast), or ``auto`` (bf16 where the hardware has it)."""
    if uses_bf16(device, precision):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _as_full_conversation(item) -> tuple[Message, ...]:
    return as_conversation(item, "conversation")


class RewardModel:
    """A scalar reward head on a transformer backbone, plus the text policy it was trained with."""

    def __init__(self, model, tokenizer, policy: TextPolicy | None = None, meta: dict | None = None,
                 new_head: str | None = None):
        """``new_head``: why the reward head was initialised anew on loading (None: it came with the weights)."""
        self.model = model
        self.tokenizer = tokenizer
        self.new_head = new_head
        saved = dict(getattr(model.config, SYNPREF_CONFIG_KEY, None) or {})
        if policy is None:
            policy = TextPolicy(**saved["text_policy"]) if "text_policy" in saved else TextPolicy()
        self.policy = policy
        self.meta = {**saved, **(meta or {})}
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id

    # -- loading and saving --------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        reference: str | Path,
        *,
        policy: TextPolicy | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        **model_kwargs,
    ) -> "RewardModel":
        """Load a checkpoint dir, hub id, ``.gguf`` file, or a packaged short name (``minilm``).

        A ``*ForSequenceClassification`` checkpoint with ``num_labels=1`` keeps its trained
        head (and so its reward scale). A checkpoint without one (a bare backbone, a
        causal LM) or with a head of another ``num_labels`` gets a new head, initialised
        from a fixed seed; ``new_head`` then says why.
        ``device``: see :func:`~synpref.model.device.resolve_device` (None: the GPU when there is one).
        """
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        target = resolve_device(device)  # before loading: a bad --device fails fast
        path = resolve(reference)
        tokenizer = AutoTokenizer.from_pretrained(path)
        labels = _head_labels(AutoConfig.from_pretrained(path))
        kwargs = {"num_labels": 1, **model_kwargs}
        if labels not in (None, 1):  # another head shape: replaced below, and only the head may differ
            kwargs["ignore_mismatched_sizes"] = True
        if dtype is not None:
            kwargs["dtype"] = dtype
        # A head the checkpoint lacks is initialised from a fixed seed, so an
        # untrained model scores the same in every process and every run.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model, info = AutoModelForSequenceClassification.from_pretrained(path, output_loading_info=True, **kwargs)
        if model.config.num_labels != 1:
            raise ValueError(f"{reference}: a reward model needs num_labels=1, the checkpoint has {model.config.num_labels}")
        new_head = _new_head_reason(model, info, labels)
        if new_head is None and is_gguf(reference):
            new_head = "a GGUF holds no reward head; the one made when it was converted is untrained"
        model.to(target)
        model.eval()
        return cls(model, tokenizer, policy, new_head=new_head)

    def save_pretrained(self, directory: str | Path, **extra_meta) -> Path:
        """Write a standard HF checkpoint (LoRA adapters are merged in first) plus tokenizer."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if hasattr(self.model, "merge_and_unload"):  # LoRA: merge adapters so the checkpoint is standard
            self.model = self.model.merge_and_unload()
        model = self.model
        info = {
            **self.meta,
            **extra_meta,
            "text_policy": self.policy.to_dict(),
            "template_fingerprint": template_fingerprint(self.tokenizer, self.policy),
        }
        setattr(model.config, SYNPREF_CONFIG_KEY, info)
        model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        self.meta = info
        return directory

    # -- encoding and forward -------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, conversation, *, stats: LengthStats | None = None, item_id=None, memo: dict | None = None) -> Encoded | None:
        """``memo``: see :func:`synpref.text.encode` (a dict for this model's tokenizer)."""
        return encode(self.tokenizer, _as_full_conversation(conversation), self.policy, stats=stats, item_id=item_id, memo=memo)

    def tokenize_ahead(self, conversations, memo: dict) -> None:
        """See :func:`synpref.text.tokenize_ahead`: ``memo`` then serves :meth:`encode` of ``conversations``."""
        tokenize_ahead(self.tokenizer, [_as_full_conversation(c) for c in conversations], self.policy, memo)

    @property
    def encoding_key(self) -> str:
        """Equal for two models whose encodings of any conversation are equal (the same tokenizer and text policy)."""
        import hashlib

        tok = getattr(self, "_tokenizer_hash", None)
        if tok is None:
            backend = getattr(self.tokenizer, "backend_tokenizer", None)
            # a slow tokenizer has no serialised form to compare: only this model's own encodings match
            body = backend.to_str() if backend is not None else f"object {id(self.tokenizer)}"
            tok = self._tokenizer_hash = hashlib.sha256(body.encode()).hexdigest()
        return f"{template_fingerprint(self.tokenizer, self.policy)}-{tok}"

    def collate(self, items: Sequence[Encoded]) -> dict[str, torch.Tensor]:
        """Right-pad a batch; the reward is read at each row's last real token."""
        longest = max(len(e) for e in items)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(items), longest), pad, dtype=torch.long)
        mask = torch.zeros((len(items), longest), dtype=torch.long)
        types = None
        if items[0].token_type_ids is not None:
            types = torch.zeros((len(items), longest), dtype=torch.long)
        for row, e in enumerate(items):
            n = len(e)
            ids[row, :n] = torch.tensor(e.input_ids)
            mask[row, :n] = 1
            if types is not None:
                types[row, :n] = torch.tensor(e.token_type_ids)
        batch = {"input_ids": ids, "attention_mask": mask}
        if types is not None:
            batch["token_type_ids"] = types
        return batch

    @property
    def reads_first_token(self) -> bool:
        """Whether the reward is read at a sequence's first token (encoders: [CLS]) rather than its last (decoders)."""
        return not reads_last_token(self.model)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Rewards for a collated batch (padded, or a layout of :mod:`synpref.model.packing`), shape (sequences,).
        Differentiable."""
        return rewards_of(self.model, {k: v.to(self.device) for k, v in batch.items()})

    # -- scoring -------------------------------------------------------------
    @property
    def default_batch_tokens(self) -> int:
        return default_batch_tokens(self.device.type)

    @torch.inference_mode()
    def score(
        self,
        conversations: Iterable,
        *,
        max_batch_tokens: int = AUTO,
        max_batch_items: int = 256,
        precision: str = "fp32",
        normalize: bool = False,
        stats: LengthStats | None = None,
        progress: bool = False,
    ) -> list[float]:
        """Reward of the final assistant turn of each conversation.

        Items are sorted by length and batched by a token budget, so scores do not
        depend on the order or on the batch size. A dropped item (length policy
        ``drop``) scores NaN and is counted in ``stats``. ``max_batch_tokens`` 0 picks
        the device's default (``default_batch_tokens``).
        """
        stats = stats if stats is not None else LengthStats()
        encoded = [self.encode(c, stats=stats, item_id=i) for i, c in enumerate(conversations)]
        return self.score_encoded(
            encoded,
            max_batch_tokens=max_batch_tokens,
            max_batch_items=max_batch_items,
            precision=precision,
            normalize=normalize,
            progress=progress,
        )

    @torch.inference_mode()
    def score_encoded(
        self,
        encoded: Sequence[Encoded | None],
        *,
        max_batch_tokens: int = AUTO,
        max_batch_items: int = 256,
        precision: str = "fp32",
        normalize: bool = False,
        progress: bool = False,
    ) -> list[float]:
        self.model.eval()
        max_batch_tokens = max_batch_tokens or self.default_batch_tokens
        rewards = [math.nan] * len(encoded)
        present = [i for i, e in enumerate(encoded) if e is not None]
        batches = token_budget_batches([len(encoded[i]) for i in present], max_batch_tokens, max_batch_items)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(present), desc="scoring", unit="conv")
        with autocast_context(self.device, precision):
            for batch_idx in batches:
                idx = [present[j] for j in batch_idx]
                out = self.forward(self.collate([encoded[i] for i in idx])).tolist()
                for i, r in zip(idx, out):
                    rewards[i] = r
                if bar is not None:
                    bar.update(len(idx))
        if bar is not None:
            bar.close()
        if normalize:
            mean, std = self.meta.get("reward_mean"), self.meta.get("reward_std")
            if mean is None or not std:
                raise ValueError("this checkpoint has no reward mean/std saved; score with normalize=False")
            rewards = [(r - mean) / std for r in rewards]
        return rewards

    def score_pairs(self, records, **kw) -> list[tuple[float, float]]:
        """(reward of candidate 0, reward of candidate 1) for each pair record."""
        convs = []
        for rec in records:
            convs += [rec.conversation(0), rec.conversation(1)]
        flat = self.score(convs, **kw)
        return list(zip(flat[0::2], flat[1::2]))


def _head_labels(config) -> int | None:
    """The ``num_labels`` of a sequence-classification checkpoint's head (None: the checkpoint has no such head)."""
    if not any(a.endswith("ForSequenceClassification") for a in getattr(config, "architectures", None) or []):
        return None
    return config.num_labels


def _new_head_reason(model, info: dict, labels: int | None) -> str | None:
    """Why the loaded classifier's head is new (None: every head weight came from the checkpoint).

    Raises when weights outside the head did not load as they are: a reward model is its
    backbone plus the head, and only the head may be replaced.
    """
    prefix = model.base_model_prefix + "."
    mismatched = {k[0] if isinstance(k, tuple) else k for k in info.get("mismatched_keys") or ()}
    body = sorted(k for k in mismatched if k.startswith(prefix))
    if body:
        raise ValueError(f"{model.name_or_path}: weights of another shape than the model's config: {body[:5]}")
    fresh = sorted(k for k in set(info.get("missing_keys") or ()) | mismatched if not k.startswith(prefix))
    if not fresh:
        return None
    if labels is None:
        return f"the checkpoint has no sequence-classification head ({', '.join(fresh)} missing)"
    if labels != 1:
        return f"the checkpoint's head has num_labels={labels}, a reward model needs 1"
    return f"the checkpoint lacks {', '.join(fresh)}"


def rewards_of(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Rewards of a sequence classifier for a collated batch already on its device.

    ``batch`` is padded (:meth:`RewardModel.collate`) or a packed / shared-prefix layout
    (:mod:`synpref.model.packing`; see :func:`layout_unsupported` for the models it suits).
    """
    if is_layout(batch):
        return _layout_rewards(model, batch)
    head = _score_head(model)
    if head is None:  # encoder classifiers pool internally (CLS)
        return model(**batch).logits[:, 0].float()
    # Decoder classifiers: read the hidden state at the last real token
    # ourselves, so the result never depends on which id padding uses.
    backbone = _backbone(model)
    hidden = backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    last = batch["attention_mask"].sum(dim=1) - 1
    pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    return head(pooled)[:, 0].float()


def layout_unsupported(model, *, shared_prefix: bool = False) -> str | None:
    """Why ``model`` cannot read rewards from packed rows (``shared_prefix``: from shared-prefix rows); None: it can.

    Exact for decoder classifiers (the reward of a sequence's last token, read by the
    ``score`` head) under SDPA, eager, flex attention or FlashAttention (packed rows
    only: its varlen kernel takes no mask), and for BERT encoders (the [CLS] token,
    through the pooler and classifier) under SDPA or eager attention. A shared prefix
    needs a causal backbone: an encoder's prefix tokens see the response.
    """
    base = unwrapped(model)
    name, implementation = type(base).__name__, base.config._attn_implementation
    if _sliding_window(base.config) and implementation in MASKED_ATTENTION:
        return (f"{name} has sliding-window attention, which synpref's packing masks do not express; packing needs "
                "flash_attention_2 for it")
    if _score_head(model) is not None:
        if shared_prefix and implementation not in MASKED_ATTENTION:
            return (f"{name} runs {implementation} attention, which takes no attention mask; a shared prefix needs one "
                    f"of {', '.join(MASKED_ATTENTION)}")
        if implementation not in MASKED_ATTENTION and not implementation.startswith("flash_attention"):
            return f"{name} runs {implementation} attention; synpref packs under {', '.join(MASKED_ATTENTION)} or flash_attention_2"
        return None
    if shared_prefix:
        return f"{name} is not a causal decoder: the prefix tokens of an encoder attend to the response"
    if _first_token_head(model) is None:
        return (f"{name}: packed rows are read by decoder classifiers (a `score` head) and BERT encoders with absolute "
                "positions; this model's head is neither")
    if implementation not in ("sdpa", "eager"):
        return f"{name} runs {implementation} attention; synpref packs encoders under sdpa or eager attention"
    return None


def _sliding_window(config) -> bool:
    """Whether some layer attends within a sliding window (Mistral, Gemma 2/3, Qwen with use_sliding_window)."""
    if "sliding_attention" in (getattr(config, "layer_types", None) or ()):
        return True
    return bool(getattr(config, "sliding_window", None)) and getattr(config, "use_sliding_window", True) is not False


def _layout_rewards(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    head = _score_head(model)
    causal = head is not None
    if not causal:
        head = _first_token_head(model)
    backbone = _backbone(model)
    dtype = next(backbone.parameters()).dtype
    mask = attention_for(batch, unwrapped(model).config._attn_implementation, causal=causal, dtype=dtype)
    inputs = {k: v for k, v in batch.items() if k in ("input_ids", "position_ids", "token_type_ids")}
    hidden = backbone(**inputs, attention_mask=mask).last_hidden_state
    rows, cols = batch["reward_index"].unbind(1)
    return head(hidden[rows, cols])[:, 0].float()


def _first_token_head(model):
    """For BERT classifiers: the head on [CLS] states, shape (n, hidden) -> (n, 1), as the classifier applies it."""
    base = unwrapped(model)
    backbone = _backbone(model)
    if type(base).__name__ != "BertForSequenceClassification" or getattr(backbone, "pooler", None) is None:
        return None
    if getattr(base.config, "position_embedding_type", "absolute") != "absolute":
        return None
    return lambda first: base.classifier(base.dropout(backbone.pooler(first[:, None])))


class RewardPooling(torch.nn.Module):
    """``RewardModel.forward`` as one module around the classifier.

    For wrappers that act in the root module's forward hooks (FSDP2 gathers the
    embeddings and the head there): ``rewards_of`` calls the backbone and the head
    directly, which would bypass the classifier's own hooks.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return rewards_of(self.model, batch)


def unwrapped(model):
    """The classifier itself (inside a peft wrapper)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model



def reads_last_token(model) -> bool:
    """Whether rewards are read at a sequence's last token by a ``score`` head (decoder classifiers)."""
    return _score_head(model) is not None


def _score_head(model):
    head = getattr(unwrapped(model), "score", None)
    return head if isinstance(head, torch.nn.Module) else None


def _backbone(model):
    base = unwrapped(model)
    return getattr(base, base.base_model_prefix)
