"""The resumable run end to end: tiny random BERT RMs, a scripted judge on a fake OpenAI server."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from synpref.curate.cli import curate_group
from synpref.curate.run import run_curation, why
from synpref.curate.util import flip, read_jsonl
from synpref.llm.testing import FakeOpenAIServer, scripted_judge
from synpref.schema import make_pair
from synpref.store.pool import PoolWriter, count_pool, read_pool

TOPICS = ["python lists", "french cooking", "tax returns", "dog training", "prime numbers", "guitar chords", "tomato plants", "car engines"]


def make_pools(tmp_path: Path, n: int = 40, n_gold: int = 8, flip_every: int = 4):
    recs = []
    for i in range(n + n_gold):
        t = TOPICS[i % len(TOPICS)]
        recs.append(make_pair(f"Question {i}: tell me something useful about {t}?",
                              f"Here is a detailed and careful explanation about {t}, point {i}, with examples and caveats.",
                              f"no idea {i}"))
    gold, pool = recs[:n_gold], recs[n_gold:]
    noisy = [flip(r) if i % flip_every == 0 else r for i, r in enumerate(pool)]
    for name, rs in (("gold", gold), ("pool", noisy)):
        with PoolWriter(tmp_path / name) as w:
            w.write_all(rs)
    return tmp_path / "pool", tmp_path / "gold", noisy


def config(tmp_path, server_url, tiny_bert_dir, **over):
    cfg = {
        "pool": str(tmp_path / "pool"),
        "gold": str(tmp_path / "gold"),
        "prep": {"enabled": True, "decontaminate": False},
        "endpoints": [{"base_url": server_url, "model": "fake", "backoff": 0.01, "concurrency": 2, "params": {"temperature": 0.7, "seed": 3}}],
        "judge": {"n_samples": 2, "max_examples": 2},
        "attributes": {"enabled": True},
        "rm": {"model": str(tiny_bert_dir), "max_length": 48, "epochs": 1.0, "train_top_layers": 0, "pairs_per_step": 8,
               "precision": "fp32", "eval_fraction": 0.0, "progress": False, "tensorboard": False, "learning_rate": 1e-3},
        "stage1": {"iterations": 2, "verify_budget": 3, "human": "original_labels", "silver_init": 16, "k_max": 2},
        "stage2": {"enabled": True, "band": 0.05, "recycle_flips": True},
    }
    for k, v in over.items():
        cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
    return cfg


def test_full_run_outputs_ledger_and_why(tmp_path, tiny_bert_dir):
    make_pools(tmp_path)
    with FakeOpenAIServer(scripted_judge) as srv:
        summ = run_curation(config(tmp_path, srv.base_url, tiny_bert_dir), tmp_path / "run")
        n_requests = len(srv.requests)
        assert summ["status"] == "done"
        assert set(summ["rm_gold_accuracy_per_iteration"]) == {"iter-00", "iter-01"}
        assert summ["llm_cumulative"]["calls"] == n_requests > 0
        assert summ["human_decisions"]["pairs"] > 0
        s2 = summ["stage2"]
        run = tmp_path / "run"
        ledger_all = list(read_jsonl(run / "ledger" / "stage2.jsonl"))
        ledger2 = [e for e in ledger_all if e["decision"] != "gold"]
        assert sum(s2.values()) == len(ledger2)
        assert {e["pair_id"] for e in ledger_all if e["decision"] == "gold"} == set(json.loads((run / "labels" / "gold.json").read_text()))
        # every pair of the pool is accounted for: gold (verified) or a stage-2 decision
        gold = json.loads((run / "labels" / "gold.json").read_text())
        pool_ids = {r.id for r in read_pool(run / "prep")}
        assert pool_ids == {e["pair_id"] for e in ledger2} | (set(gold) & pool_ids)
        assert count_pool(run / "gold") == len(gold) >= 8
        n_curated = count_pool(run / "curated")
        assert n_curated == len(gold) + s2.get("keep", 0) + s2.get("flip", 0)
        # attributes stored with the pairs, provenance in meta
        rec = next(iter(read_pool(run / "curated")))
        assert rec.meta["attributes"]["objectivity"] == "objective" and rec.meta["curate"]["decision"]
        # Stage 1: best RM = best gold accuracy; retrieval follows the k rule; judge labels land in silver
        from synpref.curate import k_for

        st = json.loads((run / "state.json").read_text())
        accs = [v["gold_accuracy"] for k, v in st["steps"].items() if k.endswith("/train")]
        assert len(accs) == 2 and st["best_rm"]["gold_accuracy"] == max(accs)
        for it in ("iter-00", "iter-01"):
            ps = [r["p"] for r in read_jsonl(run / "stage1" / it / "gold_scores.jsonl")]
            retrieved = json.loads((run / "stage1" / it / "retrieved.json").read_text())
            assert 0 < len(retrieved) <= sum(k_for(p, 2) for p in ps)
        silver = json.loads((run / "labels" / "silver.json").read_text())
        recs = {r.id: r for r in read_pool(run / "prep")}
        llm = {p: v for p, v in silver.items() if v["source"] == "llm"}
        assert llm
        for p, v in llm.items():  # the scripted judge prefers the longer response
            c0, c1 = (len(recs[p].candidates[i][-1].content) for i in (0, 1))
            assert v["label"] == ("A" if c0 >= c1 else "B")
        # lineage
        e = ledger2[0]
        w = why(run, e["pair_id"])
        assert w["final_decision"] == e["decision"] and w["reason"] == e["reason"]
        res = CliRunner().invoke(curate_group, ["why", str(run), e["pair_id"]])
        assert res.exit_code == 0 and json.loads(res.stdout)["final_decision"] == e["decision"]
        assert why(run, "nope")["status"] == "unknown"
        # the same run again: everything is done, no LLM call
        again = run_curation(config(tmp_path, srv.base_url, tiny_bert_dir), run)
        assert len(srv.requests) == n_requests and again["stage2"] == s2
        # verification pending files follow the contract
        batch = next((run / "verification" / "pending").glob("batch-*.jsonl"))
        row = json.loads(batch.read_text().splitlines()[0])
        assert row["llm_precheck"]["label"] in ("A", "B") and row["attributes"]["controversiality"] == "low"


def test_config_change_is_refused(tmp_path, tiny_bert_dir):
    make_pools(tmp_path, n=8, n_gold=4)
    cfg = config(tmp_path, "http://127.0.0.1:9/v1", tiny_bert_dir, stage1={"iterations": 0}, stage2={"enabled": False},
                 attributes={"enabled": False}, judge={"max_examples": 0})
    run_curation(cfg, tmp_path / "run")
    # the saved config is the complete one: every key, defaults included
    from synpref.curate.config import load_config

    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved == load_config(cfg).to_dict() and saved["rm"]["lora_r"] == 8 and saved["endpoints"][0]["timeout"] == 120.0
    run_curation(cfg, tmp_path / "run")  # the same config resumes
    cfg["seed"] = 5
    cfg["stage2"]["band"] = 0.2
    with pytest.raises(ValueError, match=r"different config \(seed, stage2.band\)"):
        run_curation(cfg, tmp_path / "run")
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(curate_group, ["run", str(tmp_path / "cfg.yaml"), "-o", str(tmp_path / "run"), "--quiet"])
    assert res.exit_code == 2 and res.stderr.count("\n") == 1 and "different config (seed, stage2.band)" in res.stderr


def test_files_mode_waits_for_humans_then_continues(tmp_path, tiny_bert_dir):
    make_pools(tmp_path, n=24, n_gold=0)
    cfg = config(tmp_path, None, tiny_bert_dir, gold=None, stage1={"iterations": 1, "human": "files", "seed_gold": 6},
                 attributes={"enabled": False}, judge={"max_examples": 0, "n_samples": 1})
    with FakeOpenAIServer(scripted_judge) as srv:
        cfg["endpoints"][0]["base_url"] = srv.base_url
        (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
        runner = CliRunner()
        res = runner.invoke(curate_group, ["run", str(tmp_path / "cfg.yaml"), "-o", str(tmp_path / "run"), "--quiet"])
        assert res.exit_code == 3, res.output
        assert json.loads(res.stdout)["status"].startswith("waiting")
        pending = [json.loads(x) for x in (tmp_path / "run" / "verification" / "pending" / "batch-000.jsonl").read_text().splitlines()]
        assert len(pending) == 6
        # the humans answer (through a file, imported by the CLI): all "A" except one undecidable
        dec = [{"pair_id": p["pair_id"], "decision": "undecidable" if i == 0 else "A", "annotator": "ann", "time": "2026-01-01T00:00:00Z",
                "note": None} for i, p in enumerate(pending)]
        (tmp_path / "d.jsonl").write_text("".join(json.dumps(d) + "\n" for d in dec))
        res = runner.invoke(curate_group, ["import-verification", str(tmp_path / "run"), str(tmp_path / "d.jsonl")])
        assert json.loads(res.stdout)["counts"] == {"undecidable": 1, "A": 5}
        res = runner.invoke(curate_group, ["run", str(tmp_path / "cfg.yaml"), "-o", str(tmp_path / "run"), "--quiet"])
        # iteration 0 exports its own batch: wait again, answer, finish
        if res.exit_code == 3:
            b1 = [json.loads(x) for x in (tmp_path / "run" / "verification" / "pending" / "batch-001.jsonl").read_text().splitlines()]
            (tmp_path / "run" / "verification" / "decisions" / "b1.jsonl").write_text(
                "".join(json.dumps({"pair_id": p["pair_id"], "decision": "B", "annotator": "ann", "time": "2026-01-02T00:00:00Z", "note": None}) + "\n" for p in b1))
            res = runner.invoke(curate_group, ["run", str(tmp_path / "cfg.yaml"), "-o", str(tmp_path / "run"), "--quiet"])
        assert res.exit_code == 0, res.output
        gold = json.loads((tmp_path / "run" / "labels" / "gold.json").read_text())
        assert pending[0]["pair_id"] not in gold and all(p["pair_id"] in gold for p in pending[1:])
        w = why(tmp_path / "run", pending[0]["pair_id"])
        assert w["human"]["decision"] == "undecidable" and w["status"] == "out"
        assert why(tmp_path / "run", pending[1]["pair_id"])["status"] == "in"


def test_export_verification_cli(tmp_path, tiny_bert_dir):
    make_pools(tmp_path, n=10, n_gold=0)
    res = CliRunner().invoke(curate_group, ["export-verification", str(tmp_path / "run"), "--pool", str(tmp_path / "pool"), "-n", "4"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in (tmp_path / "run" / "verification" / "pending" / "batch-000.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and [r["priority"] for r in rows] == [0, 1, 2, 3]
    assert (tmp_path / "run" / "verification" / "pending" / "batch-000.csv").read_text().startswith("pair_id,batch,priority")


def test_prep_cli(tmp_path):
    make_pools(tmp_path, n=6, n_gold=0)
    res = CliRunner().invoke(curate_group, ["prep", str(tmp_path / "pool"), "-o", str(tmp_path / "out"), "--no-decontaminate", "--near-dup"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["kept"] == 6


def _key(body):
    return json.dumps(body, sort_keys=True)


def test_sigkill_resume_repeats_no_llm_call(tmp_path, tiny_bert_dir):
    """kill -9 a run in the middle of its LLM work, rerun: no completed call is paid twice, same decisions."""
    make_pools(tmp_path, n=24, n_gold=6)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    with FakeOpenAIServer(scripted_judge, delay=0.05) as srv:
        cfg = config(tmp_path, srv.base_url, tiny_bert_dir, stage1={"iterations": 1})
        (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
        cmd = [sys.executable, "-m", "synpref.curate", "run", str(tmp_path / "cfg.yaml"), "-o", str(tmp_path / "run"), "--quiet"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while len(srv.completed) < 12 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        before = {_key(b) for b in srv.completed}
        n_before = len(srv.requests)
        assert before
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        after = [_key(b) for b in srv.requests[n_before:]]
        # only calls in flight at the kill (answer sent, not yet in the client's cache) may be asked again:
        # at most the endpoint's concurrency (2)
        repeated = before & set(after)
        assert len(repeated) <= 2, f"{len(repeated)} completed LLM calls were paid again after the resume"
        assert len(after) == len(set(after))
        summ = json.loads((tmp_path / "run" / "summary.json").read_text())
        assert summ["status"] == "done"
        # an uninterrupted run of the same config decides the same
        ref = run_curation(cfg, tmp_path / "ref")
        # the resume paid only for what the killed run had not: finished batches are not redone, the
        # unfinished batch's answered calls come from the cache
        paid_after = summ["llm_this_invocation"]["total"]["calls"]
        assert len(before) + paid_after <= ref["llm_this_invocation"]["total"]["calls"] + 2
        assert summ["llm_cumulative"]["calls"] == ref["llm_cumulative"]["calls"]
    resumed = {e["pair_id"]: (e["decision"], e["final_label"]) for e in read_jsonl(tmp_path / "run" / "ledger" / "stage2.jsonl")}
    assert resumed
    reference = {e["pair_id"]: (e["decision"], e["final_label"]) for e in read_jsonl(tmp_path / "ref" / "ledger" / "stage2.jsonl")}
    assert resumed == reference and ref["stage2"] == summ["stage2"]
    assert json.loads((tmp_path / "run" / "labels" / "gold.json").read_text()) == json.loads((tmp_path / "ref" / "labels" / "gold.json").read_text())


def test_stage2_without_stage1_scores_each_pair_out_of_fold(tmp_path, tiny_bert_dir, monkeypatch):
    """No Stage 1: the current RMs are cross-fitted, so no pair is scored by a model trained on it."""
    import synpref.curate.rm as rm_mod

    make_pools(tmp_path, n=24, n_gold=6)
    trained: dict[str, set] = {}
    scored: dict[str, set] = {}
    real_train, real_probs = rm_mod.train_rm, rm_mod.RMScorer.probs

    def train_rm(out, labelled, settings, tag):
        labelled = list(labelled)
        trained[out.name] = {rec.id for rec, _ in labelled}
        return real_train(out, labelled, settings, tag)

    def probs(self, records, labels, *shared):
        scored.setdefault(self.model_dir.parent.name, set()).update(r.id for r in records)
        return real_probs(self, records, labels, *shared)

    monkeypatch.setattr(rm_mod, "train_rm", train_rm)
    monkeypatch.setattr(rm_mod.RMScorer, "probs", probs)
    with FakeOpenAIServer(scripted_judge) as srv:
        summ = run_curation(config(tmp_path, srv.base_url, tiny_bert_dir, stage1={"iterations": 0}), tmp_path / "run")
    assert summ["status"] == "done"
    folds = sorted(n for n in trained if n.startswith("current_rm_fold"))
    assert folds == ["current_rm_fold0", "current_rm_fold1"]
    assert trained["current_rm_fold0"].isdisjoint(trained["current_rm_fold1"])
    for name in folds:
        assert scored[name] and scored[name].isdisjoint(trained[name])  # out of fold
    decided = {e["pair_id"] for e in read_jsonl(tmp_path / "run" / "ledger" / "stage2.jsonl") if e["decision"] != "gold"}
    assert decided == scored["current_rm_fold0"] | scored["current_rm_fold1"]


def _meta_default_device(monkeypatch):
    """Make synpref.model's default device 'meta' (no data: a model left on it cannot score)."""
    import torch

    import synpref.model.device as device

    monkeypatch.setattr(device, "default_device", lambda: torch.device("meta"))


