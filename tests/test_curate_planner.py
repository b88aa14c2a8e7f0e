"""The Stage 2 planner (synpref.curate.planner), validated by simulation against the real Stage 2 rule.

A simulated pair has a true label, a given label (wrong with probability eta), a gold-RM and a
current-RM probability of the given label and judge labels, each signal right with a known
accuracy. The pool is decided by ``stages.stage2_decide`` pair by pair, exactly as run.py does
(judges consulted only where ``needs_judge``); the planner only sees what a user would measure:
a simulated gold set (labels = truth) and a sample of the pool.

Two sizes, two tests: with a few thousand gold pairs the sampling error of every fraction is
about 1 point (measured: 0.5 to 2.3 points RMSE), so "within 1 point" is tested with a large
simulated gold set (it checks the planner's model: the cells, the rule, the noise algebra), and
the realistic size is tested by the coverage of the intervals the planner reports.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from synpref.curate.config import JudgeConfig, Stage2Config
from synpref.curate.judges import majority
from synpref.curate.planner import (PREDICTED, GoldSignals, JudgeCost, PlanInputError, PlanOptions, PoolSample, format_plan,
                                    make_plan, plot_residual_noise)
from synpref.curate.planner import cells
from synpref.curate.stages import needs_judge, stage2_decide


# -- the simulation ------------------------------------------------------------------------------------
def _p_of_truth(correct: np.ndarray, rng) -> np.ndarray:
    u = rng.uniform(0.0, 1.0, correct.shape)
    return np.where(correct, 0.5 + 0.5 * u, 0.5 - 0.5 * u)


def simulate(n, rng, *, eta, gold_acc, cur_acc, judges=((0.8, 1.0),), judge_given_cur=None, cur_confidence=1.0):
    """Pairs with signals of known accuracy. ``judges``: (accuracy, share decided) per judge; ``judge_given_cur``:
    (accuracy when the current RM is right, when it is wrong) for every judge instead (correlated errors);
    ``cur_confidence`` < 1 squeezes the current RM's probabilities towards 0.5."""
    truth_a = rng.random(n) < 0.5
    wrong = rng.random(n) < eta
    cur_ok = rng.random(n) < cur_acc
    pt_cur = 0.5 + (_p_of_truth(cur_ok, rng) - 0.5) * cur_confidence
    pt_gold = _p_of_truth(rng.random(n) < gold_acc, rng)
    out_judges = []
    for acc, decided in judges:
        p_ok = np.where(cur_ok, *judge_given_cur) if judge_given_cur else acc
        says_a = np.where(rng.random(n) < p_ok, truth_a, ~truth_a)
        asked = rng.random(n) < decided
        out_judges.append([("A" if a else "B") if d else None for a, d in zip(says_a, asked)])
    return {"wrong": wrong, "labels": ["A" if a else "B" for a in truth_a ^ wrong],
            "p_cur": np.where(wrong, 1 - pt_cur, pt_cur), "p_gold": np.where(wrong, 1 - pt_gold, pt_gold), "judges": out_judges}


def stage2_outcome(sim, band):
    """The real rule on every simulated pool pair, and the fractions it produced."""
    w = sim["wrong"]
    dec, asked = [], []
    for i, label in enumerate(sim["labels"]):
        pc, pg = float(sim["p_cur"][i]), float(sim["p_gold"][i])
        asked.append(needs_judge(pc, band))
        j = majority([labels[i] for labels in sim["judges"]]) if asked[-1] else None
        dec.append(stage2_decide(label, pc, pg, j, band=band)[0])
    dec = np.array(dec)
    keep, flip, disc = dec == "keep", dec == "flip", dec == "discard"
    detected = flip | disc
    return {"keep": keep.mean(), "discard": disc.mean(), "flip": flip.mean(), "judged": np.mean(asked),
            "residual_noise_kept": (keep & w).sum() / keep.sum(),
            "residual_noise_with_flips": ((keep & w).sum() + (flip & ~w).sum()) / (keep.sum() + flip.sum()),
            "flip_precision": (flip & w).sum() / flip.sum(), "flip_recall": (flip & w).sum() / w.sum(),
            "detection_precision": (detected & w).sum() / detected.sum(), "detection_recall": (detected & w).sum() / w.sum()}


def gold_signals(sim) -> GoldSignals:
    return GoldSignals(sim["labels"], sim["p_gold"], sim["p_cur"], {f"judge{k}": v for k, v in enumerate(sim["judges"])})


