"""LLM budgets (judge.max_calls, judge.max_tokens), `curate run --dry-run`, the Stage 2 rule registry and
`curate why`'s rule: budgets stop a run cleanly at a batch and resume without paying twice (the stub
server counts every request), a dry run sends none."""

import json
import typing

import pytest
import yaml
from click.testing import CliRunner

from synpref.curate.cli import curate_group
from synpref.curate.config import ConfigError, Stage2RuleName, load_config, reference_yaml
from synpref.curate.run import dry_run, run_curation, why
from synpref.curate.stages import STAGE2_RULES, AttributeGatedRule, SkyworkRule, stage2_decide, stage2_rule
from synpref.curate.util import read_jsonl
from synpref.llm.testing import FakeOpenAIServer, scripted_judge
from test_curate_run import config, make_pools

BUDGET = "stopped at the LLM budget"


def _stage2_only(tmp_path, url, tiny_bert_dir, **over):
    base = {"stage1": {"iterations": 0}, "engine": {"batch_size": 8}, "judge": {"n_samples": 1, "max_examples": 0},
            "stage2": {"current_rm_pairs": 16, "current_rm_folds": 1, "band": 0.05, "recycle_flips": False}}
    for k, v in over.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    return config(tmp_path, url, tiny_bert_dir, **base)


def _decisions(run) -> dict:
    return {e["pair_id"]: (e["decision"], e["final_label"]) for e in read_jsonl(run / "ledger" / "stage2.jsonl")}


def test_a_call_budget_stops_at_a_batch_and_resumes_when_raised_paying_nothing_twice(tmp_path, tiny_bert_dir):
    make_pools(tmp_path, n=40, n_gold=6)
    with FakeOpenAIServer(scripted_judge) as srv:
        ref = run_curation(_stage2_only(tmp_path, srv.base_url, tiny_bert_dir), tmp_path / "ref")
        ref_requests = len(srv.requests)
        state = json.loads((tmp_path / "ref" / "state.json").read_text())["steps"]
        attribute_calls = state["attributes"]["annotated"] + state["attributes"]["failed"]
        judge_calls = state["stage2/judge"]["judged"]
        assert ref["status"] == "done" and ref_requests == attribute_calls + judge_calls and judge_calls >= 4

        cap = attribute_calls + judge_calls // 2
        cfg = _stage2_only(tmp_path, srv.base_url, tiny_bert_dir, judge={"max_calls": cap})
        (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
        start = len(srv.requests)
        res = CliRunner().invoke(curate_group, ["run", str(tmp_path / "cfg.yaml"), "-o", str(tmp_path / "run"), "--quiet"])
        stopped_requests = len(srv.requests) - start
        assert res.exit_code == 4, res.output
        assert "Traceback" not in res.output and res.exception is None or isinstance(res.exception, SystemExit)
        message = [line for line in res.stderr.splitlines() if line.startswith(BUDGET)]
        assert len(message) == 1, res.stderr
        assert "stage2/judge batch" in message[0] and "judge.max_calls" in message[0] and "more calls" in message[0]
        # it stopped before a batch that would pass the cap: never past it, every request in the cache
        summ = json.loads((tmp_path / "run" / "summary.json").read_text())
        assert summ["status"].startswith(BUDGET)
        assert attribute_calls < stopped_requests == summ["llm_cumulative"]["calls"] <= cap
        # what it says it needs is what the resume pays: the judged pairs left (scores are known by now)
        needed = judge_calls - (stopped_requests - attribute_calls)
        assert f"needs {needed:,} more calls" in message[0]
        assert f"judge.max_calls to {stopped_requests + needed} or more" in message[0]

        # a dry run now plans exactly that, and sends nothing
        before = len(srv.requests)
        plan = dry_run(cfg, tmp_path / "run")
        assert len(srv.requests) == before
        assert plan["spent"]["calls"] == stopped_requests and plan["calls"] == needed and plan["exact"]
        assert [s["step"] for s in plan["steps"]] == ["stage2/judge"] and plan["tokens"] > 0

        # the same cap again: still stopped, nothing paid
        again = run_curation(cfg, tmp_path / "run")
        assert again["status"].startswith(BUDGET) and len(srv.requests) == before
        # raised: resumes at the batch it stopped before and pays only the rest
        raised = _stage2_only(tmp_path, srv.base_url, tiny_bert_dir, judge={"max_calls": cap * 2})
        done = run_curation(raised, tmp_path / "run")
        assert done["status"] == "done"
        assert len(srv.requests) - start == ref_requests
        assert done["llm_cumulative"]["calls"] == ref["llm_cumulative"]["calls"]
        assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text().split("\n", 1)[1])["judge"]["max_calls"] == cap * 2
    assert _decisions(tmp_path / "run") == _decisions(tmp_path / "ref") and done["stage2"] == ref["stage2"]