def _spy_model_devices(monkeypatch) -> dict[str, list[str]]:
    """Record the device each scoring RM and each embedder of the run ends up on."""
    from synpref.curate.retrieval import Embedder
    from synpref.model import RewardModel

    seen: dict[str, list[str]] = {"rm": [], "embedder": []}
    real_load, real_init = RewardModel.from_pretrained.__func__, Embedder.__init__

    def from_pretrained(cls, reference, **kw):
        rm = real_load(cls, reference, **kw)
        if Path(reference).name == "model":  # a checkpoint the run trained, loaded to score (training loads the base model)
            seen["rm"].append(rm.device.type)
        return rm

    def init(self, *args, **kw):
        real_init(self, *args, **kw)
        seen["embedder"].append(self.model.device.type)

    monkeypatch.setattr(RewardModel, "from_pretrained", classmethod(from_pretrained))
    monkeypatch.setattr(Embedder, "__init__", init)
    return seen


def test_device_option_reaches_the_rm_scorer_and_the_embedder(tmp_path, tiny_bert_dir, monkeypatch):
    """--device cpu beats synpref.model's default (made 'meta' here, where nothing could score)."""
    make_pools(tmp_path, n=12, n_gold=4)
    _meta_default_device(monkeypatch)
    seen = _spy_model_devices(monkeypatch)
    import synpref.train as train_pkg

    trained_on, real_train = [], train_pkg.train

    def train(cfg, **kw):  # the RMs the run trains get the same --device
        trained_on.append(cfg.device)
        return real_train(cfg, **kw)

    monkeypatch.setattr(train_pkg, "train", train)
    with FakeOpenAIServer(scripted_judge) as srv:
        cfg = config(tmp_path, srv.base_url, tiny_bert_dir, stage1={"iterations": 0}, attributes={"enabled": False},
                     stage2={"current_rm_folds": 1})
        (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
        res = CliRunner().invoke(curate_group, ["run", str(tmp_path / "cfg.yaml"), "-o", str(tmp_path / "run"), "--quiet", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["status"] == "done"
    assert seen["embedder"] == ["cpu"]
    assert seen["rm"] == ["cpu", "cpu"]  # the current RM and the gold RM
    assert trained_on == ["cpu", "cpu"]
    assert "on cpu" in (tmp_path / "run" / "run.log").read_text()


def test_models_default_to_the_device_synpref_model_picks(tmp_path, tiny_bert_dir, monkeypatch):
    from synpref.curate.retrieval import Embedder
    from synpref.curate.rm import RMScorer
    from synpref.model import RewardModel

    _meta_default_device(monkeypatch)
    assert Embedder("minilm").model.device.type == "meta"
    loaded = []

    class Loaded(Exception):
        pass

    def from_pretrained(cls, reference, **kw):  # the real loader, stopped before a meta model is asked to score
        loaded.append(real_load(cls, reference, **kw).device.type)
        raise Loaded

    real_load = RewardModel.from_pretrained.__func__
    monkeypatch.setattr(RewardModel, "from_pretrained", classmethod(from_pretrained))
    rec = make_pair("q?", "a long answer", "no")
    with pytest.raises(Loaded):
        RMScorer(Path(tiny_bert_dir)).probs([rec], ["A"])
    assert loaded == ["meta"]
    with pytest.raises(Loaded):  # what --device sets
        RMScorer(Path(tiny_bert_dir), device="cpu").probs([rec], ["A"])
    assert loaded == ["meta", "cpu"]
