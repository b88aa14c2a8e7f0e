"""bench/gpu_check.py runs everywhere: on the CPU with --tiny every figure prints one JSON line naming it
(the GPU-only ones say why they are skipped)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("httpx")

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"


def test_gpu_check_tiny_on_cpu_prints_a_json_line_per_figure():
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--budget-s", "300"], env=env,
                         capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [json.loads(line) for line in out.stdout.splitlines()]  # every line of stdout is JSON
    assert lines and all(isinstance(x.get("figure"), str) and x["figure"] for x in lines)
    assert not [x for x in lines if "error" in x], [x for x in lines if "error" in x]
    by = {}
    for x in lines:
        by.setdefault(x["figure"], []).append(x)
    assert set(by) == {"environment", "score_agreement", "scoring", "train", "serving", "launch", "done"}
    assert "no GPU" in by["score_agreement"][0]["skipped"]
    assert {x["launch"] for x in by["launch"]} == {"ddp", "fsdp", "zero1", "zero2"} and all("NCCL" in x["skipped"] for x in by["launch"])
    trained = {(x["model"], x["trainer"], x["layout"]) for x in by["train"]}
    for model in ("qwen3-0.6b", "llama-3.2-1b"):
        assert {(model, "synpref", "padded"), (model, "synpref", "packed"), (model, "synpref", "shared prefix"),
                (model, "trl", "padded (TRL)")} <= trained
    for x in by["train"]:
        assert x["pairs_per_s"] > 0 and x["tokens_per_s"] > 0 and x["dropped"] == 0 and x["mfu"] is None
    assert by["scoring"][0]["max_score_difference"] < 1e-4  # token-budget batches score like the padded loop
    assert by["serving"][0]["errors"] == 0 and by["serving"][0]["ratio"] > 0
