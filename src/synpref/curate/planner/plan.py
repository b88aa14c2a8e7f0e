""":func:`make_plan`: what Stage 2 will do to a pool, predicted from signals measured on the gold set and a pool sample.

1. Accuracy of the gold RM, the current RM, each judge (and the judges' vote) against the gold
   labels, with Wilson intervals; a signal whose interval holds 0.5 is flagged at chance.
2. How their errors correlate: the phi coefficient of each pair of error indicators, on the gold
   pairs where both decided, with a bootstrap interval.
3. The pool's label-noise rate (noise.py), or the rate the caller assumes.
4. Stage 2's keep / discard / flip fractions and their quality (predict.py), from the outcome
   cells decided by the real rule (cells.py), with bootstrap intervals that resample the gold set
   and the pool sample together (so the uncertainty of the noise estimate is inside them).
5. The share of the pool sent to the judges, and the calls and tokens a run on ``pool_size``
   pairs will spend; the share is measured directly on the pool sample (``needs_judge`` on its
   current-RM scores) and also predicted, and the two are compared (a check that the gold set's
   signals behave like the pool's).
6. Residual noise against judge accuracy: the judges' accuracy swept from 0.5 to 1, everything
   else as measured (cells.with_judge_accuracy), for the plot.

Nothing here runs a model or a judge: the caller measures the signals (inputs.py) and wires the
result into ``synpref curate plan`` and the run's summary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..config import JudgeConfig, Stage2Config
from ..stages import stage2_rule
from . import cells
from .inputs import GoldSignals, JudgeCost, PlanInputError, PlanOptions, PoolSample, judge_codes, label_array, prob_array
from .noise import NoiseEstimate, SignalAgreement, estimate_noise
from .predict import PREDICTED, predict
from .stats import Estimate, estimate, mean_rows, phi, ratio, weights, wilson

VOTE = "judges (vote)"
ASSUMPTIONS = (
    "The signals behave on the pool as on the gold set: same kind of pairs, same models, same judge settings.",
    "Whether a pool label is wrong is independent of the signals' errors on that pair (noise is not concentrated "
    "on the pairs the signals find hard).",
    "A pool pair with a wrong label looks to the RMs and judges like a gold pair with its label reversed (they never "
    "see the label).",
    "The out-of-fold gold RM measured here stands for the one the run trains on every gold pair (a little stronger, "
    "so the prediction errs on the pessimistic side).",
    "Gold pairs themselves are outside these fractions (the run adds them to curated/ as they are).",
)


@dataclass
class SignalAccuracy:
    name: str
    accuracy: Estimate  # among the gold pairs it decided on (Wilson interval)
    n: int  # gold pairs it decided on
    decided: float  # share of gold pairs it decided on (1 for the RMs)
    at_chance: bool
    verdict: str
    ties: int = 0  # RM only: gold pairs scored exactly 0.5 (counted wrong, as Stage 2 does)

    def to_dict(self) -> dict:
        return {"name": self.name, "accuracy": self.accuracy.to_dict(), "n": self.n, "decided": self.decided,
                "at_chance": self.at_chance, "verdict": self.verdict, "ties": self.ties}


@dataclass
class ErrorCorrelation:
    a: str
    b: str
    phi: Estimate
    n: int  # gold pairs where both decided

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "phi": self.phi.to_dict(), "n": self.n}


@dataclass
class Cost:
    pool_size: int
    judged_fraction: Estimate  # the share of the pool sent to the judges (its source below)
    source: str  # "pool sample" (measured) or "predicted"
    judged_pairs: Estimate
    calls: Estimate
    prompt_tokens: Estimate
    completion_tokens: Estimate
    calls_per_pair: float  # n_samples x endpoints x calls per vote

    def to_dict(self) -> dict:
        return {"pool_size": self.pool_size, "judged_fraction": self.judged_fraction.to_dict(), "source": self.source,
                "judged_pairs": self.judged_pairs.to_dict(), "calls": self.calls.to_dict(),
                "prompt_tokens": self.prompt_tokens.to_dict(), "completion_tokens": self.completion_tokens.to_dict(),
                "calls_per_pair": self.calls_per_pair}


@dataclass
class Plan:
    """Everything ``synpref curate plan`` reports; :meth:`to_dict` is plan.json."""

    settings: dict
    n_gold: int
    n_pool_sample: int
    signals: list[SignalAccuracy]
    error_correlations: list[ErrorCorrelation]
    noise: NoiseEstimate
    given_right: dict[str, Estimate]  # P(keep | discard | flip | judged) when the label is right
    given_wrong: dict[str, Estimate]  # ... when it is wrong
    flip_lift: Estimate  # P(flip | wrong) / P(flip | right): 1 = the rule cannot tell them apart
    predictions: dict[str, Estimate] | None  # PREDICTED; None when no noise rate is known
    judged_observed: Estimate | None  # share of the pool sample with needs_judge (Wilson)
    cost: Cost | None
    sweep: list[dict] | None  # judge accuracy -> predicted residual noise, flip precision and recall
    flags: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=lambda: list(ASSUMPTIONS))
    intervals: str = ""

    @property
    def residual_noise(self) -> Estimate | None:
        """The residual noise of what the run writes to curated/ (with the flips when recycle_flips is on)."""
        if self.predictions is None:
            return None
        return self.predictions["residual_noise_with_flips" if self.settings["recycle_flips"] else "residual_noise_kept"]

    def to_dict(self) -> dict:
        est = lambda d: None if d is None else {k: v.to_dict() for k, v in d.items()}  # noqa: E731
        return {
            "settings": dict(self.settings), "n_gold": self.n_gold, "n_pool_sample": self.n_pool_sample,
            "signals": [s.to_dict() for s in self.signals],
            "error_correlations": [c.to_dict() for c in self.error_correlations],
            "noise": self.noise.to_dict(),
            "given_right": est(self.given_right), "given_wrong": est(self.given_wrong), "flip_lift": self.flip_lift.to_dict(),
            "predictions": est(self.predictions),
            "residual_noise": None if self.residual_noise is None else self.residual_noise.to_dict(),
            "judged_observed": None if self.judged_observed is None else self.judged_observed.to_dict(),
            "cost": None if self.cost is None else self.cost.to_dict(),
            "sweep": self.sweep, "flags": list(self.flags), "assumptions": list(self.assumptions), "intervals": self.intervals,
        }


def _accuracy(name: str, correct: np.ndarray, decided: np.ndarray, confidence: float,
              tied: np.ndarray | None = None) -> SignalAccuracy:
    """``tied``: an RM's pairs scored exactly 0.5, counted wrong (Stage 2 reads a tie as disagreement)."""
    n = int(decided.sum())
    acc = wilson(int((correct & decided).sum()), n, confidence)
    share = n / len(decided) if len(decided) else 0.0
    ties = 0 if tied is None else int((tied & decided).sum())
    if n == 0:
        return SignalAccuracy(name, acc, 0, share, True, "decided no gold pair: no evidence")
    if acc.contains(0.5):
        verdict = "at chance: it cannot tell a right label from a wrong one"
    elif acc.high < 0.5 and ties:
        untied = wilson(int((correct & decided).sum()), n - ties, confidence)
        verdict = (f"below chance because {ties} of {n} gold pairs tie at 0.5 and count as wrong "
                   f"(accuracy on the untied ones {untied.text()}): see the tie flag")
    elif acc.high < 0.5:
        verdict = "below chance: it prefers the rejected response (reversed labels or scores?)"
    else:
        verdict = "better than chance"
    if ties and not verdict.startswith("below chance because"):
        verdict += f" ({ties} of {n} gold pairs tie at 0.5 and count as wrong)"
    return SignalAccuracy(name, acc, n, share, acc.contains(0.5), verdict, ties)


