"""The evaluation judge through LLMClient against the OpenAI-compatible stub on 127.0.0.1."""

from __future__ import annotations

import json
import logging

import pytest

from synpref.evaluate import run_evaluation
from synpref.evaluate.items import make_item
from synpref.evaluate.judge import OpenAIJudge
from synpref.llm import LLMCache
from synpref.llm.testing import FakeOpenAIServer, scripted_judge


def length_judge(body, n):
    """The scripted judge (prefers the longer candidate), with no verdict when the conversation says GARBLE."""
    return "I really cannot say." if "GARBLE" in body["messages"][-1]["content"] else scripted_judge(body, n)


def shown_candidates(body) -> tuple[str, str]:
    user = body["messages"][-1]["content"]
    first, _, second = user.rsplit("[Candidate 1]\n", 1)[1].partition("\n\n[Candidate 2]\n")
    return first, second.rsplit("\n\nJSON:", 1)[0]


@pytest.fixture()
def server():
    with FakeOpenAIServer(length_judge, model="toy") as srv:
        yield srv


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


def _items(out_dir, model):
    rows = [json.loads(line) for line in (out_dir / "items.jsonl").read_text().splitlines()]
    return {r["item_id"].rsplit(":", 1)[-1]: r["rewards"] for r in rows if r["model"] == model}  # JudgeBench ids end in the pair id


def test_judge_on_the_same_tables_counts_unparseable_and_caches(server, tmp_path, caplog):
    data = _write_data(tmp_path)
    judge = OpenAIJudge(server.base_url, "toy", both_orders=True, seed=7, workers=2)
    with caplog.at_level(logging.WARNING, logger="synpref.evaluate.judge"):
        res = run_evaluation([], "judgebench,rm-bench", data, tmp_path / "out", judges=[judge], progress=False, resamples=20)
    entry = res["models"]["judge: toy"]
    s = entry["scoring"]
    assert s["items_judged"] == 4 and s["items_skipped_not_pairwise"] == 1 and s["questions"] == 8
    assert s["calls"] == 8 and s["from_cache"] == 0 and s["unparseable"] == 2 and s["failed"] == 0 and s["order_disagreements"] == 0
    assert s["prompt_tokens"] > 0 and s["completion_tokens"] > 0
    assert len(server.requests) == 8 and {r["model"] for r in server.requests} == {"toy"}
    assert "2 of 8 questions got an answer with no valid verdict" in caplog.text
    # verdicts: the judge prefers the longer response, in whichever order it was shown
    assert _items(tmp_path / "out", "judge: toy") == {"0": [1.0, 0.0], "1": [0.0, 1.0], "2": [0.0, 1.0], "g": [None, None]}
    jb = entry["benchmarks"]["judgebench"]
    assert jb["stats"]["gpt-4o-2024-05-13/micro"]["score"] == pytest.approx(2 / 4)  # the unparseable item counts as wrong
    base = res["models"]["length: longer wins"]["benchmarks"]["judgebench"]
    assert base["stats"]["gpt-4o-2024-05-13/micro"]["score"] == pytest.approx(3 / 4)
    rm = entry["benchmarks"]["rm-bench"]
    assert rm["score"] is None and not rm["complete"] and "skipped" in rm["reasons"][0]
    assert "judge: toy" in (tmp_path / "out" / "report.md").read_text()
    # the verdicts live in the LLM cache, not as floats in a reward cache
    cache_files = sorted(p.name for p in (tmp_path / "out" / "cache").glob("*.sqlite"))
    assert "llm_cache.sqlite" in cache_files and not [n for n in cache_files if n.startswith("judge")]
    assert LLMCache.read_totals(tmp_path / "out" / "cache" / "llm_cache.sqlite")["per_model"]["toy"]["calls"] == 8
    # a rerun (a resumed eval) reads every answer from the cache, unparseable ones included: zero new calls
    res2 = run_evaluation([], "judgebench", data, tmp_path / "out", judges=[judge], progress=False, resamples=20, write_report=False)
    s2 = res2["models"]["judge: toy"]["scoring"]
    assert len(server.requests) == 8 and s2["calls"] == 0 and s2["from_cache"] == 8 and s2["unparseable"] == 2
    assert res2["models"]["judge: toy"]["benchmarks"]["judgebench"]["score"] == jb["score"]


