"""The pool as prep reads it: one :class:`PairBatch` per Parquet record batch, in pool order.

A batch of pairs whose shard synpref wrote is read as Arrow columns: its ids are the stored ones,
its texts go to :func:`synpref.curate.tokens.tokenize` as they are, and its kept rows are written
back as they were read (``PoolWriter.write_table``), with no :class:`~synpref.schema.Record` built.
A shard is taken as synpref's when every row of its first batch reads back exactly as
``record_to_row`` writes it (ids included); any other batch (ties, rankings, ratings, another
writer's shard) goes through records, as :func:`synpref.schema.expand_to_pairs` defines them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..schema import expand_to_pairs
from ..store.pool import RECORD_SCHEMA, pool_files, record_to_row, row_to_record


@dataclass
class PairBatch:
    """Read rows in order as ``items``: (row index or record, reason or None, detail); a None
    reason is a pair to decide, the k-th of ``ids``. ``rows``: the Arrow rows (row-index items)."""

    items: list = field(default_factory=list)
    ids: list = field(default_factory=list)
    rows: pa.RecordBatch | None = None
    segments: tuple | None = None  # (strings, text of each, texts) of every pair, in ids order
    read: int = 0

    def removed_bytes(self, removed: list) -> bytes:
        """The removed.jsonl lines of (item, reason, detail) in order, UTF-8 (a trusted row is its
        record's row as it is; rows only, of synpref's column types, are written column by column)."""
        from .prep import removed_line, removed_row_line, removed_rows_bytes

        if removed and all(isinstance(item, int) for item, _, _ in removed) and self.rows.schema.equals(RECORD_SCHEMA):
            rows = self.rows.take(pa.array([item for item, _, _ in removed], pa.int64()))
            return removed_rows_bytes(rows, [reason for _, reason, _ in removed], [detail for _, _, detail in removed])
        at = [item for item, _, _ in removed if isinstance(item, int)]
        rows = iter(self.rows.take(pa.array(at, pa.int64())).to_pylist() if at else [])
        return "".join(removed_row_line(next(rows), reason, detail) if isinstance(item, int) else removed_line(item, reason, detail)
                       for item, reason, detail in removed).encode()

    def texts(self, which) -> tuple:
        """The segments (strings, text of each, number of texts) of the pairs ``which`` (ascending pair numbers)."""
        strings, text_of, n = self.segments
        pick = np.zeros(n, dtype=bool)
        pick[np.asarray(which, dtype=np.int64)] = True
        renumber = np.cumsum(pick) - 1
        keep = pick[text_of]
        return strings.filter(pa.array(keep)), renumber[text_of[keep]], int(pick.sum())


def _flat_contents(conversations: pa.Array):
    """(contents of every message, the conversation of each) of a list<message> array."""
    offsets = conversations.offsets.to_numpy()
    lengths = np.diff(offsets)
    messages = conversations.flatten()
    contents = messages.flatten()[messages.type.get_field_index("content")]
    return contents, np.repeat(np.arange(len(conversations)), lengths), lengths


def _arrow_batch(rows: pa.RecordBatch) -> PairBatch:
    """A batch of pairs of a trusted shard, from its columns."""
    n = rows.num_rows
    cands = rows.column("candidates")
    conv_row = np.repeat(np.arange(n), np.diff(cands.offsets.to_numpy()))
    convs = cands.flatten()
    cand_text, msg_conv, conv_len = _flat_contents(convs)
    last = np.cumsum(conv_len) - 1
    last_text = cand_text.take(pa.array(np.maximum(last, 0))).to_pylist() if len(cand_text) else [""] * len(conv_len)
    empty_conv = np.array([k == 0 or not t.strip() for k, t in zip(conv_len.tolist(), last_text)], dtype=bool)
    empty = np.zeros(n, dtype=bool)
    empty[conv_row[empty_conv]] = True
    ctx_text, ctx_row, _ = _flat_contents(rows.column("context"))
    # every message of a pair, context first, then the candidates' (as pair_full_text joins them)
    strings = pa.concat_arrays([ctx_text.cast(pa.large_string()), cand_text.cast(pa.large_string())])
    row_of = np.concatenate([ctx_row, conv_row[msg_conv]])
    order = np.argsort(row_of * 2 + np.r_[np.zeros(len(ctx_row), np.int64), np.ones(len(msg_conv), np.int64)], kind="stable")
    row_of = row_of[order]
    pair_of_row = np.cumsum(~empty) - 1
    keep = ~empty[row_of]
    ids = rows.column("id").to_pylist()
    batch = PairBatch(rows=rows, read=n)
    for r in range(n):
        if empty[r]:
            batch.items.append((r, "empty_response", None))
        else:
            batch.items.append((r, None, None))
            batch.ids.append(ids[r])
    batch.segments = (strings.take(pa.array(order[keep])), pair_of_row[row_of[keep]], len(batch.ids))
    return batch


def _record_batch(rows: pa.RecordBatch) -> PairBatch:
    """Any batch, through records: ties removed, rankings and ratings expanded, empty responses removed."""
    from .prep import has_empty_response, pair_full_text

    batch = PairBatch(read=rows.num_rows)
    texts = []
    for row in rows.to_pylist():
        src = row_to_record(row)
        if src.kind == "tie":
            batch.items.append((src, "not_a_pair", "tie"))
            continue
        for rec in expand_to_pairs(src):
            if has_empty_response(rec):
                batch.items.append((rec, "empty_response", None))
                continue
            batch.items.append((rec, None, None))
            batch.ids.append(rec.id)
            texts.append(pair_full_text(rec))
    batch.segments = (pa.array(texts, pa.large_string()), np.arange(len(texts)), len(texts))
    return batch


def _written_by_synpref(rows: pa.RecordBatch) -> bool:
    if rows.schema.names != RECORD_SCHEMA.names:
        return False
    return all(record_to_row(row_to_record(row)) == row for row in rows.to_pylist())


def pair_batches(pool, batch_size: int = 1000):
    """:class:`PairBatch` es of ``pool`` in order, one per ``batch_size`` rows."""
    for f in pool_files(pool):
        trusted = None
        for rows in pq.ParquetFile(f).iter_batches(batch_size=batch_size):
            if trusted is None:
                trusted = _written_by_synpref(rows)
            kinds = rows.column("kind")
            if trusted and kinds.null_count == 0 and pc.all(pc.equal(kinds, "pair")).as_py():
                yield _arrow_batch(rows)
            else:
                yield _record_batch(rows)