@dataclass
class _Measured:
    """The inputs as arrays (judge codes: 1 = "A", 0 = "B", -1 = undecided)."""

    truth: np.ndarray  # gold labels, True = "A"
    p_gold: np.ndarray
    p_cur: np.ndarray
    judges: dict[str, np.ndarray]
    pool_given: np.ndarray  # pool labels, True = "A"
    pool_p_cur: np.ndarray
    pool_p_gold: np.ndarray | None
    pool_judges: dict[str, np.ndarray]


def _measured(gold: GoldSignals, pool: PoolSample | None) -> _Measured:
    truth = label_array(gold.labels, "gold.labels")
    n = len(truth)
    if n == 0:
        raise PlanInputError("the gold set is empty: the planner measures every signal on gold pairs")
    gj = {name: judge_codes(v, n, f"gold.judges[{name!r}]") for name, v in gold.judges.items()}
    out = _Measured(truth, prob_array(gold.p_gold, n, "gold.p_gold"), prob_array(gold.p_current, n, "gold.p_current"), gj,
                    np.zeros(0, bool), np.zeros(0), None, {})
    if pool is not None:
        out.pool_given = label_array(pool.labels, "pool.labels")
        m = len(out.pool_given)
        out.pool_p_cur = prob_array(pool.p_current, m, "pool.p_current")
        out.pool_p_gold = None if pool.p_gold is None else prob_array(pool.p_gold, m, "pool.p_gold")
        unknown = [name for name in pool.judges if name not in gj]
        if unknown:
            raise PlanInputError(f"pool.judges[{unknown[0]!r}] has no labels on the gold set, so its accuracy is unknown: "
                                 "judge the gold pairs with it too")
        out.pool_judges = {name: judge_codes(v, m, f"pool.judges[{name!r}]") for name, v in pool.judges.items()}
    return out


