"""The pool: records on Parquet with an explicit Arrow schema, read back losslessly.

A pool is a directory of ``part-NNNNN.parquet`` shards written by :class:`PoolWriter`.
Shards are written in row groups so memory stays flat however large the input.
A write is atomic: shards are written aside (a hidden staging folder in the pool
directory) and moved into place when the writer closes, so a pool whose write was
cut short (a crash, ``kill -9``) is never read as complete: :func:`pool_files`
raises :class:`IncompletePoolError` while the staging folder is there.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from ..schema import Message, Provenance, Record

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.large_string())])
CONVERSATION = pa.list_(MESSAGE)

RECORD_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("prompt_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("context", CONVERSATION, nullable=False),
        pa.field("candidates", pa.list_(CONVERSATION), nullable=False),
        pa.field("ranks", pa.list_(pa.int32())),
        pa.field("ratings", pa.list_(pa.float64())),
        pa.field("correct", pa.list_(pa.bool_())),
        pa.field("margin", pa.float64()),
        pa.field("weight", pa.float64(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("row", pa.int64(), nullable=False),
        pa.field("format", pa.string(), nullable=False),
        pa.field("label_source", pa.string(), nullable=False),
        pa.field("meta", pa.large_string()),
    ],
    metadata={"synpref.schema": "record/2"},  # record/2 added ``correct``; record/1 shards read as before
)
STAGING_PREFIX = ".writing-"  # a pool write in progress (or cut short): shards not yet moved into place


class IncompletePoolError(FileNotFoundError):
    """A pool whose write did not finish (interrupted, or still running): it has to be written again."""


def _conv_to_arrow(conv) -> list[dict]:
    return [{"role": m.role, "content": m.content} for m in conv]


def _conv_from_arrow(rows) -> tuple[Message, ...]:
    return tuple(Message(m["role"], m["content"]) for m in rows)


def record_to_row(rec: Record) -> dict:
    return {
        "id": rec.id,
        "prompt_id": rec.prompt_id,
        "kind": rec.kind,
        "context": _conv_to_arrow(rec.context),
        "candidates": [_conv_to_arrow(c) for c in rec.candidates],
        "ranks": list(rec.ranks) if rec.ranks is not None else None,
        "ratings": list(rec.ratings) if rec.ratings is not None else None,
        "correct": list(rec.correct) if rec.correct is not None else None,
        "margin": rec.margin,
        "weight": rec.weight,
        "source": rec.provenance.source,
        "row": rec.provenance.row,
        "format": rec.provenance.format,
        "label_source": rec.provenance.label_source,
        "meta": json.dumps(rec.meta, ensure_ascii=False, sort_keys=True) if rec.meta else None,
    }


def row_to_record(row: dict) -> Record:
    return Record(
        context=_conv_from_arrow(row["context"]),
        candidates=tuple(_conv_from_arrow(c) for c in row["candidates"]),
        kind=row["kind"],
        ranks=tuple(row["ranks"]) if row["ranks"] is not None else None,
        ratings=tuple(row["ratings"]) if row["ratings"] is not None else None,
        correct=tuple(row["correct"]) if row.get("correct") is not None else None,
        margin=row["margin"],
        weight=row["weight"],
        provenance=Provenance(row["source"], row["row"], row["format"], row["label_source"]),
        meta=json.loads(row["meta"]) if row["meta"] else {},
    )


class PoolWriter:
    """Append records to a pool directory in bounded-memory row groups, atomically.

    Shards go to ``staging`` (a hidden folder inside ``directory``) and ``close`` moves
    them, with any other file the caller put in ``staging`` (an ingest's report), into
    ``directory``; ``replace=True`` then removes the pool's earlier shards, else the new
    ones are appended. Until then readers of ``directory`` get :class:`IncompletePoolError`.
    As a context manager an exception aborts instead: nothing is moved, the staging
    folder is removed and the pool stays as it was.
    """

    def __init__(self, directory: str | Path, *, row_group_size: int = 1000, rows_per_shard: int = 200_000, replace: bool = False):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        existing = sorted(self.directory.glob("part-*.parquet"))
        self.replace = replace
        self._shard = 0 if replace else len(existing)
        self.staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.directory))
        self.row_group_size = row_group_size
        self.rows_per_shard = rows_per_shard
        self._buffer: list[dict] = []
        self._tables: list[pa.Table] = []  # rows given as tables (write_table), before those of _buffer
        self._table_rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._rows_in_shard = 0
        self._done = False
        self.written = 0

    def write(self, rec: Record) -> None:
        self._buffer.append(record_to_row(rec))
        if self._table_rows + len(self._buffer) >= self.row_group_size:
            self._flush()

    def write_table(self, table: pa.Table | pa.RecordBatch) -> None:
        """Append rows of the pool schema as they are (the same shards as :meth:`write` of their records)."""
        if self._buffer:
            self._tables.append(pa.Table.from_pylist(self._buffer, schema=RECORD_SCHEMA))
            self._buffer = []
        table = pa.Table.from_batches([table]) if isinstance(table, pa.RecordBatch) else table
        self._tables.append(table.cast(RECORD_SCHEMA))
        self._table_rows += table.num_rows
        while self._table_rows >= self.row_group_size:
            self._flush()

    def write_all(self, records: Iterable[Record]) -> None:
        for rec in records:
            self.write(rec)

    def _flush(self) -> None:
        """Write one row group: the first row_group_size rows held (or all, when fewer)."""
        if self._buffer:
            self._tables.append(pa.Table.from_pylist(self._buffer, schema=RECORD_SCHEMA))
            self._table_rows += len(self._buffer)
            self._buffer = []
        if not self._table_rows:
            return
        held = self._tables[0] if len(self._tables) == 1 else pa.concat_tables(self._tables)
        group = held.slice(0, self.row_group_size).combine_chunks()
        rest = held.slice(group.num_rows)
        self._tables, self._table_rows = ([rest] if rest.num_rows else []), rest.num_rows
        if self._writer is None:
            path = self.staging / f"part-{self._shard:05d}.parquet"
            self._writer = pq.ParquetWriter(path, RECORD_SCHEMA, compression="zstd")
        self._writer.write_table(group)
        self._rows_in_shard += group.num_rows
        self.written += group.num_rows
        if self._rows_in_shard >= self.rows_per_shard:
            self._writer.close()
            self._writer = None
            self._shard += 1
            self._rows_in_shard = 0

    def close(self) -> None:
        """Flush the last row group and move everything staged into the pool directory."""
        if self._done:
            return
        while self._buffer or self._table_rows:
            self._flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self.replace:
            for old in self.directory.glob("part-*.parquet"):
                old.unlink()
        for f in sorted(self.staging.iterdir()):
            os.replace(f, self.directory / f.name)
        self.staging.rmdir()  # last: until now readers see the write as unfinished
        self._done = True

    def abort(self) -> None:
        """Drop what was written: the pool directory stays as it was before this writer."""
        if self._done:
            return
        self._done = True
        writer, self._writer = self._writer, None
        try:
            if writer is not None:
                writer.close()
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)

    def __enter__(self) -> "PoolWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def pool_files(path: str | Path) -> list[Path]:
    p = Path(path)
    if p.is_file():
        return [p]
    staging = sorted(p.glob(STAGING_PREFIX + "*"))
    if staging:
        raise IncompletePoolError(
            f"{p}: this pool is incomplete: a write into it did not finish (it was interrupted, or is still "
            f"running: {staging[0].name}); write it again (synpref ingest ... -o {p} --overwrite)"
        )
    files = sorted(p.glob("part-*.parquet"))
    if not files:
        why = "; its report.json says why (no record was kept)" if (p / "report.json").is_file() else ""
        raise FileNotFoundError(f"{p}: no pool shards (part-*.parquet) found{why}")
    return files


def read_pool(path: str | Path, *, batch_size: int = 1000) -> Iterator[Record]:
    """Stream records from a pool directory (or one shard file), in write order."""
    for f in pool_files(path):
        pf = pq.ParquetFile(f)
        for batch in pf.iter_batches(batch_size=batch_size):
            for row in batch.to_pylist():
                yield row_to_record(row)


def count_pool(path: str | Path) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in pool_files(path))


# -- batch-wise access (the curation run's steps) ----------------------------------------------
def records_from_table(table: pa.Table | pa.RecordBatch) -> list[Record]:
    """The records of a table (or record batch) of the pool schema, in row order."""
    return [row_to_record(row) for row in table.to_pylist()]


def records_to_table(records: Iterable[Record]) -> pa.Table:
    """A pool-schema table of ``records`` (the inverse of :func:`records_from_table`)."""
    return pa.Table.from_pylist([record_to_row(r) for r in records], schema=RECORD_SCHEMA)


def write_pool_part(path: str | Path, records: Iterable[Record] | pa.Table) -> int:
    """Write one pool shard at ``path`` atomically (a temporary file renamed into place): a reader,
    or a run resumed after ``kill -9``, sees the whole shard or none of it. Returns the row count."""
    import os

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = records if isinstance(records, pa.Table) else records_to_table(records)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    pq.write_table(table.cast(RECORD_SCHEMA), tmp, compression="zstd")
    os.replace(tmp, path)
    return table.num_rows


def iter_pool_batches(path: str | Path, *, batch_size: int = 1000, start: int = 0, columns: list[str] | None = None
                      ) -> Iterator[pa.RecordBatch]:
    """Arrow record batches of a pool (directory or shard) in write order, from row ``start`` on.

    Row groups wholly before ``start`` are skipped from the Parquet metadata, without reading them.
    ``columns``: read only these (e.g. ``["id"]``).
    """
    skip = start
    for f in pool_files(path):
        pf = pq.ParquetFile(f)
        if skip >= pf.metadata.num_rows:
            skip -= pf.metadata.num_rows
            continue
        groups = list(range(pf.metadata.num_row_groups))
        while groups and skip >= pf.metadata.row_group(groups[0]).num_rows:
            skip -= pf.metadata.row_group(groups[0]).num_rows
            groups.pop(0)
        for batch in pf.iter_batches(batch_size=batch_size, row_groups=groups, columns=columns):
            if skip:
                if skip >= batch.num_rows:
                    skip -= batch.num_rows
                    continue
                batch, skip = batch.slice(skip), 0
            yield batch
