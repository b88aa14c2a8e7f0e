"""Row sources, format detection, every reader, and field mapping."""

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synpref.formats import FieldMapping, MappedReader, SourceError, UnknownFormatError, detect, expand_sources, get_reader, iter_rows, known_formats
from synpref.formats.common import FormatError, parse_hh_transcript, split_common_prefix
from synpref.schema import Message, RecordError, expand_to_pairs


def rows(path):
    return list(iter_rows(path))


def read(fmt, obj, source="src.jsonl", **options):
    reader = get_reader(fmt)(source, **options)
    return reader.read(obj, 7) + reader.finish()


def texts(conv):
    return [(m.role, m.content) for m in conv]


# -- sources ------------------------------------------------------------------
def test_jsonl_bad_line_invalid_utf8_and_blank_lines(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_bytes(b'{"a": 1}\n\n{"a": \n' + b'{"a": "\xff"}\n' + b'[1, 2]\n')
    got = rows(p)
    assert [r for r, _ in got] == [0, 2, 3, 4]
    assert got[0][1] == {"a": 1}
    assert (got[1][1].reason, got[1][1].row, got[1][1].raw) == ("bad_json", 2, '{"a": ')
    assert got[2][1].reason == "invalid_utf8" and got[2][1].raw == '{"a": "\\xff"}'
    assert got[3][1] == [1, 2]


def test_gzip_and_truncated_gzip(tmp_path):
    lines = [json.dumps({"i": i, "pad": "x" * 50}) for i in range(2000)]
    blob = gzip.compress(("\n".join(lines) + "\n").encode())
    full = tmp_path / "full.jsonl.gz"
    full.write_bytes(blob)
    assert [obj["i"] for _, obj in rows(full)] == list(range(2000))

    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(blob[: len(blob) // 2])
    got = rows(cut)
    good = [obj for _, obj in got if not isinstance(obj, SourceError)]
    errors = [obj for _, obj in got if isinstance(obj, SourceError)]
    assert len(errors) == 1 and errors[0].reason == "truncated_file"
    assert errors[0].row == len(good) and 0 < len(good) < 2000
    assert [o["i"] for o in good] == list(range(len(good)))


def test_json_array_streams_elements_larger_than_a_chunk(tmp_path):
    data = [{"i": 0, "big": "é" * 200_000}, {"i": 1}, 12345, {"i": 3, "l": [1, 2]}]
    p = tmp_path / "arr.json"
    p.write_text(" \n" + json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    assert [obj for _, obj in rows(p)] == data
    gz = tmp_path / "arr.json.gz"
    gz.write_bytes(gzip.compress(json.dumps(data).encode()))
    assert [obj for _, obj in rows(gz)] == data
    empty = tmp_path / "empty.json"
    empty.write_text("[ ]")
    assert rows(empty) == []


def test_json_array_truncated_and_bad(tmp_path):
    p = tmp_path / "t.json"
    p.write_text('[{"a": 1}, {"a": 2}, {"a": ')
    got = rows(p)
    assert got[:2] == [(0, {"a": 1}), (1, {"a": 2})]
    assert (got[2][0], got[2][1].reason) == (2, "truncated_file")
    bad = tmp_path / "b.json"
    bad.write_text('[{"a": 1} {"a": 2}]')
    got = rows(bad)
    assert got[0] == (0, {"a": 1}) and got[1][1].reason == "bad_json" and len(got) == 2
    utf = tmp_path / "u.json"
    utf.write_bytes(b'[{"a": 1}, {"a": "\xff"}]')
    got = rows(utf)
    assert got[0] == (0, {"a": 1}) and got[1][1].reason == "invalid_utf8"


def test_parquet_rows_and_corrupt_parquet(tmp_path):
    p = tmp_path / "x.parquet"
    pq.write_table(pa.table({"prompt": ["p1", "p2"], "chosen": ["c1", "c2"], "rejected": ["r1", "r2"]}), p)
    assert rows(p) == [(0, {"prompt": "p1", "chosen": "c1", "rejected": "r1"}), (1, {"prompt": "p2", "chosen": "c2", "rejected": "r2"})]
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    (row, err), = rows(bad)
    assert (row, err.reason) == (0, "corrupt_file")


def _pairs(n, prefix="q"):
    return [{"prompt": f"{prefix}{i}", "chosen": "a", "rejected": "b"} for i in range(n)]


def _jsonl(rows):
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_encodings_bom_utf16_utf32(tmp_path):
    text = _jsonl(_pairs(3))
    for name, data in {
        "bom.jsonl": b"\xef\xbb\xbf" + text.encode(),  # the first row is read, not lost to the BOM
        "bom-array.json": b"\xef\xbb\xbf" + json.dumps(_pairs(3)).encode(),  # read as an array, not as JSONL
        "utf16.jsonl": text.encode("utf-16"),
        "utf16le-no-bom.jsonl": text.encode("utf-16-le"),
        "utf16be-no-bom.json": json.dumps(_pairs(3), indent=1).encode("utf-16-be"),
        "utf32.jsonl": text.encode("utf-32"),
    }.items():
        (tmp_path / name).write_bytes(data)
        assert [obj for _, obj in rows(tmp_path / name)] == _pairs(3), name
    bad = tmp_path / "bad16.jsonl"
    bad.write_bytes(text.encode("utf-16-le") + b"\x00\xd8{\x00}\x00\n\x00")  # a lone surrogate code unit
    got = rows(bad)
    assert [obj for _, obj in got[:3]] == _pairs(3) and (got[3][1].reason, got[3][1].raw) == ("invalid_encoding", "\\x00\\xd8{}")


def test_rows_after_a_closing_bracket_are_read_not_dropped(tmp_path):
    tail = _jsonl(_pairs(990, "z"))
    compact = tmp_path / "compact.json"
    compact.write_text(json.dumps(_pairs(10)) + "\n" + tail)  # a JSONL file whose first line is a list
    got = rows(compact)
    assert len(got) == 991 and got[0] == (0, _pairs(10)) and [obj for _, obj in got[1:]] == _pairs(990, "z")
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps(_pairs(10), indent=2) + "\n" + tail)  # an array, then JSONL lines
    got = rows(pretty)
    assert [r for r, _ in got] == list(range(1000)) and [obj for _, obj in got] == _pairs(10) + _pairs(990, "z")
    junk = tmp_path / "junk.json"
    junk.write_text(json.dumps(_pairs(2)) + " trailing junk")
    got = rows(junk)
    assert [obj for _, obj in got[:2]] == _pairs(2) and (got[2][1].reason, got[2][1].raw) == ("bad_json", "trailing junk")
    assert "after the closing ']'" in got[2][1].message


def test_jsonl_first_line_a_scalar_null_list_or_header(tmp_path):
    for first, expected in ((b"42", 42), (b"null", None), (b'["prompt", "chosen", "rejected"]', ["prompt", "chosen", "rejected"])):
        p = tmp_path / "f.jsonl"
        p.write_bytes(first + b"\n" + _jsonl(_pairs(2)).encode())
        assert rows(p) == [(0, expected), (1, _pairs(2)[0]), (2, _pairs(2)[1])]
    p.write_bytes(b"prompt,chosen,rejected\n" + _jsonl(_pairs(2)).encode())
    got = rows(p)
    assert got[0][1].reason == "bad_json" and [obj for _, obj in got[1:]] == _pairs(2)


def test_object_of_lists_pretty_or_on_one_line(tmp_path):
    data = {"length bias": _pairs(3), "concreteness": [], "empty reference": _pairs(2, "e")}
    for name, text in (("pretty.json", json.dumps(data, indent=2)), ("line.json", json.dumps(data))):
        (tmp_path / name).write_text(text)
        got = rows(tmp_path / name)
        assert [r for r, _ in got] == list(range(5)) and [obj for _, obj in got] == _pairs(3) + _pairs(2, "e")
        assert [obj.key for _, obj in got] == ["length bias"] * 3 + ["empty reference"] * 2
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"train": _pairs(1), "version": 2, "meta": {"prompt": "m"}}, indent=1))
    assert [(obj, getattr(obj, "key", None)) for _, obj in rows(odd)] == [(_pairs(1)[0], "train"), (2, None), ({"prompt": "m"}, "meta")]
    # one record whose fields are lists (whole conversations) is a row, not an object of lists
    trl = {"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}]}
    for text in (json.dumps(trl), json.dumps(trl, indent=2)):
        (tmp_path / "trl.json").write_text(text)
        assert rows(tmp_path / "trl.json") == [(0, trl)]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(data, indent=2).replace('"q1"', '"q1" oops', 1))
    got = rows(broken)
    assert [getattr(obj, "reason", "row") for _, obj in got] == ["row", "bad_json", "row", "row", "row"] and "oops" in got[1][1].raw