def pool_sample(sim, idx=None) -> PoolSample:
    idx = np.arange(len(sim["labels"])) if idx is None else idx
    return PoolSample([sim["labels"][i] for i in idx], sim["p_cur"][idx],
                      {f"judge{k}": [v[i] for i in idx] for k, v in enumerate(sim["judges"])})


def plan_for(gold, pool, band=0.0, options=None, **kw):
    return make_plan(gold, pool, stage2=Stage2Config(band=band), judge=JudgeConfig(), pool_size=kw.pop("pool_size", 100_000),
                     options=options or PlanOptions(bootstrap=0), **kw)


CASES = {
    # independent signals, two judges voting (ties undecided), a band so all three current-RM outcomes occur
    "independent": dict(sim=dict(gold_acc=0.8, cur_acc=0.75, judges=((0.8, 0.9), (0.7, 0.95))), band=0.1, eta=0.3),
    # the judge errs mostly where the current RM errs (accuracy 0.9 when it is right, 0.45 when it is wrong)
    "correlated": dict(sim=dict(gold_acc=0.75, cur_acc=0.7, judges=((None, 0.9),), judge_given_cur=(0.9, 0.45)), band=0.0, eta=0.25),
}


# -- 1. the prediction matches the real rule on 100k pairs ----------------------------------------------------
@pytest.mark.parametrize("case", list(CASES))
def test_prediction_matches_stage2_on_100k_pairs_within_one_point(case):
    c = CASES[case]
    rng = np.random.default_rng(11)
    pool = simulate(100_000, rng, eta=c["eta"], **c["sim"])
    actual = stage2_outcome(pool, c["band"])
    gold = simulate(100_000, rng, eta=0.0, **c["sim"])  # large, so 1 point is above the sampling error
    sample = rng.choice(100_000, 50_000, replace=False)
    plan = plan_for(gold_signals(gold), pool_sample(pool, sample), band=c["band"])

    assert plan.noise.identifiable and abs(plan.noise.used - pool["wrong"].mean()) < 0.01
    for k in PREDICTED:
        assert abs(plan.predictions[k].value - actual[k]) < 0.01, (k, plan.predictions[k].value, actual[k])
    assert abs(plan.judged_observed.value - actual["judged"]) < 0.01
    phi = {(e.a, e.b): e.phi.value for e in plan.error_correlations}
    if case == "correlated":
        assert phi[("current RM", "judge judge0")] > 0.3  # measured, and carried by the empirical joint
    else:
        assert abs(phi[("current RM", "judge judge0")]) < 0.02
    assert not [f for f in plan.flags if "at chance" in f or "not behave" in f or "does not score" in f]


# -- 2. at realistic sizes the reported intervals hold the truth ------------------------------------------------
def test_intervals_cover_stage2_outcome_at_realistic_sizes():
    c = CASES["correlated"]
    rng = np.random.default_rng(5)
    actual = stage2_outcome(simulate(100_000, rng, eta=c["eta"], **c["sim"]), c["band"])
    hits, widths = [], []
    for rep in range(20):
        gold = simulate(3000, rng, eta=0.0, **c["sim"])
        sample = simulate(2000, rng, eta=c["eta"], **c["sim"])
        plan = plan_for(gold_signals(gold), pool_sample(sample), band=c["band"], options=PlanOptions(bootstrap=200, seed=rep))
        for k in PREDICTED:
            e = plan.predictions[k]
            hits.append(e.low <= actual[k] <= e.high)
        widths.append(plan.predictions["keep"].high - plan.predictions["keep"].low)
    assert np.mean(hits) >= 0.85  # nominal 0.95; measured 0.91 to 0.97 over 12 seeds of this test
    assert np.median(widths) < 0.08  # and the intervals are informative, not merely wide


# -- 3. chance-level signals -------------------------------------------------------------------------------------
def mirrored_gold(n, rng) -> GoldSignals:
    """Signals exactly at chance: every pair comes with its mirror (probabilities 1 - p, judge reversed)."""
    pg, pc = rng.uniform(0.01, 0.99, n), rng.uniform(0.01, 0.99, n)
    j = rng.choice(["A", "B", None], n)
    rev = {"A": "B", "B": "A", None: None}
    return GoldSignals(["A"] * (2 * n), np.r_[pg, 1 - pg], np.r_[pc, 1 - pc], {"j": list(j) + [rev[x] for x in j]})


