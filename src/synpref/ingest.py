"""Ingest: stream source files into a record pool, quarantining what does not fit.

For every source file (directories expand to their data files, sorted), rows are
streamed through :func:`synpref.formats.reading.records_from_rows` (the one row ->
record path, with the file's reader auto-detected from the first good row unless
``format`` or ``mapping`` is given), de-duplicated globally on ``Record.id`` and
written with ``PoolWriter``. Every rejection goes to ``out_dir/quarantine.jsonl``
with its reason; ``out_dir/report.json`` sums it all up.

The write is atomic: pool, quarantine and report are written aside (the pool
writer's staging folder) and moved into ``out_dir`` at the end, so an ingest that
fails or is killed leaves no pool that reads as complete (an earlier pool it was
to replace stays as it was, unless the kill falls within the final moves, which
readers then report as an incomplete pool). An ingest that keeps no record at
all raises :class:`NothingKeptError` (saying why) after writing its report and
quarantine.

:func:`read_records` reads pools and source files the same way without writing a
pool (``synpref score``, ``synpref eval --pairs``, ``synpref bon``).

Counting: one source row may give several records (rm-bench gives 9) or none
(helpsteer rows merge into one grouped record), so ``read`` counts *items*:
records produced plus rows that failed before producing any. It always holds that
``read == kept + quarantined + duplicates``. ``read_rows`` counts source rows.

De-duplication keeps memory flat: seen ids live in an on-disk SQLite table (a temp
file inside ``out_dir``, removed at the end), checked and filled in batches.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import sqlite3
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .progress import progress

from . import callable_module
from .errors import InputNotFoundError, UserValueError
from .formats import (
    DATA_SUFFIXES,
    MAX_FIELD_CHARS,
    FieldMapping,
    Reader,
    Rejection,
    RowCount,
    expand_sources,
    iter_rows,
    read_file,
    reader_for,
    records_from_rows,
)
from .schema import LONE_SURROGATE, Record
from .store.pool import STAGING_PREFIX, PoolWriter, read_pool, record_to_row

QUARANTINE = "quarantine.jsonl"
REPORT = "report.json"
_OUTPUTS = ("part-*.parquet", QUARANTINE, REPORT, STAGING_PREFIX + "*")
_BATCH = 1000

DEFINITIONS = {
    "read": "records produced by the readers plus source rows that failed before producing any; read == kept + quarantined + duplicates",
    "read_rows": "source rows (non-blank lines, array elements, parquet rows) read from the files",
    "kept": "records written to the pool",
    "quarantined": "items written to quarantine.jsonl (failed rows or failed records)",
    "duplicates": "valid records whose id was already kept (from any source)",
}


@dataclass
class _Counts:
    format: str | None = None
    read: int = 0
    read_rows: int = 0
    kept: int = 0
    quarantined: int = 0
    duplicates: int = 0
    reasons: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {
            "format": self.format,
            "read": self.read,
            "read_rows": self.read_rows,
            "kept": self.kept,
            "quarantined": self.quarantined,
            "duplicates": self.duplicates,
            "reasons": dict(sorted(self.reasons.items())),
            "kinds": dict(sorted(self.kinds.items())),
        }


class _SeenIds:
    """A set of record ids on disk (SQLite), filled in batches."""

    def __init__(self, directory: Path):
        fd, self.path = tempfile.mkstemp(prefix=".ingest-ids-", suffix=".sqlite", dir=directory)
        os.close(fd)
        self.db = sqlite3.connect(self.path)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE ids (id TEXT PRIMARY KEY) WITHOUT ROWID")

    def add_batch(self, ids: list[str]) -> list[bool]:
        """For each id, True if it is new (first occurrence, in order); all are then marked seen."""
        unique = list(dict.fromkeys(ids))
        existing: set[str] = set()
        for i in range(0, len(unique), 500):
            chunk = unique[i : i + 500]
            existing.update(r[0] for r in self.db.execute(f"SELECT id FROM ids WHERE id IN ({','.join('?' * len(chunk))})", chunk))
        self.db.executemany("INSERT OR IGNORE INTO ids VALUES (?)", [(i,) for i in unique if i not in existing])
        self.db.commit()
        seen = set(existing)
        flags = []
        for i in ids:
            flags.append(i not in seen)
            seen.add(i)
        return flags

    def close(self) -> None:
        self.db.close()
        Path(self.path).unlink(missing_ok=True)


class NothingKeptError(ValueError):
    """An ingest that kept no record (empty input, or every row quarantined); ``report`` is what it wrote."""

    def __init__(self, message: str, report: dict):
        super().__init__(message)
        self.report = report


def _prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    previous = [p for pattern in _OUTPUTS for p in out_dir.glob(pattern)]
    if previous and not overwrite:
        interrupted = any(p.name.startswith(STAGING_PREFIX) for p in previous)
        what = "an interrupted ingest" if interrupted else "a pool or an ingest report"
        raise FileExistsError(
            f"{out_dir} already holds {what} ({previous[0].name}, ...); "
            "pass --overwrite (Python: overwrite=True) to replace it"
        )
    for stale in out_dir.glob(STAGING_PREFIX + "*"):  # a write that was cut short: nothing in it is kept
        shutil.rmtree(stale, ignore_errors=True)
    # The earlier pool, quarantine and report are replaced only when this ingest completes.


def json_line(obj) -> str:
    """One JSON line for ``obj``, whatever text it holds: lone surrogates become ``\\u`` escapes
    (a UTF-8 file cannot hold them; ``json.loads`` gives the same text back)."""
    line = _dumps(obj, ensure_ascii=False)
    return _dumps(obj, ensure_ascii=True) if LONE_SURROGATE.search(line) else line


def _dumps(obj, *, ensure_ascii: bool) -> str:
    try:
        return json.dumps(obj, ensure_ascii=ensure_ascii, default=str)
    except RecursionError:  # a row nested as deep as the parser allowed (about 1,000), written from a deeper stack
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(limit + 2000)
        try:
            return json.dumps(obj, ensure_ascii=ensure_ascii, default=str)
        finally:
            sys.setrecursionlimit(limit)


def quarantine_entry(rejection: Rejection) -> dict:
    """The quarantine.jsonl line of a rejection (a rejected grouped record is stored whole)."""
    original = rejection.original
    if original is None and rejection.record is not None:
        original = {"record": record_to_row(rejection.record)}
    return {
        "reason": rejection.reason,
        "field": rejection.field,
        "message": rejection.message,
        "source": rejection.source,
        "row": rejection.row,
        "original": original,
    }


class _Run:
    """State of one ingest: counters, the pool writer, the quarantine file and the id set."""

    def __init__(self, out_dir: Path, max_field_chars: int, progress: bool):
        self.total = _Counts()
        self.per_source: dict[str, _Counts] = {}
        self.max_field_chars = max_field_chars
        self.progress = progress
        self.writer = PoolWriter(out_dir, replace=True)
        self.quarantine = open(self.writer.staging / QUARANTINE, "w", encoding="utf-8")
        self.seen = _SeenIds(self.writer.staging)
        self.pending: list[tuple[Record, _Counts]] = []
        self.missing = Counter()  # field -> rows quarantined as missing_field on it
        self.fields_seen: dict[str, list[str]] = {}  # field -> the fields of a row that lacked it

    def finish(self, report: dict) -> None:
        """Write the last records and the report, then move pool, quarantine and report into place."""
        self.flush()
        self.quarantine.close()
        self.seen.close()
        text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
        (self.writer.staging / REPORT).write_text(text, encoding="utf-8")
        self.writer.close()

    def abort(self) -> None:
        """Leave nothing behind: the output folder keeps what it held before this ingest."""
        try:
            self.quarantine.close()
            self.seen.close()
        finally:
            self.writer.abort()

    # -- outcomes ---------------------------------------------------------------
    def _bump(self, counts: _Counts, name: str, n: int = 1) -> None:
        for c in (counts, self.total):
            setattr(c, name, getattr(c, name) + n)

    def reject(self, counts: _Counts, rejection: Rejection) -> None:
        self.quarantine.write(json_line(quarantine_entry(rejection)) + "\n")
        if rejection.reason == "missing_field" and rejection.field:
            self.missing[rejection.field] += 1
            if rejection.field not in self.fields_seen and isinstance(rejection.original, dict):
                self.fields_seen[rejection.field] = sorted(map(str, rejection.original))
        self._bump(counts, "read")
        self._bump(counts, "quarantined")
        counts.reasons[rejection.reason] += 1
        self.total.reasons[rejection.reason] += 1

    def accept(self, counts: _Counts, rec: Record) -> None:
        self._bump(counts, "read")
        _ = rec.id  # the content id now, while its normalised texts are fresh (schema._norm_text)
        self.pending.append((rec, counts))
        if len(self.pending) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        fresh = self.seen.add_batch([rec.id for rec, _ in self.pending])
        for (rec, counts), new in zip(self.pending, fresh):
            if new:
                self.writer.write(rec)
                self._bump(counts, "kept")
                counts.kinds[rec.kind] += 1
                self.total.kinds[rec.kind] += 1
            else:
                self._bump(counts, "duplicates")
        self.pending = []

    # -- one file ---------------------------------------------------------------
    def ingest_file(self, path: Path, name: str | None, reader: Reader | None) -> None:
        source = str(path)
        counts = self.per_source.setdefault(source, _Counts(format=name))
        rows = progress(iter_rows(path), desc=path.name[:40], unit=" rows", enabled=self.progress)  # lines when stderr is no terminal
        read = RowCount()
        for out in records_from_rows(rows, reader, source=source, max_field_chars=self.max_field_chars, count=read):
            if isinstance(out, Rejection):
                self.reject(counts, out)
            else:
                self.accept(counts, out)
        self._bump(counts, "read_rows", read.rows)
        self.flush()
        rows.close()


def ingest(
    sources: list[str | Path],
    out_dir: str | Path,
    *,
    format: str | None = None,
    mapping: FieldMapping | None = None,
    report_path: str | Path | None = None,
    max_field_chars: int = MAX_FIELD_CHARS,
    progress: bool = True,
    overwrite: bool = False,
) -> dict:
    """Ingest ``sources`` into the pool at ``out_dir``; return the report (also written to report.json).

    Raises ``UnknownFormatError`` (naming file, row and fields) before writing anything
    when a file's format cannot be detected, ``FileExistsError`` when ``out_dir`` already
    holds a pool and ``overwrite`` is False, :class:`NothingKeptError` (after writing the
    report and quarantine) when no record was kept.
    """
    if format == "mapped" and mapping is None:
        raise UserValueError("format 'mapped' needs a field mapping", cli="give it with --map prompt=... --map chosen=... --map rejected=...",
                             api="pass mapping=FieldMapping(...)")
    out_dir = Path(out_dir)
    files = expand_sources(sources)
    if not files:
        raise InputNotFoundError(f"no data files ({', '.join(DATA_SUFFIXES)}) in {', '.join(str(s) for s in sources)}")
    plans = [(path, *reader_for(path, format=format, mapping=mapping)) for path in files]  # detect all before writing
    _prepare_out_dir(out_dir, overwrite)

    run = _Run(out_dir, max_field_chars, progress)
    try:
        for path, name, reader in plans:
            run.ingest_file(path, name, reader)
        run.flush()
        report = {
            **{k: v for k, v in run.total.as_dict().items() if k != "format"},
            "per_source": {src: c.as_dict() for src, c in run.per_source.items()},
            "definitions": DEFINITIONS,
            "pool": str(out_dir),
            "quarantine": str(out_dir / QUARANTINE),
            "max_field_chars": max_field_chars,
        }
        for c in (run.total, *run.per_source.values()):
            if c.read != c.kept + c.quarantined + c.duplicates:
                raise RuntimeError(f"ingest count mismatch (a bug; nothing was written): {c.as_dict()}")
        run.finish(report)
    except BaseException:
        run.abort()
        raise
    if report_path is not None:
        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        Path(report_path).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if report["kept"] == 0:
        raise NothingKeptError(_nothing_kept(report, files, mapping, run), report)
    return report


def _nothing_kept(report: dict, files: list[Path], mapping: FieldMapping | None, run: _Run) -> str:
    """Why an ingest kept no record, in one line, with the fix when the likely cause is a mapping typo."""
    named = ", ".join(str(f) for f in files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    if report["read_rows"] == 0:
        return f"no records: {named} hold{'s' if len(files) == 1 else ''} no rows (empty, or only blank lines)"
    reasons = ", ".join(f"{n} {r}" for r, n in Counter(report["reasons"]).most_common(3))
    line = f"no records kept: all {report['read']} rows of {named} were quarantined ({reasons}; see {report['quarantine']})"
    mapped = {src: key for key, src in mapping.fields.items()} if mapping is not None else {}
    if mapping is not None and mapping.label_field:
        mapped[mapping.label_field] = "label"
    field, n = run.missing.most_common(1)[0] if run.missing else (None, 0)
    if field in mapped:
        seen = run.fields_seen.get(field, [])
        flag = "--label-field FIELD" if mapped[field] == "label" else f"--map {mapped[field]}=FIELD"
        guess = difflib.get_close_matches(field.split(".")[0], seen, n=1)
        line += f"; {n} row(s) lack the mapped field {field!r} (their fields: {', '.join(seen[:12])})"
        line += f": did you mean {flag.replace('FIELD', guess[0])}?" if guess else f": map an existing field with {flag} (--map KEY=FIELD)"
    return line


class ReadError(ValueError):
    """A row or record of a source file could not be read; names the file, row and field."""

    def __init__(self, rejection: Rejection):
        super().__init__(str(rejection))
        self.rejection = rejection
        self.source, self.row, self.reason, self.field = rejection.source, rejection.row, rejection.reason, rejection.field


def is_pool(path: str | Path) -> bool:
    """A folder written by ``synpref ingest`` / ``PoolWriter``: it holds ``part-*.parquet`` shards, or a
    write into it that did not finish (reading it then raises ``IncompletePoolError``)."""
    p = Path(path)
    return p.is_dir() and (any(p.glob("part-*.parquet")) or any(p.glob(STAGING_PREFIX + "*")))


def read_records(
    sources: list[str | Path],
    *,
    format: str | None = None,
    mapping: FieldMapping | None = None,
    errors: list | None = None,
    allow_degenerate: bool = False,
    max_field_chars: int = MAX_FIELD_CHARS,
) -> Iterator[Record]:
    """Stream valid records from pool folders and source files without writing a pool (no de-duplication).

    Source files are read by :func:`synpref.formats.read_file`, with every guard
    ``ingest`` applies. Each :class:`~synpref.formats.Rejection` is raised as a
    :class:`ReadError`, or, when ``errors`` is a list, appended to it and skipped so
    the caller can report it. ``allow_degenerate`` keeps empty responses and identical
    candidates (best-of-N inputs).
    """
    for source in sources:
        if is_pool(source):
            yield from read_pool(source)
            continue
        for path in expand_sources([source]):
            for out in read_file(path, format=format, mapping=mapping, allow_degenerate=allow_degenerate, max_field_chars=max_field_chars):
                if not isinstance(out, Rejection):
                    yield out
                elif errors is None:
                    raise ReadError(out)
                else:
                    errors.append(out)


# ``from synpref import ingest`` may hand back this module: calling it runs ingest().
callable_module(__name__, "ingest")