def test_candidate_order_is_seeded_and_is_the_order_shown(server, tmp_path):
    items = [make_item("judgebench", "math", str(i), f"q{i}", [f"first {i}", f"second {i}"], [0]) for i in range(40)]
    orders = [OpenAIJudge(server.base_url, "toy", seed=1).order(it) for it in items]
    assert orders == [OpenAIJudge(server.base_url, "other", seed=1).order(it) for it in items]  # the same for every judge
    assert orders != [OpenAIJudge(server.base_url, "toy", seed=2).order(it) for it in items]
    assert {(0, 1), (1, 0)} == set(orders)
    judge = OpenAIJudge(server.base_url, "toy", seed=1)
    scored, stats = judge.evaluate_items(items, cache_dir=tmp_path / "cache")
    assert stats["calls"] == 40 and stats["questions"] == 40
    shown = {shown_candidates(r) for r in server.requests}
    assert shown == {(f"{('first', 'second')[a]} {i}", f"{('first', 'second')[b]} {i}") for i, (a, b) in enumerate(orders)}


def test_both_orders_disagreement_is_a_tie(tmp_path):
    items = [make_item("judgebench", "math", str(i), f"q{i}", [f"one {i}", f"another {i}"], [0]) for i in range(6)]
    with FakeOpenAIServer(lambda body, n: '{"better": 1}', model="toy") as srv:  # always the candidate shown first
        scored, stats = OpenAIJudge(srv.base_url, "toy", both_orders=True).evaluate_items(items, cache_dir=tmp_path)
        assert len(srv.requests) == 12
    assert stats["order_disagreements"] == 6 and stats["ties"] == 6
    assert all(it.rewards == [0.5, 0.5] for it in scored)
    with FakeOpenAIServer(lambda body, n: '{"better": 1}', model="toy") as srv:
        scored, stats = OpenAIJudge(srv.base_url, "toy", both_orders=False).evaluate_items(items, cache_dir=tmp_path)
        assert srv.requests == []  # one order: those questions were already asked, the cache answers
    assert stats["ties"] == 0 and all(sorted(it.rewards) == [0.0, 1.0] for it in scored)


def test_failed_calls_count_as_wrong_and_are_asked_again(tmp_path, caplog):
    data = _write_data(tmp_path)
    down = {"on": True}
    with FakeOpenAIServer(lambda body, n: (503, "busy") if down["on"] else length_judge(body, n), model="toy") as srv:
        judge = OpenAIJudge(srv.base_url, "toy", retries=0)
        with caplog.at_level(logging.WARNING, logger="synpref.evaluate.judge"):
            res = run_evaluation([], "judgebench", data, tmp_path / "out", judges=[judge], baselines=False, progress=False, resamples=5, write_report=False)
        s = res["models"]["judge: toy"]["scoring"]
        assert s["failed"] == 4 and s["calls"] == 0 and res["models"]["judge: toy"]["benchmarks"]["judgebench"]["score"] == 0.0
        assert "4 of 4 questions got no answer (the call failed)" in caplog.text and "asked again on the next run" in caplog.text
        down["on"] = False
        res = run_evaluation([], "judgebench", data, tmp_path / "out", judges=[judge], baselines=False, progress=False, resamples=5, write_report=False)
        s = res["models"]["judge: toy"]["scoring"]
        assert s["failed"] == 0 and s["calls"] == 4 and s["from_cache"] == 0 and s["unparseable"] == 1


def test_unreachable_endpoint_counts_failures(tmp_path):
    data = _write_data(tmp_path)
    judge = OpenAIJudge("http://127.0.0.1:9/v1", "toy", retries=0, timeout=2)
    res = run_evaluation([], "judgebench", data, tmp_path / "out", judges=[judge], baselines=False, progress=False, resamples=5, write_report=False)
    s = res["models"]["judge: toy"]["scoring"]
    assert s["failed"] == 4 and res["models"]["judge: toy"]["benchmarks"]["judgebench"]["score"] == 0.0


def test_cli_judge_options(server, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from synpref.cli import main

    _write_data(tmp_path)
    args = ["eval", "--bench", "judgebench", "--data-dir", str(tmp_path), "-o", str(tmp_path / "o"), "--judge-endpoint", server.base_url,
            "--judge-model", "toy", "--no-hub"]
    r = CliRunner().invoke(main, args + ["--judge-both-orders", "--judge-seed", "3"])
    assert r.exit_code == 0, r.output
    assert "| judge: toy |" in r.output and len(server.requests) == 8
    monkeypatch.delenv("SYNPREF_TEST_KEY", raising=False)
    r = CliRunner().invoke(main, args + ["--judge-api-key-env", "SYNPREF_TEST_KEY"])
    assert r.exit_code == 2 and "--judge-api-key-env SYNPREF_TEST_KEY: the environment variable SYNPREF_TEST_KEY is not set" in r.output
    monkeypatch.setenv("SYNPREF_TEST_KEY", "sk-test")
    r = CliRunner().invoke(main, args + ["--judge-api-key-env", "SYNPREF_TEST_KEY"])
    assert r.exit_code == 0, r.output
    assert "| judge: toy |" in r.output and "| JudgeBench | " in r.output  # the summary table
