"""``synpref curate prep`` decontaminates by default against the benchmarks it can find, and says loudly
which it checked and which it could not."""

from __future__ import annotations

import json

from click.testing import CliRunner

from synpref.cli import main
from synpref.schema import make_pair
from synpref.store.pool import PoolWriter


def _pool(path, extra_prompt: str | None = None):
    with PoolWriter(path) as writer:
        for i in range(3):
            writer.write(make_pair(f"an ordinary question number {i}?", f"a fine answer {i}", f"a poor answer {i}"))
        if extra_prompt:
            writer.write(make_pair(extra_prompt, "yes it is", "no it is not"))
    return path


def test_prep_without_data_dir_uses_the_default_data_folders(tmp_path, shared_data, monkeypatch):
    from synpref.curate.prep import benchmark_prompts

    long_prompt = next(p for p in benchmark_prompts(shared_data, ["judgebench"])["judgebench"] if len(p.split()) > 30)
    pool = _pool(tmp_path / "pool", long_prompt)
    monkeypatch.setenv("SYNPREF_DATA_DIR", str(shared_data))
    result = CliRunner().invoke(main, ["curate", "prep", str(pool), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["contaminated_by"] == {"judgebench": 1} and report["kept"] == 3
    assert report["benchmarks_checked"]["judgebench"] == str(shared_data / "judgebench")
    assert {"judgebench", "rm-bench", "rmb", "rewardbench"} <= set(report["benchmarks_checked"])
    assert {"rewardbench2", "ppe-preference", "ppe-correctness"} <= set(report["benchmarks_not_checked"])
    assert f"judgebench ({shared_data / 'judgebench'})" in result.stderr.split("decontaminated against", 1)[1]
    assert "WARNING: NOT decontaminated against rewardbench2" in result.stderr and "--data-dir" in result.stderr
    saved = json.loads((tmp_path / "out" / "prep_report.json").read_text())
    assert saved["benchmarks_not_checked"] == report["benchmarks_not_checked"]


def test_prep_that_finds_no_benchmark_says_so(tmp_path, monkeypatch):
    pool = _pool(tmp_path / "pool")
    monkeypatch.setenv("SYNPREF_DATA_DIR", str(tmp_path / "nowhere"))
    result = CliRunner().invoke(main, ["curate", "prep", str(pool), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["benchmarks_checked"] == {} and len(report["benchmarks_not_checked"]) == 7
    assert "decontaminated against no benchmark" in result.stderr
    assert "NOT decontaminated against rewardbench, rewardbench2" in result.stderr
    assert "$SYNPREF_DATA_DIR" in report["benchmarks_not_checked"]["judgebench"]


def test_default_data_dirs(tmp_path, monkeypatch):
    from synpref.evaluate.loading import default_data_dirs

    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SYNPREF_DATA_DIR", raising=False)
    assert [str(d) for d in default_data_dirs()] == ["data"]  # ../shared/data does not exist here
    monkeypatch.setenv("SYNPREF_DATA_DIR", f"{tmp_path}/a:{tmp_path}")
    assert default_data_dirs() == [tmp_path]


def test_benchmark_prompts_are_cached_until_a_benchmark_file_changes(tmp_path, monkeypatch):
    import os
    from pathlib import Path
    from types import SimpleNamespace

    import synpref.evaluate.loading as loading
    from synpref.curate.prep import PROMPTS_CACHE, _folder_prompts, gather_benchmark_prompts

    monkeypatch.setenv("SYNPREF_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "data" / "rewardbench"
    folder.mkdir(parents=True)
    (folder / "prompts.txt").write_text("how do I sort a list of numbers in python quickly\n")
    reads = []

    def fake_load(name, folders, use_hub):
        reads.append(name)
        lines = (Path(folders[name]) / "prompts.txt").read_text().splitlines()
        return SimpleNamespace(items=[SimpleNamespace(context=[SimpleNamespace(role="user", content=t)]) for t in lines])

    monkeypatch.setattr(loading, "load_benchmark", fake_load)
    _folder_prompts.cache_clear()  # a new process, as far as the in-memory cache goes
    first = gather_benchmark_prompts(tmp_path / "data", ("rewardbench",))[0]
    assert first == {"rewardbench": ["how do I sort a list of numbers in python quickly"]} and reads == ["rewardbench"]
    assert len(list((tmp_path / "cache" / PROMPTS_CACHE).glob("rewardbench-*.json"))) == 1
    _folder_prompts.cache_clear()
    assert gather_benchmark_prompts(tmp_path / "data", ("rewardbench",))[0] == first
    assert reads == ["rewardbench"]  # the second read came from the cache
    (folder / "prompts.txt").write_text("what is the capital city of france and why\n")
    os.utime(folder / "prompts.txt", ns=(1, 1))  # a changed file (size and mtime)
    _folder_prompts.cache_clear()
    assert gather_benchmark_prompts(tmp_path / "data", ("rewardbench",))[0] == {"rewardbench": ["what is the capital city of france and why"]}
    assert reads == ["rewardbench", "rewardbench"]
    _folder_prompts.cache_clear()
