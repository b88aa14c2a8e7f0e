"""TrainConfig: every knob of :func:`synpref.train.train`, with help text for the CLI.

How an optimizer step is defined
--------------------------------
One optimizer step consumes exactly ``pairs_per_step`` preference pairs (the last
step of an epoch may have fewer), summed over all processes. The step's pairs are
split across processes, and each process splits its share into micro-batches by
the token budget ``max_batch_tokens``: a micro-batch holds ``n`` pairs whose
chosen and rejected sequences are run in ONE forward pass, padded to the longest
of them, so its cost is ``2 * n * longest`` tokens, kept <= ``max_batch_tokens``
(a single pair longer than the budget gets a micro-batch of its own). Gradients of
all micro-batches are accumulated and the loss is the mean over the step's pairs,
so the update does not depend on ``max_batch_tokens`` or on the number of
processes (up to float rounding).

Length grouping: each epoch the training pairs are shuffled (seeded by ``seed`` and
the epoch), cut into windows of ``group_by_length_window`` steps, sorted by length
inside a window, cut into steps, and the step order is shuffled again. Steps thus
hold pairs of similar length (little padding) while the order stays random.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..text import LENGTH_POLICIES
from ..errors import UserValueError

LAYOUT_CHOICES = ("auto", "on", "off")  # packing and shared_prefix (synpref.train.layout)


def _f(default, help: str, **kw):
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    # -- what to train on -------------------------------------------------------
    data: list[str] = _f([], "Pool directories (or pool shard files) to train on; records are expanded to pairs.")
    run_dir: str = _f("runs/rm", "Run directory: config, metrics, checkpoints and the final model go here. "
                      "An existing checkpoint in it is resumed automatically.")
    model: str = _f("minilm", "Base model: a checkpoint dir, hub id, .gguf file or packaged name (minilm, smollm2-135m).")
    # -- text ---------------------------------------------------------------------
    max_length: int = _f(512, "Maximum tokens per sequence (context + response).")
    length_policy: str = _f("truncate-left", "Too-long inputs: error | drop | truncate-left (cut the oldest context; a pair whose "
                            "response alone does not fit is dropped and counted) | truncate (as truncate-left, but such a "
                            "response keeps its beginning; counted). See synpref.text.")
    system_prompt: str | None = _f(None, "System prompt to add to every conversation (default: none).")
    rating_gap: float = _f(0.0, "Ratings records: only pairs whose rating difference exceeds this gap.")
    expand_mode: str = _f("all", "How rankings/ratings become pairs: all | best-vs-rest | best-vs-worst.")
    # -- held-out split -----------------------------------------------------------
    eval_fraction: float = _f(0.05, "Fraction of prompts (by prompt_id hash) held out for evaluation; 0 disables.")
    eval_every: int = _f(0, "Evaluate on the held-out split every N optimizer steps (0: only at the end).")
    # -- optimisation -------------------------------------------------------------
    epochs: float = _f(1.0, "Number of passes over the training pairs (may be fractional).")
    max_steps: int = _f(0, "Stop after this many optimizer steps (0: run the epochs).")
    pairs_per_step: int = _f(32, "Pairs per optimizer step, over all processes (gradient accumulation over micro-batches).")
    max_batch_tokens: int = _f(0, "Token budget of one micro-batch, counting every token forwarded: the padded chosen AND "
                               "rejected sequences, or the packed rows (0: auto, 2048 on CPU where small backward passes "
                               "are fastest, 16384 on GPU).")
    group_by_length_window: int = _f(50, "Length grouping window, in steps (1: no length grouping).")
    packing: str = _f("auto", "Padding-free micro-batches: on packs the chosen and rejected sequences of a micro-batch into "
                      "one row, kept apart by the attention (FlashAttention-2 varlen where flash-attn is installed on a "
                      "GPU with bf16, else a block-diagonal mask); off pads them (in up to four length groups); auto is "
                      "on where the backbone runs FlashAttention-2 (no padding, no extra attention), off elsewhere (a "
                      "masked row attends over the whole row). Decoders and BERT encoders; exact either way.")
    shared_prefix: str = _f("auto", "Causal backbones: compute the tokens a pair's chosen and rejected sequences share (the "
                            "prompt) once; each response attends to it and not to the other (exact): on | off | auto (on "
                            "under masked attention when it saves at least 25% of the pairs' tokens).")
    learning_rate: float = _f(2e-5, "Peak learning rate (AdamW).")
    head_learning_rate: float | None = _f(None, "Learning rate of the reward head (default: learning_rate).")
    weight_decay: float = _f(0.0, "AdamW weight decay (not applied to biases and norms).")
    max_grad_norm: float = _f(1.0, "Gradient clipping norm (0 disables).")
    scheduler: str = _f("linear", "Learning rate schedule after warmup: linear (decay to 0) | constant.")
    warmup_steps: int = _f(0, "Linear warmup steps (overrides warmup_ratio when > 0).")
    warmup_ratio: float = _f(0.0, "Warmup as a fraction of the total steps.")
    seed: int = _f(42, "Random seed (head init, data order, dropout).")
    # -- loss -----------------------------------------------------------------------
    loss: str = _f("bradley_terry", "Pairwise loss; bradley_terry: -log sigmoid(r_chosen - r_rejected [- margin]).")
    use_margin: bool = _f(False, "Subtract the record's margin (e.g. rating difference) inside the sigmoid.")
    margin_scale: float = _f(1.0, "Multiplier on the record margin when use_margin is on.")
    center_rewards_coef: float = _f(0.0, "Reward-centering term: coef * (r_chosen + r_rejected)^2 (0 disables; 0.01 is common).")
    # -- what to train --------------------------------------------------------------
    freeze_backbone: bool = _f(False, "Train only the reward head; the backbone stays frozen.")
    train_top_layers: int = _f(0, "Train only the top N transformer layers (+ the head and anything after the layers).")
    lora: bool = _f(False, "Train LoRA adapters (peft) instead of the full backbone; merged into a plain checkpoint at the end.")
    lora_r: int = _f(8, "LoRA rank.")
    lora_alpha: int = _f(16, "LoRA alpha.")
    lora_dropout: float = _f(0.0, "LoRA dropout.")
    lora_target_modules: list[str] = _f([], "LoRA target modules (default: all linear layers of the backbone).")
    disable_dropout: bool = _f(True, "Switch off every dropout in the model while training (TRL's RewardTrainer does the same by default).")
    gradient_checkpointing: bool = _f(False, "Recompute activations in the backward pass (less memory, ~30% slower).")
    # -- hardware -------------------------------------------------------------------
    device: str | None = _f(None, "Device to train on: cpu, cuda, cuda:N, mps or xpu (default: the one accelerate picks, "
                            "the GPU when there is one). Under `accelerate launch` with several processes each process "
                            "keeps the device accelerate gives it: only cpu (data parallelism over gloo) or that device's "
                            "type without an index is accepted; choose GPUs with CUDA_VISIBLE_DEVICES or --gpu_ids.")
    precision: str = _f("auto", "fp32 | bf16 (autocast) | auto (bf16 where the hardware supports it).")
    num_threads: int = _f(0, "torch threads per process (0: the available CPU cores / processes on this machine).")
    # -- bookkeeping ----------------------------------------------------------------
    save_every: int = _f(0, "Write a resumable checkpoint every N optimizer steps (0: none).")
    log_every: int = _f(10, "Write a metrics line every N optimizer steps.")
    reward_stats_pairs: int = _f(1000, "Training pairs scored at the end for reward_mean/reward_std (0: all).")
    progress: bool = _f(True, "Show a progress bar with pairs/s.")
    tensorboard: bool = _f(True, "Write TensorBoard event files when tensorboard is installed.")

    def __post_init__(self):
        if isinstance(self.data, (str, Path)):
            self.data = [str(self.data)]
        self.data = [str(p) for p in self.data]
        self.lora_target_modules = list(self.lora_target_modules or [])
        checks = {
            "length_policy": self.length_policy in LENGTH_POLICIES,
            "scheduler": self.scheduler in ("linear", "constant"),
            "precision": self.precision in ("fp32", "bf16", "auto"),
            "loss": self.loss in ("bradley_terry",),
            "expand_mode": self.expand_mode in ("all", "best-vs-rest", "best-vs-worst"),
            "pairs_per_step": self.pairs_per_step >= 1,
            "max_batch_tokens": self.max_batch_tokens == 0 or self.max_batch_tokens >= 2,
            "eval_fraction": 0.0 <= self.eval_fraction < 1.0,
            "train_top_layers": self.train_top_layers >= 0,
            "group_by_length_window": self.group_by_length_window >= 1,
            "packing": self.packing in LAYOUT_CHOICES,
            "shared_prefix": self.shared_prefix in LAYOUT_CHOICES,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise UserValueError(f"invalid TrainConfig value(s): {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)}")
        if self.freeze_backbone and (self.lora or self.train_top_layers):
            raise UserValueError("freeze_backbone excludes lora and train_top_layers")
        if self.lora and self.train_top_layers:
            raise UserValueError("lora and train_top_layers cannot be combined")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise UserValueError(f"unknown TrainConfig field(s): {', '.join(sorted(unknown))}")
        return cls(**d)

    @classmethod
    def from_json(cls, path: str | Path) -> "TrainConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))

    @staticmethod
    def help() -> dict[str, str]:
        """Field name -> help text (for the CLI)."""
        return {f.name: f.metadata.get("help", "") for f in fields(TrainConfig)}
