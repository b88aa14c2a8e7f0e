"""Generative judge against a real OpenAI-compatible HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from synpref.evaluate import run_evaluation
from synpref.evaluate.judge import OpenAIJudge, parse_verdict


class _LengthJudge(BaseHTTPRequestHandler):
    """Prefers the longer response; answers nonsense when the conversation says GARBLE."""

    calls = 0

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert self.path == "/v1/chat/completions" and body["model"] == "toy"
        prompt = body["messages"][-1]["content"]
        a = re.search(r"\[Response A\]\n(.*)\n\[End of Response A\]", prompt, re.DOTALL).group(1)
        b = re.search(r"\[Response B\]\n(.*)\n\[End of Response B\]", prompt, re.DOTALL).group(1)
        type(self).calls += 1
        text = "I really cannot say." if "GARBLE" in prompt else f"Thinking... A is {len(a)} long.\n[[{'A' if len(a) > len(b) else 'B'}]]"
        out = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    _LengthJudge.calls = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _LengthJudge)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def _write_data(tmp_path):
    jb = tmp_path / "judgebench"
    jb.mkdir()
    rows = []
    for i, (a, b, label) in enumerate([("long answer here", "short", "A>B"), ("x", "much longer one", "B>A"), ("tiny", "a longer wrong one", "A>B")]):
        rows.append({"pair_id": str(i), "source": "mmlu-pro-math", "question": f"q{i}", "response_model": "gpt-4o-2024-05-13", "response_A": a, "response_B": b, "label": label})
    rows.append({"pair_id": "g", "source": "livecodebench", "question": "GARBLE", "response_model": "gpt-4o-2024-05-13", "response_A": "a", "response_B": "bb", "label": "B>A"})
    (jb / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    rmb = tmp_path / "rm-bench"
    rmb.mkdir()
    (rmb / "chat_filtered.json").write_text(json.dumps([{"id": 1, "prompt": "p", "chosen": ["a", "bb", "ccc"], "rejected": ["d", "ee", "fff"]}]))
    return {"judgebench": jb, "rm-bench": rmb}


def test_parse_verdict():
    assert parse_verdict("blah [[A]] then [[B]]") == "B"
    assert parse_verdict("reasoning\nVerdict: A") == "A"
    assert parse_verdict("B") == "B"
    assert parse_verdict("no idea") is None and parse_verdict("") is None


def test_judge_on_the_same_tables_counts_unparseable_and_caches(server, tmp_path):
    data = _write_data(tmp_path)
    judge = OpenAIJudge(server, "toy", both_orders=True, seed=7, workers=2)
    res = run_evaluation([], "judgebench,rm-bench", data, tmp_path / "out", judges=[judge], progress=False, resamples=20)
    entry = res["models"]["judge: toy"]
    s = entry["scoring"]
    assert s["items_judged"] == 4 and s["items_skipped_not_pairwise"] == 1
    assert s["calls"] == 8 and s["unparseable"] == 2 and s["failed"] == 0 and s["order_disagreements"] == 0
    # The judge prefers the longer response, like the baseline; the unparseable item counts as wrong.
    jb = entry["benchmarks"]["judgebench"]
    assert jb["stats"]["gpt-4o-2024-05-13/micro"]["score"] == pytest.approx(2 / 4)
    base = res["models"]["length: longer wins"]["benchmarks"]["judgebench"]
    assert base["stats"]["gpt-4o-2024-05-13/micro"]["score"] == pytest.approx(3 / 4)
    rm = entry["benchmarks"]["rm-bench"]
    assert rm["score"] is None and not rm["complete"] and "skipped" in rm["reasons"][0]
    assert "judge: toy" in (tmp_path / "out" / "report.md").read_text()
    # a rerun reads every verdict from the cache (unparseable ones included: never silently re-asked)
    calls = _LengthJudge.calls
    res2 = run_evaluation([], "judgebench", data, tmp_path / "out", judges=[judge], progress=False, resamples=20, write_report=False)
    assert _LengthJudge.calls == calls and res2["models"]["judge: toy"]["scoring"]["from_cache"] == 8


def test_candidate_order_is_seeded(tmp_path):
    from synpref.evaluate.items import make_item

    items = [make_item("judgebench", "math", str(i), "q", ["a", "b"], [0]) for i in range(40)]
    orders = [OpenAIJudge("http://127.0.0.1:9", "m", seed=1)._order(it) for it in items]
    assert orders == [OpenAIJudge("http://127.0.0.1:9", "m", seed=1)._order(it) for it in items]
    assert {(0, 1), (1, 0)} == set(orders)


def test_unreachable_endpoint_counts_failures(tmp_path):
    data = _write_data(tmp_path)
    judge = OpenAIJudge("http://127.0.0.1:9/v1", "toy", retries=0, timeout=2)
    res = run_evaluation([], "judgebench", data, tmp_path / "out", judges=[judge], baselines=False, progress=False, resamples=5, write_report=False)
    s = res["models"]["judge: toy"]["scoring"]
    assert s["failed"] == 4 and res["models"]["judge: toy"]["benchmarks"]["judgebench"]["score"] == 0.0


def test_cli_judge_options(server, tmp_path):
    from click.testing import CliRunner

    from synpref.cli import main

    data = _write_data(tmp_path)
    r = CliRunner().invoke(
        main,
        ["eval", "--bench", "judgebench", "--data-dir", str(tmp_path), "-o", str(tmp_path / "o"), "--judge-endpoint", server, "--judge-model", "toy", "--no-hub"],
    )
    assert r.exit_code == 0, r.output
    assert "| judge: toy |" in r.output and "| JudgeBench | " in r.output  # the summary table
    assert data["judgebench"].is_dir()