def test_only_the_budget_may_change_in_a_run_directory(tmp_path, tiny_bert_dir):
    make_pools(tmp_path, n=8, n_gold=2)
    cfg = _stage2_only(tmp_path, "http://127.0.0.1:9/v1", tiny_bert_dir, stage2={"enabled": False}, attributes={"enabled": False})
    run_curation(cfg, tmp_path / "run")
    run_curation({**cfg, "judge": {**cfg["judge"], "max_tokens": 5}}, tmp_path / "run")
    with pytest.raises(ConfigError, match=r"different config \(judge.n_samples\)"):
        run_curation({**cfg, "judge": {**cfg["judge"], "n_samples": 2}}, tmp_path / "run")


def test_a_token_budget_stops_once_tokens_per_call_are_measured(tmp_path, tiny_bert_dir):
    """Attributes only: the first batch measures the tokens a call; the cap then stops the run before the batch
    that would pass it, and the message estimates the tokens left from that measure."""
    make_pools(tmp_path, n=30, n_gold=2)
    with FakeOpenAIServer(scripted_judge) as srv:
        cfg = _stage2_only(tmp_path, srv.base_url, tiny_bert_dir, stage2={"enabled": False}, prep={"enabled": False})
        summ = run_curation({**cfg, "judge": {**cfg["judge"], "max_tokens": 1}}, tmp_path / "run")
        assert summ["status"].startswith(BUDGET) and "judge.max_tokens=1" in summ["status"]
        first = len(srv.requests)
        assert first == 2  # the first batch (the gold pool's 2 pairs) ran, no call measured yet; the second did not
        spent = summ["llm_cumulative"]["prompt_tokens"] + summ["llm_cumulative"]["completion_tokens"]
        per_call = spent / first
        left = 32 - first
        assert f"needs {left:,} more calls and ~{round(left * per_call):,} tokens" in summ["status"]
        assert f"judge.max_tokens to {round(spent + left * per_call)} or more" in summ["status"]
        done = run_curation({**cfg, "judge": {**cfg["judge"], "max_tokens": None}}, tmp_path / "run")
        assert done["status"] == "done" and len(srv.requests) == 32


