"""Unit tests of the curation pieces: prep, verification files, judges' vote, retrieval rule, Stage 2 rule."""

import json

import pytest

from synpref.curate import JudgePanel, export_verification, import_verification, k_for, prep, stage2_decide
from synpref.curate.judges import combine, majority
from synpref.curate.util import flip
from synpref.llm import Endpoint, LLMCache, LLMClient
from synpref.llm.testing import FakeOpenAIServer, scripted_judge
from synpref.schema import Message, Record, make_pair
from synpref.store.pool import PoolWriter, read_pool


def pairs(n, prefix="q"):
    return [make_pair(f"{prefix} question number {i} about topic {i % 5}?", f"A long and careful answer {i} " * 3, f"short {i}")
            for i in range(n)]


# -- prep -------------------------------------------------------------------------------------
def test_prep_reasons_side_file_and_counts(tmp_path):
    base = pairs(6)
    bench_prompt = "please explain in detail how the quick brown fox jumps over the lazy dog every single morning at dawn"
    contaminated = make_pair(f"Question: {bench_prompt.upper()} thanks", "answer one here", "answer two here")
    empty = Record((Message("user", "hi"),), ((Message("assistant", "  "),), (Message("assistant", "x"),)))
    tie = Record((Message("user", "tie?"),), ((Message("assistant", "a"),), (Message("assistant", "b"),)), kind="tie")
    near = make_pair(base[0].context[0].content, base[0].candidates[0][-1].content + " !", base[0].candidates[1][-1].content)
    with PoolWriter(tmp_path / "pool") as w:
        w.write_all(base + [base[1], contaminated, empty, tie, near])
    (tmp_path / "prompts.txt").write_text(bench_prompt + "\n")
    rep = prep(tmp_path / "pool", tmp_path / "out", extra_prompts=[tmp_path / "prompts.txt"], near_dup=True, near_dup_threshold=0.8)
    assert rep["read"] == 11 and rep["kept"] == 6
    assert rep["removed"] == {"contaminated": 1, "duplicate": 1, "empty_response": 1, "near_duplicate": 1, "not_a_pair": 1}
    assert rep["contaminated_by"] == {"file:prompts.txt": 1}
    removed = [json.loads(x) for x in (tmp_path / "out" / "removed.jsonl").read_text().splitlines()]
    assert sorted(r["reason"] for r in removed) == sorted(rep["removed"])
    assert all("record" in r and r["id"] for r in removed)  # nothing lost
    assert [r.id for r in read_pool(tmp_path / "out")] == [r.id for r in base]
    with pytest.raises(FileExistsError):
        prep(tmp_path / "pool", tmp_path / "out")


def test_prep_decontaminates_against_shared_benchmarks(tmp_path, shared_data):
    from synpref.curate.prep import benchmark_prompts

    prompts = benchmark_prompts(shared_data, ["judgebench"])
    long_prompt = next(p for p in prompts["judgebench"] if len(p.split()) > 30)
    with PoolWriter(tmp_path / "pool") as w:
        w.write_all(pairs(3) + [make_pair(long_prompt, "yes it is", "no it is not")])
    rep = prep(tmp_path / "pool", tmp_path / "out", data_dir=shared_data)
    assert rep["removed"] == {"contaminated": 1} and rep["contaminated_by"] == {"judgebench": 1}
    assert set(rep["decontamination_sources"]) >= {"judgebench", "rm-bench", "rmb", "rewardbench"}


# -- verification files -----------------------------------------------------------------------
def test_export_contract_and_priority(tmp_path):
    recs = pairs(3)
    attrs = [
        {"task_category": "chat", "objectivity": "subjective", "controversiality": "high", "desired_attributes": ["x"], "guideline": "g"},
        {"task_category": "math", "objectivity": "objective", "controversiality": "medium", "desired_attributes": ["x"], "guideline": "g"},
        {"task_category": "math", "objectivity": "objective", "controversiality": "low", "desired_attributes": ["x"], "guideline": "g"},
    ]
    items = [{"record": r, "attributes": a, "llm_precheck": {"label": "A", "confidence": 0.75}} for r, a in zip(recs, attrs)]
    items.append({"record": pairs(1, "z")[0]})
    path = export_verification(tmp_path, items)
    assert path == tmp_path / "verification" / "pending" / "batch-000.jsonl"
    assert (tmp_path / "verification" / "pending" / "batch-000.csv").is_file()
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["pair_id"] for r in rows] == [recs[2].id, recs[1].id, recs[0].id, items[3]["record"].id]
    assert [r["priority"] for r in rows] == [0, 1, 2, 3]
    r0 = rows[0]
    assert set(r0) == {"pair_id", "batch", "priority", "context", "response_a", "response_b", "attributes", "llm_precheck"}
    assert r0["batch"] == "batch-000" and r0["context"] == [{"role": "user", "content": recs[2].context[0].content}]
    assert r0["response_a"] == recs[2].candidates[0][-1].content and r0["response_b"] == recs[2].candidates[1][-1].content
    assert rows[3]["attributes"] is None and rows[3]["llm_precheck"] is None
    assert export_verification(tmp_path, items[:1]).name == "batch-001.jsonl"