def _signals(x: _Measured, panel: np.ndarray, conf: float) -> tuple[list[SignalAccuracy], dict]:
    """Each signal's accuracy on gold, and its error indicator with the pairs it decided on."""
    everyone = np.ones(len(x.truth), dtype=bool)
    truth = x.truth.astype(np.int8)
    signals = [_accuracy("gold RM", x.p_gold > 0.5, everyone, conf, x.p_gold == 0.5),
               _accuracy("current RM", x.p_cur > 0.5, everyone, conf, x.p_cur == 0.5)]
    errors = {"gold RM": (~(x.p_gold > 0.5), everyone), "current RM": (~(x.p_cur > 0.5), everyone)}
    voters = [(f"judge {name}", codes) for name, codes in x.judges.items()] + ([(VOTE, panel)] if len(x.judges) > 1 else [])
    for name, codes in voters:
        decided = codes >= 0
        signals.append(_accuracy(name, codes == truth, decided, conf))
        errors[name] = (decided & (codes != truth), decided)
    return signals, errors


def _correlations(errors: dict, wg: np.ndarray, conf: float) -> list[ErrorCorrelation]:
    names, out = list(errors), []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if b == VOTE and a.startswith("judge "):
                continue  # the vote is made of the judges' labels: their errors coincide by construction
            (ea, da), (eb, db) = errors[a], errors[b]
            both = da & db
            out.append(ErrorCorrelation(a, b, estimate(phi(wg[:, both], ea[both], eb[both]), conf), int(both.sum())))
    return out


def _noise_signals(x: _Measured, by_name: dict[str, SignalAccuracy]) -> list[SignalAgreement]:
    """The signals measured on the pool sample, with their agreement indicators (noise.py)."""

    def agreement(name, gold_truth, gold_reversed, pool_given):
        s = by_name[name]
        return SignalAgreement(name, gold_truth, gold_reversed, pool_given, s.at_chance, s.verdict)

    out = [agreement("current RM", x.p_cur > 0.5, (1 - x.p_cur) > 0.5, x.pool_p_cur > 0.5)]
    if x.pool_p_gold is not None:
        out.append(agreement("gold RM", x.p_gold > 0.5, (1 - x.p_gold) > 0.5, x.pool_p_gold > 0.5))
    truth, given = x.truth.astype(np.int8), x.pool_given.astype(np.int8)
    for name, codes in x.pool_judges.items():
        g = x.judges[name]
        out.append(agreement(f"judge {name}", g == truth, (g >= 0) & (g != truth), codes == given))
    return out


def _cost(share: Estimate, source: str, pool_size: int, per_pair: float, cost: JudgeCost) -> Cost:
    def scale(f: float) -> Estimate:
        return Estimate(*(None if v is None else v * f for v in (share.value, share.low, share.high)))

    calls = pool_size * per_pair
    return Cost(pool_size, share, source, scale(pool_size), scale(calls), scale(calls * cost.prompt_tokens),
                scale(calls * cost.completion_tokens), per_pair)


