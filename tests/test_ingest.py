"""Ingest: shared data end to end, lossless round trip, quarantine of broken inputs."""

import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from synpref.formats import FieldMapping, UnknownFormatError, get_reader, iter_rows
from synpref.ingest import NothingKeptError, ingest
from synpref.schema import validate
from synpref.store import read_pool


def quarantine(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "quarantine.jsonl").read_text(encoding="utf-8").splitlines()]


def counts(entry: dict) -> tuple:
    return entry["format"], entry["read"], entry["read_rows"], entry["kept"], entry["quarantined"], entry["duplicates"]


# -- shared data ------------------------------------------------------------------
# (format, read, read_rows, kept, quarantined, duplicates) when the whole folder is ingested in one run.
SHARED_COUNTS = {
    "chatbot-arena-55k-sample/lmsys_lmsys-arena-human-preference-55k_sample.jsonl": ("arena", 500, 500, 492, 8, 0),
    "dahoas-full-hh-rlhf-sample/Dahoas_full-hh-rlhf_sample.jsonl": ("dahoas", 500, 500, 495, 5, 0),
    "helpsteer-sample/nvidia_HelpSteer_sample.jsonl": ("helpsteer", 139, 500, 139, 0, 0),
    "hh-rlhf/official/harmless-base_test.jsonl.gz": ("hh-rlhf", 2312, 2312, 2308, 4, 0),
    "hh-rlhf/train-sample/harmless_train_sample.jsonl": ("hh-rlhf", 500, 500, 500, 0, 0),
    "hh-rlhf/train-sample/helpful_train_sample.jsonl": ("hh-rlhf", 500, 500, 498, 1, 1),
    "judgebench/dataset=judgebench,response_model=claude-3-5-sonnet-20240620.jsonl": ("judgebench", 270, 270, 269, 1, 0),
    "judgebench/dataset=judgebench,response_model=gpt-4o-2024-05-13.jsonl": ("judgebench", 350, 350, 350, 0, 0),
    "prefsets-anthropic-helpful-subset/anthropic_helpful_0521.jsonl": ("rm-gallery", 1137, 1137, 1123, 13, 1),
    "reward-bench-v1-sample/reward_bench_filtered_sample.jsonl": ("rewardbench", 500, 500, 500, 0, 0),
    "rm-bench/chat_filtered.json": ("rm-bench", 1161, 129, 1107, 0, 54),
    "rm-bench/code_filtered.json": ("rm-bench", 2052, 228, 1989, 0, 63),
    "rm-bench/safety-refuse_filtered.json": ("rm-bench", 2556, 284, 2523, 0, 33),
    "rm-bench/safety-response_filtered.json": ("rm-bench", 1413, 157, 1305, 0, 108),
    "stack-exchange-preferences-sample/HuggingFaceH4_stack-exchange-preferences_sample.jsonl": ("stack-exchange", 500, 500, 500, 0, 0),
    "ultrafeedback-binarized-sample/eval_clean.jsonl": ("ultrafeedback", 200, 200, 199, 1, 0),
    "ultrafeedback-binarized-sample/train_clean.jsonl": ("ultrafeedback", 1000, 1000, 994, 6, 0),
}
# summed over the RMB files: (read, read_rows, kept, quarantined, duplicates)
RMB_COUNTS = {"BoN_set": ("rmb-best-of-n", 3786, 3786, 3786, 0, 0), "Pairwise_set": ("rmb-pairwise", 14543, 14543, 14496, 16, 31)}


