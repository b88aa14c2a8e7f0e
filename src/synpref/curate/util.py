"""Small shared helpers: atomic writes, JSONL, run state, the decision ledger."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Iterator

from ..formats.sources import SourceError, iter_jsonl
from ..llm.pairwise import clip  # noqa: F401 - re-exported (retrieval)
from ..numeric import sigmoid  # noqa: F401  (re-exported: curate.rm)
from ..schema import Record
from ..seeding import stable_rand  # noqa: F401 - re-exported (curation's seeded draws)

log = logging.getLogger(__name__)


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))


@dataclass(frozen=True)
class BadLine:
    """A line of a JSONL file that is not a JSON object (1-based ``line``).

    ``torn``: the file's last line, cut short (no final newline): a file still being
    written, or a write that crashed.
    """

    file: str
    line: int
    error: str
    torn: bool = False

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.error}" + ("; it is the last line and incomplete (torn): the file may still be being written" if self.torn else "")

    def to_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "error": self.error, "torn": self.torn, "message": str(self)}


def read_jsonl(path: str | Path, bad_lines: list[BadLine] | None = None) -> Iterator[dict]:
    """Objects of a JSONL file in order; a missing file has none.

    A line that is not a JSON object is never dropped silently: it goes to
    ``bad_lines`` when the caller passes a list (and counts it), otherwise it is
    logged as a warning with its file and line number.
    """
    for _line, obj in read_jsonl_numbered(path, bad_lines):
        yield obj


def read_jsonl_numbered(path: str | Path, bad_lines: list[BadLine] | None = None) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for each JSON object of a JSONL file; other lines as in :func:`read_jsonl`."""
    path = Path(path)
    if not path.is_file():
        return
    held: BadLine | None = None  # a bad line is reported once we know whether it was the last one
    for row, item in iter_jsonl(path):
        if held is not None:
            _report(held, bad_lines)
            held = None
        if isinstance(item, SourceError):
            held = BadLine(str(path), row + 1, f"{_PROBLEM.get(item.reason, item.reason)} ({item.message})")
        elif not isinstance(item, dict):
            held = BadLine(str(path), row + 1, f"not a JSON object: {type(item).__name__}")
        else:
            yield row + 1, item
    if held is not None:
        _report(replace(held, torn=not _ends_with_newline(path)), bad_lines)


_PROBLEM = {"bad_json": "not valid JSON", "invalid_utf8": "not valid UTF-8"}


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _report(bad: BadLine, bad_lines: list[BadLine] | None) -> None:
    if bad_lines is not None:
        bad_lines.append(bad)
    else:
        log.warning("skipped an unreadable line: %s", bad)




def flip(rec: Record) -> Record:
    """The same pair with the preference reversed (candidates swapped)."""
    return Record(rec.context, (rec.candidates[1], rec.candidates[0]), "pair", margin=rec.margin, weight=rec.weight,
                  provenance=rec.provenance, meta=dict(rec.meta))


def oriented(rec: Record, label: str) -> Record:
    """The pair with its preferred candidate first: ``label`` "A" keeps it, "B" flips it."""
    return rec if label == "A" else flip(rec)


class RunState:
    """``state.json``: finished steps (with their small results), the progress of a step that runs in
    batches, and a few run-wide facts (``best_rm``, ``rejected``); every change is written atomically.

    Only :class:`synpref.curate.runner.Runner` marks steps and batches done; steps read the facts and
    may record their own sub-progress (a verification batch exported) with :meth:`mark`.
    """

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / "state.json"
        self.data = json.loads(self.path.read_text()) if self.path.is_file() else {"steps": {}}
        self.data.setdefault("batches", {})

    def done(self, step: str) -> bool:
        return step in self.data["steps"]

    def get(self, step: str):
        return self.data["steps"].get(step)

    def mark(self, step: str, info=None) -> None:
        self.data["steps"][step] = info if info is not None else True
        atomic_write_json(self.path, self.data)

    def set(self, key: str, value) -> None:
        self.data[key] = value
        atomic_write_json(self.path, self.data)

    # -- a step that runs in batches ---------------------------------------------------------
    def batches_done(self, step: str) -> int:
        """How many of the step's batches are finished (they finish in order)."""
        return self.data["batches"].get(step, {}).get("done", 0)

    def batch_totals(self, step: str) -> dict:
        """The sums of the numbers the step's finished batches reported."""
        return dict(self.data["batches"].get(step, {}).get("totals", {}))

    def mark_batch(self, step: str, n: int, info: dict) -> None:
        """Batch ``n`` (0-based, in the step's order) is finished; its numbers are added to the totals."""
        entry = self.data["batches"].setdefault(step, {"done": 0, "totals": {}})
        if n != entry["done"]:
            raise RuntimeError(f"{step}: batch {n} finished while {entry['done']} were done (batches finish in order)")
        for k, v in info.items():
            entry["totals"][k] = entry["totals"].get(k, 0) + v
        entry["done"] = n + 1
        atomic_write_json(self.path, self.data)


class Ledger:
    """Every decision about a pair, one JSONL file per step in ``ledger/`` (``why`` reads them).

    A step's file appears complete or not at all: :meth:`write_step` streams to a temporary file
    and renames it; a step that runs in batches writes one part per batch (:meth:`write_part`,
    under ``ledger/parts/STEP/``) and :meth:`merge_parts` joins them, in batch order, into the
    step's file when the step is done.
    """

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir) / "ledger"
        self.dir.mkdir(parents=True, exist_ok=True)

    def file(self, step: str) -> Path:
        return self.dir / f"{step.replace('/', '__')}.jsonl"

    def parts_dir(self, step: str) -> Path:
        return self.dir / "parts" / step.replace("/", "__")

    def write_step(self, step: str, entries: Iterable[dict]) -> int:
        return _write_entries(self.file(step), step, entries)

    def write_part(self, step: str, n: int, entries: Iterable[dict]) -> int:
        return _write_entries(self.parts_dir(step) / f"part-{n:05d}.jsonl", step, entries)

    def clear_parts(self, step: str) -> None:
        import shutil

        shutil.rmtree(self.parts_dir(step), ignore_errors=True)

    def merge_parts(self, step: str) -> None:
        """Concatenate the step's parts (in name order) into its file, atomically, then drop the parts."""
        parts = sorted(self.parts_dir(step).glob("part-*.jsonl"))
        target = self.file(step)
        tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
        with open(tmp, "wb") as out:
            for p in parts:
                with open(p, "rb") as f:
                    while chunk := f.read(1 << 20):
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
        self.clear_parts(step)

    def entries(self) -> Iterator[dict]:
        for f in sorted(self.dir.glob("*.jsonl")):
            yield from read_jsonl(f)


def _write_entries(path: Path, step: str, entries: Iterable[dict]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for e in entries:
            f.write(json.dumps({"step": step, **e}, ensure_ascii=False, default=str) + "\n")
            n += 1
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return n