def make_plan(gold: GoldSignals, pool: PoolSample | None, *, stage2: Stage2Config, judge: JudgeConfig, pool_size: int,
              n_endpoints: int | None = None, cost: JudgeCost | None = None, options: PlanOptions | None = None,
              rule: str | None = None, gold_objectivity: Sequence[str | None] | None = None,
              pool_objectivity: Sequence[str | None] | None = None) -> Plan:
    """Predict Stage 2 on a pool of ``pool_size`` pairs (see the module docstring).

    ``n_endpoints`` (default: the number of judges in ``gold.judges``) and ``judge.n_samples`` set the calls per
    judged pair; ``pool=None`` leaves the noise rate to ``options.noise_rate``. ``rule`` (default
    ``stage2.rule``) names the Stage 2 rule of :data:`~synpref.curate.stages.STAGE2_RULES`; a rule that reads the
    pairs' objectivity is predicted per objectivity ("objective", else "subjective") and mixed by the pool
    sample's objective share (``pool_objectivity``, one per pool-sample pair; without it ``gold_objectivity``'s),
    the cell probabilities measured on every gold pair (the signals assumed to behave alike on both kinds).
    """
    opt, cost = options or PlanOptions(), cost or JudgeCost()
    band, conf = float(stage2.band), opt.confidence
    if pool_size < 0:
        raise PlanInputError(f"the pool size must be >= 0; got {pool_size}")
    x = _measured(gold, pool)
    n, m = len(x.truth), len(x.pool_given)
    n_endpoints = len(x.judges) if n_endpoints is None else n_endpoints
    rng = np.random.default_rng(opt.seed)
    wg, wp = weights(n, opt.bootstrap, rng), weights(m, opt.bootstrap, rng)
    flags: list[str] = []

    # 1-2. accuracies and error correlations
    panel = cells.panel_codes(x.judges, n)
    signals, errors = _signals(x, panel, conf)
    by_name = {s.name: s for s in signals}
    flags += [f"{s.name} accuracy {s.accuracy.text()} on {s.n} gold pairs: {s.verdict}" for s in signals if s.at_chance]
    correlations = _correlations(errors, wg, conf)

    # 3. pool noise
    if pool is not None and not x.pool_judges and x.judges:
        flags.append("the pool sample was not judged: the noise rate rests on the RMs alone")
    noise, eta_draws = estimate_noise(_noise_signals(x, by_name), wg, wp, conf, opt.noise_rate)
    flags += noise.flags

    # 4. Stage 2 decisions given a right and a wrong label, then on the pool
    rule = rule or getattr(stage2, "rule", "skywork")
    decider = stage2_rule(rule, band)
    gold_obj = _objectivity(gold_objectivity, n, "gold_objectivity")
    pool_obj = _objectivity(pool_objectivity, m, "pool_objectivity")
    if "objectivity" in decider.uses:
        source, w_src = (pool_obj, wp) if pool_obj is not None else (gold_obj, wg)
        if source is None:
            raise PlanInputError(f"the {rule} rule decides by objectivity: give pool_objectivity (or gold_objectivity), "
                                 "one per pair (the attributes step's objectivity)")
        share = mean_rows(w_src, np.array([o == "objective" for o in source], dtype=float))
        components = [("objective", share), ("subjective", 1.0 - share)]
        if not (source == "objective").any():
            flags.append(f"no {'pool-sample' if pool_obj is not None else 'gold'} pair is objective: the {rule} rule judges none")
    else:
        components = [(None, np.ones(len(wg)))]
    tables = []
    right_cells = wrong_cells = None
    for obj, _w in components:
        dec, judged = cells.decision_table(band, rule, obj)
        right_cells, wrong_cells = cells.gold_cells(x.truth, x.p_gold, x.p_cur, panel, band, dec, rule=rule, objectivity=obj)
        tables.append((dec, judged))
    t_right, t_wrong = mean_rows(wg, cells.one_hot(right_cells)), mean_rows(wg, cells.one_hot(wrong_cells))
    r_right = _mixed([cells.rates(t_right, dec, judged) for dec, judged in tables], [w for _o, w in components])
    r_wrong = _mixed([cells.rates(t_wrong, dec, judged) for dec, judged in tables], [w for _o, w in components])
    lift = estimate(ratio(r_wrong["flip"], r_right["flip"]), conf)
    if lift.contains(1.0) or (lift.value is not None and abs(lift.value - 1.0) < 1e-9):
        flags.append(f"Stage 2 flips right and wrong labels alike (P(flip | wrong) / P(flip | right) = {lift.text(2)}): "
                     "flip precision cannot be told from the base rate")
    predictions = None
    if noise.used is not None:
        eta_rows = np.full(len(wg), noise.used) if eta_draws is None or opt.noise_rate is not None else np.clip(eta_draws, 0, 1)
        raw = predict(r_right, r_wrong, eta_rows)
        predictions = {k: estimate(raw[k], conf) for k in PREDICTED}

    # 5. the share sent to the judges, measured and predicted, and its cost
    judged_observed = None
    if m:
        objs = pool_obj if pool_obj is not None else [None] * m
        asked = np.fromiter((decider.needs_judge(float(p), o) for p, o in zip(x.pool_p_cur, objs)), dtype=bool, count=m)
        judged_observed = wilson(int(asked.sum()), m, conf)
        pred = None if predictions is None else predictions["judged"]
        if pred is not None and pred.low is not None and (pred.high < judged_observed.low or pred.low > judged_observed.high):
            flags.append(f"the gold set predicts {pred.value:.3f} of the pool sent to the judges but the pool sample has "
                         f"{judged_observed.value:.3f}: the current RM does not score the pool as it scores the gold set")
    per_pair = judge.n_samples * n_endpoints * cost.calls_per_vote
    plan_cost = (_cost(judged_observed, "pool sample", pool_size, per_pair, cost) if judged_observed is not None else
                 _cost(predictions["judged"], "predicted", pool_size, per_pair, cost) if predictions is not None else None)

    # 6. residual noise against judge accuracy
    sweep = None
    panel_accuracy = by_name.get(VOTE if len(x.judges) > 1 else next((f"judge {j}" for j in x.judges), ""))
    if noise.used is not None and panel_accuracy is not None and panel_accuracy.n:
        sweep = judge_sweep(t_right[:1], t_wrong[:1], tables, [float(w[0]) for _o, w in components], float(noise.used),
                            opt.sweep_points, panel_accuracy.accuracy.value)

    settings = {"rule": rule, "objective_share": None if len(components) == 1 else float(components[0][1][0]),
                "band": band, "recycle_flips": bool(stage2.recycle_flips), "n_samples": judge.n_samples,
                "n_endpoints": n_endpoints, "judges": list(x.judges), "pool_size": pool_size,
                "judge_cost": {"prompt_tokens": cost.prompt_tokens, "completion_tokens": cost.completion_tokens,
                               "calls_per_vote": cost.calls_per_vote},
                "bootstrap": opt.bootstrap, "confidence": conf, "seed": opt.seed}
    derived = (f"percentile intervals of {opt.bootstrap} Poisson-bootstrap resamples of the gold set and the pool sample "
               "for everything derived" + (" (the assumed noise rate held fixed)" if opt.noise_rate is not None else "")
               if opt.bootstrap else "no interval for what is derived (bootstrap off)")
    return Plan(settings, n, m, signals, correlations, noise, {k: estimate(v, conf) for k, v in r_right.items()},
                {k: estimate(v, conf) for k, v in r_wrong.items()}, lift, predictions, judged_observed, plan_cost, sweep,
                flags, intervals=f"{conf:.0%} intervals: Wilson score intervals for accuracies and shares measured directly; "
                f"{derived}")


