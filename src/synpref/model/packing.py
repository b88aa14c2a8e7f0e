"""Padding-free layouts of a batch of sequences, and the attention that keeps them apart.

:meth:`RewardModel.collate` right-pads one row per sequence. The layouts here put
several sequences into one row instead, each a *segment* with its own position ids
(0, 1, ... as if it were alone) that attends only to itself:

* **packed** (:func:`pack_sequences`): the sequences end to end, no padding (one row);
* **shared prefix** (:func:`pack_shared_prefix`, causal backbones only): for each pair,
  the tokens chosen and rejected start with (their common prefix: the conversation so
  far) once, then the rest of the chosen, then the rest of the rejected sequence. Each
  rest attends to the prefix and to itself, never to the other rest, and its position
  ids continue from the prefix, so every token sees exactly what it sees in its own
  padded row: the rewards are the same, and the prefix is computed once per pair.

The batch dict carries ``segment_ids`` (-1 for padding) and ``segment_parent`` (the
segment a token's segment continues, -1 for none) per token, and ``reward_index``:
(row, column) of the token each reward is read at, one per input sequence in input
order: a decoder's last token, an encoder's first ([CLS]) token. :func:`attention_for`
turns the segments into what the attention implementation takes: nothing for
FlashAttention-2 on one packed row (its varlen kernel splits the row at the position-id
resets), a boolean block mask for SDPA, an additive mask for eager attention, a
``BlockMask`` for flex attention.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..text import Encoded

# Attention implementations that take a 4D mask from us (flash kernels do not).
MASKED_ATTENTION = ("sdpa", "eager", "flex_attention")
LAYOUT_KEYS = ("segment_ids", "segment_parent", "reward_index")


@dataclass
class Segment:
    """Tokens of one row that attend to themselves (causally for decoders) and to ``parent``'s tokens."""

    ids: Sequence[int]
    types: Sequence[int] | None
    first_position: int = 0
    parent: int = -1  # index of the segment of the same row this one continues (-1: none)
    reward: int | None = None  # this segment ends (decoder) or starts (encoder) input sequence number ``reward``


def shared_prefix_length(a: Encoded, b: Encoded) -> int:
    """Tokens at the start of ``a`` and ``b`` that are the same, leaving each at least one token of its own."""
    n = min(len(a), len(b)) - 1
    if n <= 0:
        return 0
    x, y = np.asarray(a.input_ids[:n]), np.asarray(b.input_ids[:n])
    differ = x != y
    if a.token_type_ids is not None and b.token_type_ids is not None:
        differ |= np.asarray(a.token_type_ids[:n]) != np.asarray(b.token_type_ids[:n])
    where = np.flatnonzero(differ)
    return int(where[0]) if len(where) else n


def pack_sequences(items: Sequence[Encoded], pad_id: int, *, read_first: bool = False) -> dict[str, torch.Tensor]:
    """All ``items`` in one row, each a segment of its own (``read_first``: rewards at first tokens: encoders)."""
    row = [Segment(e.input_ids, e.token_type_ids, reward=i) for i, e in enumerate(items)]
    return _collate([row], pad_id, len(items), read_first)


def pack_shared_prefix(pairs: Sequence[tuple[Encoded, Encoded]], pad_id: int, *, one_row: bool = False) -> dict[str, torch.Tensor]:
    """Each pair as prefix | rest of chosen | rest of rejected (see the module docstring); causal backbones only.

    Rewards come back chosen first: sequence ``i`` is pair ``i``'s chosen, ``n + i`` its
    rejected. One row per pair (padded to the longest), or all in one row (``one_row``).
    """
    n = len(pairs)
    rows: list[list[Segment]] = [[]] if one_row else []
    for i, (c, r) in enumerate(pairs):
        if not one_row:
            rows.append([])
        row = rows[-1]
        p = shared_prefix_length(c, r)
        parent = -1
        if p:
            row.append(Segment(c.input_ids[:p], _cut(c.token_type_ids, 0, p)))
            parent = len(row) - 1
        for seq, k in ((c, i), (r, n + i)):
            row.append(Segment(seq.input_ids[p:], _cut(seq.token_type_ids, p, None), first_position=p, parent=parent,
                               reward=k))
    return _collate(rows, pad_id, 2 * n, read_first=False)