def test_dry_run_prints_the_plan_and_sends_no_request_trains_nothing(tmp_path, tiny_bert_dir, monkeypatch):
    import synpref.curate.rm as rm

    make_pools(tmp_path, n=40, n_gold=6)

    def no_training(*a, **kw):
        raise AssertionError("a dry run trained a reward model")

    monkeypatch.setattr(rm, "train_rm", no_training)
    with FakeOpenAIServer(scripted_judge) as srv:
        cfg = config(tmp_path, srv.base_url, tiny_bert_dir, judge={"max_calls": 100})
        (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
        res = CliRunner().invoke(curate_group, ["run", str(tmp_path / "cfg.yaml"), "-o", str(tmp_path / "run"), "--dry-run"])
        assert res.exit_code == 0, res.output
        assert srv.requests == []
    assert not (tmp_path / "run").exists()
    lines = res.stdout.splitlines()
    rows = {line.split()[0]: line.split() for line in lines[1:] if line.split() and line.split()[0] not in ("total", "spent", "dry")}
    # a fresh run: attributes for every pair (gold + pool, before prep), the label step of each Stage 1 round, the judges
    assert list(rows) == ["attributes", "stage1/iter-00/label", "stage1/iter-01/label", "stage2/judge"]
    assert rows["attributes"][1:4] == ["46", "1", "46"]
    assert rows["stage2/judge"][1:4] == ["40", "2", "80"]  # every pool pair at most, n_samples 2 x 1 endpoint
    assert all("at most" in line for line in lines if line.startswith("stage"))
    assert "judge.max_calls=100" in res.stdout and "no LLM was called" in res.stdout
    # tokens before any call: estimated from the judge prompt of the pool's pairs (their text at least)
    plan = dry_run(cfg, tmp_path / "run")
    from synpref.store.pool import read_pool

    texts = [sum(len(m.content) for m in (*r.context, *r.candidates[0], *r.candidates[1])) for r in read_pool(tmp_path / "pool")]
    assert sum(texts) / len(texts) / 4 < plan["tokens_per_call"] < sum(texts) / len(texts) / 4 + 200
    assert plan["tokens_per_call_source"].startswith("estimated")
    per_call = plan["tokens_per_call"]  # shown rounded to 0.1
    assert abs(int(rows["stage2/judge"][4].replace(",", "")) - 80 * per_call) <= 80 * 0.05 + 1
    assert abs(plan["tokens"] - plan["calls"] * per_call) <= plan["calls"] * 0.05 + 1 and plan["spent"] == {"calls": 0, "tokens": 0}


def test_the_rule_registry_and_the_config_name_the_same_rules():
    assert STAGE2_RULES.names() == sorted(typing.get_args(Stage2RuleName)) == ["attribute_gated", "skywork"]
    assert isinstance(stage2_rule("skywork", 0.1), SkyworkRule) and isinstance(stage2_rule("attribute_gated"), AttributeGatedRule)
    assert load_config({"pool": "p"}).stage2.rule == "skywork"
    with pytest.raises(ConfigError, match="stage2.rule must be one of skywork, attribute_gated; got 'majority'"):
        load_config({"pool": "p", "stage2": {"rule": "majority"}})
    with pytest.raises(ConfigError, match="judge.max_calls must be >= 0"):
        load_config({"pool": "p", "judge": {"max_calls": -1}})
    text = reference_yaml()
    assert "max_calls: null" in text and "max_tokens: null" in text and "rule: skywork" in text


@pytest.mark.parametrize("p_cur", [0.2, 0.52, 0.9])
@pytest.mark.parametrize("p_gold", [0.3, 0.8])
@pytest.mark.parametrize("judge", ["A", "B", None])
def test_the_skywork_rule_is_stage2_decide(p_cur, p_gold, judge):
    rule = stage2_rule("skywork", 0.05)
    for objectivity in ("objective", "subjective", None):  # Skywork's rule does not read the attributes
        assert rule.decide("A", p_cur, p_gold, judge, objectivity) == stage2_decide("A", p_cur, p_gold, judge, band=0.05)
        assert rule.needs_judge(p_cur, objectivity) == (p_cur <= 0.55)


@pytest.mark.parametrize("objectivity, p_cur, p_gold, judge, expected", [
    ("objective", 0.9, 0.1, "A", ("keep", "A")),     # judges decide an objective pair, whatever the RMs say
    ("objective", 0.9, 0.9, "B", ("flip", "B")),
    ("objective", 0.1, 0.8, None, ("keep", "A")),    # judges undecided: the gold RM gates it
    ("objective", 0.9, 0.2, None, ("discard", "A")),
    ("subjective", 0.1, 0.8, "B", ("keep", "A")),    # the gold RM gates a subjective pair: never flipped
    ("subjective", 0.9, 0.3, "A", ("discard", "A")),
    (None, 0.5, 0.51, None, ("keep", "A")),          # no attributes: as subjective
    (None, 0.5, 0.5, None, ("discard", "A")),
])
def test_attribute_gated_decisions(objectivity, p_cur, p_gold, judge, expected):
    rule = stage2_rule("attribute_gated", 0.3)
    dec, reason, final = rule.decide("A", p_cur, p_gold, judge, objectivity)
    assert (dec, final) == expected and reason
    assert rule.needs_judge(p_cur, objectivity) == (objectivity == "objective")
    # the same for a pair whose label is B
    swap = {"A": "B", "B": "A", None: None}
    dec_b, _, final_b = rule.decide("B", p_cur, p_gold, swap[judge], objectivity)
    assert (dec_b, final_b) == (dec, swap[final])


def test_an_attribute_gated_run_judges_objective_pairs_and_why_names_the_rule(tmp_path, tiny_bert_dir):
    """The scripted annotator calls every pair objective and the scripted judge prefers the longer (the true)
    response, so the judges decide every pool pair: the noisy labels (every 4th) flip, the rest are kept."""
    _, _, noisy = make_pools(tmp_path, n=24, n_gold=4)
    truly_a = {r.id: len(r.candidates[0][-1].content) > len(r.candidates[1][-1].content) for r in noisy}
    with FakeOpenAIServer(scripted_judge) as srv:
        cfg = _stage2_only(tmp_path, srv.base_url, tiny_bert_dir, stage2={"rule": "attribute_gated"})
        summ = run_curation(cfg, tmp_path / "run")
    assert summ["status"] == "done"
    decisions = _decisions(tmp_path / "run")
    pool = {p: d for p, d in decisions.items() if p in truly_a}
    assert len(pool) == 24 and pool == {p: ("keep", "A") if a else ("flip", "B") for p, a in truly_a.items()}
    p = next(p for p, a in truly_a.items() if not a)
    w = why(tmp_path / "run", p)
    assert w["final_decision"] == "flip" and "objective pair" in w["reason"]
    assert w["rule"]["name"] == "attribute_gated" and w["rule"]["summary"]
    assert w["rule"]["signals"] == {"objectivity": "objective", "judge": "B", "p_gold": w["history"][-1]["p_gold"]}
    assert w["rule"]["thresholds"] == {"judged_when_objectivity": "objective", "p_gold_agrees_above": 0.5}
    res = CliRunner().invoke(curate_group, ["why", str(tmp_path / "run"), p])
    assert res.exit_code == 0 and json.loads(res.stdout)["rule"]["name"] == "attribute_gated"


def test_why_names_skywork_with_its_signals_and_band(tmp_path, tiny_bert_dir):
    make_pools(tmp_path, n=16, n_gold=4)
    with FakeOpenAIServer(scripted_judge) as srv:
        run_curation(_stage2_only(tmp_path, srv.base_url, tiny_bert_dir), tmp_path / "run")
    entry = next(e for e in read_jsonl(tmp_path / "run" / "ledger" / "stage2.jsonl") if e["decision"] != "gold")
    rule = why(tmp_path / "run", entry["pair_id"])["rule"]
    assert rule["name"] == "skywork"
    assert rule["signals"] == {"p_current": entry["p_current"], "p_gold": entry["p_gold"],
                               "judge": (entry["judge"] or {}).get("label")}
    assert rule["thresholds"] == {"band": 0.05, "p_current_confident_above": 0.55, "p_gold_agrees_above": 0.5}


def test_the_planner_cells_predict_the_attribute_gated_rule_on_100k_pairs_within_one_point():
    """The planner's cell model with the attribute_gated rule, one table per objectivity mixed by the objective share,
    against the real rule deciding 100k simulated pairs (judges asked only where the rule asks them)."""
    import numpy as np

    from synpref.curate.judges import majority
    from synpref.curate.planner import cells
    from synpref.curate.planner.predict import predict
    from test_curate_planner import simulate

    rng = np.random.default_rng(5)
    sim = dict(gold_acc=0.75, cur_acc=0.7, judges=((0.85, 0.9), (0.7, 0.95)))
    eta, band, share = 0.3, 0.1, 0.6
    pool = simulate(100_000, rng, eta=eta, **sim)
    objective = rng.random(100_000) < share
    rule = stage2_rule("attribute_gated", band)
    decided = []
    for i, label in enumerate(pool["labels"]):
        obj = "objective" if objective[i] else "subjective"
        j = majority([v[i] for v in pool["judges"]]) if rule.needs_judge(float(pool["p_cur"][i]), obj) else None
        decided.append(rule.decide(label, float(pool["p_cur"][i]), float(pool["p_gold"][i]), j, obj)[0])
    decided = np.array(decided)
    actual = {d: float(np.mean(decided == d)) for d in ("keep", "discard", "flip")}
    actual["judged"] = float(objective.mean())

    gold = simulate(100_000, rng, eta=0.0, **sim)
    truth = np.array([lab == "A" for lab in gold["labels"]])
    codes = {f"j{k}": np.array([{"A": 1, "B": 0, None: -1}[x] for x in v], dtype=np.int8) for k, v in enumerate(gold["judges"])}
    panel = cells.panel_codes(codes, len(truth))
    predicted = {}
    for obj, weight in (("objective", share), ("subjective", 1 - share)):
        dec, judged = cells.decision_table(band, "attribute_gated", obj)
        right, wrong = cells.gold_cells(truth, gold["p_gold"], gold["p_cur"], panel, band, dec, rule="attribute_gated", objectivity=obj)
        r_right, r_wrong = (cells.rates(cells.one_hot(c).mean(axis=0, keepdims=True), dec, judged) for c in (right, wrong))
        for k, v in predict(r_right, r_wrong, np.array([eta])).items():
            if k in actual:
                predicted[k] = predicted.get(k, 0.0) + weight * float(v[0])
    for k in actual:
        assert abs(predicted[k] - actual[k]) < 0.01, (k, predicted[k], actual[k])
    # subjective pairs never flip, and objective ones are all judged
    dec_subjective, judged_subjective = cells.decision_table(band, "attribute_gated", "subjective")
    assert cells.DECISIONS.index("flip") not in dec_subjective and not judged_subjective.any()
    assert cells.decision_table(band, "attribute_gated", "objective")[1].all()


def test_a_cache_that_cannot_be_counted_is_one_line_not_a_guess(tmp_path, tiny_bert_dir):
    """The budget is counted from the cache: a file that is not one stops the dry run in one line (exit 4)."""
    make_pools(tmp_path, n=8, n_gold=2)
    cfg = _stage2_only(tmp_path, "http://127.0.0.1:9/v1", tiny_bert_dir, judge={"max_calls": 10})
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "llm_cache.sqlite").write_text("not a database")
    res = CliRunner().invoke(curate_group, ["run", str(tmp_path / "cfg.yaml"), "-o", str(tmp_path / "run"), "--dry-run"])
    assert res.exit_code == 4 and "Traceback" not in res.output
    assert res.stderr.startswith("Error: the LLM budget cannot be checked:") and len(res.stderr.splitlines()) == 1


