"""Reports put side by side only numbers computed on the same items.

Two real evaluation runs of tiny random BERTs on a preference file, one of 50 pairs and
one of 20 (``limit``), are merged; the merged results.json, report.md and report.html must
compare the models on the 20 pairs they share, keep each model's own run with its count,
and score the length baselines on the same items as the numbers they sit beside.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from synpref.evaluate import build_report, run_evaluation
from synpref.evaluate.report import inline_html, render_html, summary_text
from synpref.evaluate.tables import pct

LONGER = "length: longer wins"
SHORTER = "length: shorter wins"
BENCH = "pairs:prefs.jsonl"


def _pairs(n: int, tag: str) -> list[dict]:
    """Pairs whose chosen response is longer in 10 of the first 20 and in 25 of the other 30."""
    records = []
    for i in range(n):
        chosen_longer = i % 2 == 0 if i < 20 else i % 6 != 0
        long, short = f"{tag} answer {i} " + "with detail " * (3 + i % 4), f"{tag} reply {i}"
        records.append({"prompt": f"{tag} question {i}?", "chosen": long if chosen_longer else short, "rejected": short if chosen_longer else long})
    return records


def _write(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _longer_wins(records: list[dict]) -> float:
    return sum(len(r["chosen"]) > len(r["rejected"]) for r in records) / len(records)


@pytest.fixture(scope="module")
def second_bert(tmp_path_factory, tiny_bert_dir) -> str:
    """Another reward model: the tiny BERT with its reward head negated."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    model = BertForSequenceClassification.from_pretrained(tiny_bert_dir)
    with torch.no_grad():
        model.classifier.weight.neg_()
    path = tmp_path_factory.mktemp("second-bert")
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_bert_dir, second_bert):
    """(records, folder of model 1 on 50 pairs, folder of model 2 on the first 20, model names)."""
    pytest.importorskip("synpref.ingest")
    base = tmp_path_factory.mktemp("runs")
    records = _pairs(50, "q")
    pairs = _write(base / "data" / "prefs.jsonl", records)
    first, second = base / "rm", base / "other"
    run_evaluation([str(tiny_bert_dir)], [], None, first, pairs_files=[pairs], limit=50, progress=False, resamples=50)
    run_evaluation([second_bert], [], None, second, pairs_files=[pairs], limit=20, progress=False, resamples=50)
    return records, first, second, str(tiny_bert_dir), second_bert


def _results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def _rows(folder: Path, model: str) -> list[dict]:
    return [r for line in (folder / "items.jsonl").open() if (r := json.loads(line))["model"] == model]


def _accuracy(rows: list[dict]) -> float:
    return sum(r["rewards"][0] > r["rewards"][1] for r in rows) / len(rows)


def assert_side_by_side_on_same_items(results: dict) -> None:
    """Every comparable score of a benchmark has the benchmark's item count; own runs carry their own."""
    for bench, info in results["benchmarks"].items():
        for model, entry in results["models"].items():
            block = entry["benchmarks"].get(bench)
            if not block or block.get("absent") or block.get("not_comparable"):
                continue
            assert block["n_items"] == info["n_items"], (bench, model)
            own = block.get("own_items")
            for baseline in (own or {}).get("baselines_on_these_items", {}).values():
                assert baseline["n_items"] == own["n_items"], (bench, model)