@pytest.mark.parametrize("eta", [0.1, 0.32])
def test_chance_signals_are_flagged_and_flip_precision_is_the_base_rate(eta):
    rng = np.random.default_rng(3)
    gold = mirrored_gold(500, rng)
    pool = PoolSample(["A"] * 400, rng.uniform(0, 1, 400), {"j": list(rng.choice(["A", "B"], 400))})
    blind = plan_for(gold, pool, band=0.1)
    assert all(s.at_chance for s in blind.signals)
    assert not blind.noise.identifiable and blind.predictions is None and blind.sweep is None
    assert any("not identifiable" in f for f in blind.flags)
    assert "not identifiable" in format_plan(blind)

    plan = plan_for(gold, pool, band=0.1, options=PlanOptions(bootstrap=200, noise_rate=eta))
    assert plan.flip_lift.value == pytest.approx(1.0, abs=1e-12)
    assert plan.predictions["flip_precision"].value == pytest.approx(eta, abs=1e-12)
    assert plan.predictions["residual_noise_kept"].value == pytest.approx(eta, abs=1e-12)
    assert "cannot detect flips" in format_plan(plan)
    assert any("right and wrong labels alike" in f for f in plan.flags)


def test_the_issue_figures_predict_flip_precision_near_the_base_rate():
    """bench/curation_replication.py on the shared sample: gold RM 0.539, current RM 0.507, judge 0.508, 30% flipped
    (0.32 after prep), 300 gold pairs, 889 pool pairs; it measured flip precision 0.349. One gold set of 300 pairs
    puts the prediction within about 0.04 of the truth, so the claim is tested over 20 of them."""
    sim = dict(gold_acc=0.539, cur_acc=0.507, judges=((0.508, 1.0),))
    rng = np.random.default_rng(0)
    actual = stage2_outcome(simulate(100_000, rng, eta=0.32, **sim), 0.0)["flip_precision"]
    assert abs(actual - 0.32) < 0.05  # the rule itself does barely better than the base rate
    predicted, covered, flagged, told = [], [], [], []
    for rep in range(20):
        gold, sample = simulate(300, rng, eta=0.0, **sim), simulate(889, rng, eta=0.32, **sim)
        plan = make_plan(gold_signals(gold), pool_sample(sample), stage2=Stage2Config(), judge=JudgeConfig(n_samples=1),
                         pool_size=889, options=PlanOptions(bootstrap=300, seed=rep, noise_rate=0.32))
        precision = plan.predictions["flip_precision"]
        predicted.append(precision.value)
        covered.append(precision.contains(actual))
        by_name = {s.name: s for s in plan.signals}
        flagged.append(by_name["current RM"].at_chance and by_name["judge judge0"].at_chance)
        table = format_plan(plan)  # at chance, or (the gold RM's slight edge detected) "most flips are wrong"
        told.append("cannot detect flips" in table or "most flips reverse a right label" in table)
    assert abs(np.median(predicted) - 0.32) < 0.05 and abs(np.median(predicted) - actual) < 0.02
    assert np.mean(covered) >= 0.8 and np.mean(flagged) >= 0.8 and all(told)


def test_below_chance_signal_is_named():
    rng = np.random.default_rng(4)
    gold = simulate(2000, rng, eta=0.0, gold_acc=0.8, cur_acc=0.2)
    plan = plan_for(gold_signals(gold), None, options=PlanOptions(bootstrap=0, noise_rate=0.2))
    cur = next(s for s in plan.signals if s.name == "current RM")
    assert not cur.at_chance and "below chance" in cur.verdict


def test_an_rm_below_chance_from_ties_says_so():
    rng = np.random.default_rng(12)
    gold = simulate(1000, rng, eta=0.0, gold_acc=0.8, cur_acc=0.9)
    gold["p_cur"][:700] = 0.5  # candidates identical once truncated: both get the same reward
    plan = plan_for(gold_signals(gold), None, options=PlanOptions(bootstrap=0, noise_rate=0.2))
    cur = next(s for s in plan.signals if s.name == "current RM")
    assert cur.ties == 700 and cur.to_dict()["ties"] == 700
    assert cur.accuracy.value < 0.5 and "because 700 of 1000 gold pairs tie at 0.5" in cur.verdict
    untied = float(np.mean(gold["p_cur"][700:] > 0.5))
    assert f"untied ones {untied:.3f}" in cur.verdict
    assert next(s for s in plan.signals if s.name == "gold RM").ties == 0


