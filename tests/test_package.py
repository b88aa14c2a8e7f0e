"""The top-level entry points (``from synpref import RewardModel, TrainConfig, train, ingest, read_pool``):
lazy, torch-free to import, and the README's Python tour end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ENTRY_POINTS = ("RewardModel", "TrainConfig", "train", "ingest", "read_pool")


def _python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"HF_HUB_OFFLINE": "1", "PATH": "", "PYTHONPATH": str(Path(__file__).parents[1] / "src")})
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_import_synpref_and_the_cli_stay_torch_free():
    seen = json.loads(_python(
        "import json, sys, synpref; a = 'torch' in sys.modules; import synpref.cli; from synpref import TrainConfig\n"
        "print(json.dumps({'after_synpref': a, 'after_cli': 'torch' in sys.modules, 'all': synpref.__all__,"
        " 'dir': [n for n in dir(synpref) if not n.startswith('_')]}))"))
    assert seen["after_synpref"] is False and seen["after_cli"] is False
    assert set(ENTRY_POINTS) <= set(seen["all"]) and set(ENTRY_POINTS) <= set(seen["dir"])


def test_entry_points_are_the_library_objects_in_any_import_order():
    # synpref.cli imports the synpref.train subpackage first, which Python binds as synpref.train;
    # train and ingest must still be callable as the functions.
    for first in ("import synpref.cli", "import synpref.ingest, synpref.train.trainer", "pass"):
        out = _python(
            f"{first}\n"
            "from synpref import RewardModel, TrainConfig, ingest, read_pool, train\n"
            "import synpref.ingest, synpref.model, synpref.store.pool, synpref.train.config, synpref.train.trainer as t\n"
            "assert RewardModel is synpref.model.RewardModel and TrainConfig is synpref.train.config.TrainConfig\n"
            "assert read_pool is synpref.store.pool.read_pool and callable(train) and callable(ingest)\n"
            "assert t.train is synpref.train.train\n"
            "print('ok')")
        assert out.strip() == "ok", first
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        import synpref

        synpref.nope  # noqa: B018


def test_readme_python_tour(shared_data, tmp_path):
    """The README's snippet, on real data and a tiny model: ingest -> read_pool -> train -> RewardModel."""
    pytest.importorskip("accelerate")
    from test_train import _tiny_bert

    from synpref import RewardModel, TrainConfig, ingest, read_pool, train
    from synpref.model import packaged_model_path

    tokenizer = pytest.importorskip("transformers").AutoTokenizer.from_pretrained(packaged_model_path("minilm"))
    model = _tiny_bert(tokenizer, tmp_path / "tiny-bert")
    pool = tmp_path / "pools" / "hh"
    report = ingest([shared_data / "hh-rlhf" / "train-sample"], pool, progress=False)
    assert report["read"] == report["kept"] + report["quarantined"] + report["duplicates"] and report["kept"] > 0
    records = list(read_pool(pool))
    assert len(records) == report["kept"]
    summary = train(TrainConfig(data=[str(pool)], model=model, run_dir=str(tmp_path / "runs" / "rm"), max_steps=2,
                                max_length=128, progress=False, tensorboard=False, num_threads=1, eval_fraction=0.1))
    assert summary["steps"] == 2 and summary["data"]["records"] == len(records)
    rm = RewardModel.from_pretrained(summary["model_dir"], device="cpu")
    [reward] = rm.score([[{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]])
    assert isinstance(reward, float)


def test_every_core_dependency_is_imported_by_the_package():
    """No dead dependency: each of pyproject's core dependencies is imported somewhere in src/synpref."""
    import re
    import tomllib

    root = Path(__file__).resolve().parents[1]
    deps = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    import_names = {"pyyaml": "yaml"}  # distribution name -> import name, where they differ
    source = "\n".join(p.read_text(encoding="utf-8") for p in (root / "src" / "synpref").rglob("*.py"))
    for dep in deps:
        name = re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0].lower()
        module = import_names.get(name, name.replace("-", "_"))
        assert re.search(rf"^\s*(import|from) {module}\b", source, re.M), f"{dep} is never imported"