def test_import_idempotent_majority_and_tie(tmp_path):
    d = tmp_path / "verification" / "decisions"
    d.mkdir(parents=True)
    t = "2026-01-01T00:00:00Z"
    rows1 = [
        {"pair_id": "p1", "decision": "A", "annotator": "ann1", "time": t, "note": None},
        {"pair_id": "p2", "decision": "A", "annotator": "ann1", "time": t, "note": None},
        {"pair_id": "p3", "decision": "undecidable", "annotator": "ann1", "time": t, "note": "unclear"},
        {"pair_id": "p4", "decision": "maybe", "annotator": "ann1", "time": t, "note": None},
    ]
    rows2 = [
        {"pair_id": "p1", "decision": "A", "annotator": "ann1", "time": t, "note": None},  # the same decision again: counts once
        {"pair_id": "p2", "decision": "B", "annotator": "ann2", "time": t, "note": None},  # 1-1: no strict majority -> disputed
        {"pair_id": "p1", "decision": "B", "annotator": "ann2", "time": t, "note": None},
        {"pair_id": "p1", "decision": "A", "annotator": "ann3", "time": t, "note": None},  # 2-1 majority A
    ]
    (d / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows1))
    (d / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows2))
    rep = import_verification(tmp_path)
    dec = rep["decisions"]
    assert dec["p1"]["decision"] == "A" and dec["p1"]["votes"] == {"A": 2, "B": 1}
    assert dec["p2"]["decision"] == "disputed" and dec["p3"]["decision"] == "undecidable"
    assert "p4" not in dec and rep["invalid_rows"] == 1
    assert import_verification(tmp_path)["decisions"] == dec  # idempotent


# -- judges -----------------------------------------------------------------------------------
def test_majority_and_combine():
    assert majority(["A", "A", "B"]) == "A" and majority(["A", "B"]) is None and majority([None]) is None
    votes = [{"model": "m1", "vote": v} for v in ("A", "A", "B")] + [{"model": "m2", "vote": v} for v in ("B", "B", None)]
    j = combine(votes)
    assert j.per_model == {"m1": "A", "m2": "B"} and j.label is None and j.confidence == 0.0
    votes += [{"model": "m3", "vote": "A"}]
    j = combine(votes)
    assert j.label == "A" and j.confidence == pytest.approx(3 / 6)


def test_panel_seeded_order_and_orientation(tmp_path):
    recs = pairs(12)
    with FakeOpenAIServer(scripted_judge) as s1, FakeOpenAIServer(scripted_judge) as s2:
        cache = LLMCache(tmp_path / "c.sqlite")
        clients = [LLMClient(Endpoint(s.base_url, "fake", name=f"m{i}", params={"temperature": 0.7, "seed": 1}), cache)
                   for i, s in enumerate((s1, s2))]
        panel = JudgePanel(clients, n_samples=3, seed=7)
        out = panel.judge_many([{"record": r} for r in recs] + [{"record": flip(r)} for r in recs[:3]])
        # the scripted judge prefers the longer answer = candidate 0 of `recs`, whatever order it was shown in
        assert all(j.label == "A" and j.confidence == 1.0 for j in out[:12])
        assert all(j.label == "B" for j in out[12:])
        orders = [v["order"] for j in out for v in j.votes]
        assert set(orders) == {"ab", "ba"}  # both presentation orders occur
        assert len(out[0].votes) == 6 and out[0].per_model == {"m0": "A", "m1": "A"}
        n = len(s1.requests) + len(s2.requests)
        assert n == 15 * 6
        # same seed: identical questions, all answered from the cache
        again = JudgePanel(clients, n_samples=3, seed=7).judge_many([{"record": r} for r in recs])
        assert [j.to_dict() for j in again] == [j.to_dict() for j in out[:12]]
        assert len(s1.requests) + len(s2.requests) == n
        # the prompt shows "Candidate 1/2", the guideline and the examples
        ex = [{"record": recs[1], "label": "A", "attributes": {"task_category": "qa", "guideline": "be right"}}]
        panel.judge_many([{"record": recs[0], "examples": ex, "attributes": {"guideline": "prefer detail"}}])
        user = s1.requests[-1]["messages"][-1]["content"]
        assert "[Candidate 1]" in user and "[Candidate 2]" in user and "Guideline: prefer detail" in user and "Example 1" in user


# -- retrieval and Stage 2 rule -----------------------------------------------------------------
def test_k_rule():
    assert [k_for(p) for p in (0.1, 0.5, 0.51, 0.75, 0.9, 0.99, 1.0)] == [8, 8, 4, 2, 1, 1, 0]


