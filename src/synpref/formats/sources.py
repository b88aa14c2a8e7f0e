"""Streaming row sources: JSONL, gzipped JSONL, JSON arrays and Parquet.

:func:`iter_rows` yields ``(row, item)`` where ``item`` is the parsed object or a
:class:`SourceError`. ``row`` is 0-based: the line index for JSONL (line number
- 1; blank lines are skipped but keep their index), the element index for JSON
arrays and the row index for Parquet. Nothing here raises on bad data: a bad
line, invalid UTF-8 or a truncated/corrupt file becomes an error item, and
reading goes on where it can (JSONL) or stops after one final error item (a
truncated gzip tail, an unparseable JSON array remainder).

Memory stays flat for JSONL, gzip and Parquet (one line / one batch at a time)
and for JSON arrays, which are streamed element by element with the standard
library's ``json.JSONDecoder.raw_decode`` over a growing text buffer (memory is
bounded by the largest element, not the file). ``ijson`` is deliberately not
used: the stdlib decoder is C-accelerated and needs no extra dependency.
"""

from __future__ import annotations

import codecs
import gzip
import json
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet")
_CHUNK = 1 << 16
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")  # undecodable bytes under surrogateescape


@dataclass(frozen=True)
class SourceError:
    """A row that could not be read. ``raw`` is the undecoded line text when there is one."""

    file: str
    row: int
    reason: str  # bad_json | invalid_utf8 | truncated_file | corrupt_file
    message: str
    raw: str | None = None


Row = tuple[int, "dict | list | str | int | float | None | SourceError"]


def is_data_file(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(DATA_SUFFIXES)


def strip_data_suffix(path: str | Path) -> str:
    """The file name without its data suffix: ``a/chat_filtered.json.gz`` -> ``chat_filtered``."""
    name = Path(path).name
    suffix = next((s for s in sorted(DATA_SUFFIXES, key=len, reverse=True) if name.lower().endswith(s)), "")
    return name[: len(name) - len(suffix)]


def expand_sources(sources) -> list[Path]:
    """Files as given; directories become their data files (recursive, sorted)."""
    out: list[Path] = []
    for s in sources:
        p = Path(s)
        if p.is_dir():
            out.extend(sorted((f for f in p.rglob("*") if is_data_file(f)), key=lambda f: str(f)))
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or directory")
    return out


def iter_rows(path: str | Path) -> Iterator[Row]:
    """Stream ``(row, object_or_SourceError)`` from one data file, picking the reader by suffix."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".parquet"):
        yield from _iter_parquet(path)
        return
    opener = gzip.open if name.endswith(".gz") else open
    try:
        fh = opener(path, "rb")
        first = _peek_first_byte(fh)
    except (OSError, EOFError, zlib.error) as e:
        yield 0, SourceError(str(path), 0, _stream_error_reason(e), f"cannot read file: {e}")
        return
    with fh:
        # A ".json" file holding one object per line is JSONL; "[" means a JSON array.
        if first == b"[":
            yield from _iter_json_array(fh, str(path))
        else:
            yield from _iter_jsonl(fh, str(path))


def _peek_first_byte(fh) -> bytes:
    """First non-blank byte, leaving the stream at the start (gzip and files are seekable)."""
    while True:
        chunk = fh.read(4096)
        if not chunk:
            fh.seek(0)
            return b""
        stripped = chunk.lstrip()
        if stripped:
            fh.seek(0)
            return stripped[:1]


def _stream_error_reason(e: BaseException) -> str:
    return "truncated_file" if isinstance(e, (EOFError, zlib.error)) else "corrupt_file"


def _iter_jsonl(fh: IO[bytes], file: str) -> Iterator[Row]:
    row = -1
    lines = iter(fh)
    while True:
        try:
            raw = next(lines)
        except StopIteration:
            return
        except (EOFError, zlib.error, OSError) as e:
            # The unreadable tail counts as one row.
            yield row + 1, SourceError(file, row + 1, _stream_error_reason(e), f"stream ended early: {e}")
            return
        row += 1
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield row, SourceError(file, row, "invalid_utf8", str(e), raw.decode("utf-8", "backslashreplace").rstrip("\r\n"))
            continue
        try:
            yield row, json.loads(text)
        except json.JSONDecodeError as e:
            yield row, SourceError(file, row, "bad_json", str(e), text.rstrip("\r\n"))


def _iter_json_array(fh: IO[bytes], file: str) -> Iterator[Row]:
    decoder = json.JSONDecoder()
    # surrogateescape keeps reading past bad bytes; elements holding them become errors.
    utf8 = codecs.getincrementaldecoder("utf-8")("surrogateescape")
    buf, pos, eof, index = "", 0, False, 0

    def more(size: int) -> bool:
        """Append decoded text; False at end of input. A truncated gzip raises EOFError here."""
        nonlocal buf, pos, eof
        if eof:
            return False
        data = fh.read(size)
        buf = buf[pos:] + utf8.decode(data, final=not data)
        pos = 0
        eof = not data
        return True

    def skip_ws() -> str:
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                pos += 1
            if pos < len(buf) or not more(_CHUNK):
                return buf[pos] if pos < len(buf) else ""

    def fail(reason: str, message: str) -> SourceError:
        return SourceError(file, index, reason, message, buf[pos : pos + 200] or None)

    try:
        skip_ws()
        pos += 1  # the "[" sniffed by iter_rows
        if skip_ws() == "]":
            return
        while True:
            skip_ws()
            size = _CHUNK
            while True:
                try:
                    obj, end = decoder.raw_decode(buf, pos)
                    if end < len(buf) or eof:
                        break  # a value ending exactly at the buffer edge might continue (numbers)
                except json.JSONDecodeError as e:
                    if eof:
                        truncated = not buf.rstrip().endswith("]")
                        yield index, fail("truncated_file" if truncated else "bad_json", f"element {index}: {e}")
                        return
                more(size)
                size = max(size, len(buf))  # grow reads geometrically: no quadratic re-parsing
            start, pos = pos, end
            bad = _ESCAPED_BYTE.search(buf, start, end)
            if bad:
                raw = buf[start:end].encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                yield index, SourceError(file, index, "invalid_utf8", f"element {index}: invalid UTF-8 byte at offset {bad.start() - start}", raw)
            else:
                yield index, obj
            index += 1
            sep = skip_ws()
            if sep == ",":
                pos += 1
            elif sep == "]":
                return
            else:
                yield index, fail("truncated_file" if sep == "" else "bad_json", f"expected ',' or ']' after element {index - 1}, got {sep or 'end of file'!r}")
                return
    except (EOFError, zlib.error, OSError) as e:
        yield index, fail(_stream_error_reason(e), f"stream ended early: {e}")


def _iter_parquet(path: Path) -> Iterator[Row]:
    import pyarrow.parquet as pq

    row = 0
    try:
        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(batch_size=1000):
            for obj in batch.to_pylist():
                yield row, obj
                row += 1
    except Exception as e:  # pyarrow raises several types (ArrowInvalid, OSError) for bad files
        yield row, SourceError(str(path), row, "corrupt_file", f"cannot read parquet: {e}")
