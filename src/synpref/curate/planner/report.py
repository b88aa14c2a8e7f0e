"""What a user reads of a plan: a short table with a plain-language verdict per line, and the sweep plot."""

from __future__ import annotations

from pathlib import Path

from .plan import Plan
from .stats import Estimate


def _fraction(e: Estimate | None) -> str:
    return "n/a" if e is None else e.text(3)


def _count(x: float | None) -> str:
    if x is None:
        return "n/a"
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= size:
            return f"{x / size:.3g}{unit}"
    return f"{x:.0f}"


def residual_verdict(residual: Estimate, eta: float) -> str:
    if residual.value is None:
        return "nothing is kept"
    if residual.high is not None and residual.high < eta:
        return f"removes {1 - residual.value / eta:.0%} of the pool's noise" if eta > 0 else "clean"
    if residual.low is not None and residual.low > eta:
        return "ADDS noise"
    if residual.high is None and residual.value < eta:
        return f"removes {1 - residual.value / eta:.0%} of the pool's noise (no interval)"
    return "no measurable cleaning"


def precision_verdict(precision: Estimate, lift: Estimate, eta: float) -> str:
    if precision.value is None:
        return "nothing is flipped"
    if lift.value is None:  # P(flip | right) is 0 on gold while something is flipped: an unbounded lift
        return "no right gold label was flipped: the flips repair wrong labels"
    if lift.contains(1.0) or abs(lift.value - 1.0) < 1e-9:
        return f"~ base rate {eta:.3f}: Stage 2 cannot detect flips"
    if precision.value < 0.5:
        return f"above the base rate {eta:.3f}, but most flips reverse a right label: keep recycle_flips off"
    return "most flips repair a wrong label"


def format_plan(plan: Plan) -> str:
    """The table ``synpref curate plan`` prints."""
    s = plan.settings
    lines = [f"Stage 2 plan: {plan.n_gold:,} gold pairs, {plan.n_pool_sample:,} pool pairs sampled, pool of "
             f"{s['pool_size']:,}; band {s['band']:.2f}, recycle_flips {'on' if s['recycle_flips'] else 'off'}",
             f"({plan.intervals})", "",
             f"{'signal':<24} {'accuracy on gold':<24} {'n':>6}  verdict"]
    for sig in plan.signals:
        decided = "" if sig.decided >= 1 else f" (decided {sig.decided:.0%} of pairs)"
        lines.append(f"{sig.name:<24} {sig.accuracy.text():<24} {sig.n:>6}  {sig.verdict}{decided}")
    strong = [c for c in plan.error_correlations if c.phi.value is not None and (
        (c.phi.low is not None and (c.phi.low > 0 or c.phi.high < 0)) or (c.phi.low is None and abs(c.phi.value) >= 0.1))]
    lines.append("")
    if strong:
        for c in strong:
            lines.append(f"{'errors correlate':<24} {c.a} ~ {c.b}: phi {c.phi.text(2)} on {c.n} pairs")
    else:
        lines.append(f"{'errors correlate':<24} no pair of signals measurably (every phi interval holds 0)")
    noise = plan.noise
    used = [f"{x.name} {x.eta.value:.3f}" for x in noise.per_signal if x.used]
    estimated = (f"{noise.estimate.text()} from {', '.join(used)}" if noise.identifiable
                 else f"not identifiable: {noise.reason}")
    if noise.assumed is not None:
        lines.append(f"{'pool label noise':<24} {noise.assumed:.3f} assumed; estimated: {estimated}")
    else:
        lines.append(f"{'pool label noise':<24} {estimated}")
    lines.append("")
    p, eta = plan.predictions, noise.used
    lines.append(f"{'Stage 2 on the pool':<24} label right -> keep {plan.given_right['keep'].value:.3f}, flip "
                 f"{plan.given_right['flip'].value:.3f}; label wrong -> keep {plan.given_wrong['keep'].value:.3f}, flip "
                 f"{plan.given_wrong['flip'].value:.3f}")
    if p is None:
        lines.append(f"{'':<24} no prediction: the noise rate is unknown (assume one: noise_rate)")
    else:
        residual = plan.residual_noise
        lines += [
            f"{'  keep / discard / flip':<24} {p['keep'].value:.3f} / {p['discard'].value:.3f} / {p['flip'].value:.3f}",
            f"{'  residual noise':<24} {_fraction(residual)} vs {eta:.3f} in the pool: {residual_verdict(residual, eta)}"
            + ("" if s["recycle_flips"] else f" (with recycled flips {_fraction(p['residual_noise_with_flips'])})"),
            f"{'  flip precision':<24} {_fraction(p['flip_precision'])}: {precision_verdict(p['flip_precision'], plan.flip_lift, eta)}",
            f"{'  flip recall':<24} {_fraction(p['flip_recall'])} of the wrong labels flipped "
            f"(detected, discarded or flipped: {_fraction(p['detection_recall'])})",
        ]
    if plan.cost is not None:
        c = plan.cost
        observed = "" if plan.judged_observed is None or p is None else f" (predicted {p['judged'].value:.3f})"
        lines.append(f"{'  sent to the judges':<24} {c.judged_fraction.text()} of the pool ({c.source}){observed} -> "
                     f"{_count(c.calls.value)} calls, {_count(c.prompt_tokens.value)} prompt + "
                     f"{_count(c.completion_tokens.value)} completion tokens for {c.pool_size:,} pairs")
    if plan.flags:
        lines += ["", "flags:"] + [f"  - {f}" for f in plan.flags]
    return "\n".join(lines)


def plot_residual_noise(plan: Plan, path: str | Path) -> Path:
    """PNG of the predicted residual noise against the judges' accuracy (the plan's sweep)."""
    if not plan.sweep:
        raise ValueError("this plan has no judge-accuracy sweep: it needs a noise rate (estimated or assumed) and "
                         "judges that decided at least one gold pair")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [pt["judge_accuracy"] for pt in plan.sweep]
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot(x, [pt["residual_noise_kept"] for pt in plan.sweep], marker="o", label="kept pairs")
    ax.plot(x, [pt["residual_noise_with_flips"] for pt in plan.sweep], marker="s", label="kept + recycled flips")
    ax.axhline(plan.noise.used, color="grey", linestyle="--", label=f"pool noise {plan.noise.used:.3f}")
    measured = [pt for pt in plan.sweep if pt["measured"]]
    if measured:
        ax.axvline(measured[0]["judge_accuracy"], color="red", linestyle=":",
                   label=f"measured judges {measured[0]['judge_accuracy']:.3f}")
    ax.set_xlabel("judge accuracy (decided gold pairs)")
    ax.set_ylabel("predicted residual label noise")
    ax.set_title("Stage 2: residual noise against judge accuracy\n(gold and current RM as measured)", fontsize=10)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
