"""Part files: a step's output as one Parquet file per batch, ``FOLDER/part-NNNNN.parquet``.

Part ``n`` of every step holds the rows of the run's pairs batch ``n`` (:mod:`synpref.curate.pairs`),
in the same order, so steps are joined batch by batch and never by a dict of the whole pool. A part
is written to a temporary file and renamed into place: after a ``kill -9`` a part is whole or absent.
Every table has a fixed schema (below), so an empty part reads like any other.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

# -- the tables the steps write ---------------------------------------------------------------
ATTRIBUTES = pa.schema([("pair_id", pa.string()), ("attributes", pa.large_string()), ("error", pa.large_string())])
SCORES = pa.schema([("pair_id", pa.string()), ("label", pa.string()), ("p_current", pa.float64()), ("p_gold", pa.float64())])
JUDGEMENTS = pa.schema([("pair_id", pa.string()), ("label", pa.string()), ("confidence", pa.float64()),
                        ("votes", pa.large_string()), ("per_model", pa.large_string())])
DECISIONS = pa.schema([("pair_id", pa.string()), ("decision", pa.string()), ("reason", pa.string()), ("label", pa.string()),
                       ("final_label", pa.string()), ("p_current", pa.float64()), ("p_gold", pa.float64()),
                       ("judge", pa.large_string()), ("label_source", pa.string()),
                       ("rule", pa.string()), ("objectivity", pa.string())])


def part_name(n: int) -> str:
    return f"part-{n:05d}.parquet"


class PartDir:
    """The parts of one step's output table (``schema``) in ``folder``."""

    def __init__(self, folder: str | Path, schema: pa.Schema):
        self.folder = Path(folder)
        self.schema = schema

    def path(self, n: int) -> Path:
        return self.folder / part_name(n)

    def write(self, n: int, rows: list[dict]) -> int:
        """Write part ``n`` atomically; returns its row count."""
        self.folder.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist(rows, schema=self.schema)
        tmp = self.folder / f".{part_name(n)}.tmp{os.getpid()}"
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, self.path(n))
        return table.num_rows

    def read(self, n: int) -> list[dict]:
        """The rows of part ``n`` (a part the step did not write is an error: the run is broken)."""
        path = self.path(n)
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing although the step that writes it finished this batch: "
                                    "the run directory was changed by hand; curate into a new RUN_DIR")
        return pq.read_table(path, schema=self.schema).to_pylist()

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
