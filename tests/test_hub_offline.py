"""Without the hub (offline mode or no connection), a benchmark or model that is not on disk is reported
once, with the reason, and nothing is retried."""

from __future__ import annotations

import json
import socket
import time

import pytest
from click.testing import CliRunner

from synpref.cli import main


@pytest.fixture
def no_network(monkeypatch):
    """Offline variables unset and the hub endpoint a local port nobody listens on: like a machine without network."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    return port


def test_hub_unavailable_says_why(no_network, monkeypatch):
    from synpref.hub import hub_unavailable

    assert hub_unavailable().startswith(f"no connection to 127.0.0.1:{no_network}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_unavailable() == "offline mode: HF_HUB_OFFLINE=1 is set"


def test_eval_all_without_network_reports_each_absent_benchmark_once(no_network, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "2+2?", "chosen": "4", "rejected": "5"}) + "\n")
    started = time.perf_counter()
    result = CliRunner().invoke(main, ["eval", "--bench", "all", "--pairs", str(pairs), "-o", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output
    assert time.perf_counter() - started < 20  # no minute of hub retries
    for bench in ("rewardbench", "rewardbench2", "ppe-preference", "ppe-correctness", "rm-bench", "judgebench"):
        lines = [line for line in result.stderr.splitlines() if line.startswith(f"{bench}: absent:")]
        assert len(lines) == 1, (bench, result.stderr)
        assert f"the hub cannot be used (no connection to 127.0.0.1:{no_network}" in lines[0] and "not tried" in lines[0]
    assert "rmb: absent:" in result.stderr and "it has no hub dataset" in result.stderr
    assert "retry" not in result.output.lower()


def test_eval_with_nothing_to_evaluate_is_one_line(no_network, tmp_path):
    result = CliRunner().invoke(main, ["eval", "--bench", "judgebench", "-o", str(tmp_path / "ev")])
    assert result.exit_code == 2
    assert result.output.startswith("Error: nothing to evaluate: judgebench: no data (no --data-dir given)")
    assert "the hub cannot be used" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "ev").exists()


def test_a_hub_model_without_network_is_one_line(no_network):
    from synpref.model import ModelNotFoundError, check_reference

    started = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match=r"'acme/no-such-model' .*not in the local hub cache .*no connection to 127\.0\.0\.1"):
        check_reference("acme/no-such-model")
    assert time.perf_counter() - started < 10
