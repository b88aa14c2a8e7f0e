"""Small things users see: ingest's progress count, the reward server's request log."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from click.testing import CliRunner
from test_serve import RunningServer  # uvicorn on a loopback socket, in a thread

from synpref.cli import main


def test_ingest_progress_ends_with_the_rows_read(tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_text("".join(json.dumps({"prompt": f"q{i}", "chosen": f"yes {i}", "rejected": f"no {i}"}) + "\n" for i in range(500)))
    result = CliRunner().invoke(main, ["ingest", str(src), "-o", str(tmp_path / "pool")])
    assert result.exit_code == 0, result.output
    final = result.stderr.replace("\r", "\n").strip().splitlines()[-1]
    assert final.startswith("a.jsonl: 500 rows"), result.stderr


def test_progress_off_a_terminal_is_lines_with_counts(monkeypatch):
    import io

    from synpref import progress as progress_module

    clock = iter([0.0, 10.0, 31.0, 45.0, 70.0])
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    bar = progress_module.ProgressLines(total=300, desc="prep", unit="record", stream=out)
    for _ in range(3):
        bar.update(100)  # at 10 s (no line), 31 s (a line), 45 s (none: 14 s after it)
    bar.close()  # at 70 s: the final line
    assert out.getvalue().splitlines() == ["prep: 200/300 record (31 s, 6/s)", "prep: 300/300 record (70 s, 4/s)"]


def test_curate_prep_shows_progress_in_a_log(tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_text("".join(json.dumps({"prompt": f"q{i}", "chosen": f"yes {i}", "rejected": f"no {i}"}) + "\n" for i in range(50)))
    assert CliRunner().invoke(main, ["ingest", str(src), "-o", str(tmp_path / "pool")]).exit_code == 0
    (tmp_path / "bench").mkdir()
    result = CliRunner().invoke(main, ["curate", "prep", str(tmp_path / "pool"), "-o", str(tmp_path / "prepped"),
                                       "--data-dir", str(tmp_path / "bench")])
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert "prep: reading the benchmark prompts to decontaminate against" in lines
    assert any(line.startswith("prep: 50/50 record (") for line in lines), result.stderr


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.mark.parametrize("on", [True, False])
def test_reward_server_logs_one_line_per_request(tiny_bert_dir, on):
    from synpref.model import RewardModel
    from synpref.serve import ServeConfig, create_app
    from synpref.serve.app import access_log

    capture = _Lines()
    access_log.addHandler(capture)
    try:
        server = RunningServer(create_app(RewardModel.from_pretrained(tiny_bert_dir, device="cpu"), ServeConfig(access_log=on, api_key="k")))
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                convs = [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": f"hello {i}"}] for i in range(3)]
                assert client.post("/v1/score", json={"conversations": convs}, headers={"Authorization": "Bearer k"}).status_code == 200
                assert client.post("/v1/score", json={"conversations": convs}).status_code == 401
                assert client.get("/health").status_code == 200
        finally:
            server.stop()
    finally:
        access_log.removeHandler(capture)
    if not on:
        assert capture.lines == []
        return
    assert len(capture.lines) == 3, capture.lines
    scored, refused, health = capture.lines
    assert '"POST /v1/score" 200 ' in scored and scored.endswith(" items=3") and " ms " in scored
    assert '"POST /v1/score" 401 ' in refused and refused.endswith(" items=0")
    assert '"GET /health" 200 ' in health


def test_serve_has_a_flag_to_turn_the_log_off():
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert "--no-access-log" in result.output