def test_merge_compares_models_on_the_items_they_share(runs, tmp_path):
    records, first, second, rm, other = runs
    build_report([first, second], tmp_path, resamples=50)
    merged = _results(tmp_path)
    assert_side_by_side_on_same_items(merged)
    info = merged["benchmarks"][BENCH]
    assert info["n_items"] == 20
    assert info["comparison"]["shared_items"] == 20
    assert info["comparison"]["own_items"] == {LONGER: 50, SHORTER: 50, rm: 50, other: 20}
    blocks = {m: e["benchmarks"][BENCH] for m, e in merged["models"].items()}

    # every model (baselines too) on the first 20 pairs, the 20 both runs scored
    assert blocks[rm]["score"] == pytest.approx(_accuracy(_rows(first, rm)[:20]))
    assert blocks[other]["score"] == pytest.approx(_accuracy(_rows(second, other)))
    assert blocks[LONGER]["score"] == pytest.approx(_longer_wins(records[:20])) == pytest.approx(0.5)
    assert all(b["n_items"] == 20 and not b["complete"] for b in blocks.values())

    # the 50-pair run is kept, with its count and the baselines on those same 50 pairs
    own = blocks[rm]["own_items"]
    assert own["n_items"] == 50 and own["score"] == pytest.approx(_results(first)["models"][rm]["benchmarks"][BENCH]["score"])
    assert own["baselines_on_these_items"][LONGER]["score"] == pytest.approx(_longer_wins(records)) == pytest.approx(0.7)
    assert own["baselines_on_these_items"][LONGER]["n_items"] == 50
    assert "own_items" not in blocks[other]  # scored on exactly the shared items

    md = (tmp_path / "report.md").read_text()
    assert "on the 20 items all of them were scored on" in md
    assert "limited to 50 items" not in md and ", 50 items" not in md
    header = next(line for line in md.splitlines() if line.startswith("| Benchmark |"))
    overview = next(line for line in md.splitlines() if line.startswith("| Preference pairs"))
    cells = dict(zip(_cells(header), _cells(overview)))
    assert {m: cells[m].split(" [")[0] for m in blocks} == {m: pct(b["score"]) for m, b in blocks.items()}
    own_row = _cells(next(line for line in md.splitlines() if line.startswith(f"| {rm} | 50 |")))
    assert own_row[3].startswith(f"{pct(0.7)} [")  # longer wins on the model's own 50 pairs, beside it


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_merge_order_does_not_change_the_comparison(runs, tmp_path):
    _, first, second, rm, other = runs
    build_report([first, second], tmp_path / "ab", resamples=50)
    build_report([second, first], tmp_path / "ba", resamples=50)
    ab, ba = _results(tmp_path / "ab"), _results(tmp_path / "ba")
    for model in ab["models"]:
        assert ab["models"][model]["benchmarks"][BENCH]["score"] == pytest.approx(ba["models"][model]["benchmarks"][BENCH]["score"])
    # a baseline is the same function in both runs: the run with more items is kept
    assert ba["models"][LONGER]["benchmarks"][BENCH]["own_items"]["n_items"] == 50
    assert LONGER in ba["models"][rm]["benchmarks"][BENCH]["own_items"]["baselines_on_these_items"]


def test_rebuilding_a_merged_folder_changes_nothing(runs, tmp_path):
    _, first, second, rm, _ = runs
    merged = tmp_path / "merged"
    build_report([first, second], merged, resamples=50)
    before = _results(merged)
    build_report([merged], merged, resamples=50)
    again = _results(merged)
    assert {k: v for k, v in again.items() if k != "sources"} == {k: v for k, v in before.items() if k != "sources"}
    build_report([merged], tmp_path / "recomputed", recompute_metrics=True, resamples=50)
    recomputed = _results(tmp_path / "recomputed")
    for model, entry in before["models"].items():
        block, redo = entry["benchmarks"][BENCH], recomputed["models"][model]["benchmarks"][BENCH]
        assert redo["score"] == pytest.approx(block["score"]) and redo["n_items"] == block["n_items"]
        assert (redo.get("own_items") or {}).get("reasons") == (block.get("own_items") or {}).get("reasons")


def test_a_run_without_items_is_not_compared(runs, tmp_path):
    _, first, second, rm, other = runs
    rowless = tmp_path / "other"
    shutil.copytree(second, rowless, ignore=shutil.ignore_patterns("items.jsonl", "cache"))
    build_report([first, rowless], tmp_path / "merged", resamples=50)
    merged = _results(tmp_path / "merged")
    assert_side_by_side_on_same_items(merged)
    block = merged["models"][other]["benchmarks"][BENCH]
    assert block["score"] is None and "no items.jsonl rows" in block["not_comparable"]
    assert block["own_items"]["n_items"] == 20
    # the models with rows were all scored on the same 50 pairs: untouched
    assert merged["models"][rm]["benchmarks"][BENCH]["score"] == _results(first)["models"][rm]["benchmarks"][BENCH]["score"]
    assert merged["benchmarks"][BENCH]["comparison"]["not_comparable"] == {other: block["not_comparable"]}
    md = (tmp_path / "merged" / "report.md").read_text()
    assert "— (not comparable, see notes)" in md and f"{other}: not comparable:" in md


def test_runs_on_the_same_items_merge_unchanged(runs, tiny_bert_dir, tmp_path):
    records, first, _, rm, _ = runs
    again = tmp_path / "again"
    run_evaluation([str(tiny_bert_dir)], [], None, again, pairs_files=[first.parent / "data" / "prefs.jsonl"], limit=50, progress=False, resamples=50, baselines=False, cache_dir=first / "cache")
    build_report([first, again], tmp_path / "merged", resamples=50)
    merged = _results(tmp_path / "merged")
    assert "comparison" not in merged["benchmarks"][BENCH] and merged["benchmarks"][BENCH]["n_items"] == 50
    for model, entry in _results(first)["models"].items():
        assert merged["models"][model]["benchmarks"][BENCH] == entry["benchmarks"][BENCH]


