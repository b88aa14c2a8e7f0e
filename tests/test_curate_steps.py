"""The run as streaming steps: memory bounded by the batch, resume at the first unfinished batch after
kill -9 at seeded points, the pairs step's set semantics, the planner's hook in the summary."""

import gc
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import yaml

from synpref.curate.run import run_curation
from synpref.curate.util import flip, read_jsonl
from synpref.llm.testing import FakeOpenAIServer, scripted_judge
from synpref.schema import Record
from synpref.store.pool import PoolWriter, read_pool
from test_curate_run import config, make_pools


def _stage2_only(tmp_path, url, tiny_bert_dir, batch_size, **over):
    base = {"stage1": {"iterations": 0}, "engine": {"batch_size": batch_size}, "judge": {"n_samples": 1, "max_examples": 2},
            "stage2": {"current_rm_pairs": 32, "current_rm_folds": 2, "band": 0.05, "recycle_flips": False}}
    for k, v in over.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    return config(tmp_path, url, tiny_bert_dir, **base)


def _alive() -> tuple[int, int, int]:
    """Records, score-like rows (dicts with p_current) and judgement rows (dicts with votes) alive now."""
    recs = scores = judgements = 0
    for o in gc.get_objects():
        t = type(o)
        if t is Record:
            recs += 1
        elif t is dict:
            if "p_current" in o:
                scores += 1
            elif "votes" in o and "confidence" in o:
                judgements += 1
    return recs, scores, judgements


