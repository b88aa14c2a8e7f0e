"""`synpref curate plan`: the signals measured with the run's own RMs, judges and cache, on tiny random BERTs
and a scripted judge on a fake OpenAI server (which counts every request); the run that follows shows the
plan beside what it did and pays for nothing the plan paid for; user mistakes are one line."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from synpref.curate.cli import curate_group
from synpref.curate.rm import fold_of
from synpref.curate.run import run_curation
from synpref.curate.util import read_jsonl
from synpref.llm.testing import FakeOpenAIServer, scripted_judge
from test_curate_run import config, make_pools

N_POOL, N_GOLD, SAMPLE, FOLDS = 40, 12, 16, 3


def _cfg(tmp_path, url, tiny_bert_dir, **over):
    base = {"stage1": {"iterations": 0}, "engine": {"batch_size": 8}, "judge": {"n_samples": 1, "max_examples": 2},
            "stage2": {"current_rm_folds": 2, "band": 0.05, "recycle_flips": False}}
    for k, v in over.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    cfg = config(tmp_path, url, tiny_bert_dir, **base)
    second = {**cfg["endpoints"][0], "model": "fake2"}
    cfg["endpoints"] = [cfg["endpoints"][0], second]
    return cfg


def _is_attribute_request(body) -> bool:
    return "annotate preference data" in body["messages"][0]["content"]


def _plan(args):
    return CliRunner().invoke(curate_group, ["plan", *map(str, args)])


def test_plan_measures_every_signal_out_of_fold_and_the_run_shows_it_beside_what_it_did(tmp_path, tiny_bert_dir):
    make_pools(tmp_path, n=N_POOL, n_gold=N_GOLD)
    run = tmp_path / "run"
    with FakeOpenAIServer(scripted_judge) as srv:
        cfg = _cfg(tmp_path, srv.base_url, tiny_bert_dir)
        (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
        res = _plan([tmp_path / "cfg.yaml", "--run-dir", run, "--pool-sample", SAMPLE, "--folds", FOLDS, "--bootstrap", 50])
        assert res.exit_code == 0, res.output
        plan_requests = list(srv.requests)
        plan = json.loads((run / "plan" / "plan.json").read_text())
        assert "Stage 2 plan: 12 gold pairs, 16 pool pairs sampled" in res.output and "plan: judged 28/28 pairs" in res.output
        for name in ("plan.json", "report.md", "residual_noise.png", "signals.jsonl"):
            assert (run / "plan" / name).stat().st_size > 0
        signals = {s["name"]: s for s in plan["signals"]}
        assert list(signals) == ["gold RM", "current RM", "judge fake", "judge fake2", "judges (vote)"]
        assert plan["n_gold"] == N_GOLD and plan["n_pool_sample"] == SAMPLE
        rows = list(read_jsonl(run / "plan" / "signals.jsonl"))
        gold = [r for r in rows if r["set"] == "gold"]
        pool = [r for r in rows if r["set"] == "pool sample"]
        assert len(gold) == N_GOLD and len(pool) == SAMPLE and not {r["pair_id"] for r in gold} & {r["pair_id"] for r in pool}
        # the accuracies are those of the scores and labels measured, on every gold pair
        for name, correct in (("gold RM", [r["p_gold"] > 0.5 for r in gold]), ("current RM", [r["p_current"] > 0.5 for r in gold]),
                              ("judge fake", [r["judges"]["fake"] == r["label"] for r in gold])):
            assert signals[name]["n"] == N_GOLD
            assert signals[name]["accuracy"]["value"] == pytest.approx(np.mean(correct))
        assert signals["judge fake"]["accuracy"]["value"] == 1.0  # the stub prefers the longer answer: the gold one

        # no gold pair scored by a model trained on it: fold f's model trained on the other folds only
        oof = plan["measured"]["gold_rm_out_of_fold"]
        assert oof["folds"] == FOLDS and len(oof["models"]) == FOLDS
        for r in gold:
            f = fold_of(0, FOLDS, r["pair_id"])
            assert r["gold_rm_fold"] == f and r["gold_rm_model"] == oof["models"][str(f)]["path"]
        for f, model in oof["models"].items():
            in_fold = sum(1 for r in gold if r["gold_rm_fold"] == int(f))
            trained = json.loads((Path(model["path"]).parent / "data.json").read_text())["counts"]["pairs"]
            assert in_fold == model["scores"] > 0 and trained == model["trained_on"] == N_GOLD - in_fold
        # the pool sample is scored by the current RM of its fold (trained on the other fold)
        current = plan["measured"]["current_rm"]
        assert current["folds"] == 2
        assert all(r["current_rm_model"] == current["models"][str(fold_of(0, 2, r["pair_id"]))] for r in pool)

        # the judges' cost: what the stub counted
        judge_requests = [b for b in plan_requests if not _is_attribute_request(b)]
        votes = (N_GOLD + SAMPLE) * 2
        assert len(judge_requests) == votes == plan["measured"]["judges"]["requests"]
        prompt = sum(sum(len(m["content"].split()) for m in b["messages"]) for b in judge_requests) / len(judge_requests)
        cost = plan["settings"]["judge_cost"]
        assert cost["prompt_tokens"] == pytest.approx(prompt) and cost["calls_per_vote"] == 1.0
        c = plan["cost"]
        assert c["calls_per_pair"] == 2 and c["pool_size"] == N_POOL
        assert c["calls"]["value"] == pytest.approx(N_POOL * c["judged_fraction"]["value"] * 2)
        judged_in_sample = sum(1 for r in pool if r["p_current"] <= 0.5 + 0.05)
        assert c["judged_fraction"]["value"] == pytest.approx(judged_in_sample / SAMPLE)
        assert sum(1 for b in plan_requests if _is_attribute_request(b)) == N_POOL + N_GOLD

        # the run: preparation, RMs and the sampled pairs' judge answers are the plan's; the summary sets the plan beside it
        before = len(srv.requests)
        summ = run_curation(cfg, run)
        assert summ["status"] == "done"
        run_requests = srv.requests[before:]
        assert not any(_is_attribute_request(b) for b in run_requests)
        judged = {r["pair_id"] for r in read_jsonl(run / "ledger" / "stage2.jsonl") if r.get("judge")}
        sampled_and_judged = judged & {r["pair_id"] for r in pool}
        assert summ["llm_this_invocation"]["total"]["cache_hits"] == 2 * len(sampled_and_judged) > 0
        assert len(run_requests) == 2 * (len(judged) - len(sampled_and_judged))
        log = (run / "run.log").read_text()
        assert log.count("training stage2 gold RM") == 1 and log.count("training stage2 current RM for fold") == 2  # the plan's
        shown = summ["plan"]
        assert shown["file"] == str(run / "plan" / "plan.json")
        assert shown["predicted"]["keep_fraction"] == pytest.approx(plan["predictions"]["keep"]["value"], abs=1e-4)
        assert shown["actual"]["pairs"] == N_POOL and set(shown["actual"]) >= {"keep_fraction", "discard_fraction", "flip_fraction"}


def test_user_mistakes_are_one_line(tmp_path, tiny_bert_dir):
    make_pools(tmp_path, n=8, n_gold=2)
    with FakeOpenAIServer(scripted_judge) as srv:
        cfg = _cfg(tmp_path, srv.base_url, tiny_bert_dir, attributes={"enabled": False}, judge={"max_examples": 0})
        cases = {
            "no gold": ({**cfg, "gold": None}, ["-o", "p1"], "set 'gold' in the config"),
            "too few gold pairs": (cfg, ["-o", "p2", "--folds", "5"], "too few to cross-fit the gold RM over --folds 5"),
            "unreachable judge": ({**cfg, "endpoints": [{**cfg["endpoints"][0], "base_url": "http://127.0.0.1:9/v1"}]}, ["-o", "p3"],
                                  "endpoints[0].base_url = http://127.0.0.1:9/v1: the judge endpoint cannot be reached"),
            "bad flag": (cfg, ["-o", "p4", "--pool-sample", "0"], "--pool-sample"),
            "no output": (cfg, [], "give -o PLAN_DIR"),
        }
        for name, (c, args, fragment) in cases.items():
            path = tmp_path / f"{name.replace(' ', '_')}.yaml"
            path.write_text(yaml.safe_dump(c))
            res = CliRunner().invoke(curate_group, ["plan", str(path), *[str(tmp_path / a) if a.startswith("p") else a for a in args],
                                                    "--quiet"])
            assert res.exit_code == 2, (name, res.output)
            assert "Traceback" not in res.output and fragment in res.stderr, (name, res.stderr)
            errors = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
            assert len(errors) == 1, (name, res.stderr)


def test_make_plan_predicts_the_attribute_gated_rule_from_the_pool_samples_objective_share():
    """The rule the config names, mixed by objectivity: the real attribute_gated rule on 40k simulated pool pairs."""
    from synpref.curate.config import JudgeConfig, Stage2Config
    from synpref.curate.judges import majority
    from synpref.curate.planner import GoldSignals, PlanInputError, PlanOptions, PoolSample, make_plan
    from synpref.curate.stages import stage2_rule
    from test_curate_planner import gold_signals, simulate

    rng = np.random.default_rng(3)
    sim = dict(gold_acc=0.8, cur_acc=0.7, judges=((0.85, 0.9),))
    eta, band, share, n = 0.3, 0.1, 0.4, 40_000
    pool = simulate(n, rng, eta=eta, **sim)
    objectivity = np.where(rng.random(n) < share, "objective", "subjective")
    rule = stage2_rule("attribute_gated", band)
    decided = []
    for i, label in enumerate(pool["labels"]):
        j = majority([v[i] for v in pool["judges"]]) if rule.needs_judge(float(pool["p_cur"][i]), objectivity[i]) else None
        decided.append(rule.decide(label, float(pool["p_cur"][i]), float(pool["p_gold"][i]), j, objectivity[i])[0])
    decided = np.array(decided)
    gold = simulate(20_000, rng, eta=0.0, **sim)
    sample = PoolSample(pool["labels"], pool["p_cur"], {"judge0": pool["judges"][0]}, pool["p_gold"])
    plan = make_plan(gold_signals(gold), sample, stage2=Stage2Config(band=band, rule="attribute_gated"), judge=JudgeConfig(n_samples=1),
                     pool_size=n, options=PlanOptions(bootstrap=0, noise_rate=eta), pool_objectivity=list(objectivity))
    assert plan.settings["rule"] == "attribute_gated" and plan.settings["objective_share"] == pytest.approx(np.mean(objectivity == "objective"))
    for d in ("keep", "discard", "flip"):
        assert abs(plan.predictions[d].value - np.mean(decided == d)) < 0.015, d
    assert plan.judged_observed.value == pytest.approx(np.mean(objectivity == "objective"))
    with pytest.raises(PlanInputError, match="decides by objectivity"):
        make_plan(GoldSignals(["A"], [0.9], [0.9], {"j": ["A"]}), None, stage2=Stage2Config(rule="attribute_gated"),
                  judge=JudgeConfig(), pool_size=1, options=PlanOptions(bootstrap=0, noise_rate=0.2))
