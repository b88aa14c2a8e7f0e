"""Ingest: stream source files into a record pool, quarantining what does not fit.

For every source file (directories expand to their data files, sorted), rows are
streamed, turned into records by the file's reader (auto-detected from the first
good row unless ``format`` or ``mapping`` is given), validated with
``schema.validate``, de-duplicated globally on ``Record.id`` and written with
``PoolWriter``. Rows or records that fail go to ``out_dir/quarantine.jsonl`` with a
reason; ``out_dir/report.json`` sums it all up.

Counting: one source row may give several records (rm-bench gives 9) or none
(helpsteer rows merge into one grouped record), so ``read`` counts *items*:
records produced plus rows that failed before producing any. It always holds that
``read == kept + quarantined + duplicates``. ``read_rows`` counts source rows.

De-duplication keeps memory flat: seen ids live in an on-disk SQLite table (a temp
file inside ``out_dir``, removed at the end), checked and filled in batches.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from . import callable_module
from .formats import FieldMapping, MappedReader, Reader, SourceError, detect, expand_sources, get_reader, iter_rows, reason_of
from .schema import Record, RecordError, validate
from .store.pool import PoolWriter, record_to_row

QUARANTINE = "quarantine.jsonl"
REPORT = "report.json"
_OUTPUTS = ("part-*.parquet", QUARANTINE, REPORT)
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


def _too_long_field(obj, limit: int, path: str = "") -> str | None:
    """Dotted path of the first string longer than ``limit`` characters, if any."""
    if isinstance(obj, str):
        return path if len(obj) > limit else None
    if isinstance(obj, dict):
        children = ((f"{path}.{k}" if path else str(k), v) for k, v in obj.items())
    elif isinstance(obj, list):
        children = ((f"{path}[{i}]", v) for i, v in enumerate(obj))
    else:
        return None
    return next((p for p in (_too_long_field(v, limit, child) for child, v in children) if p), None)


def _prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    previous = [p for pattern in _OUTPUTS for p in out_dir.glob(pattern)]
    if previous and not overwrite:
        raise FileExistsError(f"{out_dir} already holds a pool or an ingest report ({previous[0].name}, ...); pass overwrite=True to replace it")
    for p in previous:
        p.unlink()


def _first_object(path: Path):
    """``(row, obj)`` of the first row that parsed, or None when there is none."""
    for row, item in iter_rows(path):
        if not isinstance(item, SourceError):
            return row, item
    return None


def _reader_factory(path: Path, format: str | None, mapping: FieldMapping | None) -> tuple[str | None, Callable[[], Reader] | None]:
    """``(format name, reader factory)`` for one file; (None, None) when it has no parseable row."""
    if mapping is not None:
        return "mapped", lambda: MappedReader(str(path), mapping=mapping)
    if format is not None:
        cls = get_reader(format)
        return format, lambda: cls(str(path))
    first = _first_object(path)
    if first is None:
        return None, None
    name = detect(first[1], where=f"{path} row {first[0]}")
    cls = get_reader(name)
    return name, lambda: cls(str(path))


class _Run:
    """State of one ingest: counters, the pool writer, the quarantine file and the id set."""

    def __init__(self, out_dir: Path, max_field_chars: int, progress: bool):
        self.total = _Counts()
        self.per_source: dict[str, _Counts] = {}
        self.max_field_chars = max_field_chars
        self.progress = progress
        self.writer = PoolWriter(out_dir)
        self.quarantine = open(out_dir / QUARANTINE, "w", encoding="utf-8")
        self.seen = _SeenIds(out_dir)
        self.pending: list[tuple[Record, _Counts]] = []

    def close(self) -> None:
        try:
            self.flush()
            self.writer.close()
        finally:
            self.quarantine.close()
            self.seen.close()

    # -- outcomes ---------------------------------------------------------------
    def _bump(self, counts: _Counts, name: str, n: int = 1) -> None:
        for c in (counts, self.total):
            setattr(c, name, getattr(c, name) + n)

    def reject(self, counts: _Counts, *, reason: str, field: str | None, message: str, source: str, row: int, original) -> None:
        entry = {"reason": reason, "field": field, "message": message, "source": source, "row": row, "original": original}
        self.quarantine.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
        self._bump(counts, "read")
        self._bump(counts, "quarantined")
        counts.reasons[reason] += 1
        self.total.reasons[reason] += 1

    def accept(self, counts: _Counts, rec: Record | RecordError, *, source: str, row: int, original) -> None:
        if not isinstance(rec, RecordError):
            try:
                validate(rec)
            except RecordError as e:
                rec = e
        if isinstance(rec, RecordError):
            self.reject(counts, reason=reason_of(rec), field=rec.field, message=str(rec), source=source, row=row, original=original)
            return
        self._bump(counts, "read")
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
    def ingest_file(self, path: Path, name: str | None, make_reader: Callable[[], Reader] | None) -> None:
        source = str(path)
        counts = self.per_source.setdefault(source, _Counts(format=name))
        reader = make_reader() if make_reader else None
        rows = tqdm(iter_rows(path), desc=path.name[:40], unit=" rows", disable=not self.progress, leave=False)
        for row, item in rows:
            self._bump(counts, "read_rows")
            if isinstance(item, SourceError):
                self.reject(counts, reason=item.reason, field=None, message=item.message, source=source, row=row, original=item.raw)
                continue
            if not isinstance(item, dict):
                self.reject(counts, reason="not_an_object", field=None, message=f"row is a {type(item).__name__}, not an object", source=source, row=row, original=item)
                continue
            long_field = _too_long_field(item, self.max_field_chars)
            if long_field:
                self.reject(counts, reason="field_too_long", field=long_field, message=f"field {long_field!r} is longer than {self.max_field_chars} characters", source=source, row=row, original=item)
                continue
            try:
                produced = list(reader.read(item, row))
            except RecordError as e:
                self.reject(counts, reason=reason_of(e), field=e.field, message=str(e), source=source, row=row, original=item)
                continue
            except Exception as e:  # a reader bug on odd data must not lose the row silently
                self.reject(counts, reason="reader_error", field=None, message=f"{type(e).__name__}: {e}", source=source, row=row, original=item)
                continue
            for rec in produced:
                self._accept_produced(counts, rec, source, row, item)
        if reader is not None:
            for rec in reader.finish():
                self._accept_produced(counts, rec, source, row=None, item=None)
        self.flush()
        rows.close()

    def _accept_produced(self, counts: _Counts, rec, source: str, row: int | None, item) -> None:
        # Records of buffering readers (helpsteer groups) may come from earlier rows.
        if isinstance(rec, Record) and rec.provenance.row != row:
            self.accept(counts, rec, source=source, row=rec.provenance.row, original={"record": record_to_row(rec)})
        else:
            self.accept(counts, rec, source=source, row=row, original=item)


def ingest(
    sources: list[str | Path],
    out_dir: str | Path,
    *,
    format: str | None = None,
    mapping: FieldMapping | None = None,
    report_path: str | Path | None = None,
    max_field_chars: int = 1_000_000,
    progress: bool = True,
    overwrite: bool = False,
) -> dict:
    """Ingest ``sources`` into the pool at ``out_dir``; return the report (also written to report.json).

    Raises ``UnknownFormatError`` (naming file, row and fields) before writing anything
    when a file's format cannot be detected, ``FileExistsError`` when ``out_dir`` already
    holds a pool and ``overwrite`` is False.
    """
    if mapping is not None and format not in (None, "mapped"):
        raise ValueError(f"give either format={format!r} or a field mapping, not both")
    if format == "mapped" and mapping is None:
        raise ValueError("format 'mapped' needs a FieldMapping (mapping=...)")
    out_dir = Path(out_dir)
    files = expand_sources(sources)
    if not files:
        raise ValueError(f"no data files ({', '.join(('.jsonl', '.jsonl.gz', '.json', '.json.gz', '.parquet'))}) in {[str(s) for s in sources]}")
    plans = [(path, *_reader_factory(path, format, mapping)) for path in files]  # detect all before writing
    _prepare_out_dir(out_dir, overwrite)

    run = _Run(out_dir, max_field_chars, progress)
    try:
        for path, name, make_reader in plans:
            run.ingest_file(path, name, make_reader)
    finally:
        run.close()

    total = run.total
    report = {
        **{k: v for k, v in total.as_dict().items() if k != "format"},
        "per_source": {src: c.as_dict() for src, c in run.per_source.items()},
        "definitions": DEFINITIONS,
        "pool": str(out_dir),
        "quarantine": str(out_dir / QUARANTINE),
        "max_field_chars": max_field_chars,
    }
    for c in (total, *run.per_source.values()):
        assert c.read == c.kept + c.quarantined + c.duplicates, f"ingest count mismatch: {c.as_dict()}"
    text = json.dumps(report, indent=2, ensure_ascii=False)
    (out_dir / REPORT).write_text(text + "\n", encoding="utf-8")
    if report_path is not None:
        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        Path(report_path).write_text(text + "\n", encoding="utf-8")
    return report


class ReadError(ValueError):
    """A row or record of a source file could not be read; names the file, row and field."""

    def __init__(self, source: str, row, reason: str, field: str | None, message: str):
        where = f"{source} row {row}" + (f", field {field!r}" if field else "")
        super().__init__(f"{where}: {message} ({reason})")
        self.source, self.row, self.reason, self.field = source, row, reason, field


def read_records(
    sources: list[str | Path],
    *,
    format: str | None = None,
    mapping: FieldMapping | None = None,
    errors: list | None = None,
):
    """Stream valid records from source files without writing a pool (no dedup).

    A bad row or record raises :class:`ReadError`, or, when ``errors`` is a list,
    is appended to it as a ``ReadError`` and skipped, so the caller can report it.
    """
    for path in expand_sources(sources):
        name, make_reader = _reader_factory(path, format, mapping)
        reader = make_reader() if make_reader else None

        def fail(row, reason, field, message):
            err = ReadError(str(path), row, reason, field, message)
            if errors is None:
                raise err
            errors.append(err)

        def checked(produced, row):
            for rec in produced:
                try:
                    if isinstance(rec, RecordError):
                        raise rec
                    yield validate(rec)
                except RecordError as e:
                    fail(row, reason_of(e), e.field, str(e))

        for row, item in iter_rows(path):
            if isinstance(item, SourceError):
                fail(row, item.reason, None, item.message)
                continue
            if not isinstance(item, dict):
                fail(row, "not_an_object", None, f"row is a {type(item).__name__}, not an object")
                continue
            try:
                produced = list(reader.read(item, row))
            except RecordError as e:
                fail(row, reason_of(e), e.field, str(e))
                continue
            yield from checked(produced, row)
        if reader is not None:
            yield from checked(reader.finish(), None)


# ``from synpref import ingest`` may hand back this module: calling it runs ingest().
callable_module(__name__, "ingest")
