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