@pytest.fixture(scope="module")
def shared_run(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("shared-pool")
    report = ingest([shared_data], out, progress=False, report_path=out.parent / "shared-report.json")
    return shared_data, out, report


def test_shared_data_counts(shared_run):
    data, out, report = shared_run
    per = {Path(k).relative_to(data).as_posix(): v for k, v in report["per_source"].items()}
    assert len(per) == 112
    for rel, expected in SHARED_COUNTS.items():
        assert counts(per[rel]) == expected, rel
    for layout, (fmt, *numbers) in RMB_COUNTS.items():
        files = [v for k, v in per.items() if k.startswith(f"rmb/RMB_dataset/{layout}/")]
        assert {f["format"] for f in files} == {fmt}
        assert [sum(f[k] for f in files) for k in ("read", "read_rows", "kept", "quarantined", "duplicates")] == numbers
    assert (report["read"], report["read_rows"], report["kept"], report["quarantined"], report["duplicates"]) == (33919, 27896, 33573, 55, 291)
    assert report["read"] == report["kept"] + report["quarantined"] + report["duplicates"]
    assert report["reasons"] == {"empty_response": 10, "identical_candidates": 43, "missing_field": 2}
    assert report["kinds"] == {"pair": 28870, "ranking": 3786, "ratings": 639, "tie": 278}
    assert json.loads((out / "report.json").read_text()) == report
    assert json.loads((out.parent / "shared-report.json").read_text()) == report
    assert len(quarantine(out)) == 55
    assert not list(out.glob(".ingest-ids-*"))  # the dedup table is removed


def test_shared_quarantine_names_rows_and_fields(shared_run):
    data, out, _ = shared_run
    arena_nulls = [q for q in quarantine(out) if q["reason"] == "missing_field"]
    assert sorted(q["field"] for q in arena_nulls) == ["response_a[1]", "response_a[6]"]
    for q in arena_nulls:
        assert q["source"].endswith("lmsys_lmsys-arena-human-preference-55k_sample.jsonl")
        assert json.loads(q["original"]["response_a"])[int(q["field"][-2])] is None


def test_round_trip_is_lossless(shared_data, tmp_path):
    files = [
        shared_data / "chatbot-arena-55k-sample/lmsys_lmsys-arena-human-preference-55k_sample.jsonl",
        shared_data / "helpsteer-sample/nvidia_HelpSteer_sample.jsonl",
        shared_data / "stack-exchange-preferences-sample/HuggingFaceH4_stack-exchange-preferences_sample.jsonl",
        shared_data / "rmb/RMB_dataset/BoN_set/Harmlessness/S1.json",
        shared_data / "rm-bench/chat_filtered.json",
    ]
    report = ingest(files, tmp_path / "pool", progress=False)
    expected, seen = [], set()
    for f, fmt in zip(files, ("arena", "helpsteer", "stack-exchange", "rmb-best-of-n", "rm-bench")):
        reader = get_reader(fmt)(str(f))
        for row, obj in iter_rows(f):
            try:
                produced = reader.read(obj, row)
            except ValueError:
                continue
            for rec in produced:
                if not isinstance(rec, ValueError) and rec.id not in seen:
                    seen.add(rec.id)
                    expected.append(validate(rec))
        expected += reader.finish()
    got = list(read_pool(tmp_path / "pool"))
    assert len(got) == report["kept"] == len(expected) == 492 + 139 + 500 + 111 + 1107
    for a, b in zip(got, expected):
        assert a == b and a.meta == b.meta and a.id == b.id
    assert {r.kind for r in got} == {"pair", "tie", "ratings", "ranking"}


# -- broken inputs ------------------------------------------------------------------
def write_jsonl(path: Path, rows) -> Path:
    with open(path, "wb") as fh:
        for row in rows:
            fh.write(row if isinstance(row, bytes) else json.dumps(row).encode() + b"\n")
    return path


def test_broken_rows_are_quarantined_with_reason_and_field(tmp_path):
    good = {"prompt": "q", "chosen": "yes", "rejected": "no"}
    src = write_jsonl(
        tmp_path / "broken.jsonl",
        [
            good,  # 0
            b'{"prompt": "q", "chosen": \n',  # 1 bad JSON
            {"prompt": "q", "chosen": "a"},  # 2 missing rejected
            {"prompt": "q", "chosen": 5, "rejected": "b"},  # 3 wrong type
            {"prompt": "q", "chosen": "a", "rejected": "   "},  # 4 empty response
            {"prompt": "q", "chosen": "same", "rejected": " same "},  # 5 identical
            {"prompt": "q", "chosen": "x" * 10_000_000, "rejected": "b"},  # 6 10 MB field
            b'{"prompt": "q", "chosen": "\xff\xfe", "rejected": "b"}\n',  # 7 invalid UTF-8
            b"[1, 2]\n",  # 8 not an object
            {"prompt": "q ", "chosen": "yes", "rejected": "no"},  # 9 duplicate of row 0 (white space differs)
            {"prompt": "q", "chosen": "fine", "rejected": "ok", "id": 10},  # 10 kept
        ],
    )
    report = ingest([src], tmp_path / "out", progress=False)
    assert (report["read"], report["read_rows"], report["kept"], report["quarantined"], report["duplicates"]) == (11, 11, 2, 8, 1)
    assert report["per_source"][str(src)]["format"] == "prompt-chosen-rejected"
    got = [(q["row"], q["reason"], q["field"]) for q in quarantine(tmp_path / "out")]
    assert got == [
        (1, "bad_json", None),
        (2, "missing_field", "rejected"),
        (3, "wrong_type", "chosen"),
        (4, "empty_response", "rejected"),
        (5, "identical_candidates", "chosen,rejected"),
        (6, "field_too_long", "chosen"),
        (7, "invalid_utf8", None),
        (8, "not_an_object", None),
    ]
    q = quarantine(tmp_path / "out")
    assert q[0]["original"] == '{"prompt": "q", "chosen": ' and q[0]["source"] == str(src)
    assert q[1]["original"] == {"prompt": "q", "chosen": "a"}
    assert q[6]["original"] == '{"prompt": "q", "chosen": "\\xff\\xfe", "rejected": "b"}'
    assert len(q[5]["original"]["chosen"]) == 10_000_000
    kept = list(read_pool(tmp_path / "out"))
    assert [(r.provenance.row, r.meta) for r in kept] == [(0, {}), (10, {"id": 10})]


def test_truncated_gzip_counts_one_quarantined_row(tmp_path):
    rows = [{"chosen": f"\n\nHuman: q{i}\n\nAssistant: good {i}", "rejected": f"\n\nHuman: q{i}\n\nAssistant: bad {i} " + "z" * (i % 97)} for i in range(3000)]
    blob = gzip.compress(("\n".join(json.dumps(r) for r in rows) + "\n").encode())
    src = tmp_path / "cut.jsonl.gz"
    src.write_bytes(blob[: int(len(blob) * 0.6)])
    report = ingest([src], tmp_path / "out", progress=False)
    n = report["kept"]
    assert 0 < n < 3000
    assert (report["read"], report["read_rows"], report["quarantined"], report["reasons"]) == (n + 1, n + 1, 1, {"truncated_file": 1})
    (q,) = quarantine(tmp_path / "out")
    assert (q["reason"], q["row"], q["source"]) == ("truncated_file", n, str(src))


def test_unknown_format_raises_before_writing(tmp_path):
    ok = write_jsonl(tmp_path / "ok.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}])
    odd = write_jsonl(tmp_path / "odd.jsonl", [b"not json\n", {"question": "q", "good_answer": "a"}])
    with pytest.raises(UnknownFormatError) as e:
        ingest([ok, odd], tmp_path / "out", progress=False)
    msg = str(e.value)
    assert f"{odd} row 1" in msg and "[good_answer, question]" in msg and "known formats: arena" in msg
    assert not (tmp_path / "out").exists()
    with pytest.raises(UnknownFormatError, match="unknown format 'csv'"):
        ingest([ok], tmp_path / "out", format="csv", progress=False)


def test_file_without_good_rows_is_all_quarantined(tmp_path):
    src = write_jsonl(tmp_path / "bad.jsonl", [b"{\n", b"nope\n"])
    with pytest.raises(NothingKeptError, match="all 2 rows .* were quarantined \\(2 bad_json") as e:
        ingest([src], tmp_path / "out", progress=False)
    report = e.value.report
    assert (report["read"], report["quarantined"], report["reasons"]) == (2, 2, {"bad_json": 2})
    assert report["per_source"][str(src)]["format"] is None
    assert json.loads((tmp_path / "out" / "report.json").read_text()) == report and len(quarantine(tmp_path / "out")) == 2


def test_duplicates_across_sources_and_overwrite(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}, {"prompt": "q2", "chosen": "a", "rejected": "b"}])
    b = write_jsonl(tmp_path / "b.jsonl", [{"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]}])
    out = tmp_path / "out"
    report = ingest([a, b], out, progress=False)
    assert (report["kept"], report["duplicates"], report["per_source"][str(b)]["duplicates"]) == (2, 1, 1)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ingest([a], out, progress=False)
    again = ingest([a], out, progress=True, overwrite=True)
    assert (again["kept"], again["duplicates"]) == (2, 0)
    assert len(list(read_pool(out))) == 2 and sorted(p.name for p in out.iterdir()) == ["part-00000.parquet", "quarantine.jsonl", "report.json"]


def test_ingest_with_cli_mapping_and_format(tmp_path):
    src = write_jsonl(tmp_path / "custom.jsonl", [{"question": "q", "good_answer": "a", "bad_answer": "b", "tag": "t"}, {"question": "q2", "good_answer": "a"}])
    mapping = FieldMapping.from_cli(["prompt=question", "chosen=good_answer", "rejected=bad_answer"])
    report = ingest([src], tmp_path / "out", mapping=mapping, progress=False)
    assert (report["kept"], report["quarantined"], report["per_source"][str(src)]["format"]) == (1, 1, "mapped")
    assert [(q["reason"], q["field"]) for q in quarantine(tmp_path / "out")] == [("missing_field", "bad_answer")]
    (rec,) = read_pool(tmp_path / "out")
    assert (rec.provenance.format, rec.meta, rec.chosen[0].content) == ("mapped", {"tag": "t"}, "a")
    with pytest.raises(ValueError, match="not both"):
        ingest([src], tmp_path / "x", format="hh-rlhf", mapping=mapping, progress=False)


def test_ingest_with_yaml_label_mapping(tmp_path):
    src = write_jsonl(
        tmp_path / "ab.jsonl",
        [{"ctx": "q", "ra": "x", "rb": "y", "winner": "B"}, {"ctx": "q", "ra": "x", "rb": "z", "winner": "tie"}, {"ctx": "q", "ra": "x", "rb": "w", "winner": "?"}],
    )
    y = tmp_path / "map.yaml"
    y.write_text("map:\n  prompt: ctx\n  response_a: ra\n  response_b: rb\nlabel_field: winner\nlabel_a_wins: A\nlabel_b_wins: B\nlabel_tie: tie\n")
    report = ingest([src], tmp_path / "out", mapping=FieldMapping.from_yaml(y), progress=False)
    assert (report["kinds"], report["reasons"]) == ({"pair": 1, "tie": 1}, {"bad_label": 1})
    pair, tie = read_pool(tmp_path / "out")
    assert (pair.chosen[0].content, tie.kind) == ("y", "tie")
    assert quarantine(tmp_path / "out")[0]["field"] == "winner"


# -- a bad row never stops the ingest; a failed ingest never leaves a pool that reads as complete --
def test_rows_that_used_to_crash_the_ingest_are_quarantined(tmp_path):
    good = {"prompt": "q", "chosen": "a", "rejected": "b"}
    lone = b'{"prompt": "\\ud800", "chosen": "a", "rejected": "b"}'
    deep = b'{"prompt": "q2", "chosen": "a", "rejected": "b", "x": ' + b'{"a": ' * 400 + b"1" + b"}" * 400 + b"}"
    jsonl = write_jsonl(tmp_path / "odd.jsonl", [lone + b"\n", deep + b"\n", b"[" * 5000 + b"\n", good])
    array = tmp_path / "odd.json"
    array.write_bytes(b"[" + lone + b", " + deep + b", " + json.dumps(good).encode() + b"]")
    for src in (jsonl, array):
        out = tmp_path / f"out-{src.suffix}"
        report = ingest([src], out, progress=False)
        assert (report["kept"], report["quarantined"]) == (1, report["read"] - 1)
        q = quarantine(out)
        assert [e["reason"] for e in q] == ["invalid_unicode", "too_deep"] + (["too_deep"] if src == jsonl else [])
        assert q[0]["original"]["prompt"] == "\ud800"  # written as a \\u escape, read back as it was
        assert "\\ud800" in (out / "quarantine.jsonl").read_text(encoding="utf-8")


def test_an_ingest_that_fails_leaves_no_pool_and_keeps_the_earlier_one(tmp_path, monkeypatch):
    from synpref.store import pool

    src = write_jsonl(tmp_path / "a.jsonl", [{"prompt": f"q{i}", "chosen": "a", "rejected": "b"} for i in range(2500)])
    out = tmp_path / "pool"
    write = pool.PoolWriter.write
    calls = []

    def interrupted(self, rec):
        calls.append(1)
        if len(calls) == 1500:  # after the first row group went to a shard
            raise KeyboardInterrupt
        write(self, rec)

    monkeypatch.setattr(pool.PoolWriter, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ingest([src], out, progress=False)
    assert list(out.iterdir()) == []  # no shard, no report, no staging folder
    monkeypatch.setattr(pool.PoolWriter, "write", write)
    earlier = write_jsonl(tmp_path / "b.jsonl", [{"prompt": "only", "chosen": "a", "rejected": "b"}])
    ingest([earlier], out, progress=False)
    monkeypatch.setattr(pool.PoolWriter, "write", interrupted)
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        ingest([src], out, progress=False, overwrite=True)
    assert [r.context[0].content for r in read_pool(out)] == ["only"] and json.loads((out / "report.json").read_text())["kept"] == 1


_KILLED_INGEST = """
import os, signal, sys
from synpref.store import pool
flush = pool.PoolWriter._flush
def killed(self):
    flush(self)
    if self.written >= 2000:
        os.kill(os.getpid(), signal.SIGKILL)
pool.PoolWriter._flush = killed
from synpref.ingest import ingest
ingest([sys.argv[1]], sys.argv[2], progress=False)
"""


def test_a_killed_ingest_reads_as_incomplete_until_rewritten(tmp_path):
    import os
    import subprocess
    import sys

    from synpref.ingest import is_pool, read_records
    from synpref.store.pool import IncompletePoolError

    src = write_jsonl(tmp_path / "a.jsonl", [{"prompt": f"q{i}", "chosen": "a", "rejected": "b"} for i in range(3000)])
    out = tmp_path / "pool"
    child = subprocess.run([sys.executable, "-c", _KILLED_INGEST, str(src), str(out)], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, capture_output=True, text=True, timeout=120)
    assert child.returncode == -9, child.stderr
    assert is_pool(out) and not list(out.glob("part-*.parquet")) and not (out / "report.json").exists()
    with pytest.raises(IncompletePoolError, match=r"this pool is incomplete: a write into it did not finish .* --overwrite"):
        list(read_pool(out))
    with pytest.raises(IncompletePoolError):
        list(read_records([out]))
    with pytest.raises(FileExistsError, match="an interrupted ingest"):
        ingest([src], out, progress=False)
    assert ingest([src], out, progress=False, overwrite=True)["kept"] == 3000
    assert sorted(p.name for p in out.iterdir()) == ["part-00000.parquet", "quarantine.jsonl", "report.json"]


def test_pool_writer_is_atomic(tmp_path):
    from synpref.schema import make_pair
    from synpref.store import PoolWriter
    from synpref.store.pool import IncompletePoolError

    recs = [make_pair(f"q{i}", "a", "b") for i in range(5)]
    writer = PoolWriter(tmp_path / "p", row_group_size=2)
    writer.write_all(recs)
    with pytest.raises(IncompletePoolError):
        list(read_pool(tmp_path / "p"))  # shards are not in place before close
    writer.close()
    assert list(read_pool(tmp_path / "p")) == recs
    with pytest.raises(RuntimeError), PoolWriter(tmp_path / "p") as w:
        w.write(recs[0])
        raise RuntimeError("boom")
    assert list(read_pool(tmp_path / "p")) == recs and [p.name for p in (tmp_path / "p").iterdir()] == ["part-00000.parquet"]
    with PoolWriter(tmp_path / "p", replace=True) as w:
        w.write(recs[0])
    assert list(read_pool(tmp_path / "p")) == recs[:1]


# -- shapes and truncation through the whole ingest -----------------------------------------------
def test_object_of_lists_file_ingests_with_its_keys_as_subsets(tmp_path):
    from synpref.cli import main

    src = tmp_path / "evalbiasbench.json"
    src.write_text(json.dumps({"length bias": [{"instruction": f"q{i}", "output_1": "a", "output_2": "bb", "label": 1 + i % 2} for i in range(4)],
                               "empty reference": [{"instruction": "e", "output_1": "x", "output_2": "y", "label": 2}]}))
    args = ["ingest", str(src), "-o", str(tmp_path / "pool"), "--map", "prompt=instruction", "--map", "response_a=output_1",
            "--map", "response_b=output_2", "--label-field", "label", "--label-a-wins", "1", "--label-b-wins", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0 and "read 5  kept 5" in result.output, result.output
    assert [r.meta["subset"] for r in read_pool(tmp_path / "pool")] == ["length bias"] * 4 + ["empty reference"]
    without = CliRunner().invoke(main, ["ingest", str(src), "-o", str(tmp_path / "p2")])
    assert without.exit_code == 2 and "row 0: no known format matches a row with fields [instruction, label, output_1, output_2]" in without.output
    assert "--map" in without.output and "Traceback" not in without.output


def test_truncated_json_gz_array_keeps_the_intact_records(tmp_path):
    import random

    rng = random.Random(1)
    rows = [{"prompt": " ".join(rng.choice(["sky", "blue", "why", "dog"]) for _ in range(40)), "chosen": str(rng.random()), "rejected": str(rng.random())} for _ in range(20)]
    blob = gzip.compress(json.dumps(rows).encode())
    src = tmp_path / "cut.json.gz"
    src.write_bytes(blob[: len(blob) // 2])
    report = ingest([src], tmp_path / "out", progress=False)
    assert 5 <= report["kept"] < 20 and (report["quarantined"], report["reasons"]) == (1, {"truncated_file": 1})
    (q,) = quarantine(tmp_path / "out")
    assert q["row"] == report["kept"] and q["original"].startswith('{"prompt": ')


# -- nothing kept is an error, with the report written ----------------------------------------------
@pytest.mark.parametrize("content, args, message", [
    (b"", [], "no records: {src} holds no rows (empty, or only blank lines)"),
    (b"\n  \n\t\n", [], "no records: {src} holds no rows"),
    (b'{"question": "q", "good": "a", "bad": "b"}\n' * 3, ["--map", "prompt=questoin", "--map", "chosen=good", "--map", "rejected=bad"],
     "no records kept: all 3 rows of {src} were quarantined (3 missing_field; see {out}/quarantine.jsonl); 3 row(s) lack the mapped "
     "field 'questoin' (their fields: bad, good, question): did you mean --map prompt=question?"),
    (b'{"q": "q", "a": "x", "b": "y", "lab": 1}\n', ["--map", "prompt=q", "--map", "response_a=a", "--map", "response_b=b", "--label-field", "label",
                                                   "--label-a-wins", "1", "--label-b-wins", "2"], "did you mean --label-field lab?"),
])
def test_an_ingest_that_keeps_nothing_fails_and_says_why(tmp_path, content, args, message):
    from synpref.cli import main

    src, out = tmp_path / "in.jsonl", tmp_path / "out"
    src.write_bytes(content)
    result = CliRunner().invoke(main, ["ingest", str(src), "-o", str(out), *args])
    assert result.exit_code == 2 and "Traceback" not in result.output
    (error,) = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert message.format(src=src, out=out) in error
    assert json.loads((out / "report.json").read_text())["kept"] == 0 and (out / "quarantine.jsonl").is_file()
    with pytest.raises(FileNotFoundError, match="its report.json says why"):
        list(read_pool(out))