def test_a_budget_stops_stage1_labelling_and_the_dry_run_then_plans_it_exactly(tmp_path, tiny_bert_dir):
    make_pools(tmp_path, n=24, n_gold=6)
    with FakeOpenAIServer(scripted_judge) as srv:
        cfg = config(tmp_path, srv.base_url, tiny_bert_dir, stage1={"iterations": 1}, stage2={"enabled": False})
        attribute_calls = 30  # gold + pool, no duplicates
        summ = run_curation({**cfg, "judge": {**cfg["judge"], "max_calls": attribute_calls + 1}}, tmp_path / "run")
        assert summ["status"].startswith(f"{BUDGET}: stage1/iter-00/label batch 1 of 1 would pass judge.max_calls=31")
        assert len(srv.requests) == attribute_calls == summ["llm_cumulative"]["calls"]
        retrieved = json.loads((tmp_path / "run" / "stage1" / "iter-00" / "retrieved.json").read_text())
        plan = dry_run({**cfg, "judge": {**cfg["judge"], "max_calls": attribute_calls + 1}}, tmp_path / "run")
        assert plan["steps"] == [{"step": "stage1/iter-00/label", "pairs": len(retrieved), "calls_per_pair": 2,
                                  "calls": 2 * len(retrieved), "tokens": plan["steps"][0]["tokens"], "exact": True}]
        assert f"needs {2 * len(retrieved):,} more calls" in summ["status"]
        done = run_curation(cfg, tmp_path / "run")  # no cap
        assert done["status"] == "done"
        assert len(srv.requests) == done["llm_cumulative"]["calls"] == attribute_calls + 2 * len(retrieved)
