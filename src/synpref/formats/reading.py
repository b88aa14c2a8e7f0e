"""The one way a source row becomes a record: rows in, records or rejections out.

:func:`records_from_rows` is the generator every reader's output passes through
(``synpref ingest``, ``synpref score``, ``synpref eval`` and its benchmarks,
``synpref bon``). Each source row ends up as records, or as a :class:`Rejection`
that says why, with the same guards everywhere:

* a row that did not parse (bad JSON, invalid UTF-8, a truncated or corrupt file),
* a row that is not an object (``not_an_object``),
* a string field longer than ``max_field_chars`` (``field_too_long``),
* a row or record the reader refuses (its ``FormatError`` reason: ``missing_field``,
  ``wrong_type``, ``bad_label``, ...),
* a reader that raises anything else (``reader_error``: a reader bug on odd data
  rejects the row, logged, instead of stopping the run),
* a produced record that breaks :func:`synpref.schema.validate`.

:func:`read_file` picks a file's reader (forced, mapped or detected from its first
parseable row, :func:`reader_for`) and streams it; hub datasets feed their rows to
:func:`records_from_rows` directly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..schema import Record, RecordError, validate
from .common import reason_of
from .mapping import FieldMapping, MappedReader
from .registry import Reader, detect, get_reader
from .sources import SourceError, iter_rows

log = logging.getLogger(__name__)

MAX_FIELD_CHARS = 1_000_000  # longer string fields reject the row (field_too_long)


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


def too_long_field(obj, limit: int, path: str = "") -> str | None:
    """Dotted path of the first string longer than ``limit`` characters, if any."""
    if isinstance(obj, str):
        return path if len(obj) > limit else None
    if isinstance(obj, dict):
        children = ((f"{path}.{k}" if path else str(k), v) for k, v in obj.items())
    elif isinstance(obj, list):
        children = ((f"{path}[{i}]", v) for i, v in enumerate(obj))
    else:
        return None
    return next((p for p in (too_long_field(v, limit, child) for child, v in children) if p), None)


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
    """``(format name, reader)`` for one file: forced, mapped, or detected from its first parseable row.

    ``(None, None)`` when no row of the file parses (every row is then rejected).
    Raises ``UnknownFormatError`` naming the file, the row and its fields when no
    format matches.
    """
    if mapping is not None and format not in (None, "mapped"):
        raise ValueError(f"give either a format ({format!r}) or a field mapping, not both")
    if mapping is not None:
        format = "mapped"
    if format is None:
        first = next(((row, obj) for row, obj in iter_rows(path) if not isinstance(obj, SourceError)), None)
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
    for row, item in rows:
        count.rows += 1
        if isinstance(item, SourceError):
            yield Rejection(source, row, item.reason, None, item.message, item.raw)
            continue
        if not isinstance(item, dict):
            yield Rejection(source, row, "not_an_object", None, f"row is a {type(item).__name__}, not an object", item)
            continue
        long_field = too_long_field(item, max_field_chars)
        if long_field:
            message = f"field {long_field!r} is longer than {max_field_chars} characters"
            yield Rejection(source, row, "field_too_long", long_field, message, item)
            continue
        if reader is None:  # pragma: no cover - reader_for returns a reader whenever a row parses
            raise ValueError(f"{source} row {row}: no reader for a parseable row")
        try:
            produced = list(reader.read(item, row))
        except RecordError as e:
            yield Rejection(source, row, reason_of(e), e.field, str(e), item)
            continue
        except Exception as e:  # noqa: BLE001 - a reader bug on odd data rejects the row instead of stopping the run
            yield _reader_bug(reader, source, row, item, e)
            continue
        yield from (_checked(out, reader, source, row, item) for out in produced)
    if reader is not None:
        try:
            produced = list(reader.finish())
        except Exception as e:  # noqa: BLE001 - as above, for what the reader buffered
            produced = [_reader_bug(reader, source, None, None, e)]
        yield from (out if isinstance(out, Rejection) else _checked(out, reader, source, None, None) for out in produced)


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