def test_truncated_json_gz_array_recovers_the_intact_prefix(tmp_path):
    import random

    rng = random.Random(0)
    records = [{"prompt": " ".join(rng.choice(["sky", "blue", "why", "dog", "a"]) for _ in range(30)), "chosen": str(rng.random()), "rejected": str(rng.random())} for _ in range(20)]
    blob = gzip.compress(json.dumps(records).encode())
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(blob[: len(blob) // 2])
    got = rows(cut)
    good = [obj for _, obj in got if not isinstance(obj, SourceError)]
    assert 5 <= len(good) < 20 and good == records[: len(good)]
    assert len(got) == len(good) + 1 and got[-1][1].reason == "truncated_file" and got[-1][1].raw


def test_deep_nesting_and_a_bad_element_are_rows_not_crashes(tmp_path):
    p = tmp_path / "deep.jsonl"
    p.write_text(_jsonl(_pairs(1)) + "[" * 5000 + "\n" + _jsonl(_pairs(1, "z")))
    got = rows(p)
    assert (got[1][1].reason, len(got[1][1].raw)) == ("too_deep", 5000) and got[2] == (2, _pairs(1, "z")[0])
    arr = tmp_path / "deep.json"
    arr.write_text('[{"a": 1},\n' + '{"x": ' + "[" * 3000 + "]" * 3000 + '},\n{"a": tru},\n{"a": 3}]')
    got = rows(arr)
    assert [getattr(obj, "reason", obj) for _, obj in got] == [{"a": 1}, "too_deep", "bad_json", {"a": 3}]
    assert got[2][1].raw == '{"a": tru}'


def test_iter_jsonl_reads_lines_whatever_the_first_holds(tmp_path):
    from synpref.formats import iter_jsonl

    p = tmp_path / "d.jsonl"
    p.write_text('[{"a": 1},\n{"a": 2}\n')
    assert [getattr(obj, "reason", obj) for _, obj in iter_jsonl(p)] == ["bad_json", {"a": 2}]


def test_expand_sources_recurses_sorted_and_skips_non_data(tmp_path):
    (tmp_path / "b").mkdir()
    for name in ("b/z.jsonl", "a.json", "README.md", "b/c.parquet", "d.jsonl.gz"):
        (tmp_path / name).write_text("")
    assert [p.relative_to(tmp_path).as_posix() for p in expand_sources([tmp_path])] == ["a.json", "b/c.parquet", "b/z.jsonl", "d.jsonl.gz"]
    with pytest.raises(FileNotFoundError, match="nope"):
        expand_sources([tmp_path / "nope"])


# -- detection ------------------------------------------------------------------
EXPECTED_FORMATS = {
    "chatbot-arena-55k-sample": "arena",
    "dahoas-full-hh-rlhf-sample": "dahoas",
    "helpsteer-sample": "helpsteer",
    "hh-rlhf": "hh-rlhf",
    "judgebench": "judgebench",
    "prefsets-anthropic-helpful-subset": "rm-gallery",
    "reward-bench-v1-sample": "rewardbench",
    "rm-bench": "rm-bench",
    "stack-exchange-preferences-sample": "stack-exchange",
    "ultrafeedback-binarized-sample": "ultrafeedback",
    "rmb/RMB_dataset/Pairwise_set": "rmb-pairwise",
    "rmb/RMB_dataset/BoN_set": "rmb-best-of-n",
}


def test_detect_every_shared_file(shared_data):
    files = expand_sources([shared_data])
    assert len(files) == 112
    for f in files:
        rel = f.relative_to(shared_data).as_posix()
        expected = next(fmt for prefix, fmt in EXPECTED_FORMATS.items() if rel.startswith(prefix + "/"))
        _, first = next(iter_rows(f))
        assert detect(first) == expected, rel


def test_detect_unknown_names_fields_and_formats():
    with pytest.raises(UnknownFormatError) as e:
        detect({"question": "q", "good_answer": "a"}, where="x.jsonl row 0")
    msg = str(e.value)
    assert "x.jsonl row 0" in msg and "[good_answer, question]" in msg and "rm-bench" in msg and "hh-rlhf" in msg
    with pytest.raises(UnknownFormatError, match="unknown format 'nope'; known formats: arena"):
        get_reader("nope")
    assert "mapped" in known_formats() and len(known_formats()) == 18  # + candidates, ppe-preference, ppe-correctness, rewardbench2


# -- helpers --------------------------------------------------------------------------
def test_hh_transcript_and_common_prefix():
    conv = parse_hh_transcript("\n\nHuman: hi\n\nAssistant: hello \n\nHuman: bye\n\nAssistant: ciao", "chosen")
    assert texts(conv) == [("user", "hi"), ("assistant", "hello"), ("user", "bye"), ("assistant", "ciao")]
    with pytest.raises(FormatError) as e:
        parse_hh_transcript("no markers here", "rejected")
    assert (e.value.field, e.value.reason) == ("rejected", "bad_transcript")
    other = conv[:3] + (Message("assistant", "au revoir"),)
    ctx, a, b = split_common_prefix(conv, other)
    assert len(ctx) == 3 and texts(a) == [("assistant", "ciao")] and texts(b) == [("assistant", "au revoir")]
    # one conversation a prefix of the other: each side keeps its last message
    ctx, a, b = split_common_prefix(conv[:2], conv)
    assert len(ctx) == 1 and len(a) == 1 and len(b) == 3


# -- readers ---------------------------------------------------------------------------
def test_hh_rlhf_reader():
    (rec,) = read("hh-rlhf", {"chosen": "\n\nHuman: q\n\nAssistant: a\n\nHuman: q2\n\nAssistant: good", "rejected": "\n\nHuman: q\n\nAssistant: a\n\nHuman: q2\n\nAssistant: bad"})
    assert texts(rec.context) == [("user", "q"), ("assistant", "a"), ("user", "q2")]
    assert texts(rec.chosen) == [("assistant", "good")] and texts(rec.rejected) == [("assistant", "bad")]
    assert (rec.provenance.source, rec.provenance.row, rec.provenance.format) == ("src.jsonl", 7, "hh-rlhf")


def test_prompt_chosen_rejected_shapes():
    (s,) = read("prompt-chosen-rejected", {"prompt": "q", "chosen": "a", "rejected": "b", "id": 3, "category": "x", "tags": ["t"]})
    assert texts(s.context) == [("user", "q")] and texts(s.chosen) == [("assistant", "a")] and s.meta == {"id": 3, "category": "x"}
    conv = {
        "prompt": [{"role": "system", "content": "sys"}, {"role": "user", "content": "q"}],
        "chosen": [{"role": "assistant", "content": "a"}],
        "rejected": [{"role": "assistant", "content": "b"}],
    }
    (c,) = read("prompt-chosen-rejected", conv)
    assert texts(c.context) == [("system", "sys"), ("user", "q")] and texts(c.rejected) == [("assistant", "b")]
    implicit = {"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}]}
    (i,) = read("prompt-chosen-rejected", implicit)
    assert i.id == s.id  # same pair, three shapes, one id
    assert c.id != s.id  # the system turn makes it a different context
    with pytest.raises(FormatError) as e:
        read("prompt-chosen-rejected", {"chosen": "a", "rejected": "b"})
    assert (e.value.field, e.value.reason) == ("prompt", "missing_field")


def test_ultrafeedback_margin_tie_and_inconsistent():
    base = {"prompt": "q", "chosen": "a", "rejected": "b"}
    (p,) = read("ultrafeedback", {**base, "metadata": {"score_chosen": 9.0, "score_rejected": 6.5}})
    assert (p.kind, p.margin, p.meta["score_chosen"]) == ("pair", 2.5, 9.0)
    (t,) = read("ultrafeedback", {**base, "score_chosen": 7, "score_rejected": 7})
    assert (t.kind, t.margin) == ("tie", None)
    with pytest.raises(FormatError) as e:
        read("ultrafeedback", {**base, "metadata": {"score_chosen": 1, "score_rejected": 5}})
    assert (e.value.reason, e.value.field) == ("inconsistent_label", "metadata.score_chosen")


def test_helpsteer_groups_consecutive_prompts():
    reader = get_reader("helpsteer")("h.jsonl")
    row = lambda p, r, h: {"prompt": p, "response": r, "helpfulness": h, "correctness": 4, "coherence": 4, "complexity": 1, "verbosity": 2}
    assert reader.read(row("p1", "r1", 3), 0) == []
    assert reader.read(row("p1", "r2", 1), 1) == []
    (g1,) = reader.read(row("p2", "r3", 2), 2)
    (g2,) = reader.finish()
    assert (g1.kind, g1.ratings, g1.meta["rows"], g1.provenance.row) == ("ratings", (3.0, 1.0), [0, 1], 0)
    assert g1.meta["attributes"][1] == {"helpfulness": 1, "correctness": 4, "coherence": 4, "complexity": 1, "verbosity": 2}
    assert (len(g2.candidates), g2.ratings, list(expand_to_pairs(g2))) == (1, (2.0,), [])
    assert len(list(expand_to_pairs(g1))) == 1
    with pytest.raises(FormatError) as e:
        reader.read(row("p3", " ", 2), 3)
    assert (e.value.reason, e.value.field) == ("empty_response", "response")


def test_stack_exchange_single_answer_kept_and_html_option():
    obj = {"qid": 5, "question": "<p>Why &amp; how?</p>", "answers": [{"answer_id": 9, "text": "<b>because</b>", "pm_score": 3, "selected": True}]}
    (rec,) = read("stack-exchange", obj)
    assert (rec.kind, rec.ratings, rec.meta) == ("ratings", (3.0,), {"qid": 5, "answer_ids": [9], "selected": [True]})
    assert rec.context[0].content == "<p>Why &amp; how?</p>" and list(expand_to_pairs(rec)) == []
    (clean,) = read("stack-exchange", obj, strip_html=True)
    assert (clean.context[0].content, clean.candidates[0][0].content) == ("Why & how?", "because")
    with pytest.raises(FormatError) as e:
        read("stack-exchange", {"question": "q", "answers": [{"text": "a", "pm_score": 1}, {"text": "b", "pm_score": "high"}]})
    assert (e.value.reason, e.value.field) == ("wrong_type", "answers[1].pm_score")


def arena_row(prompt, a, b, winner):
    one_hot = {"a": (1, 0, 0), "b": (0, 1, 0), "tie": (0, 0, 1)}[winner]
    return {"id": 1, "model_a": "ma", "model_b": "mb", "prompt": json.dumps(prompt), "response_a": json.dumps(a), "response_b": json.dumps(b), **dict(zip(("winner_model_a", "winner_model_b", "winner_tie"), one_hot))}


def test_arena_multi_turn_winner_tie_and_null_turn():
    (rec,) = read("arena", arena_row(["u1", "u2"], ["a1", "a2"], ["b1", "b2"], "b"))
    assert texts(rec.context) == [("user", "u1")]
    assert texts(rec.chosen) == [("assistant", "b1"), ("user", "u2"), ("assistant", "b2")]
    assert texts(rec.rejected)[0] == ("assistant", "a1") and rec.meta["winner"] == "model_b"
    (same_first,) = read("arena", arena_row(["u1", "u2"], ["x", "a2"], ["x", "b2"], "a"))
    assert len(same_first.context) == 3 and texts(same_first.chosen) == [("assistant", "a2")]
    (tie,) = read("arena", arena_row(["u"], ["a"], ["b"], "tie"))
    assert tie.kind == "tie"
    with pytest.raises(FormatError) as e:
        read("arena", arena_row(["u1", "u2"], ["a1", None], ["b1", "b2"], "a"))
    assert (e.value.reason, e.value.field) == ("missing_field", "response_a[1]")
    bad = arena_row(["u"], ["a"], ["b"], "a") | {"winner_model_b": 1}
    with pytest.raises(FormatError) as e:
        read("arena", bad)
    assert (e.value.reason, e.value.field) == ("bad_label", "winner_model_a")


def test_dahoas_matches_hh_id():
    (d,) = read("dahoas", {"prompt": "\n\nHuman: q\n\nAssistant:", "response": " good", "chosen": " good", "rejected": " bad"})
    (h,) = read("hh-rlhf", {"chosen": "\n\nHuman: q\n\nAssistant: good", "rejected": "\n\nHuman: q\n\nAssistant: bad"})
    assert texts(d.context) == [("user", "q")] and d.id == h.id and d.meta == {}


def test_rm_gallery_pair_and_ranking():
    msg = lambda role, content, label=None: {"role": role, "content": content, "content_label": label, "rewards": None}
    obj = {
        "unique_id": "u1",
        "evaluation_sample": {
            "input": [msg("user", "q"), msg("assistant", "a"), msg("user", "q2")],
            "outputs": [msg("assistant", "worse", "rejected"), msg("assistant", "better", "chosen")],
            "data_info": {"domain": "helpfulness", "source": "rewardbench"},
        },
        "extra_metadata": {"group": "train"},
    }
    (rec,) = read("rm-gallery", obj)
    assert rec.kind == "pair" and texts(rec.chosen) == [("assistant", "better")] and len(rec.context) == 3
    assert rec.meta == {"unique_id": "u1", "domain": "helpfulness", "data_source": "rewardbench", "group": "train"}
    obj["evaluation_sample"]["outputs"].append({"answer": {"content": "also bad"}, "content_label": "rejected"})
    (ranking,) = read("rm-gallery", obj)
    assert (ranking.kind, ranking.ranks) == ("ranking", (1, 0, 1))
    obj["evaluation_sample"]["outputs"][0]["content_label"] = "meh"
    with pytest.raises(FormatError) as e:
        read("rm-gallery", obj)
    assert (e.value.reason, e.value.field) == ("bad_label", "evaluation_sample.outputs[0].content_label")


def test_rewardbench_meta():
    (rec,) = read("rewardbench", {"prompt": "q", "chosen": "a", "rejected": "b", "chosen_model": "m1", "rejected_model": "m2", "subset": "s", "id": 30})
    assert rec.meta == {"chosen_model": "m1", "rejected_model": "m2", "subset": "s", "id": 30} and rec.provenance.format == "rewardbench"


def test_rm_bench_nine_pairs_and_per_pair_errors():
    obj = {"id": 8, "subset": "alpacaeval", "prompt": "q", "chosen": ["c0", "c1", "c2"], "rejected": ["r0", "r1", ""]}
    out = read("rm-bench", obj, source="/x/chat_filtered.json")
    assert len(out) == 9
    errors = [r for r in out if isinstance(r, RecordError)]
    assert [(e.reason, e.field) for e in errors] == [("empty_response", "rejected[2]")] * 3
    first = out[0]
    assert first.meta == {"id": 8, "subset": "alpacaeval", "domain": "chat", "chosen_style": "concise", "rejected_style": "concise"}
    assert (out[7].meta["chosen_style"], out[7].meta["rejected_style"]) == ("detailed_markdown", "detailed_plain")
    with pytest.raises(FormatError) as e:
        read("rm-bench", {**obj, "chosen": ["c0", "c1"]})
    assert (e.value.reason, e.value.field) == ("invalid_record", "chosen")


def test_judgebench_order_and_bad_label():
    obj = {"pair_id": "p", "original_id": 1, "source": "mmlu-pro-law", "question": "q", "response_model": "m", "response_A": "ra", "response_B": "rb", "label": "B>A"}
    (rec,) = read("judgebench", obj)
    assert texts(rec.chosen) == [("assistant", "rb")] and rec.meta["original_order"] == ["B", "A"]
    assert {k: rec.meta[k] for k in ("pair_id", "source", "response_model")} == {"pair_id": "p", "source": "mmlu-pro-law", "response_model": "m"}
    with pytest.raises(FormatError) as e:
        read("judgebench", {**obj, "label": "A=B"})
    assert (e.value.reason, e.value.field) == ("bad_label", "label")


def test_rmb_pairwise_and_best_of_n():
    conv = [{"role": "user", "content": "q", "language": "English"}]
    (p,) = read("rmb-pairwise", {"pair_uid": "1", "conversation_input": conv, "chosen": {"llm_name": "m1", "answer": "a"}, "reject": {"llm_name": "m2", "answer": "b"}, "category_path": "Pairwise_set/x"})
    assert p.meta == {"pair_uid": "1", "category_path": "Pairwise_set/x", "chosen_model": "m1", "rejected_model": "m2"}
    bon = {"bon_uid": "2", "conversation_input": conv, "bon_best": {"llm_name": "m1", "answer": "best"}, "loser_list": [{"llm_name": "m2", "answer": "l1"}, {"llm_name": "m3", "answer": "l2"}], "category_path": "BoN_set/x"}
    (r,) = read("rmb-best-of-n", bon)
    assert (r.kind, r.ranks, r.meta["models"]) == ("ranking", (0, 1, 1), ["m1", "m2", "m3"])
    assert [texts(x.rejected) for x in expand_to_pairs(r)] == [[("assistant", "l1")], [("assistant", "l2")]]
    bon["loser_list"][1]["answer"] = None
    with pytest.raises(FormatError) as e:
        read("rmb-best-of-n", bon)
    assert (e.value.reason, e.value.field) == ("missing_field", "loser_list[1].answer")


# -- field mapping ------------------------------------------------------------------------
def test_field_mapping_from_cli_and_mapped_reader():
    m = FieldMapping.from_cli(["prompt=question", "chosen=good.text", "rejected = bad_answer"])
    assert m.fields == {"prompt": "question", "chosen": "good.text", "rejected": "bad_answer"}
    reader = MappedReader("m.jsonl", mapping=m)
    (rec,) = reader.read({"question": "q", "good": {"text": "g"}, "bad_answer": "b", "topic": "t"}, 0)
    assert texts(rec.chosen) == [("assistant", "g")] and rec.meta == {"topic": "t"} and rec.provenance.format == "mapped"
    with pytest.raises(FormatError) as e:
        reader.read({"question": "q", "good": {}, "bad_answer": "b"}, 1)
    assert (e.value.reason, e.value.field) == ("missing_field", "good.text")


def test_field_mapping_labels_from_yaml(tmp_path):
    y = tmp_path / "m.yaml"
    y.write_text("map: {prompt: q, response_a: x, response_b: y}\nlabel_field: pref\nlabel_a_wins: 1\nlabel_b_wins: 2\nlabel_tie: 0\n")
    m = FieldMapping.from_yaml(y)
    assert (m.label_field, m.label_a_wins, m.label_b_wins, m.label_tie) == ("pref", "1", "2", "0")
    reader = MappedReader("m.jsonl", mapping=m)
    row = {"q": "q", "x": "ax", "y": "by"}
    (b,) = reader.read({**row, "pref": 2.0}, 0)
    (tie,) = reader.read({**row, "pref": "0"}, 1)
    assert texts(b.chosen) == [("assistant", "by")] and tie.kind == "tie"
    with pytest.raises(FormatError) as e:
        reader.read({**row, "pref": 3}, 2)
    assert (e.value.reason, e.value.field) == ("bad_label", "pref")


@pytest.mark.parametrize(
    "items, kw, match",
    [
        (["prompt"], {}, "expected KEY=FIELD"),
        (["prompt=q", "prompt=r"], {}, "given twice"),
        (["answer=q", "chosen=c", "rejected=r"], {}, r"unknown mapping key\(s\) \['answer'\]"),
        (["prompt=q", "chosen=c"], {}, "needs both chosen= and rejected="),
        (["response_a=a", "response_b=b"], {}, "need label_field"),
        (["chosen=a", "rejected=b", "response_a=c", "response_b=d"], {}, "not both"),
        (["chosen=a", "rejected=b"], {"label_field": "l"}, "only apply"),
        (["response_a=a", "response_b=b"], {"label_field": "l", "label_a_wins": "x", "label_b_wins": "x"}, "must differ"),
    ],
)
def test_field_mapping_bad_specs(items, kw, match):
    with pytest.raises(ValueError, match=match):
        FieldMapping.from_cli(items, **kw)


def test_field_mapping_bad_yaml(tmp_path):
    y = tmp_path / "m.yaml"
    y.write_text("mapping: {prompt: q}\n")
    with pytest.raises(ValueError, match="'map:' table"):
        FieldMapping.from_yaml(y)
    y.write_text("map: {chosen: a, rejected: b}\nlabel: x\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['label'\]"):
        FieldMapping.from_yaml(y)


# -- readers the benchmarks and best-of-N read through ----------------------------------
def test_rm_bench_styles_as_one_record_expand_to_the_nine_pairs():
    obj = {"id": 8, "subset": "alpacaeval", "prompt": "q", "chosen": ["c0", "c1", "c2"], "rejected": ["r0", "r1", "r2"]}
    (rec,) = read("rm-bench", obj, source="/x/chat_filtered.json.gz", styles_as_one_record=True)
    assert (rec.kind, rec.correct, rec.correct_candidates) == ("best-of-n", (True,) * 3 + (False,) * 3, [0, 1, 2])
    assert [texts(c) for c in rec.candidates] == [[("assistant", t)] for t in ("c0", "c1", "c2", "r0", "r1", "r2")]
    assert rec.meta["domain"] == "chat" and rec.meta["styles"][3] == "concise"  # gzip suffix stripped from the domain
    pairs = read("rm-bench", obj, source="/x/chat_filtered.json")
    assert sorted((texts(p.chosen), texts(p.rejected)) for p in expand_to_pairs(rec)) == sorted((texts(p.chosen), texts(p.rejected)) for p in pairs)
    (hub,) = read("rm-bench", {**obj, "domain": "safety-refuse"}, source="THU-KEG/RM-Bench", styles_as_one_record=True)
    assert hub.meta["domain"] == "safety-refuse"  # a hub row names its own domain


def test_rewardbench2_reader_marks_the_first_num_correct_correct():
    row = {"id": "tied:3", "prompt": "name a colour", "chosen": ["blue", "green"], "rejected": ["cat"], "num_correct": 2, "subset": "Ties"}
    assert detect(row) == "rewardbench2"
    (rec,) = read("rewardbench2", row)
    assert (rec.kind, rec.correct, rec.meta) == ("best-of-n", (True, True, False), {"id": "tied:3", "num_correct": 2, "subset": "Ties"})
    with pytest.raises(FormatError) as e:
        read("rewardbench2", {**row, "num_correct": 4})
    assert (e.value.reason, e.value.field) == ("invalid_record", "num_correct")


def test_ppe_preference_winner_first_tie_and_conversations():
    row = {"question_id": "q", "winner": "model_b", "prompt": "p", "response_1": "a", "response_2": "b", "language": "English"}
    assert detect(row) == "ppe-preference"
    (rec,) = read("ppe-preference", row)
    assert (rec.kind, texts(rec.chosen), rec.meta["winner"]) == ("pair", [("assistant", "b")], "model_b")
    (tie,) = read("ppe-preference", {**row, "winner": "tie (bothbad)"})
    assert tie.kind == "tie"
    conv_a = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    conv_b = json.dumps([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])
    (multi,) = read("ppe-preference", {**row, "winner": "model_a", "response_1": "", "conversation_a": conv_a, "conversation_b": conv_b})
    assert texts(multi.context) == [("user", "hi")] and texts(multi.rejected) == [("assistant", "yo")]
    with pytest.raises(FormatError) as e:
        read("ppe-preference", {**row, "winner": "both"})
    assert (e.value.reason, e.value.field) == ("bad_label", "winner")


def test_ppe_correctness_labels_conflict_pairs_and_bad_rows():
    row = {"question_id": "m1", "model_name": "gpt", "prompt": "solve", "response_1": "x", "response_10": "z", "response_2": "y",
           "scores": [False, 1, 0], "sampled_conflict_pairs": [[0, 1], [1, 2]]}
    assert detect(row) == "ppe-correctness"
    (rec,) = read("ppe-correctness", row)
    assert [texts(c)[0][1] for c in rec.candidates] == ["x", "y", "z"]  # response_N in numeric order
    assert (rec.correct, rec.correct_candidates, rec.meta) == ((False, True, False), [1], {"question_id": "m1", "model_name": "gpt", "conflict_pairs": [[0, 1], [1, 2]]})
    (none_right,) = read("ppe-correctness", {**row, "scores": [0, 0, 0]})
    assert none_right.correct_candidates == [] and list(expand_to_pairs(none_right)) == []
    for bad, field, reason in [
        ({"scores": [1, 0]}, "scores", "invalid_record"),
        ({"scores": [1, 0.5, 0]}, "scores[1]", "bad_label"),
        ({"sampled_conflict_pairs": [[0, 3]]}, "sampled_conflict_pairs[0]", "invalid_record"),
    ]:
        with pytest.raises(FormatError) as e:
            read("ppe-correctness", {**row, **bad})
        assert (e.value.field, e.value.reason) == (field, reason)


def test_candidates_reader_labelled_unlabelled_and_degenerate():
    row = {"id": "p1", "prompt": "q", "candidates": ["a", [{"role": "assistant", "content": "b"}], "c"], "correct": [0, 1, 0]}
    assert detect(row) == "candidates"
    (rec,) = read("candidates", row)
    assert (rec.kind, rec.correct_candidates, rec.meta) == ("best-of-n", [1], {"id": "p1"})
    (plain,) = read("candidates", {"prompt": "q", "responses": ["a", "b"]})
    assert plain.correct is None and plain.correct_candidates is None and list(expand_to_pairs(plain)) == []
    with pytest.raises(FormatError) as e:
        read("candidates", {**row, "candidates": ["a", "", "c"]})
    assert (e.value.reason, e.value.field) == ("empty_response", "candidates[1]")
    (kept,) = read("candidates", {**row, "candidates": ["a", "", "c"]}, allow_degenerate=True)
    assert kept.candidates[1][-1].content == ""


def test_allow_degenerate_keeps_identical_candidates_for_benchmarks():
    obj = {"pair_id": "p", "source": "mmlu-pro-law", "question": "q", "response_A": "same", "response_B": "same", "label": "A>B"}
    with pytest.raises(FormatError) as e:
        read("judgebench", obj)
    assert e.value.reason == "identical_candidates"
    (rec,) = read("judgebench", obj, allow_degenerate=True)
    assert rec.chosen == rec.rejected


def test_rm_gallery_label_of_the_wrong_type_is_a_bad_label_not_a_crash():
    obj = {"evaluation_sample": {"input": [{"role": "user", "content": "q"}], "outputs": [{"content": "a", "content_label": ["chosen"]}, {"content": "b", "content_label": "rejected"}]}}
    with pytest.raises(FormatError) as e:
        read("rm-gallery", obj)
    assert (e.value.reason, e.value.field) == ("bad_label", "evaluation_sample.outputs[0].content_label")
