"""Small shared helpers: atomic writes, JSONL, run state, the decision ledger, text rendering."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable, Iterator

from ..numeric import sigmoid  # noqa: F401  (curate.run imports it from here)
from ..schema import Record


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


def read_jsonl(path: str | Path) -> Iterator[dict]:
    """Rows of a JSONL file; a torn last line (crash mid-write) is skipped."""
    path = Path(path)
    if not path.is_file():
        return
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except ValueError:
                continue


def stable_rand(*parts) -> float:
    """A uniform number in [0, 1) from a hash of ``parts`` (seeded, order-independent of calls)."""
    h = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def flip(rec: Record) -> Record:
    """The same pair with the preference reversed (candidates swapped)."""
    return Record(rec.context, (rec.candidates[1], rec.candidates[0]), "pair", margin=rec.margin, weight=rec.weight,
                  provenance=rec.provenance, meta=dict(rec.meta))


def clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n // 2] + "\n[...]\n" + text[-n // 2 :]


def render_context(rec: Record, max_chars: int) -> str:
    return "\n\n".join(f"[{m.role}]\n{clip(m.content, max_chars)}" for m in rec.context)


def render_candidate(rec: Record, i: int, max_chars: int) -> str:
    return "\n\n".join(clip(m.content, max_chars) for m in rec.candidates[i])


class RunState:
    """``state.json``: which steps are done (with their small results); atomic writes."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / "state.json"
        self.data = json.loads(self.path.read_text()) if self.path.is_file() else {"steps": {}}

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


class Ledger:
    """Append-only JSONL of every decision about a pair (``ledger.jsonl``); ``why`` reads it.

    A step writes its entries to a part file and renames it into ``ledger/`` when
    complete, so a killed step leaves no half-written decisions behind.
    """

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir) / "ledger"
        self.dir.mkdir(parents=True, exist_ok=True)

    def write_step(self, step: str, entries: Iterable[dict]) -> int:
        rows = [{"step": step, **e} for e in entries]
        write_jsonl(self.dir / f"{step.replace('/', '__')}.jsonl", rows)
        return len(rows)

    def entries(self) -> Iterator[dict]:
        for f in sorted(self.dir.glob("*.jsonl")):
            yield from read_jsonl(f)
