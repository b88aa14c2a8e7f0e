"""End to end: a tiny random BERT (MiniLM tokenizer) on the shared benchmarks, caching,
resume after kill -9, report rebuild/merge, the CLI commands and --pairs files."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synpref.evaluate import build_report, run_evaluation
from synpref.evaluate.merge import merge_results

BENCHES = "rewardbench,rmb,rm-bench,judgebench"


@pytest.fixture(scope="module")
def tiny_model(tiny_bert_dir) -> str:
    return str(tiny_bert_dir)


@pytest.fixture(scope="module")
def first_run(tiny_model, shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    res = run_evaluation([tiny_model], BENCHES, shared_data, out, limit=8, progress=False, resamples=100)
    return out, res


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open()]


def test_every_benchmark_scored_and_marked_limited(first_run, tiny_model):
    _, res = first_run
    entry = res["models"][tiny_model]
    assert set(res["models"]) == {tiny_model, "length: longer wins", "length: shorter wins"}
    for bench in BENCHES.split(","):
        block = entry["benchmarks"][bench]
        assert block["n_items"] == 8 and 0.0 <= block["score"] <= 1.0
        assert block["complete"] is False and "limited to 8 items" in block["reasons"]
        assert block["ci95"][0] <= block["score"] <= block["ci95"][1]
    assert entry["benchmarks"]["rm-bench"]["missing"] == ["math"]
    assert entry["overall"]["score"] is None
    for absent in ("rewardbench2", "ppe-preference", "ppe-correctness"):
        assert absent not in entry["benchmarks"]  # not asked for


def test_items_file_is_enough_to_recompute_every_metric(first_run, tmp_path):
    out, res = first_run
    rows = _rows(out / "items.jsonl")
    assert len(rows) == 3 * 4 * 8
    assert all(set(r) >= {"model", "benchmark", "subset", "item_id", "rewards", "correct"} for r in rows)
    build_report([out], tmp_path, recompute_metrics=True)
    again = json.loads((tmp_path / "results.json").read_text())
    for model, entry in res["models"].items():
        for bench, block in entry["benchmarks"].items():
            assert again["models"][model]["benchmarks"][bench]["score"] == pytest.approx(block["score"])


def test_report_files_are_self_contained(first_run):
    out, _ = first_run
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert "length: longer wins" in md and "RM-Bench" in md and "limited to 8 items" in md
    assert "<script src" not in html and "<link" not in html and "<img src=\"http" not in html
    pytest.importorskip("matplotlib", reason="plots need matplotlib; tables were checked")
    assert html.count("data:image/png;base64,") >= 6  # overview, 4 subset bars, RM-Bench heatmap


def test_second_run_reads_the_cache_and_gives_identical_rewards(first_run, tiny_model, shared_data, tmp_path):
    out, _ = first_run
    res2 = run_evaluation([tiny_model], BENCHES, shared_data, tmp_path, limit=8, progress=False, resamples=100, cache_dir=out / "cache", write_report=False)
    scoring = res2["models"][tiny_model]["scoring"]
    assert scoring["scored"] == 0 and scoring["from_cache"] == scoring["distinct_texts"] > 0
    first = {(r["model"], r["item_id"]): r["rewards"] for r in _rows(out / "items.jsonl")}
    second = {(r["model"], r["item_id"]): r["rewards"] for r in _rows(tmp_path / "items.jsonl")}
    assert first == second


def test_merge_reports_without_rescoring(first_run, tiny_model, shared_data, tmp_path):
    out, _ = first_run
    other = tmp_path / "jb"
    run_evaluation([tiny_model], "judgebench", shared_data, other, limit=4, progress=False, resamples=10, baselines=False, cache_dir=out / "cache")
    merged_dir = tmp_path / "merged"
    build_report([out, other], merged_dir)
    own = merge_results([merged_dir]).results
    # judgebench comes from the later folder, the rest from the first
    assert own["models"][tiny_model]["benchmarks"]["judgebench"]["n_items"] == 4
    assert own["models"][tiny_model]["benchmarks"]["rmb"]["n_items"] == 8
    # the baselines (8 judgebench items, first run) sit beside the model on the 4 items both runs scored
    merged = json.loads((merged_dir / "results.json").read_text())
    assert merged["benchmarks"]["judgebench"]["comparison"]["shared_items"] == 4
    longer = merged["models"]["length: longer wins"]["benchmarks"]
    assert longer["judgebench"]["n_items"] == 4 and longer["judgebench"]["own_items"]["n_items"] == 8
    assert longer["rmb"]["n_items"] == 8 and "own_items" not in longer["rmb"] and "comparison" not in merged["benchmarks"]["rmb"]
    assert (merged_dir / "report.html").is_file()


_KILL_SCRIPT = """
import sys
from synpref.evaluate import run_evaluation
run_evaluation([sys.argv[1]], "judgebench", sys.argv[2], sys.argv[3], limit=400, progress=False, baselines=False, write_report=False)
"""


def test_resume_after_kill_minus_9_does_not_rescore(tiny_model, shared_data, tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, tiny_model, str(shared_data), str(out)], env=env)
    committed = 0
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            dbs = list((out / "cache").glob("*.sqlite")) if (out / "cache").is_dir() else []
            if dbs:
                try:
                    committed = sqlite3.connect(dbs[0]).execute("SELECT COUNT(*) FROM rewards").fetchone()[0]
                except sqlite3.Error:
                    committed = 0
                if committed >= 256:
                    break
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    if committed < 256 and proc.returncode == 0:  # a fast machine finished first: the cache is full
        committed = sqlite3.connect(next((out / "cache").glob("*.sqlite"))).execute("SELECT COUNT(*) FROM rewards").fetchone()[0]
    assert committed >= 256, "the killed run committed no chunk"
    res = run_evaluation([tiny_model], "judgebench", shared_data, out, limit=400, progress=False, baselines=False, resamples=10, write_report=False)
    scoring = res["models"][tiny_model]["scoring"]
    assert scoring["from_cache"] >= committed
    assert scoring["scored"] == scoring["distinct_texts"] - scoring["from_cache"]


def test_pairs_file_through_the_format_readers(tiny_model, shared_data, tmp_path):
    path = shared_data / "ultrafeedback-binarized-sample" / "eval_clean.jsonl"
    res = run_evaluation([tiny_model], [], None, tmp_path, pairs_files=[path], limit=10, progress=False, resamples=50)
    block = res["models"][tiny_model]["benchmarks"]["pairs:eval_clean.jsonl"]
    assert block["n_items"] == 10 and block["ci95"] is not None and 0 <= block["score"] <= 1


def test_cli_eval_and_report(tiny_model, shared_data, tmp_path):
    from click.testing import CliRunner

    from synpref.cli import main

    out = tmp_path / "cli"
    runner = CliRunner()
    r = runner.invoke(main, ["eval", tiny_model, "--bench", "judgebench,rewardbench2", "--data-dir", str(shared_data), "-o", str(out), "--limit", "4", "--no-hub"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert f"| Benchmark | items | {tiny_model} |" in r.output  # (progress bars on stderr may share its line)
    assert any(line.startswith("| RewardBench 2 | — | absent |") for line in lines)
    assert any(line.startswith("| JudgeBench | 4 | ") for line in lines)
    assert f"full results: {out / 'results.json'}" in r.output
    r = runner.invoke(main, ["report", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "report.md").is_file() and "| JudgeBench | 4 | " in r.output
