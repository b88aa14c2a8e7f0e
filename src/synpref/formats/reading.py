"""The one way a source row becomes a record: rows in, records or rejections out.

:func:`records_from_rows` is the generator every reader's output passes through
(``synpref ingest``, ``synpref score``, ``synpref eval`` and its benchmarks,
``synpref bon``). Each source row ends up as records, or as a :class:`Rejection`
that says why, with the same guards everywhere:

* a row that did not parse (bad JSON, an undecodable byte, a truncated or corrupt file),
* a row that is not an object (``not_an_object``),
* a string field longer than ``max_field_chars`` (``field_too_long``), text holding a
  lone surrogate (``invalid_unicode``), nesting deeper than ``MAX_DEPTH`` (``too_deep``),
* a row or record the reader refuses (its ``FormatError`` reason: ``missing_field``,
  ``wrong_type``, ``bad_label``, ...),
* a reader that raises anything else (``reader_error``: a reader bug on odd data
  rejects the row, logged, instead of stopping the run),
* a produced record that breaks :func:`synpref.schema.validate`.

A row of an object of lists (:class:`~synpref.formats.sources.KeyedRow`) gives its
records ``meta["subset"]`` = the list's name (``meta["source_subset"]`` when the
reader already set another subset).

:func:`read_file` picks a file's reader (forced, mapped or detected from its first
parseable row, :func:`reader_for`) and streams it; hub datasets feed their rows to
:func:`records_from_rows` directly.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..schema import LONE_SURROGATE, Record, RecordError, validate
from .common import reason_of
from .mapping import FieldMapping, MappedReader
from .registry import Reader, detect, get_reader
from .sources import KeyedRow, SourceError, iter_rows

log = logging.getLogger(__name__)

MAX_FIELD_CHARS = 1_000_000  # longer string fields reject the row (field_too_long)
MAX_DEPTH = 100  # deeper nesting rejects the row (too_deep); no format needs more than a few levels


@dataclass(frozen=True)
class Rejection:
    """A source row, or one record of it, that did not become a record.

    ``row`` is the 0-based source row (for a grouping reader's record, the group's
    first row; None when unknown). ``original`` is the row object, or the raw line
    when it did not parse; None when the rejected record came from earlier rows, in
    which case ``record`` holds it.
    """

    source: str
    row: int | None
    reason: str
    field: str | None
    message: str
    original: Any = None
    record: Record | None = None

    def __str__(self) -> str:
        where = self.source + (f" row {self.row}" if self.row is not None else "") + (f", field {self.field!r}" if self.field else "")
        return f"{where}: {self.message} ({self.reason})"


@dataclass
class RowCount:
    """Source rows read so far (non-blank lines, array elements, parquet rows)."""

    rows: int = 0


def row_problem(obj, max_field_chars: int, max_depth: int = MAX_DEPTH) -> tuple[str, str, str] | None:
    """``(reason, field, message)`` for the first field (in row order) no record may hold, else None.

    A string longer than ``max_field_chars`` (``field_too_long``), a key or string with a
    lone surrogate (``invalid_unicode``), a list or object nested deeper than ``max_depth``
    (``too_deep``). Iterative: any depth the JSON parser accepts is walked without recursion.
    """
    stack = [(obj, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            if len(value) > max_field_chars:
                return "field_too_long", path, f"field {path!r} is longer than {max_field_chars} characters"
            if LONE_SURROGATE.search(value):
                return "invalid_unicode", path, f"field {path!r} holds a lone surrogate (an unpaired \\u escape such as \\ud800), which is not text"
        elif isinstance(value, (dict, list)):
            if depth >= max_depth and value:
                return "too_deep", path, f"field {path!r} is nested more than {max_depth} levels deep"
            if isinstance(value, dict):
                children = []
                for k, v in value.items():
                    key = str(k)
                    if LONE_SURROGATE.search(key):
                        return "invalid_unicode", path, f"a key of {path or 'the row'!r} holds a lone surrogate, which is not text"
                    children.append((v, f"{path}.{key}" if path else key, depth + 1))
            else:
                children = [(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
            stack.extend(reversed(children))
    return None


def make_reader(
    source: str | Path,
    format: str,
    *,
    mapping: FieldMapping | None = None,
    options: dict | None = None,
    allow_degenerate: bool = False,
) -> Reader:
    """The reader for ``format`` (``mapped`` needs ``mapping``), built for one source."""
    if format == "mapped":
        if mapping is None:
            raise ValueError("format 'mapped' needs a field mapping (--map prompt=... --map chosen=... --map rejected=...)")
        return MappedReader(str(source), mapping=mapping, allow_degenerate=allow_degenerate, **(options or {}))
    return get_reader(format)(str(source), allow_degenerate=allow_degenerate, **(options or {}))


def reader_for(
    path: str | Path,
    *,
    format: str | None = None,
    mapping: FieldMapping | None = None,
    options: dict | None = None,
    allow_degenerate: bool = False,
) -> tuple[str | None, Reader | None]:
    """``(format name, reader)`` for one file: forced, mapped, or detected from its first object row.

    ``(None, None)`` when no row of the file is an object (every row is then rejected).
    Raises ``UnknownFormatError`` naming the file, the row and its fields when no
    format matches.
    """
    if mapping is not None and format not in (None, "mapped"):
        raise ValueError(f"give either a format ({format!r}) or a field mapping, not both")
    if mapping is not None:
        format = "mapped"
    if format is None:
        first = next(((row, obj) for row, obj in iter_rows(path) if isinstance(obj, dict)), None)
        if first is None:
            return None, None
        format = detect(first[1], where=f"{path} row {first[0]}")
    return format, make_reader(path, format, mapping=mapping, options=options, allow_degenerate=allow_degenerate)


def records_from_rows(
    rows: Iterable[tuple[int, Any]],
    reader: Reader | None,
    *,
    source: str,
    max_field_chars: int = MAX_FIELD_CHARS,
    count: RowCount | None = None,
) -> Iterator[Record | Rejection]:
    """Records, and a :class:`Rejection` for everything that fails, from ``(row, object)`` pairs.

    ``rows`` are what :func:`synpref.formats.sources.iter_rows` yields (objects or
    ``SourceError`` items) or any enumerated rows (a hub dataset). ``reader`` may be
    None only when no row parses. ``count.rows`` counts the rows consumed.
    """
    count = count if count is not None else RowCount()
    subsets = _Subsets()
    for row, item in rows:
        count.rows += 1
        if isinstance(item, SourceError):
            yield Rejection(source, row, item.reason, None, item.message, item.raw)
            continue
        if not isinstance(item, dict):
            yield Rejection(source, row, "not_an_object", None, f"row is a {type(item).__name__}, not an object", item)
            continue
        problem = row_problem(item, max_field_chars)
        if problem:
            reason, field, message = problem
            yield Rejection(source, row, reason, field or None, message, item)
            continue
        if reader is None:  # pragma: no cover - reader_for returns a reader whenever a row is an object
            raise ValueError(f"{source} row {row}: no reader for an object row")
        subsets.note(row, item)
        try:
            produced = list(reader.read(item, row))
        except RecordError as e:
            yield Rejection(source, row, reason_of(e), e.field, str(e), item)
            continue
        except Exception as e:  # noqa: BLE001 - a reader bug on odd data rejects the row instead of stopping the run
            yield _reader_bug(reader, source, row, item, e)
            continue
        yield from (subsets.tag(_checked(out, reader, source, row, item)) for out in produced)
    if reader is not None:
        try:
            produced = list(reader.finish())
        except Exception as e:  # noqa: BLE001 - as above, for what the reader buffered
            produced = [_reader_bug(reader, source, None, None, e)]
        yield from (out if isinstance(out, Rejection) else subsets.tag(_checked(out, reader, source, None, None)) for out in produced)


class _Subsets:
    """Which list of an object of lists each row came from (row ranges), to tag its records."""

    def __init__(self):
        self.starts: list[int] = []
        self.keys: list[str] = []

    def note(self, row: int, item: dict) -> None:
        if isinstance(item, KeyedRow) and (not self.keys or self.keys[-1] != item.key):
            self.starts.append(row)
            self.keys.append(item.key)

    def tag(self, out: Record | Rejection) -> Record | Rejection:
        if not self.keys or not isinstance(out, Record):
            return out
        key = self.keys[max(0, bisect.bisect_right(self.starts, out.provenance.row) - 1)]
        subset = out.meta.get("subset")
        if subset == key:
            return out
        extra = {"subset": key} if subset is None else {"source_subset": key}
        return dataclasses.replace(out, meta={**out.meta, **extra})


def _reader_bug(reader: Reader, source: str, row, item, e: Exception) -> Rejection:
    log.warning("%s row %s: the %s reader failed (%s: %s); the row is rejected as reader_error", source, row, reader.name, type(e).__name__, e)
    return Rejection(source, row, "reader_error", None, f"{type(e).__name__}: {e}", item)


def _checked(out, reader: Reader, source: str, row, item) -> Record | Rejection:
    """A produced record validated, or its rejection (attributed to the row it came from)."""
    if isinstance(out, RecordError):
        own = getattr(out, "row", None)
        at = row if own is None else own
        return Rejection(source, at, reason_of(out), out.field, str(out), item if at == row else None)
    try:
        return validate(out, allow_degenerate=reader.allow_degenerate)
    except RecordError as e:
        at = out.provenance.row
        return Rejection(source, at, reason_of(e), e.field, str(e), item if at == row else None, out)


def read_file(
    path: str | Path,
    *,
    format: str | None = None,
    mapping: FieldMapping | None = None,
    options: dict | None = None,
    allow_degenerate: bool = False,
    max_field_chars: int = MAX_FIELD_CHARS,
    count: RowCount | None = None,
) -> Iterator[Record | Rejection]:
    """Records and rejections of one data file (JSONL, gzip, JSON array, Parquet), streamed.

    The reader is ``format`` (with reader ``options``), a ``mapping``, or detected
    from the first parseable row (``UnknownFormatError`` when none matches).
    """
    _, reader = reader_for(path, format=format, mapping=mapping, options=options, allow_degenerate=allow_degenerate)
    yield from records_from_rows(iter_rows(path), reader, source=str(path), max_field_chars=max_field_chars, count=count)