def _objectivity(values, n: int, where: str) -> np.ndarray | None:
    if values is None:
        return None
    if len(values) != n:
        raise PlanInputError(f"{where} has {len(values)} entries for {n} pairs: give one per pair (None without attributes)")
    return np.array(["objective" if v == "objective" else "subjective" for v in values], dtype=object)


def _mixed(parts: list[dict[str, np.ndarray]], weights_: list) -> dict[str, np.ndarray]:
    """The rates of each objectivity, mixed by its share (one part: as it is)."""
    if len(parts) == 1:
        return parts[0]
    return {k: sum(w * p[k] for p, w in zip(parts, weights_)) for k in parts[0]}


def judge_sweep(t_right: np.ndarray, t_wrong: np.ndarray, tables: list[tuple[np.ndarray, np.ndarray]], shares: list[float],
                eta: float, points: int, measured: float) -> list[dict]:
    """Predicted residual noise, flip precision and recall as the judges' accuracy goes from 0.5 to 1 (and at ``measured``);
    ``tables`` (decision, judged) per objectivity, mixed by ``shares`` (one table for a rule without objectivity)."""
    grid = sorted(set(np.round(np.linspace(0.5, 1.0, points), 6).tolist()) | {round(float(measured), 6)})
    out = []
    for acc in grid:
        if acc < 0.5:
            continue
        r, w = cells.with_judge_accuracy(t_right, t_wrong, acc)
        p = predict(_mixed([cells.rates(r, d, j) for d, j in tables], shares),
                    _mixed([cells.rates(w, d, j) for d, j in tables], shares), np.array([eta]))
        out.append({"judge_accuracy": acc, "measured": acc == round(float(measured), 6),
                    **{k: (None if not np.isfinite(p[k][0]) else float(p[k][0])) for k in
                       ("residual_noise_kept", "residual_noise_with_flips", "flip_precision", "flip_recall", "keep", "flip")}})
    return out