def test_runs_without_a_shared_item_are_not_compared(runs, tiny_bert_dir, tmp_path):
    _, first, _, rm, _ = runs
    disjoint = _write(tmp_path / "data" / "prefs.jsonl", _pairs(10, "unrelated"))  # same file name, other pairs
    elsewhere = tmp_path / "elsewhere"
    run_evaluation([str(tiny_bert_dir)], [], None, elsewhere, pairs_files=[disjoint], progress=False, resamples=20, cache_dir=first / "cache")
    build_report([first, elsewhere], tmp_path / "merged", resamples=20)
    merged = _results(tmp_path / "merged")
    blocks = {m: e["benchmarks"][BENCH] for m, e in merged["models"].items()}
    # the baselines come from the larger run (50 pairs); the model's later run (10 pairs) shares none of them
    assert all(b["score"] is None and "no item was scored for every model" in b["not_comparable"] for b in blocks.values())
    assert blocks[rm]["own_items"]["n_items"] == 10 and merged["benchmarks"][BENCH]["n_items"] == 0


def test_html_renders_code_spans_and_escapes(runs, tmp_path):
    _, first, second, _, _ = runs
    build_report([first, second], tmp_path, resamples=20, plots_enabled=False)
    page = (tmp_path / "report.html").read_text()
    assert "`" not in page
    assert "<code>*</code> marks an incomplete benchmark" in page
    assert f"source: <code>{first.parent / 'data' / 'prefs.jsonl'}</code>" in page
    assert inline_html("a <b> & `x<y>` and `z`") == "a &lt;b&gt; &amp; <code>x&lt;y&gt;</code> and <code>z</code>"
    results = _results(tmp_path)
    results["benchmarks"][BENCH]["notes"] = ["odd <script>alert(1)</script> `row`"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; <code>row</code>" in render_html(results, with_plots=False)


def test_report_command_prints_a_short_table(runs, tmp_path):
    from click.testing import CliRunner

    from synpref.cli import main

    _, first, second, rm, other = runs
    out = tmp_path / "merged"
    result = CliRunner().invoke(main, ["report", str(first), str(second), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == summary_text(out)
    lines = result.output.splitlines()
    assert lines[0] == f"| Benchmark | items | {rm} | {other} | {LONGER} | {SHORTER} |"
    assert lines[2].startswith("| Preference pairs (prefs.jsonl) | 20 | ")
    assert f"full results: {out / 'results.json'}" in result.output
    assert len(lines) <= 8  # the table, a legend and where the full results are


def test_report_command_on_a_folder_that_is_no_run(tmp_path):
    from click.testing import CliRunner

    from synpref.cli import main

    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["report", str(tmp_path / "empty"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.output.strip() == f"Error: {tmp_path / 'empty'}: no results.json; give a folder written by `synpref eval`"
    assert not (tmp_path / "out").exists()
    (tmp_path / "empty" / "results.json").write_text("{not json")
    result = CliRunner().invoke(main, ["report", str(tmp_path / "empty")])
    assert result.exit_code == 2 and result.output.startswith("Error: ") and "not valid JSON" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_one_run_with_a_judge_compares_on_the_items_the_judge_saw(shared_data, tiny_bert_dir, tmp_path):
    """A judge skips RMB's best-of-N lists: beside it, the reward model and baselines are on the pairs only."""
    from synpref.evaluate.judge import OpenAIJudge
    from synpref.llm.testing import FakeOpenAIServer

    with FakeOpenAIServer(lambda body, n: "[[A]]", model="toy") as server:
        judge = OpenAIJudge(server.base_url, "toy")
        run_evaluation([str(tiny_bert_dir)], "rmb", shared_data, tmp_path, judges=[judge], limit=40, progress=False, resamples=20)
    results = _results(tmp_path)
    assert_side_by_side_on_same_items(results)
    blocks = {m: e["benchmarks"]["rmb"] for m, e in results["models"].items()}
    judged = blocks[judge.name]
    assert 0 < judged["n_items"] < 40 and "own_items" not in judged
    rm = blocks[str(tiny_bert_dir)]
    assert rm["n_items"] == judged["n_items"] and rm["own_items"]["n_items"] == 40
    pairwise_only = [r for r in _rows(tmp_path, str(tiny_bert_dir)) if len(r["rewards"]) == 2]
    assert len(pairwise_only) == judged["n_items"]
    assert set(rm["own_items"]["baselines_on_these_items"]) == {LONGER, SHORTER}
    assert results["benchmarks"]["rmb"]["comparison"]["own_items"][str(tiny_bert_dir)] == 40