def test_a_noise_estimate_outside_the_unit_interval_is_shown_clipped():
    rng = np.random.default_rng(13)
    gold = simulate(2000, rng, eta=0.0, gold_acc=0.8, cur_acc=0.7, judges=((0.7, 1.0),))
    pool = simulate(2000, rng, eta=0.0, gold_acc=0.8, cur_acc=0.97, judges=((0.97, 1.0),))  # agrees more than on gold
    plan = plan_for(gold_signals(gold), pool_sample(pool), options=PlanOptions(bootstrap=200))
    est = plan.noise.estimate
    assert any("reaches outside [0, 1]" in f for f in plan.noise.flags)
    assert 0.0 <= est.low <= est.value <= est.high <= 1.0 and est.value == 0.0
    assert plan.noise.used == 0.0


# -- 4. the judge-accuracy sweep ----------------------------------------------------------------------------------
def test_sweep_matches_a_simulated_judge_of_that_accuracy():
    sim = dict(gold_acc=0.75, cur_acc=0.7, judges=((0.7, 0.9),))
    rng = np.random.default_rng(8)
    gold = simulate(100_000, rng, eta=0.0, **sim)
    pool = simulate(50_000, rng, eta=0.3, **sim)
    plan = plan_for(gold_signals(gold), pool_sample(pool), band=0.05, options=PlanOptions(bootstrap=0, sweep_points=6))
    points = {round(p["judge_accuracy"], 2): p for p in plan.sweep}
    measured = next(p for p in plan.sweep if p["measured"])
    assert measured["residual_noise_kept"] == pytest.approx(plan.predictions["residual_noise_kept"].value)
    kept = [p["residual_noise_kept"] for p in plan.sweep]
    assert kept == sorted(kept, reverse=True)  # a better judge keeps fewer wrong labels
    for acc in (0.6, 0.9):  # the swept judge (coin below, truth above the measured 0.7) against a real one
        other = simulate(100_000, rng, eta=0.3, **{**sim, "judges": ((acc, 0.9),)})
        actual = stage2_outcome(other, 0.05)
        for k in ("residual_noise_kept", "residual_noise_with_flips", "flip_precision", "flip_recall"):
            assert abs(points[acc][k] - actual[k]) < 0.015, (acc, k, points[acc][k], actual[k])


# -- 5. cost, checks and flags ------------------------------------------------------------------------------------
def test_cost_counts_calls_and_tokens_from_the_pool_sample():
    rng = np.random.default_rng(2)
    sim = dict(gold_acc=0.8, cur_acc=0.75, judges=((0.8, 1.0), (0.8, 1.0)))
    gold, sample = simulate(1000, rng, eta=0.0, **sim), simulate(500, rng, eta=0.2, **sim)
    plan = make_plan(gold_signals(gold), pool_sample(sample), stage2=Stage2Config(band=0.2), judge=JudgeConfig(n_samples=3),
                     pool_size=1_000_000, cost=JudgeCost(prompt_tokens=800, completion_tokens=40, calls_per_vote=1.25),
                     options=PlanOptions(bootstrap=0))
    share = np.mean([needs_judge(float(p), 0.2) for p in sample["p_cur"]])
    c = plan.cost
    assert c.source == "pool sample" and c.judged_fraction.value == pytest.approx(share)
    assert c.calls_per_pair == 3 * 2 * 1.25
    assert c.calls.value == pytest.approx(share * 1_000_000 * 7.5)
    assert c.prompt_tokens.value == pytest.approx(share * 1_000_000 * 7.5 * 800)
    assert c.completion_tokens.value == pytest.approx(share * 1_000_000 * 7.5 * 40)
    assert c.calls.low < c.calls.value < c.calls.high  # the share's Wilson interval, scaled


def test_a_pool_scored_unlike_the_gold_set_is_flagged():
    rng = np.random.default_rng(6)
    sim = dict(gold_acc=0.8, cur_acc=0.8, judges=((0.8, 1.0),))
    gold = simulate(3000, rng, eta=0.0, **sim)
    unsure_pool = simulate(3000, rng, eta=0.2, cur_confidence=0.2, **sim)  # same accuracy, scores near 0.5
    plan = plan_for(gold_signals(gold), pool_sample(unsure_pool), band=0.2, options=PlanOptions(bootstrap=200))
    assert any("does not score the pool as it scores the gold set" in f for f in plan.flags)