def test_neighbour_index_exact():
    import numpy as np

    from synpref.curate import NeighbourIndex

    v = np.eye(4, dtype="float32")
    v[3] = [0.9, 0.1, 0, 0]
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    idx = NeighbourIndex(["a", "b", "c", "d"], v)
    hits = idx.search(v[:1], 2)
    assert [h[0] for h in hits[0]] == ["a", "d"]
    ex = idx.search(v[:1], 2, exclude={"a"})[0]
    assert ex[0][0] == "d" and len(ex) == 2 and "a" not in [h[0] for h in ex]


def test_streamed_top_k_is_the_exact_search_over_all_chunks():
    import numpy as np

    from synpref.curate.retrieval import top_k_streaming

    rng = np.random.default_rng(0)
    v = rng.normal(size=(300, 8)).astype("float32")
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    v[7] = v[3]  # a tie: the lower row comes first
    rows = np.arange(300) + 1000  # candidates are named by their rows
    chunks = ((rows[a : a + 37], v[a : a + 37]) for a in range(0, 300, 37))
    got = top_k_streaming(v[[3, 50, 299]], chunks, 5)
    sims = v[[3, 50, 299]] @ v.T
    for q, hits in enumerate(got):
        order = sorted(range(300), key=lambda i: (-sims[q, i], i))[:5]
        assert [r for r, _ in hits] == [1000 + i for i in order]
        assert [s for _, s in hits] == pytest.approx([float(sims[q, i]) for i in order], abs=1e-6)
    assert [r for r, _ in got[0][:2]] == [1003, 1007]
    assert top_k_streaming(v[:2], iter([]), 3) == [[], []]


def test_pool_batches_from_any_row_and_atomic_parts(tmp_path):
    from synpref.store.pool import iter_pool_batches, write_pool_part

    recs = pairs(50)
    with PoolWriter(tmp_path / "p", row_group_size=7, rows_per_shard=20) as w:  # 3 shards of row groups of 7
        w.write_all(recs)
    for start in (0, 1, 6, 7, 8, 19, 20, 21, 34, 49, 50):
        got = [i for b in iter_pool_batches(tmp_path / "p", batch_size=6, start=start, columns=["id"]) for i in b.column("id").to_pylist()]
        assert got == [r.id for r in recs[start:]], start
    assert write_pool_part(tmp_path / "one" / "part-00003.parquet", recs[:4]) == 4
    assert [r.id for r in read_pool(tmp_path / "one")] == [r.id for r in recs[:4]]
    assert [p.name for p in (tmp_path / "one").iterdir()] == ["part-00003.parquet"]  # no temporary file left


@pytest.mark.parametrize("p_cur,p_gold,judge,expected", [
    (0.9, 0.8, None, ("keep", "A")),
    (0.9, 0.3, None, ("discard", "A")),
    (0.4, 0.8, "A", ("keep", "A")),
    (0.4, 0.8, "B", ("discard", "A")),  # gold agrees, but neither judges nor the current RM
    (0.4, 0.2, "B", ("flip", "B")),
    (0.4, 0.2, None, ("flip", "B")),  # current RM (p<0.5) supports the flip
    (0.55, 0.2, "A", ("discard", "A")),  # in the band: judged; gold disagrees, nobody supports the flip
    (0.55, 0.8, None, ("keep", "A")),  # in the band, judges undecided, current RM leans to the label
])
def test_stage2_rule(p_cur, p_gold, judge, expected):
    dec, reason, final = stage2_decide("A", p_cur, p_gold, judge, band=0.1)
    assert (dec, final) == expected and reason
    # the same rule for a pair whose current label is B
    dec_b, _, final_b = stage2_decide("B", p_cur, p_gold, {"A": "B", "B": "A"}.get(judge), band=0.1)
    assert dec_b == dec and final_b == {"A": "B", "B": "A"}[final]


def test_embedder_minilm():
    from synpref.curate import Embedder, pair_text

    e = Embedder("minilm")
    recs = pairs(3)
    v = e.encode([pair_text(r, {"task_category": "qa"}) for r in recs])
    assert v.shape == (3, 384)
    assert abs(float((v[0] ** 2).sum()) - 1) < 1e-4


def test_example_configs_load_and_bad_keys_fail(tmp_path):
    from pathlib import Path

    from synpref.curate.config import load_config

    files = sorted((Path(__file__).resolve().parents[1] / "configs" / "curate").glob("*.yaml"))
    assert len(files) >= 3
    for f in files:
        cfg = load_config(f)
        assert cfg.stage2.enabled and isinstance(cfg.stage2.band, float)
    with pytest.raises(ValueError, match="unknown curation config key"):
        load_config({"pool": "x", "stage3": {}})
    with pytest.raises(ValueError, match="stage1.human"):
        load_config({"pool": "x", "stage1": {"human": "crowd"}})