def _cut(types, start, end):
    return None if types is None else types[start:end]


def _collate(rows: list[list[Segment]], pad_id: int, n_rewards: int, read_first: bool) -> dict[str, torch.Tensor]:
    width = max(sum(len(s.ids) for s in row) for row in rows)
    shape = (len(rows), width)
    ids = np.full(shape, pad_id, dtype=np.int64)
    positions = np.zeros(shape, dtype=np.int64)
    segments = np.full(shape, -1, dtype=np.int64)
    parents = np.full(shape, -1, dtype=np.int64)
    has_types = rows[0][0].types is not None
    types = np.zeros(shape, dtype=np.int64) if has_types else None
    reward_index = np.zeros((n_rewards, 2), dtype=np.int64)
    for r, row in enumerate(rows):
        col = 0
        for k, seg in enumerate(row):
            n = len(seg.ids)
            span = slice(col, col + n)
            ids[r, span] = seg.ids
            positions[r, span] = np.arange(seg.first_position, seg.first_position + n)
            segments[r, span] = k
            parents[r, span] = seg.parent
            if has_types:
                types[r, span] = seg.types
            if seg.reward is not None:
                reward_index[seg.reward] = (r, col if read_first else col + n - 1)
            col += n
    batch = {"input_ids": ids, "position_ids": positions, "segment_ids": segments, "segment_parent": parents,
             "reward_index": reward_index}
    if has_types:
        batch["token_type_ids"] = types
    return {k: torch.from_numpy(v) for k, v in batch.items()}


def is_layout(batch: dict) -> bool:
    """Whether ``batch`` is a packed or shared-prefix layout (else a padded one from ``collate``)."""
    return "reward_index" in batch


def attention_for(batch: dict[str, torch.Tensor], implementation: str, *, causal: bool, dtype: torch.dtype):
    """The ``attention_mask`` argument for ``batch``'s segments under ``implementation`` (None: none needed)."""
    segments, parents = batch["segment_ids"], batch["segment_parent"]
    if implementation.startswith("flash"):
        if segments.shape[0] != 1 or bool((parents >= 0).any()):
            raise ValueError(f"{implementation} keeps packed sequences apart only in one row without shared prefixes")
        return None  # the varlen kernel cuts the row where the position ids restart
    if implementation == "flex_attention":
        return _block_mask(segments, parents, causal)
    allowed = _allowed(segments, parents, causal)[:, None]  # (rows, 1, query, key)
    if implementation == "sdpa":
        return allowed
    if implementation == "eager":
        return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)
    raise ValueError(f"attention implementation {implementation!r} cannot keep packed sequences apart; "
                     f"synpref packs with {', '.join(MASKED_ATTENTION)} or flash_attention_2")


def _allowed(segments: torch.Tensor, parents: torch.Tensor, causal: bool) -> torch.Tensor:
    """allowed[r, q, k]: token q of row r may attend to token k. Padding attends to padding (no empty rows)."""
    q_seg, k_seg = segments[:, :, None], segments[:, None, :]
    q_parent = parents[:, :, None]
    allowed = (q_seg == k_seg) | ((q_parent >= 0) & (q_parent == k_seg))
    if causal:
        width = segments.shape[1]
        allowed &= torch.ones(width, width, dtype=torch.bool, device=segments.device).tril()
    return allowed


def segment_mask_mod(segments: torch.Tensor, parents: torch.Tensor, causal: bool):
    """The rule of :func:`_allowed` as a flex-attention ``mask_mod`` (one (row, query, key) at a time)."""

    def mask_mod(b, h, q, k):
        keep = (segments[b, q] == segments[b, k]) | ((parents[b, q] >= 0) & (parents[b, q] == segments[b, k]))
        return keep & (k <= q) if causal else keep

    return mask_mod


def _block_mask(segments: torch.Tensor, parents: torch.Tensor, causal: bool):
    from torch.nn.attention.flex_attention import create_block_mask

    rows, width = segments.shape
    return create_block_mask(segment_mask_mod(segments, parents, causal), rows, None, width, width, device=segments.device)