def test_signals_that_disagree_about_the_pool_noise_are_flagged():
    rng = np.random.default_rng(9)
    sim = dict(gold_acc=0.8, cur_acc=0.85, judges=((0.85, 1.0),))
    gold = simulate(5000, rng, eta=0.0, **sim)
    pool = simulate(5000, rng, eta=0.2, **sim)
    pool["judges"] = simulate(5000, rng, eta=0.2, **sim)["judges"]  # a judge that answered about other pairs
    plan = plan_for(gold_signals(gold), pool_sample(pool), options=PlanOptions(bootstrap=100))
    assert any("do not behave on the pool as on the gold set" in f for f in plan.flags)


def test_cells_are_decided_by_stage2_decide_and_checked():
    dec, judged = cells.decision_table(0.1)
    name = lambda c, g, j: cells.DECISIONS[dec[c, g, j]]  # noqa: E731
    assert name(cells.CONFIDENT, cells.AGREE, cells.UNDECIDED) == "keep"
    assert name(cells.CONFIDENT, cells.DISAGREE, cells.AGREE) == "discard"
    assert name(cells.UNSURE, cells.AGREE, cells.DISAGREE) == "keep"  # the current RM still agrees
    assert name(cells.UNSURE, cells.DISAGREE, cells.UNDECIDED) == "discard"
    assert name(cells.DISAGREE_CUR, cells.DISAGREE, cells.UNDECIDED) == "flip"
    assert name(cells.DISAGREE_CUR, cells.AGREE, cells.DISAGREE) == "discard"
    assert judged.tolist() == [False, True, True]
    assert (cells.decision_table(0.0)[0][cells.UNSURE] == -1).all()  # no unsure cell without a band

    tampered = dec.copy()
    tampered[cells.CONFIDENT, cells.AGREE, :] = cells.DECISIONS.index("discard")
    truth = np.array([True])
    with pytest.raises(cells.CellModelError, match="must follow curate/stages.py"):
        cells.gold_cells(truth, np.array([0.9]), np.array([0.9]), np.array([1], dtype=np.int8), 0.1, tampered)


@pytest.mark.parametrize("gold,pool,message", [
    (dict(labels=["A", "C"]), None, r"gold.labels\[1\] must be 'A' or 'B'"),
    (dict(p_gold=[0.2, 1.5]), None, r"gold.p_gold\[1\] must be a probability"),
    (dict(p_current=[0.2]), None, r"gold.p_current has 1 entries for 2 pairs"),
    (dict(judges={"j": ["A", "yes"]}), None, r"gold.judges\['j'\]\[1\] must be 'A', 'B' or None"),
    (dict(labels=[], p_gold=[], p_current=[], judges={}), None, "the gold set is empty"),
    ({}, dict(judges={"other": ["A"]}), r"pool.judges\['other'\] has no labels on the gold set"),
])
def test_bad_inputs_name_the_field_and_the_pair(gold, pool, message):
    g = GoldSignals(**{**dict(labels=["A", "B"], p_gold=[0.7, 0.4], p_current=[0.6, 0.3], judges={"j": ["A", None]}), **gold})
    p = None if pool is None else PoolSample(**{**dict(labels=["A"], p_current=[0.5], judges={}), **pool})
    with pytest.raises(PlanInputError, match=message):
        plan_for(g, p)


def test_plan_json_table_and_plot(tmp_path):
    rng = np.random.default_rng(1)
    sim = dict(gold_acc=0.75, cur_acc=0.7, judges=((0.65, 0.9),))
    gold, sample = simulate(800, rng, eta=0.0, **sim), simulate(600, rng, eta=0.25, **sim)
    plan = plan_for(gold_signals(gold), pool_sample(sample), band=0.1, options=PlanOptions(bootstrap=100),
                    cost=JudgeCost(500, 30))
    data = json.loads(json.dumps(plan.to_dict(), allow_nan=False))
    assert set(data["predictions"]) == set(PREDICTED)
    assert data["residual_noise"] == data["predictions"]["residual_noise_kept"]  # recycle_flips off
    assert data["noise"]["identifiable"] and data["sweep"] and data["assumptions"]
    table = format_plan(plan)
    for line in ("gold RM", "current RM", "judge judge0", "pool label noise", "keep / discard / flip", "residual noise",
                 "flip precision", "flip recall", "sent to the judges"):
        assert line in table
    png = plot_residual_noise(plan, tmp_path / "plan" / "residual_noise.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
