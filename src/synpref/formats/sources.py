"""Streaming row sources: JSONL, JSON arrays, objects of lists and Parquet, plain or gzipped.

:func:`iter_rows` yields ``(row, item)`` where ``item`` is the parsed value or a
:class:`SourceError`. Nothing here raises on bad data: a bad line, an undecodable
byte, a value nested too deep or a truncated/corrupt file becomes an error item
(with the raw text it covers), and reading goes on where it can, so every part
of the input is either a row or an error item.

Encoding: a byte-order mark (UTF-8, UTF-16, UTF-32) is honoured and dropped;
without one, zero bytes among the first four give UTF-16/32 away (JSON text
starts with an ASCII character, RFC 4627); anything else is UTF-8.

Layout, from the first non-blank character:

* ``[``: a JSON array, each element a row (``row`` = its index). When the first
  line is a whole JSON value and more lines follow, the file is JSONL instead.
* ``{``: JSONL, unless the file is one JSON object whose values are lists of
  records (EvalBiasBench's ``{"length bias": [...], ...}``): then each element is
  a row, numbered across the lists, handed out as a :class:`KeyedRow` that
  remembers its list's name (:mod:`synpref.formats.reading` stores it as the
  record's ``meta["subset"]``). A record pretty-printed over several lines is
  one row.
* anything else: JSONL, each non-blank line a row (``row`` = the 0-based line
  index; blank lines keep theirs).

What follows the closing bracket of an array or object is read on as further
values (JSONL lines or pretty-printed values), numbered on after the last
element, so nothing after it goes unread. Memory stays flat: lines, array and
object elements and Parquet batches are read one at a time (JSON values with the
standard library's C decoder, ``json.JSONDecoder.raw_decode``, over a growing
text buffer), so memory is bounded by the largest row, not the file.
"""

from __future__ import annotations

import codecs
import gzip
import json
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet")
_CHUNK = 1 << 20
_FIRST_LINE_CAP = 1 << 24  # characters of a first line held to tell JSONL from a one-line array

# Undecodable bytes become U+DC00 + byte (as "surrogateescape" does for UTF-8, for every
# byte and encoding); decoded text never holds such characters otherwise.
_MARK_BYTES = "synpref-mark-bytes"


_MARKS = [0]  # undecodable stretches met so far (any file): a text is searched for marks only once it had one


def _mark_bytes(err: UnicodeError):
    if not isinstance(err, UnicodeDecodeError):
        raise err
    _MARKS[0] += 1
    return "".join(chr(0xDC00 + b) for b in err.object[err.start : err.end]), err.end


codecs.register_error(_MARK_BYTES, _mark_bytes)
_MARKED = re.compile("[\udc00-\udcff]")
_WS = " \t\r\n\ufeff"  # JSON white space, plus a stray byte-order mark (files joined with cat)
_NON_WS = re.compile("[^ \t\r\n\ufeff]")
_STRUCTURE = re.compile(r'["\[\]{},]')
_IN_STRING = re.compile(r'["\\]')


@dataclass(frozen=True)
class SourceError:
    """A row that could not be read. ``raw`` is the text it covers (undecodable bytes as ``\\xNN``;
    empty where no text could be read: a gzip stream cut at a line boundary, a damaged Parquet file)."""

    file: str
    row: int
    reason: str  # bad_json | invalid_utf8 | invalid_encoding | too_deep | truncated_file | corrupt_file
    message: str
    raw: str = ""


class KeyedRow(dict):
    """A row of an object of lists: the element itself, and ``key``, the name of its list."""

    __slots__ = ("key",)

    def __init__(self, obj: dict, key: str):
        super().__init__(obj)
        self.key = key


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


def shown(text: str) -> str:
    """``text`` with each undecodable byte written as ``\\xNN`` (printable, valid UTF-8)."""
    return _MARKED.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", text)


def iter_rows(path: str | Path) -> Iterator[Row]:
    """Stream ``(row, object_or_SourceError)`` from one data file, whatever its layout (see the module doc)."""
    path = Path(path)
    if path.name.lower().endswith(".parquet"):
        yield from _iter_parquet(path)
        return
    try:
        layout = _layout(path)
        text = _Text(path)
    except OSError as e:  # unreadable file (permissions, not a gzip file, ...)
        yield 0, SourceError(str(path), 0, _stream_error_reason(e), f"cannot read file: {e}")
        return
    with text:
        parser = _Json(text, str(path))
        if layout == "lines":
            yield from _lines(text, str(path))
        elif layout == "array":
            text.peek()
            end = yield from parser.array(0)
            yield from parser.values(end, "after the closing ']'")
        elif layout == "object":
            text.peek()
            end = yield from parser.object_of_lists(0)
            yield from parser.values(end, "after the closing '}'")
        else:  # one or more values spread over lines (a pretty-printed record)
            yield from parser.values(0, "")


