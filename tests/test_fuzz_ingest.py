"""Fuzz the way data comes in: seeded, generated files of every kind through ingest and read_records,
and generated decision files through the verification importer.

Rows: valid records of several formats (strings, message lists, hh transcripts, best-of-n lists,
UltraFeedback scores), then now and then a mutation of one field: odd text (lone surrogates, NUL,
combining marks, right-to-left marks, chat markup), a wrong type, a missing field, a field nested
up to 1,200 levels deep, a field longer than the limit, a NaN or a huge number; plus rows that are
not objects and lines that are not JSON (cut-off rows, 5,000 ``[``, header lines, stray bytes, a
BOM in the middle). Files: JSONL, gzipped JSONL, JSON arrays (compact or pretty, plain or gzipped),
objects of lists, Parquet; UTF-8 with or without BOM, UTF-16 with or without BOM; intact, or cut at
a random byte, with bytes flipped, junk inserted, or junk after the end.

Every row carries a tag (``fz<N>x``) in each of its text fields. Invariants, per file:
``read == kept + quarantined + duplicates`` (per source and in total); every quarantine line is
JSON with a reason, a source and the original (row or raw text); read_records gives the same
records and rejections; nothing raises except a one-line refusal (UnknownFormatError before
anything is written, NothingKeptError after the report is written); and nothing is lost: every
tag still legible in the (damaged) input is found in the pool or the quarantine, and an intact
file gives as many rows as were written. CI: a few hundred rows (seconds); ``--fuzz-long``:
10,000+ rows. The figures are printed (run with -s to see them).
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import random
import re
import zlib
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from synpref.formats import FieldMapping, UnknownFormatError, known_formats
from synpref.formats.sources import sniff_encoding
from synpref.ingest import NothingKeptError, ingest, read_records
from synpref.store import read_pool

MAX_FIELD = 3000  # a small field limit: "huge field" rows stay cheap
SHORT_FILES, LONG_FILES = 24, 420  # x ~28 rows: ~700 in CI, 11,000+ with --fuzz-long
TAG = re.compile(r"fz(\d+)x")
WORDS = ["tell", "me", "why", "the", "sky", "is", "blue", "42", "ok", "réponse", "数据", "🙂", "naïve"]
ODD_TEXT = ["", " ", "\n\t", "\x00", "\ud800", "a\udc80b", "\udfff", "e\u0301", "\u202eevil", "\ufeff", "\u2028", "\r\n",
            '"', "\\", "\\u0000", "</s>", "<|im_start|>assistant\n", "\n\nHuman: hi\n\nAssistant:", "{", "]", "\x85", "\U0010ffff"]
ODD_VALUES = [None, True, 0, -1, 1.5, 10**30, float("nan"), float("inf"), [], {}, ["a"], {"role": "user"}, [{"role": "assistant", "content": 3}]]
GARBAGE_LINES = [b"not json", b"prompt,chosen,rejected", b"42", b"null", b'"just a string"', b"[1, 2]", b"{", b"}", b"[" * 5000,
                 b"{" * 3000, b'{"a": ', b"\xff\xfe\xfa", b"\xef\xbb\xbf{}", b'{"prompt": "q", "chosen": "a", "rejected": "b"', b"]", b"\x00\x00"]
KINDS = ("jsonl", "jsonl.gz", "array", "array-pretty", "array.gz", "object", "object-line", "parquet")
# detection, a field mapping, and every registered reader forced onto whatever rows come
FORMATS = (None, None, "prompt-chosen-rejected", "hh-rlhf", "candidates", "ultrafeedback", "mapped", *(f for f in known_formats() if f != "mapped"))
MAPPING = FieldMapping.from_cli(["prompt=prompt", "chosen=chosen", "rejected=rejected"])
RAW_BYTES = "fuzz-raw-bytes"


def _raw_bytes(err: UnicodeEncodeError):
    """Encode surrogateescape characters as the bytes they stand for, other lone surrogates as themselves."""
    return b"".join(bytes([ord(c) - 0xDC00]) if 0xDC80 <= ord(c) <= 0xDCFF else c.encode("utf-8", "surrogatepass")
                    for c in err.object[err.start : err.end]), err.end


codecs.register_error(RAW_BYTES, _raw_bytes)


class RowGenerator:
    """Seeded rows; each a dict (maybe mutated), another JSON value, or raw bytes (a garbage line)."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.n = 0
        self.deep: dict[str, str] = {}  # placeholder -> deeply nested JSON text, spliced in after json.dumps

    def text(self, tag: str) -> str:
        r = self.rng.random()
        words = " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(1, 10)))
        if r < 0.08:
            words += self.rng.choice(ODD_TEXT)
        elif r < 0.1:
            words += "x" * self.rng.randint(MAX_FIELD - 5, MAX_FIELD * 3)
        return f"{tag} {words}"

    def record(self, tag: str) -> dict:
        t = lambda: self.text(tag)  # noqa: E731
        shape = self.rng.randrange(6)
        if shape == 0:
            row = {"prompt": t(), "chosen": t(), "rejected": t()}
        elif shape == 1:
            row = {"prompt": [{"role": "user", "content": t()}], "chosen": [{"role": "assistant", "content": t()}], "rejected": [{"role": "assistant", "content": t()}]}
        elif shape == 2:
            q = t()
            row = {"chosen": f"\n\nHuman: {q}\n\nAssistant: {t()}", "rejected": f"\n\nHuman: {q}\n\nAssistant: {t()}"}
        elif shape == 3:
            n = self.rng.randint(1, 4)
            row = {"prompt": t(), "candidates": [t() for _ in range(n)], "correct": [self.rng.random() < 0.5 for _ in range(n)]}
        elif shape == 4:
            row = {"prompt": t(), "chosen": t(), "rejected": t(), "metadata": {"score_chosen": self.rng.randint(0, 10), "score_rejected": self.rng.randint(0, 10)}}
        else:
            row = {"prompt": t(), "chosen": [{"role": "user", "content": t()}, {"role": "assistant", "content": t()}], "rejected": t(), "extra": self.rng.choice(ODD_VALUES)}
        row["fuzz_id"] = tag
        return row

    def mutate(self, row: dict, tag: str) -> dict:
        key = self.rng.choice(sorted(row))
        op = self.rng.randrange(6)
        if op == 0:
            del row[key]
        elif op == 1:
            row[key] = self.rng.choice(ODD_VALUES)
        elif op == 2:
            placeholder = f"__deep{len(self.deep)}__"
            depth = self.rng.choice([50, 101, 400, 999, 1200])
            opener, closer = self.rng.choice([('{"a":', "}"), ("[", "]")])
            self.deep[placeholder] = opener * depth + json.dumps(tag) + closer * depth
            row[key] = placeholder
        elif op == 3:
            row[key] = f"{tag} " + self.rng.choice(ODD_TEXT) * self.rng.randint(1, 3)
        elif op == 4:
            row[key] = f"{tag} " + "y" * (MAX_FIELD + self.rng.randint(1, 500))
        else:
            row[self.rng.choice(ODD_TEXT) or "k"] = tag
        return row

    def row(self, allowed: str = "lines"):
        """``(tag, value)``; tag is None for garbage that carries none. ``allowed``: lines (anything),
        values (JSON values: no garbage), objects (records only)."""
        self.n += 1
        tag = f"fz{self.n}x"
        r = self.rng.random()
        if allowed == "lines" and r < 0.06:
            return None, self.rng.choice(GARBAGE_LINES)
        if allowed != "objects" and r < 0.1:
            return tag, self.rng.choice([[tag, 1], tag, 7, None, [{"prompt": tag}]])
        row = self.record(tag)
        if self.rng.random() < 0.35:
            row = self.mutate(row, tag)
        return tag, row