def test_every_step_holds_one_batch_not_the_pool(tmp_path, tiny_bert_dir, monkeypatch):
    """Structural: at every point where a step works on a batch (writing a part, scoring, judging,
    embedding), the records, scores and judgements alive are a few batches' worth, never the pool's."""
    import synpref.curate.judges as judges
    import synpref.curate.parts as parts
    import synpref.curate.retrieval as retrieval
    import synpref.curate.rm as rm
    import synpref.curate.runner as runner
    import synpref.curate.steps.pairs as pairs_step
    import synpref.curate.steps.stage2.write as write_step

    batch, n_gold, n_pool = 16, 8, 240
    make_pools(tmp_path, n=n_pool, n_gold=n_gold)
    where = {"step": None}
    peaks: dict[str, list[int]] = {}

    def sample():
        if where["step"] is not None:
            now = _alive()
            peak = peaks.setdefault(where["step"], [0, 0, 0, 0])
            peak[:3] = [max(a, b) for a, b in zip(peak, now)]
            peak[3] += 1

    def spy(owner, name):
        real = getattr(owner, name)

        def wrapped(*a, **kw):
            out = real(*a, **kw)
            sample()
            return out

        monkeypatch.setattr(owner, name, wrapped)

    real_run_batches = runner.Runner._run_batches

    def run_batches(self, step):
        where["step"] = step.name
        try:
            return real_run_batches(self, step)
        finally:
            where["step"] = None

    monkeypatch.setattr(runner.Runner, "_run_batches", run_batches)
    spy(parts.PartDir, "write")
    spy(pairs_step, "write_pool_part")
    spy(write_step, "write_pool_part")
    spy(rm.RMScorer, "probs")
    spy(retrieval.Embedder, "encode")
    spy(judges.JudgePanel, "judge_many")
    gc.collect()
    with FakeOpenAIServer(scripted_judge) as srv:
        summ = run_curation(_stage2_only(tmp_path, srv.base_url, tiny_bert_dir, batch), tmp_path / "run")
    assert summ["status"] == "done" and sum(summ["stage2"].values()) == n_pool
    batches = -(-n_pool // batch)
    for step in ("pairs", "attributes", "embed", "stage2/score", "stage2/judge", "stage2/decide", "stage2/write"):
        recs, scores, judgements, samples = peaks[step]
        assert samples >= batches, f"{step}: sampled {samples} times for {batches} batches"
        assert recs <= 3 * batch + n_gold, f"{step}: {recs} records alive at once (batch {batch}, pool {n_pool})"
        assert scores <= 6 * batch, f"{step}: {scores} score rows alive at once"
        assert judgements <= 4 * batch, f"{step}: {judgements} judgements alive at once"
    assert n_pool > 3 * batch + n_gold  # holding the pool would have failed


# -- kill -9 at seeded points -------------------------------------------------------------------------
DRIVER = textwrap.dedent('''
    """Run a curation and SIGKILL it at one point: python driver.py CONFIG RUN_DIR STEP BATCH POINT K."""
    import os, signal, sys

    from synpref.curate import parts, retrieval, rm, runner
    from synpref.curate.run import run_curation
    import synpref.curate.steps.pairs as pairs_step
    import synpref.curate.steps.stage2.write as write_step
    import synpref.llm.client as client

    cfg, run_dir, step, batch, point, k = sys.argv[1:7]
    batch, k = int(batch), int(k)
    where = {"step": None, "batch": None, "count": 0}

    def here():
        return where["step"] == step and where["batch"] == batch

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    real_run_batches = runner.Runner._run_batches
    def run_batches(self, s):
        real = s.run_batch
        def run_batch(ctx, n):
            where.update(step=s.name, batch=n, count=0)
            return real(ctx, n)
        s.run_batch = run_batch
        return real_run_batches(self, s)
    runner.Runner._run_batches = run_batches

    def after(owner, name, point_name):
        real = getattr(owner, name)
        def wrapped(*a, **kw):
            out = real(*a, **kw)
            if point == point_name and here():
                where["count"] += 1
                if where["count"] >= k:
                    die()
            return out
        setattr(owner, name, wrapped)

    real_chat = client.LLMClient.chat
    async def chat(self, *a, **kw):  # killed with the batch's other calls still in flight
        out = await real_chat(self, *a, **kw)
        if point == "llm" and here() and not out.cached:
            where["count"] += 1
            if where["count"] >= k:
                die()
        return out
    client.LLMClient.chat = chat
    after(retrieval.Embedder, "encode", "encode")   # mid-embed: the batch's vectors made, not yet in the memory map
    after(rm.RMScorer, "probs", "probs")            # mid-score: after the k-th model scored the batch
    after(parts.PartDir, "write", "part")           # a part renamed into place, the batch not yet marked done
    after(pairs_step.SeenIds, "add", "part")        # the same for the pairs step (its part and its ids in the seen set)
    after(write_step, "write_pool_part", "output")  # mid-write: some output pools' parts written, not the ledger
    print(run_curation(cfg, run_dir)["status"])
''')


def _outputs(run: Path) -> dict:
    ledger = {e["pair_id"]: (e["decision"], e["final_label"], e["reason"], e.get("p_current"), e.get("p_gold"), e["output_id"])
              for e in read_jsonl(run / "ledger" / "stage2.jsonl")}
    pools = {name: [r.id for r in read_pool(run / name)] if any((run / name).glob("part-*.parquet")) else []
             for name in ("curated", "recycled", "gold")}
    return {"ledger": ledger, "pools": pools}


def test_sigkill_at_seeded_points_resumes_at_the_unfinished_batch(tmp_path, tiny_bert_dir):
    """kill -9 mid-pairs, mid-embed, mid-score, mid-judge, mid-decide and mid-write (seeded batches and calls), rerun
    after each: the run resumes at the killed batch, pays no completed LLM call twice, and ends with the
    ledger, output pools and paid calls of an uninterrupted run."""
    batch = 8
    _pool, _gold, noisy = make_pools(tmp_path, n=40, n_gold=6)
    gold_recs = list(read_pool(tmp_path / "gold"))
    with PoolWriter(tmp_path / "with_repeats") as w:  # prep off: the pairs step meets duplicates and gold pairs itself
        w.write_all(noisy[:20] + [noisy[3], gold_recs[0]] + noisy[20:] + [noisy[30], noisy[3]])
    (tmp_path / "driver.py").write_text(DRIVER)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"), os.environ.get("PYTHONPATH", "")])}
    rng = random.Random(12)
    pool_batches = range(2, 1 + -(-44 // batch))  # batch 0 is the gold pool's; from 2 on, a kill finds a batch done
    points = [("pairs", rng.choice(pool_batches), "part", 1), ("embed", rng.choice(pool_batches), "encode", 1),
              ("stage2/score", rng.choice(pool_batches), "probs", rng.randint(1, 2)),
              ("stage2/judge", rng.choice(pool_batches), "llm", rng.randint(1, 3)), ("stage2/decide", rng.choice(pool_batches), "part", 1),
              ("stage2/write", rng.choice(pool_batches), "output", 1)]
    with FakeOpenAIServer(scripted_judge, delay=0.02) as srv:
        cfg = _stage2_only(tmp_path, srv.base_url, tiny_bert_dir, batch, pool=str(tmp_path / "with_repeats"), prep={"enabled": False},
                           stage2={"band": 1.0})
        (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
        run = tmp_path / "run"
        completed_before_kill: list[set] = []
        resumed_at = []
        for step, n, point, k in points:
            n_before = len(srv.completed)
            res = subprocess.run([sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "cfg.yaml"), str(run), step, str(n), point, str(k)],
                                 env=env, capture_output=True, text=True, timeout=600)
            assert res.returncode == -signal.SIGKILL, f"not killed at {step} batch {n} ({point} {k}): {res.stdout[-500:]} {res.stderr[-2000:]}"
            state = json.loads((run / "state.json").read_text())
            assert step not in state["steps"]
            done = state["batches"][step]["done"]
            position = n if step in ("pairs", "embed", "stage2/write") else n - 1  # these also go through the gold pool's batch 0
            assert done == position, (step, n, done)  # every batch before the killed one is done, not the killed one
            resumed_at.append(f"{step}: resuming at batch {done + 1} of ")
            completed_before_kill.append({json.dumps(b, sort_keys=True) for b in srv.completed[n_before:]})
        n_chain = len(srv.requests)
        res = subprocess.run([sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "cfg.yaml"), str(run), "none", "-1", "none", "0"],
                             env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0 and res.stdout.strip().endswith("done"), res.stderr[-2000:]
        chain_bodies = [json.dumps(b, sort_keys=True) for b in srv.requests]
        log = (run / "run.log").read_text()
        for line in resumed_at:  # each killed step went on from the batch it was killed in, not from its start
            assert line in log, line
        n_ref0 = len(srv.requests)
        ref = run_curation(cfg, tmp_path / "ref")
        ref_bodies = [json.dumps(b, sort_keys=True) for b in srv.requests[n_ref0:]]
    assert ref["status"] == "done"
    assert _outputs(run) == _outputs(tmp_path / "ref")
    summ = json.loads((run / "summary.json").read_text())
    assert summ["stage2"] == ref["stage2"] and summ["pairs"] == ref["pairs"]
    assert summ["pairs"]["duplicates"] == 3 and summ["pairs"]["in_gold"] == 1
    # paid calls: the chain asked each of the reference run's questions, and re-asked at most those in
    # flight at the kill during the judge step (the endpoint's concurrency, 2)
    assert set(chain_bodies) == set(ref_bodies)
    assert len(chain_bodies) <= len(ref_bodies) + 2, (len(chain_bodies), len(ref_bodies), n_chain)
    assert summ["llm_cumulative"]["calls"] == ref["llm_cumulative"]["calls"] == len(ref_bodies)
    assert completed_before_kill[3]  # the judge-step kill came after some answers of that batch


def test_pairs_step_keeps_a_set_of_pairs_and_counts_the_rest(tmp_path, tiny_bert_dir):
    """prep off: a duplicate pair, and a pool pair that is also in the gold pool, are left out and counted."""
    _pool, _gold, noisy = make_pools(tmp_path, n=10, n_gold=3)
    gold = list(read_pool(tmp_path / "gold"))
    with PoolWriter(tmp_path / "with_repeats") as w:
        w.write_all(noisy + [noisy[2], gold[1], flip(noisy[4])])  # a flipped pair is another pair
    cfg = config(tmp_path, "http://127.0.0.1:9/v1", tiny_bert_dir, pool=str(tmp_path / "with_repeats"), prep={"enabled": False},
                 stage1={"iterations": 0},
                 stage2={"enabled": False}, attributes={"enabled": False}, judge={"max_examples": 0}, engine={"batch_size": 4})
    summ = run_curation(cfg, tmp_path / "run")
    assert summ["pairs"] == {"read": 16, "kept": 14, "duplicates": 1, "in_gold": 1, "gold_pairs": 3, "pool_pairs": 11, "batches": 5}
    manifest = json.loads((tmp_path / "run" / "pairs" / "manifest.json").read_text())
    assert manifest == {"batch_size": 4, "gold_batches": 1, "sizes": [3, 4, 4, 2, 1]}
    ids = [r.id for r in read_pool(tmp_path / "run" / "pairs")]
    assert ids == [r.id for r in gold] + [r.id for r in noisy] + [flip(noisy[4]).id]


def test_the_plan_predictions_sit_beside_what_stage2_decided(tmp_path, tiny_bert_dir):
    make_pools(tmp_path, n=16, n_gold=4)
    predicted = {"keep_fraction": 0.6, "discard_fraction": 0.3, "flip_fraction": 0.1}
    (tmp_path / "run" / "plan").mkdir(parents=True)
    (tmp_path / "run" / "plan" / "plan.json").write_text(json.dumps({"predicted": predicted}))
    with FakeOpenAIServer(scripted_judge) as srv:
        summ = run_curation(_stage2_only(tmp_path, srv.base_url, tiny_bert_dir, 8, attributes={"enabled": False},
                                         judge={"max_examples": 0}), tmp_path / "run")
    plan = summ["plan"]
    assert plan["predicted"] == predicted and plan["file"].endswith("plan/plan.json")
    counts = Counter(e["decision"] for e in read_jsonl(tmp_path / "run" / "ledger" / "stage2.jsonl") if e["decision"] != "gold")
    assert plan["actual"]["pairs"] == sum(counts.values()) == 16
    for d in ("keep", "discard", "flip"):
        assert plan["actual"][f"{d}_fraction"] == round(counts.get(d, 0) / 16, 4)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["plan"] == plan


def test_a_run_directory_of_the_older_layout_is_refused_in_one_line(tmp_path, tiny_bert_dir):
    import pytest

    from synpref.curate.config import ConfigError

    make_pools(tmp_path, n=6, n_gold=2)
    cfg = config(tmp_path, "http://127.0.0.1:9/v1", tiny_bert_dir, stage1={"iterations": 0}, stage2={"enabled": False},
                 attributes={"enabled": False}, judge={"max_examples": 0})
    run_curation(cfg, tmp_path / "run")
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["steps"]["pairs"]["kept"] == 8 and "batches" in state
    del state["batches"]  # what a run of the single-process Run class left
    (tmp_path / "run" / "state.json").write_text(json.dumps(state))
    with pytest.raises(ConfigError, match="holds a run of an earlier synpref .*curate into a new RUN_DIR"):
        run_curation(cfg, tmp_path / "run")
