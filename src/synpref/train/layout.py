"""How a micro-batch's sequences are laid out for the forward pass: padded, packed, or with the shared prompt
computed once (``TrainConfig.packing`` and ``shared_prefix``; the layouts are in :mod:`synpref.model.packing`).

Every layout gives the same rewards and gradients, up to float rounding; only the work
differs:

* **padded**: one row per sequence, in up to four length groups (little padding);
* **packed**: the micro-batch's chosen and rejected sequences end to end in one row.
  Under FlashAttention-2 the varlen kernel attends within each sequence: no padding
  and no extra attention. Under SDPA or eager attention a block-diagonal mask keeps
  the sequences apart, but attention then runs over the whole row;
* **shared prefix** (causal backbones): per pair, the common prefix of the chosen and
  rejected token ids once, then the rest of each; fewer tokens, a masked attention.

The ``auto`` rules: packing is on where the backbone runs FlashAttention-2 (selected
on a CUDA device with bf16 when flash-attn is installed): exact and padding-free at no
extra attention cost. The shared prefix is on for causal backbones under a masked
attention (SDPA, eager, flex) when it saves at least a quarter of the tokens of the
training pairs (``SHARED_PREFIX_MIN_SAVING``); FlashAttention-2 takes no mask, so with
it packing wins.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from typing import Sequence

from ..batching import token_budget_batches, token_sum_batches
from .data import EncodedPair, micro_batches
from ..errors import UserValueError

# auto: the shared prefix is used when it removes at least this fraction of the pairs' tokens.
SHARED_PREFIX_MIN_SAVING = 0.25


@dataclass(frozen=True)
class Layout:
    packed: bool = False
    shared_prefix: bool = False

    @property
    def name(self) -> str:
        if self.shared_prefix:
            return "shared prefix, packed" if self.packed else "shared prefix"
        return "packed" if self.packed else "padded"

    def cost(self, pair: EncodedPair) -> int:
        """Tokens the pair takes in its row (per padded row for the padded layout)."""
        if self.shared_prefix:
            return len(pair.chosen) + len(pair.rejected) - pair.shared_prefix
        return len(pair.chosen) + len(pair.rejected) if self.packed else pair.length

    def micro_batches(self, indices: Sequence[int], pairs: Sequence[EncodedPair], budget: int) -> list[list[int]]:
        """Split ``pairs[indices]`` into micro-batches of at most ``budget`` tokens forwarded (padding included)."""
        if not self.packed and not self.shared_prefix:
            return micro_batches(indices, {i: pairs[i].length for i in indices}, budget)
        costs = [self.cost(pairs[i]) for i in indices]
        groups = token_sum_batches(costs, budget) if self.packed else token_budget_batches(costs, budget)
        return [[indices[j] for j in g] for g in groups]

    def collate(self, rm, pairs: Sequence[EncodedPair]) -> dict:
        """The batch of a packed or shared-prefix micro-batch (rewards: chosen ones first, then rejected)."""
        from ..model.packing import pack_sequences, pack_shared_prefix

        pad = rm.tokenizer.pad_token_id
        if self.shared_prefix:
            return pack_shared_prefix([(p.chosen, p.rejected) for p in pairs], pad, one_row=self.packed)
        read_first = rm.reads_first_token
        return pack_sequences([p.chosen for p in pairs] + [p.rejected for p in pairs], pad, read_first=read_first)


PADDED = Layout()


def choose_layout(cfg, rm, pairs: Sequence[EncodedPair], *, main: bool = True) -> Layout:
    """The layout ``cfg.packing`` and ``cfg.shared_prefix`` ask for on this model (see the module docstring).

    ``pairs``: the training pairs, for the shared-prefix saving. Raises ValueError naming
    the option when ``on`` cannot be done; the main process says which layout it chose.
    """
    from ..model.reward_model import layout_unsupported, unwrapped

    model = rm.model
    implementation = unwrapped(model).config._attn_implementation
    flash = implementation.startswith("flash")
    why_not_packed = layout_unsupported(model)
    why_not_shared = layout_unsupported(model, shared_prefix=True)
    if cfg.packing == "on" and why_not_packed:
        raise UserValueError(f"--packing on: {why_not_packed}; use --packing off or auto")
    if cfg.shared_prefix == "on" and why_not_shared:
        raise UserValueError(f"--shared-prefix on: {why_not_shared}; use --shared-prefix off or auto")
    saving = prefix_saving(pairs)
    packed = cfg.packing == "on" or (cfg.packing == "auto" and flash and not why_not_packed)
    shared = cfg.shared_prefix == "on" or (cfg.shared_prefix == "auto" and not why_not_shared and not flash
                                           and saving >= SHARED_PREFIX_MIN_SAVING)
    layout = Layout(packed=packed, shared_prefix=shared)
    if main:
        how = f"{implementation} attention"
        if packed and flash:
            how += " varlen, no padding"
        elif packed or shared:
            how += " with a mask that keeps the sequences apart"
        if not why_not_shared:
            how += f"; a shared prefix {'saves' if shared else 'would save'} {saving:.0%} of the pairs' tokens"
        print(f"synpref train: micro-batch layout: {layout.name} ({how}; --packing {cfg.packing}, --shared-prefix "
              f"{cfg.shared_prefix})", file=sys.stderr)
    return layout


def use_flash_attention(cfg, model, device, bf16: bool) -> bool:
    """Switch a decoder to FlashAttention-2 for packing (``cfg.packing`` not off, no shared prefix asked, a CUDA
    device, bf16, flash-attn installed); return whether it did. Call it before sharding or LoRA."""
    from ..model.reward_model import layout_unsupported, reads_last_token, unwrapped

    base = unwrapped(model)
    wanted = cfg.packing != "off" and cfg.shared_prefix != "on" and device.type == "cuda" and bf16
    if not (wanted and importlib.util.find_spec("flash_attn") is not None and reads_last_token(model)
            and base.config._attn_implementation in ("sdpa", "eager") and layout_unsupported(model) is None):
        return False
    base.set_attn_implementation("flash_attention_2")
    return True


def prefix_saving(pairs: Sequence[EncodedPair]) -> float:
    """Fraction of the pairs' tokens the shared prefix computes once instead of twice."""
    total = sum(len(p.chosen) + len(p.rejected) for p in pairs)
    return sum(p.shared_prefix for p in pairs) / max(1, total)