class FileBuilder:
    """One generated file: its bytes, the rows it holds when intact, and how it was damaged."""

    def __init__(self, rng: random.Random, gen: RowGenerator, folder: Path, index: int):
        self.rng, self.gen = rng, gen
        self.kind = rng.choice(KINDS)
        self.format = rng.choice(FORMATS)
        self.encoding = rng.choice(["utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16", "utf-16-le"]) if "parquet" not in self.kind else "utf-8"
        self.ascii = rng.random() < 0.5  # JSON escapes for non-ASCII text (lone surrogates stay escapes)
        self.damage = rng.choice(["none", "none", "none", "cut", "flip", "junk", "tail"])
        n = rng.randint(1, 55)
        allowed = "lines" if self.kind.startswith("jsonl") else "objects" if self.kind in ("object", "object-line", "parquet") else "values"
        self.rows = [gen.row(allowed) for _ in range(n)]
        if self.kind.startswith("object"):
            self.rows = [(t, v) for t, v in self.rows if not ("role" in v and "content" in v)] or [gen.row("objects")]
        if self.rng.random() < 0.15 and len(self.rows) > 2:  # exact duplicates of earlier rows
            self.rows += self.rng.sample(self.rows, 2)
        suffix = {"jsonl": ".jsonl", "jsonl.gz": ".jsonl.gz", "array.gz": ".json.gz", "parquet": ".parquet"}.get(self.kind, ".json")
        self.path = folder / f"f{index}-{self.kind.replace('.', '_')}{suffix}"
        self.written_rows = len(self.rows)

    def dumps(self, value, indent: int | None = None) -> str:
        """JSON text of ``value`` with the deeply nested placeholders spliced in."""
        text = json.dumps(value, ensure_ascii=self.ascii, indent=indent)
        for placeholder, deep in self.gen.deep.items():
            if placeholder in text:
                text = text.replace(json.dumps(placeholder), deep)
        return text

    def encode(self, text: str) -> bytes:
        """``text`` in the file's encoding; raw garbage bytes (held as surrogateescape characters) and
        lone surrogates go out as they are: invalid bytes or code units."""
        if self.encoding.startswith("utf-16"):
            return text.encode(self.encoding, "surrogatepass")
        return (b"\xef\xbb\xbf" if self.encoding == "utf-8-sig" else b"") + text.encode("utf-8", RAW_BYTES)

    def content(self) -> bytes:
        if self.kind in ("jsonl", "jsonl.gz"):
            if not isinstance(self.rows[0][1], dict):  # a JSONL file opens with a record: its layout is unambiguous
                self.rows[0] = ("head", {"prompt": "p", "chosen": "a", "rejected": "b"})
            lines = []
            for _, v in self.rows:
                lines.append(v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else self.dumps(v))
                if self.rng.random() < 0.1:
                    lines.append(self.rng.choice(["", "  ", "\t"]))  # blank lines
            newline = "\r\n" if self.rng.random() < 0.2 else "\n"
            data = self.encode(newline.join(lines) + (newline if self.rng.random() < 0.8 else ""))
        elif self.kind in ("array", "array.gz", "array-pretty"):
            data = self.encode(self.dumps([v for _, v in self.rows], 1 if self.kind == "array-pretty" else None))
        elif self.kind.startswith("object"):
            groups: dict[str, list] = {}
            for _, v in self.rows:
                groups.setdefault(self.rng.choice(["length bias", "concreteness", "empty reference"]), []).append(v)
            data = self.encode(self.dumps(groups, 2 if self.kind == "object" else None))
        else:
            return self.parquet()
        if self.kind.endswith(".gz"):
            data = gzip.compress(data)
        return data

    def parquet(self) -> bytes:
        def cell(v):
            if isinstance(v, str):
                return v.encode("utf-8", "replace").decode("utf-8")  # Arrow strings are valid UTF-8
            return json.dumps(v, default=str)

        rows = [v for _, v in self.rows if isinstance(v, dict)]
        columns = sorted({k.encode("utf-8", "replace").decode("utf-8") for r in rows for k in r}) or ["prompt"]
        table = pa.table({c: pa.array([cell(r.get(c)) if c in r else None for r in rows], pa.string()) for c in columns})
        self.rows = [(t, v) for t, v in self.rows if isinstance(v, dict)]
        self.written_rows = len(rows)
        buf = io.BytesIO()
        pq.write_table(table, buf, row_group_size=max(1, len(rows) // 3))
        return buf.getvalue()

    def damaged(self, data: bytes) -> bytes:
        rng = self.rng
        if self.damage == "cut" and len(data) > 2:
            return data[: rng.randrange(1, len(data))]
        if self.damage == "flip":
            data = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            return bytes(data)
        if self.damage == "junk":
            at = rng.randrange(len(data) + 1)
            return data[:at] + rng.choice(GARBAGE_LINES) + data[at:]
        if self.damage == "tail":
            return data + rng.choice([b" trailing junk", b"\n" + rng.choice(GARBAGE_LINES), b"\n]\n", b'\n{"prompt": "fz0x late", "chosen": "a", "rejected": "b"}\n'])
        return data

    def write(self) -> None:
        self.path.write_bytes(self.damaged(self.content()))

    def legible_tags(self) -> set[str]:
        """Tags still readable in the file as written (after damage): each must come out somewhere."""
        data = self.path.read_bytes()
        if self.kind == "parquet" or (self.kind.endswith(".gz") and self.damage in ("flip", "junk")):
            # a damaged Parquet file or deflate stream has no readable text past the damage to hold anyone to
            return set() if self.damage != "none" else {t for t, _ in self.rows if t}
        if self.kind.endswith(".gz"):
            data = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)  # all a cut stream still gives
        text = data.decode(sniff_encoding(data[:4]), "replace")  # read as the reader reads it
        return {m.group(0) for m in TAG.finditer(text)}


def _found_tags(out: Path, quarantine: list[str]) -> set[str]:
    found = {m.group(0) for line in quarantine for m in TAG.finditer(line)}
    if any(out.glob("part-*.parquet")):
        for rec in read_pool(out):
            text = json.dumps([[m.content for m in rec.context], [[m.content for m in c] for c in rec.candidates], rec.meta], ensure_ascii=False)
            found.update(m.group(0) for m in TAG.finditer(text))
    return found


def _check_one(builder: FileBuilder, out: Path, figures: Counter, failures: list) -> None:
    path, fmt = builder.path, builder.format
    mapping = MAPPING if fmt == "mapped" else None
    kwargs = dict(format=None if fmt == "mapped" else fmt, mapping=mapping)
    try:
        report = ingest([path], out, progress=False, max_field_chars=MAX_FIELD, **kwargs)
    except UnknownFormatError as e:  # a one-line refusal before anything is written
        assert "\n" not in str(e) and not out.exists(), str(e)
        figures["refused_unknown_format"] += 1
        return
    except NothingKeptError as e:
        assert "\n" not in str(e)
        report = e.report
        figures["nothing_kept"] += 1
    for entry in (report, *report["per_source"].values()):
        assert entry["read"] == entry["kept"] + entry["quarantined"] + entry["duplicates"], entry
    lines = [line for line in (out / "quarantine.jsonl").read_text(encoding="utf-8").split("\n") if line]  # (not splitlines: U+2028 is text)
    assert len(lines) == report["quarantined"]
    for line in lines:
        q = json.loads(line)
        assert q["reason"] and isinstance(q["reason"], str) and q["source"] == str(path), q
        assert "original" in q and (q["original"] is not None or q["reason"] == "not_an_object"), q  # (a null row is null)
    assert json.loads((out / "report.json").read_text(encoding="utf-8")) == report
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "staging or temp files left behind"
    errors: list = []
    records = list(read_records([path], errors=errors, max_field_chars=MAX_FIELD, **kwargs))
    assert (len(records), len(errors)) == (report["kept"] + report["duplicates"], report["quarantined"])
    if builder.damage == "none":  # an intact file gives one row per row written
        assert report["read_rows"] == builder.written_rows, (report["read_rows"], builder.written_rows)
    lost = builder.legible_tags() - _found_tags(out, lines)
    if lost:
        figures["lost"] += len(lost)
        failures.append(f"{path.name} ({builder.kind}, {builder.encoding}, damage {builder.damage}, format {fmt}): lost {sorted(lost)[:5]}")
    figures["read"] += report["read"]
    figures["kept"] += report["kept"]
    figures["quarantined"] += report["quarantined"]
    figures["duplicates"] += report["duplicates"]
    for reason, n in report["reasons"].items():
        figures[f"reason:{reason}"] += n


@pytest.mark.parametrize("seed", [0, 1])
def test_fuzz_ingest_every_file_kind(seed, fuzz_long, tmp_path):
    rng = random.Random(seed)
    gen = RowGenerator(rng)
    figures, failures = Counter(crashes=0, lost=0), []
    n_files = LONG_FILES if fuzz_long else SHORT_FILES
    for i in range(n_files):
        builder = FileBuilder(rng, gen, tmp_path, i)
        builder.write()
        figures["files"] += 1
        figures["rows_generated"] += builder.written_rows
        figures[f"kind:{builder.kind}"] += 1
        try:
            _check_one(builder, tmp_path / f"out{i}", figures, failures)
        except Exception as e:  # noqa: BLE001 - collected: the test fails below naming every file
            figures["crashes"] += 1
            failures.append(f"{builder.path.name} ({builder.kind}, {builder.encoding}, damage {builder.damage}, format {builder.format}): {type(e).__name__}: {str(e)[:300]}")
    print(f"\ningest fuzz seed {seed}: " + ", ".join(f"{k} {v}" for k, v in sorted(figures.items())))
    assert not failures, "\n".join(failures[:20])
    assert figures["crashes"] == 0 and figures["lost"] == 0
    assert figures["rows_generated"] >= (10_000 // 2 if fuzz_long else 200)  # two seeds: 10,000+ in all under --fuzz-long


def test_fuzz_ingest_cli_never_shows_a_traceback(tmp_path):
    from synpref.cli import main

    rng = random.Random(7)
    gen = RowGenerator(rng)
    runner = CliRunner()
    for i in range(8):
        builder = FileBuilder(rng, gen, tmp_path, i)
        builder.write()
        args = ["ingest", str(builder.path), "-o", str(tmp_path / f"cli{i}"), "--max-field-chars", str(MAX_FIELD)]
        if builder.format == "mapped":
            args += ["--map", "prompt=prompt", "--map", "chosen=chosen", "--map", "rejected=rejected"]
        elif builder.format:
            args += ["--format", builder.format]
        result = runner.invoke(main, args)
        assert result.exit_code in (0, 1, 2), result.output  # 2: a user mistake (one line)
        assert "Traceback" not in result.output and (result.exception is None or isinstance(result.exception, SystemExit))
        if result.exit_code:
            assert result.output.strip().splitlines()[-1].startswith("Error: ")
        else:
            assert re.search(r"^read \d+  kept \d+", result.output, re.M)


# -- the decision-file importer --------------------------------------------------------------------
def _decision_lines(rng: random.Random, n: int) -> list[tuple[bytes, str | None, bool | None]]:
    """``(line, pair_id, expected)``: expected True (a valid decision), False (must be reported), None (either)."""
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    out = []
    for _ in range(n):
        pair = f"p{rng.randrange(12)}"
        row = {"pair_id": pair, "annotator": rng.choice(["ann", "bob", "cy"]), "decision": rng.choice(["A", "B", "undecidable", "discard", "cannot determine"]),
               "time": (start + timedelta(minutes=rng.randrange(10_000))).isoformat(), "note": rng.choice([None, "ok", "é"])}
        if rng.random() < 0.2:
            row["time"] = row["time"].replace("+00:00", "")  # naive: UTC
        r = rng.random()
        if r < 0.55:
            out.append((json.dumps(row, ensure_ascii=rng.random() < 0.5).encode(), pair, True))
        elif r < 0.8:
            key = rng.choice(sorted(row))
            row[key] = rng.choice([None, 3, [], {}, "", "\ud800", "Z", "not a time", "maybe", True])
            line = json.dumps(row).encode()
            out.append((line, row["pair_id"] if isinstance(row.get("pair_id"), str) else None, None))
        else:
            out.append((rng.choice(GARBAGE_LINES + [b"[" + json.dumps(row).encode() + b"]"]), None, False))
    return out


def test_fuzz_decision_importer_resolves_or_reports_every_line(fuzz_long, tmp_path):
    from synpref.cli import main
    from synpref.curate.verification import import_verification
    from synpref.verification import decisions_dir

    rng = random.Random(11)
    figures = Counter()
    runs = 60 if fuzz_long else 6
    for run in range(runs):
        run_dir = tmp_path / f"run{run}"
        folder = decisions_dir(run_dir)
        folder.mkdir(parents=True)
        expected: dict[Path, list] = {}
        for f in range(rng.randint(1, 4)):
            lines = _decision_lines(rng, rng.randint(0, 40))
            path = folder / f"d{f}.jsonl"
            data = b"\n".join(line for line, _, _ in lines) + (b"\n" if rng.random() < 0.7 else b"")
            if rng.random() < 0.15:
                data = b"\xef\xbb\xbf" + data
            path.write_bytes(data)
            expected[path] = lines
            figures["lines"] += len(lines)
        figures["files"] += len(expected)
        rep = import_verification(run_dir, warn=False)
        reported = {(b["file"], b["line"]) for b in rep["invalid"]}
        assert len(reported) == rep["invalid_rows"]
        for path, lines in expected.items():
            numbered = [(i + 1, *entry) for i, entry in enumerate(lines) if entry[0].strip(b" \t\r\n\xef\xbb\xbf")]
            for line_no, line, pair, ok in numbered:
                was_reported = (str(path), line_no) in reported
                if ok is True:
                    assert not was_reported and pair in rep["decisions"], (path.name, line_no, line)
                elif ok is False:
                    assert was_reported, (path.name, line_no, line)
                elif not was_reported:
                    assert pair in rep["decisions"], (path.name, line_no, line)  # read as a decision: resolved
            assert {n for f, n in reported if f == str(path)} <= {n for n, *_ in numbered}  # only real lines
        figures["reported"] += rep["invalid_rows"]
        figures["pairs"] += len(rep["decisions"])
        result = CliRunner().invoke(main, ["curate", "import-verification", str(run_dir)])
        assert result.exit_code == (1 if rep["invalid_rows"] else 0), result.output
        assert "Traceback" not in result.output
        assert sum(line.startswith("error: ") for line in result.stderr.splitlines()) == rep["invalid_rows"]
    print(f"\nimporter fuzz: " + ", ".join(f"{k} {v}" for k, v in sorted(figures.items())))
