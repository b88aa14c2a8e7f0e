"""The one row -> record path: the same guards in ingest, score, eval --pairs, the benchmarks and bon."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from synpref.evaluate import run_evaluation
from synpref.evaluate.bon import read_bon_items
from synpref.evaluate.loading import load_benchmark, load_pairs_file
from synpref.formats import READERS, FieldMapping, Reader, Rejection, read_file
from synpref.ingest import ReadError, ingest, read_records
from synpref.registry import Registry, UnknownNameError
from synpref.scoring import score_once


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


class BuggyReader(Reader):
    """A reader with a bug: rows with ``trigger == "boom"`` make it raise a KeyError."""

    @staticmethod
    def matches(obj: dict) -> bool:
        return "trigger" in obj

    def read(self, obj: dict, row: int):
        if obj["trigger"] == "boom":
            return [{}["no such key"]]
        return [self.pair(row, obj["prompt"], (obj["chosen"], "chosen"), (obj["rejected"], "rejected"))]


@pytest.fixture
def buggy_file(tmp_path, monkeypatch):
    BuggyReader.name, BuggyReader.priority = "buggy", 99
    monkeypatch.setitem(READERS._entries, "buggy", BuggyReader)
    rows = [{"trigger": "ok", "prompt": f"q{i}", "chosen": "a long good answer", "rejected": "bad"} for i in range(3)]
    rows.insert(1, {"trigger": "boom", "prompt": "q", "chosen": "a", "rejected": "b"})
    return write_jsonl(tmp_path / "buggy.jsonl", rows)


# -- a reader bug is quarantined by ingest and reported (not a crash) everywhere else -----
def test_reader_bug_quarantined_by_ingest_and_skipped_by_read_records(buggy_file, tmp_path):
    report = ingest([buggy_file], tmp_path / "pool", progress=False)
    assert (report["kept"], report["quarantined"], report["reasons"]) == (3, 1, {"reader_error": 1})
    errors: list[Rejection] = []
    assert len(list(read_records([buggy_file], errors=errors))) == 3
    assert [(e.row, e.reason) for e in errors] == [(1, "reader_error")] and "KeyError" in str(errors[0])
    with pytest.raises(ReadError, match="row 1.*reader_error"):
        list(read_records([buggy_file]))


def test_reader_bug_is_reported_by_synpref_score(buggy_file, tiny_bert_dir):
    from synpref.cli import main

    result = CliRunner().invoke(main, ["score", str(tiny_bert_dir), "--input", str(buggy_file)])
    assert result.exit_code == 0, result.output
    assert f"skipped: {buggy_file} row 1" in result.stderr and "(reader_error)" in result.stderr
    assert "pairs: 3" in result.stdout


def test_reader_bug_is_reported_by_eval_pairs(buggy_file, tmp_path):
    res = run_evaluation([], [], None, tmp_path / "out", pairs_files=[buggy_file], progress=False, resamples=10, write_report=False)
    info = res["benchmarks"]["pairs:buggy.jsonl"]
    assert info["n_items"] == 3 and info["absent_reason"] is None
    assert info["notes"] == [f"1 rows could not be read (1 reader_error; first: {buggy_file} row 1: KeyError: 'no such key' (reader_error))"]
    assert res["models"]["length: longer wins"]["benchmarks"]["pairs:buggy.jsonl"]["score"] == 1.0


def test_score_and_pairs_apply_the_field_length_guard(tmp_path):
    src = write_jsonl(tmp_path / "long.jsonl", [{"prompt": "q", "chosen": "x" * 2_000_001, "rejected": "b"}, {"prompt": "q", "chosen": "a", "rejected": "b"}])
    errors: list[Rejection] = []
    assert len(list(read_records([src], errors=errors))) == 1
    assert [(e.reason, e.field) for e in errors] == [("field_too_long", "chosen")]
    assert len(list(read_records([src], errors=[], max_field_chars=3_000_000))) == 2
    assert "field_too_long" in load_pairs_file(src).notes[0]


def test_grouped_record_error_is_blamed_on_its_rows_and_the_next_row_kept(tmp_path):
    rows = [
        {"prompt": "A", "response": "a1", "helpfulness": 3},
        {"prompt": "A", "response": "a2", "helpfulness": float("nan")},
        {"prompt": "B", "response": "b1", "helpfulness": 2},
    ]
    src = tmp_path / "hs.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))  # NaN is written as the JSON extension NaN
    report = ingest([src], tmp_path / "pool", progress=False)
    assert (report["kept"], report["quarantined"], report["kinds"]) == (1, 1, {"ratings": 1})
    (q,) = [json.loads(line) for line in (tmp_path / "pool" / "quarantine.jsonl").read_text().splitlines()]
    assert (q["row"], q["message"]) == (0, "ratings contain NaN")


# -- benchmarks: gzip, degenerate rows kept, refused rows reported -----------------------
def test_benchmarks_read_gzipped_files(shared_data, tmp_path):
    for name in ("rm-bench", "judgebench"):
        for f in sorted((shared_data / name).iterdir()):
            (tmp_path / name).mkdir(exist_ok=True)
            (tmp_path / name / (f.name + ".gz")).write_bytes(gzip.compress(f.read_bytes()))
    rmb_src = shared_data / "rmb" / "RMB_dataset" / "BoN_set" / "Harmlessness" / "S1.json"
    (tmp_path / "rmb" / "BoN_set" / "Harmlessness").mkdir(parents=True)
    (tmp_path / "rmb" / "BoN_set" / "Harmlessness" / "S1.json.gz").write_bytes(gzip.compress(rmb_src.read_bytes()))
    for name in ("rm-bench", "judgebench", "rmb"):
        plain = load_benchmark(name, shared_data)
        zipped = load_benchmark(name, tmp_path)
        if name == "rmb":
            plain.items = [it for it in plain.items if it.meta["category"] == "Harmlessness/S1" and it.subset.endswith("bon")]
        key = lambda it: (it.item_id, it.subset, it.context, tuple(it.candidates), tuple(it.correct), json.dumps(it.meta, sort_keys=True))  # noqa: E731
        assert len(zipped.items) == len(plain.items) > 0, name
        assert [key(it) for it in zipped.items] == [key(it) for it in plain.items], name
    assert load_benchmark("rm-bench", tmp_path).missing == ["math"]


def test_benchmark_keeps_degenerate_rows_that_ingest_quarantines(shared_data, tmp_path):
    claude = next((shared_data / "judgebench").glob("*claude*"))
    report = ingest([claude], tmp_path / "pool", progress=False)
    assert report["quarantined"] == 1 and len(load_benchmark("judgebench", shared_data).items) == 620


def test_benchmark_row_it_cannot_score_makes_it_incomplete_not_a_crash(tmp_path):
    folder = tmp_path / "judgebench"
    folder.mkdir()
    good = {"pair_id": "p1", "source": "livebench-math", "question": "1+1?", "response_model": "m", "response_A": "2", "response_B": "3", "label": "A>B"}
    write_jsonl(folder / "split.jsonl", [good, {**good, "pair_id": "p2", "source": "trivia"}, {**good, "pair_id": "p3", "label": "A=B"}])
    lb = load_benchmark("judgebench", tmp_path)
    assert [it.item_id for it in lb.items] == ["m:p1"]
    (summary,) = [m for m in lb.missing if "could not be read" in m]
    assert "1 bad_label" in summary and "1 invalid_record" in summary
    res = run_evaluation([], "judgebench", tmp_path, tmp_path / "out", progress=False, resamples=10, write_report=False)
    block = res["models"]["length: longer wins"]["benchmarks"]["judgebench"]
    assert block["complete"] is False and any("could not be read" in r for r in block["reasons"])


def test_ppe_correctness_file_with_unknown_task_is_reported(tmp_path):
    folder = tmp_path / "ppe-correctness"
    folder.mkdir()
    row = {"question_id": "q", "model_name": "m", "prompt": "p", "response_1": "a", "response_2": "bb", "scores": [0, 1], "sampled_conflict_pairs": [[0, 1]]}
    write_jsonl(folder / "math.jsonl", [row])
    write_jsonl(folder / "trivia.jsonl", [row])
    lb = load_benchmark("ppe-correctness", tmp_path)
    assert [it.item_id for it in lb.items] == ["MATH:q:m"]
    assert any("unknown_task" in m and "trivia.jsonl" in m for m in lb.missing)


# -- best-of-N reads through the same path, with the benchmark's ids -----------------------
def test_bon_ids_equal_the_ppe_benchmark_ids(tmp_path):
    folder = tmp_path / "ppe-correctness"
    folder.mkdir()
    for task in ("mmlu_pro", "gpqa"):
        rows = [{"question_id": f"{task}{i}", "model_name": "gpt", "prompt": f"solve {i}", **{f"response_{k}": "x" * (k + i) for k in range(1, 5)},
                 "scores": [k % 2 == i % 2 for k in range(4)], "sampled_conflict_pairs": [[0, 1]]} for i in range(3)]
        write_jsonl(folder / f"{task}_best_of_k.jsonl", rows)
    bench = load_benchmark("ppe-correctness", tmp_path)
    rejected: list[Rejection] = []
    bon = list(read_bon_items([folder], rejected))
    assert rejected == [] and len(bon) == len(bench.items) == 6
    assert [it.item_id for it in bon] == [it.item_id for it in bench.items]
    assert [(it.correct, it.candidates) for it in bon] == [(it.correct, it.candidates) for it in bench.items]
    (one,) = [it for it in read_bon_items([folder / "gpqa_best_of_k.jsonl"]) if it.item_id == "GPQA:gpqa0:gpt"]
    assert one.correct == [0, 2]


def test_bon_reads_pools_and_reports_too_few_candidates(tmp_path):
    src = write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "prompt": "q", "candidates": ["x", "y", "z"], "correct": [1, 0, 0]}, {"id": "b", "prompt": "q", "candidates": ["only"]}])
    ingest([src], tmp_path / "pool", progress=False)
    rejected: list[Rejection] = []
    (item,) = read_bon_items([tmp_path / "pool"], rejected)
    assert (item.item_id, item.correct) == ("a", [0])
    assert [(r.reason, r.row) for r in rejected] == [("too_few_candidates", 1)]


def test_bon_command_reports_an_undetectable_file_in_one_line(tiny_bert_dir, tmp_path):
    from synpref.serve.cli import bon_command

    src = write_jsonl(tmp_path / "odd.jsonl", [{"question": "q", "good_answer": "a"}])
    result = CliRunner().invoke(bon_command, [str(tiny_bert_dir), "--input", str(src), "-o", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 1 and "no known format matches" in result.output and "Traceback" not in result.output


# -- commands: user mistakes are one line ---------------------------------------------------
def test_score_unknown_format_is_one_line(tiny_bert_dir, tmp_path):
    from synpref.cli import main

    src = write_jsonl(tmp_path / "odd.jsonl", [{"question": "q", "good_answer": "a"}])
    result = CliRunner().invoke(main, ["score", str(tiny_bert_dir), "--input", str(src)])
    assert result.exit_code == 2 and "Error: " in result.output and "synpref ingest --map" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_ingest_existing_pool_names_the_flag(tmp_path):
    from synpref.cli import main

    src = write_jsonl(tmp_path / "a.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}])
    runner = CliRunner()
    assert runner.invoke(main, ["ingest", str(src), "-o", str(tmp_path / "pool")]).exit_code == 0
    again = runner.invoke(main, ["ingest", str(src), "-o", str(tmp_path / "pool")])
    assert again.exit_code == 2 and "--overwrite" in again.output and isinstance(again.exception, SystemExit)


# -- the generic registry and the one scoring helper ----------------------------------------
def test_registry_registers_names_and_lists_them_on_an_unknown_name():
    things = Registry("thing")

    @things.register("b", size=2)
    class B:
        pass

    @things.register("a")
    class A:
        pass

    assert (things.get("b").name, things.get("b").size, things.names()) == ("b", 2, ["a", "b"])
    with pytest.raises(UnknownNameError, match=r"unknown thing 'c'; known things: a, b"):
        things.get("c")
    with pytest.raises(ValueError, match="already registered by"):
        things.register("a")(B)
    from synpref.evaluate.registry import get_benchmark

    with pytest.raises(UnknownNameError, match=r"unknown benchmark 'nope'; known benchmarks: judgebench, pairs"):
        get_benchmark("nope")


def test_score_once_scores_each_distinct_conversation_once_and_uses_the_cache(tmp_path):
    from synpref.evaluate.cache import RewardCache
    from synpref.schema import Message

    def conv(text):
        return (Message("user", "q"), Message("assistant", text))

    calls: list[list[str]] = []

    def score(conversations, names):
        calls.append(names)
        return [float(len(c[-1].content)) for c in conversations]

    groups = [[conv("a"), conv("bb")], [conv("bb"), conv("ccc"), conv("a")]]
    cache = RewardCache(tmp_path / "c.sqlite")
    rewards, stats = score_once(score, groups, names=["p1", "p2"], cache=cache, chunk=2)
    assert rewards == [[1.0, 2.0], [2.0, 3.0, 1.0]]
    assert (stats.distinct_texts, stats.scored, stats.from_cache) == (3, 3, 0)
    assert sorted(n for call in calls for n in call) == ["p1 candidate 0", "p1 candidate 1", "p2 candidate 1"]
    calls.clear()
    again, stats = score_once(score, groups, cache=cache)
    assert again == rewards and calls == [] and stats.from_cache == 3
    cache.close()


def test_read_file_yields_records_and_rejections_in_row_order(tmp_path):
    src = tmp_path / "mixed.jsonl"
    src.write_bytes(b'{"prompt": "q", "chosen": "a", "rejected": "b"}\nnot json\n[1]\n{"prompt": "q", "chosen": "a"}\n')
    out = list(read_file(src))
    assert [getattr(o, "reason", "record") for o in out] == ["record", "bad_json", "not_an_object", "missing_field"]


# -- the row guards: odd text, nesting, non-object first rows, objects of lists -------------------
def test_lone_surrogate_and_deep_nesting_are_rejections_not_crashes(tmp_path):
    from synpref.formats import row_problem
    from synpref.schema import Message, Record, RecordError, content_id, validate

    src = tmp_path / "odd.jsonl"
    deep = '{"a": ' * 400 + "1" + "}" * 400
    src.write_text(
        '{"prompt": "\\ud800", "chosen": "a", "rejected": "b"}\n'
        '{"prompt": "q", "chosen": "a", "rejected": "b", "x": ' + deep + "}\n"
        '{"prompt": "q", "chosen": "a", "rejected": "b", "k\\udfff": 1}\n'
        '{"prompt": "q", "chosen": "fine", "rejected": "b"}\n'
    )
    out = list(read_file(src))
    assert [(getattr(o, "reason", "record"), getattr(o, "field", None)) for o in out] == [
        ("invalid_unicode", "prompt"), ("too_deep", "x" + ".a" * 99), ("invalid_unicode", None), ("record", None)]
    assert row_problem({"a": [[[[["x" * 9]]]]]}, 8, max_depth=3) == ("too_deep", "a[0][0]", "field 'a[0][0]' is nested more than 3 levels deep")
    rec = Record((Message("user", "\ud800"),), ((Message("assistant", "a"),), (Message("assistant", "b"),)))
    assert len(content_id(rec)) == 32  # an id exists (no UnicodeEncodeError) ...
    with pytest.raises(RecordError, match="lone surrogate"):
        validate(rec)  # ... but no stored record holds such text


def test_detection_skips_rows_that_are_not_objects(tmp_path):
    src = tmp_path / "f.jsonl"
    src.write_text('42\nnull\n"prompt","chosen"\n{"prompt": "q", "chosen": "a", "rejected": "b"}\n')
    assert [getattr(o, "reason", "record") for o in read_file(src)] == ["not_an_object", "not_an_object", "bad_json", "record"]


def test_object_of_lists_keeps_its_key_as_the_subset(tmp_path):
    src = tmp_path / "evalbiasbench.json"
    src.write_text(json.dumps({
        "length bias": [{"instruction": "q1", "output_1": "long answer", "output_2": "short", "label": 1}],
        "concreteness": [{"instruction": "q2", "output_1": "vague", "output_2": "concrete", "label": 2, "subset": "own"}],
    }, indent=2))
    mapping = FieldMapping.from_cli(["prompt=instruction", "response_a=output_1", "response_b=output_2"], "label", "1", "2")
    first, second = read_file(src, mapping=mapping)
    assert (first.meta, first.chosen[0].content) == ({"subset": "length bias"}, "long answer")
    assert (second.meta, second.chosen[0].content) == ({"subset": "own", "source_subset": "concreteness"}, "concrete")