def iter_jsonl(path: str | Path) -> Iterator[Row]:
    """``(line index, object_or_SourceError)`` for each non-blank line: JSONL only, whatever the first line holds.

    For files whose contract is one JSON object per line (decision files, run ledgers),
    so that an error is always on its own line. The same decoding and guards as :func:`iter_rows`.
    """
    try:
        text = _Text(Path(path))
    except OSError as e:
        yield 0, SourceError(str(path), 0, _stream_error_reason(e), f"cannot read file: {e}")
        return
    with text:
        yield from _lines(text, str(path))


# -- decoded text ------------------------------------------------------------------------------
def sniff_encoding(head: bytes) -> str:
    """The codec of a text file from its first four bytes (a BOM, or the zero bytes of UTF-16/32)."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if len(head) >= 4 and head[:3] == b"\0\0\0":
        return "utf-32-be"
    if len(head) >= 4 and head[1:4] == b"\0\0\0":
        return "utf-32-le"
    if len(head) >= 2 and head[0] == 0 and head[1] != 0:
        return "utf-16-be"
    if len(head) >= 2 and head[1] == 0 and head[0] != 0:
        return "utf-16-le"
    return "utf-8"


def _stream_error_reason(e: BaseException) -> str:
    return "truncated_file" if isinstance(e, (EOFError, zlib.error)) else "corrupt_file"


class _Text:
    """A data file's decoded text, read in growing chunks. ``buf[pos:]`` is what is not consumed yet.

    A read error (a truncated or corrupt gzip stream) ends the text; it is kept in ``error``.
    """

    def __init__(self, path: Path):
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        self.fh = opener(path, "rb")
        self.error: BaseException | None = None
        head = b""
        while len(head) < 4 and (data := self._read(4 - len(head))):
            head += data
        self.encoding = sniff_encoding(head)
        self.invalid = "invalid_utf8" if self.encoding.startswith("utf-8") else "invalid_encoding"
        self.decoder = codecs.getincrementaldecoder(self.encoding)(_MARK_BYTES)
        self.eof = not head
        self.marked = False  # whether any byte could not be decoded yet
        self.buf, self.pos = self._decode(head), 0

    def __enter__(self) -> "_Text":
        return self

    def __exit__(self, *exc) -> None:
        self.fh.close()

    def _read(self, size: int) -> bytes:
        """Up to ``size`` bytes; ``b""`` at the end or after a read error (kept in ``error``)."""
        if self.error is not None:
            return b""
        try:
            return self.fh.read1(size)  # read1: a truncated gzip gives what it can before it raises
        except (EOFError, zlib.error, OSError) as e:
            self.error = e
            return b""

    def more(self) -> bool:
        """Read on, at least as much as is held (geometric growth: re-parsing stays linear); False at the end."""
        if self.eof:
            return False
        want, parts = max(_CHUNK, len(self.buf) - self.pos), []
        while want > 0 and (data := self._read(want)):
            parts.append(data)
            want -= len(data)
        data = b"".join(parts)
        self.buf = self.buf[self.pos :] + self._decode(data)
        self.pos = 0
        self.eof = not data
        return True

    def _decode(self, data: bytes) -> str:
        marks = _MARKS[0]
        text = self.decoder.decode(data, final=not data)
        self.marked = self.marked or _MARKS[0] != marks
        return text

    def peek(self) -> str:
        """The next non-blank character, not consumed ("" at the end)."""
        while True:
            m = _NON_WS.search(self.buf, self.pos)
            if m:
                self.pos = m.start()
                return self.buf[self.pos]
            self.pos = len(self.buf)
            if not self.more():
                return ""

    def lines(self) -> Iterator[tuple[str, bool, bool]]:
        """``(line, had a newline, may hold undecodable bytes)`` for the rest of the text, whole
        buffers of lines at a time (the text is not touched between them)."""
        while True:
            end = self.buf.rfind("\n", self.pos)
            if end >= 0:
                block, self.pos = self.buf[self.pos : end], end + 1
                marked = self.marked and _MARKED.search(block) is not None
                for line in block.split("\n"):
                    yield line, True, marked
            elif not self.more():
                if self.pos < len(self.buf):
                    rest, self.pos = self.buf[self.pos :], len(self.buf)
                    yield rest, False, self.marked
                return

    def line(self, cap: int | None = None) -> tuple[str | None, bool] | None:
        """The rest of the current line and whether a newline ended it; None at the end.

        With ``cap``, a line longer than that is skipped rather than held: its text is None.
        """
        scan, held = self.pos, True
        while True:
            nl = self.buf.find("\n", scan)
            if nl >= 0:
                line = self.buf[self.pos : nl] if held else None
                self.pos = nl + 1
                return line, True
            if held and cap is not None and len(self.buf) - self.pos > cap:
                held = False
            if not held:
                self.pos = len(self.buf)
            scan = len(self.buf) - self.pos
            if not self.more():
                if self.pos >= len(self.buf) and held:
                    return None
                line = self.buf[self.pos :] if held else None
                self.pos = len(self.buf)
                return line, False


# -- layout ------------------------------------------------------------------------------------
def _is_message(obj) -> bool:
    return isinstance(obj, dict) and "role" in obj and "content" in obj


def _is_object_of_lists(obj) -> bool:
    """An object whose values are all lists of records (objects that are not chat messages)."""
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, list) for v in obj.values()):
        return False
    elements = [e for v in obj.values() for e in v]
    return bool(elements) and all(isinstance(e, dict) and not _is_message(e) for e in elements)


def _parses(line: str):
    """The value of a one-line JSON text, True for one too deep to parse, None when it is not JSON."""
    try:
        return json.loads(line)
    except ValueError:
        return None
    except RecursionError:
        return True


def _layout(path: Path) -> str:
    """``lines``, ``array``, ``object`` (of lists) or ``values`` (a value spread over lines)."""
    with _Text(path) as text:
        first = text.peek()
        if first not in ("[", "{"):
            return "lines"
        got = text.line(_FIRST_LINE_CAP)
        line = got[0] if got else None
        follows = text.peek() != ""
        value = _parses(line) if line is not None else None
        if first == "[":
            return "lines" if value is not None and follows else "array"
        if value is not None and (follows or value is not True):  # (True: too deep to parse: look closer below)
            return "lines" if follows or not _is_object_of_lists(value) else "object"
        if line is None and follows:  # a first line too long to hold: JSONL with one huge row
            return "lines"
    if _starts_object_of_lists(path):
        return "object"
    with _Text(path) as text:  # a pretty-printed value, or JSONL whose first line is broken?
        text.peek()
        return "lines" if isinstance(_Json(text, str(path)).value(0, resync="line"), SourceError) else "values"


def _starts_object_of_lists(path: Path) -> bool:
    """Whether the file opens like an object of lists, ``{"key": [{record}, ...``: decided on its first
    element that parses (reads only that far)."""
    with _Text(path) as text:
        parser = _Json(text, str(path))
        if text.peek() != "{":
            return False
        text.pos += 1
        while True:  # one "key": [list] entry after the other, while the lists decide nothing
            if text.peek() != '"' or not isinstance(parser.value(0), str) or text.peek() != ":":
                return False
            text.pos += 1
            if text.peek() != "[":
                return False
            text.pos += 1
            while text.peek() not in ("]", ""):
                element = parser.value(0)
                if not (isinstance(element, SourceError) and element.reason in ("too_deep", text.invalid)):
                    return isinstance(element, dict) and not _is_message(element) and text.peek() in (",", "]")
                if text.peek() == ",":  # a whole element too deep to parse or with a bad byte says nothing: look on
                    text.pos += 1
            if text.peek() != "]":
                return False
            text.pos += 1
            if text.peek() != ",":
                return text.peek() == "}"
            text.pos += 1


# -- JSONL -------------------------------------------------------------------------------------
def _lines(text: _Text, file: str, row: int = 0) -> Iterator[Row]:
    for line, newline, marked in text.lines():
        if not line.strip(_WS):
            row += 1
            continue
        if line[-1] == "\r":
            line = line[:-1]
        if line[0] == "\ufeff":
            line = line.lstrip("\ufeff")
        if text.error is not None and not newline:
            yield row, SourceError(file, row, _stream_error_reason(text.error), f"the file is cut short in this line: {text.error}", shown(line))
            return
        yield row, _parse_line(line, row, file, text.invalid, marked)
        row += 1
    if text.error is not None:  # the stream broke at a line boundary: the unreadable tail counts as one row
        yield row, SourceError(file, row, _stream_error_reason(text.error), f"stream ended early: {text.error}")


def _parse_line(line: str, row: int, file: str, invalid: str, marked: bool = True):
    bad = _MARKED.search(line) if marked else None
    if bad:
        return SourceError(file, row, invalid, f"line {row + 1}: undecodable byte at column {bad.start() + 1}", shown(line))
    try:
        return json.loads(line)
    except ValueError as e:  # JSONDecodeError, or an integer too long to convert
        return SourceError(file, row, "bad_json", str(e), line)
    except RecursionError:
        return SourceError(file, row, "too_deep", "nested deeper than the JSON parser allows", line)


# -- JSON values, arrays and objects of lists ----------------------------------------------------
class _Json:
    """Top-level JSON read value by value from a :class:`_Text`; a bad value is skipped and reported."""

    def __init__(self, text: _Text, file: str):
        self.text, self.file = text, file
        self.decoder = json.JSONDecoder()
        self.closers: list[str] = []  # the closing brackets of the containers being read, innermost last
        self.end_reported = False  # a row has covered the end of the text (a value cut short)

    def value(self, row: int, where: str = "", *, resync: str = "structure"):
        """The value at the current position (no leading blanks), or a SourceError covering it.

        A bad value is skipped up to the next ``,`` or closing bracket outside strings
        (``resync="structure"``, inside a container) or to the end of the line where it
        breaks (``resync="line"``, top level).
        """
        t = self.text
        while True:
            try:
                obj, end = self.decoder.raw_decode(t.buf, t.pos)
            except json.JSONDecodeError as e:
                if not t.eof and (e.pos >= len(t.buf) - 16 or e.msg.startswith("Unterminated string")):
                    t.more()  # the value may just go on in the next chunk
                    continue
                cut = e.pos >= len(t.buf.rstrip(_WS)) - 5 or e.msg.startswith("Unterminated string")
                return self._skip(row, f"{where}{e}", resync, e.pos, cut=cut)
            except ValueError as e:  # an integer too long to convert
                return self._skip(row, f"{where}{e}", resync, t.pos)
            except RecursionError:
                return self._skip(row, f"{where}nested deeper than the JSON parser allows", "value", t.pos, reason="too_deep")
            if end < len(t.buf) or t.eof:
                break
            t.more()  # a value ending at the buffer's edge might go on (a number)
        raw, t.pos = t.buf[t.pos : end], end
        bad = _MARKED.search(raw) if t.marked else None
        if bad:
            return SourceError(self.file, row, t.invalid, f"{where}undecodable byte at offset {bad.start()} of the value", shown(raw))
        return obj

    def _skip(self, row: int, message: str, resync: str, error_pos: int, *, reason: str = "bad_json", cut: bool = True) -> SourceError:
        """A SourceError for the bad value at ``pos``, which is skipped; ``cut``: the error is at the end of the text."""
        t = self.text
        end = self._line_end(error_pos) if resync == "line" else self._structure_end(resync == "value")
        if end is None:  # the value runs to the end of the file
            raw, t.pos = t.buf[t.pos :], len(t.buf)
            self.end_reported = True
            if t.error is not None:
                reason, message = _stream_error_reason(t.error), f"{message}; the file is cut short ({t.error})"
            elif reason == "bad_json" and (cut or resync != "line"):
                reason, message = "truncated_file", f"{message}; the file ends inside this value"
        else:
            raw, t.pos = t.buf[t.pos : end], end
        return SourceError(self.file, row, reason, message, shown(raw.rstrip(_WS)))

    def _line_end(self, error_pos: int) -> int | None:
        t = self.text
        scan = max(error_pos, t.pos)
        while True:
            nl = t.buf.find("\n", scan)
            if nl >= 0:
                return nl
            scan = len(t.buf) - t.pos
            if not t.more():
                return None

    def _structure_end(self, whole_value: bool) -> int | None:
        """Index of the ``,`` or the container's closing bracket that ends the value at ``pos``, outside
        strings and nested brackets (with ``whole_value``: the index just past the value's own closing bracket)."""
        t = self.text
        closer = self.closers[-1] if self.closers else ""
        i, depth, in_string = t.pos, 0, False
        while True:
            m = (_IN_STRING if in_string else _STRUCTURE).search(t.buf, i)
            if m is None:
                i -= t.pos  # more() drops the consumed text: keep i relative to pos
                if not t.more():
                    return None
                continue
            c, i = m.group(), m.end()
            if in_string:
                if c == "\\":
                    i += 1
                else:
                    in_string = False
            elif c == '"':
                in_string = True
            elif c in "[{":
                depth += 1
            elif depth == 0:
                if c == "," or c == closer:
                    return m.start()
                # a closing bracket that closes nothing here is part of the bad text
            elif c != ",":
                depth -= 1
                if depth == 0 and whole_value:
                    return i

    def array(self, row: int, key: str | None = None, where: str = "") -> Iterator[Row]:
        """Rows of the array at ``pos`` (its ``[``), numbered from ``row``; returns the next row number."""
        self.closers.append("]")
        try:
            return (yield from self._array(row, key, where))
        finally:
            self.closers.pop()

    def _array(self, row: int, key: str | None, where: str) -> Iterator[Row]:
        t = self.text
        t.pos += 1
        need_value = True
        while True:
            c = t.peek()
            if c == "":
                if self.end_reported:
                    return row
                yield row, self._cut_short(row, f"{where}the file ends inside the array")
                return row + 1
            if c == "]":  # (after a ',' too: a trailing comma holds no row)
                t.pos += 1
                return row
            if need_value:
                item = self.value(row, f"{where}element {row}: ")
                yield row, KeyedRow(item, key) if key is not None and isinstance(item, dict) else item
                row, need_value = row + 1, False
            elif c == ",":
                t.pos += 1
                need_value = True
            else:
                yield row, self._skip(row, f"{where}expected ',' or ']' after element {row - 1}, found {c!r}", "structure", t.pos)
                row += 1

    def object_of_lists(self, row: int) -> Iterator[Row]:
        """Rows of the object of lists at ``pos`` (its ``{``); a value that is not a list is one row."""
        self.closers.append("}")
        try:
            return (yield from self._object_of_lists(row))
        finally:
            self.closers.pop()

    def _object_of_lists(self, row: int) -> Iterator[Row]:
        t = self.text
        t.pos += 1
        need_key = True
        while True:
            c = t.peek()
            if c == "":
                if self.end_reported:
                    return row
                yield row, self._cut_short(row, "the file ends inside the object")
                return row + 1
            if c == "}":
                t.pos += 1
                return row
            if not need_key:
                if c == ",":
                    t.pos += 1
                    need_key = True
                else:
                    yield row, self._skip(row, f"expected ',' or '}}' after a list, found {c!r}", "structure", t.pos)
                    row += 1
                continue
            key = self.value(row, "a key: ") if c == '"' else None
            if not isinstance(key, str) or t.peek() != ":":
                if not isinstance(key, SourceError):
                    found = t.peek() if isinstance(key, str) else c
                    key = self._skip(row, f"expected a \"key\": [list] entry, found {found!r}", "structure", t.pos)
                yield row, key
                row, need_key = row + 1, False
                continue
            t.pos += 1
            need_key = False
            if t.peek() == "[":
                row = yield from self.array(row, key, f"list {key!r}, ")
            elif t.peek() == "":
                continue
            else:
                item = self.value(row, f"key {key!r} (not a list): ")
                yield row, KeyedRow(item, key) if isinstance(item, dict) else item
                row += 1

    def values(self, row: int, where: str) -> Iterator[Row]:
        """Top-level values one after another (JSONL lines, pretty-printed values), numbered from ``row``."""
        prefix = f"{where}: " if where else ""
        while self.text.peek() != "":
            yield row, self.value(row, prefix, resync="line")
            row += 1
        if self.text.error is not None and not self.end_reported:
            yield row, SourceError(self.file, row, _stream_error_reason(self.text.error), f"stream ended early: {self.text.error}")

    def _cut_short(self, row: int, message: str) -> SourceError:
        t = self.text
        self.end_reported = True
        reason = _stream_error_reason(t.error) if t.error else "truncated_file"
        return SourceError(self.file, row, reason, message + (f" ({t.error})" if t.error else " before its closing bracket"))


# -- Parquet -----------------------------------------------------------------------------------
def _iter_parquet(path: Path) -> Iterator[Row]:
    """Rows of each row group; a row group that cannot be read is one error row naming how many rows it held."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        groups = [pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)]
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types (ArrowInvalid, OSError) for bad files
        yield 0, SourceError(str(path), 0, "corrupt_file", f"cannot read parquet: {e}")
        return
    row = 0
    for group, size in enumerate(groups):
        end = row + size
        try:
            for batch in pf.iter_batches(batch_size=1000, row_groups=[group]):
                for obj in batch.to_pylist():
                    yield row, obj
                    row += 1
        except Exception as e:  # noqa: BLE001 - as above, for one damaged row group
            yield row, SourceError(str(path), row, "corrupt_file", f"cannot read parquet row group {group} (rows {row}-{end - 1} of it unread): {e}")
        row = end
