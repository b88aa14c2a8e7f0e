"""The pool's label-noise rate, from how often each signal agrees with the pool's labels.

For one signal (the current RM, the gold RM when the pool sample is scored by it, each judge)
measure on the gold set ``a`` = P(it agrees with the true label) and ``b`` = P(it agrees with
the reversed label), and on the pool sample ``g`` = P(it agrees with the given label). When
whether a label is wrong is independent of the signal's errors,

    g = a (1 - eta) + b eta,   so   eta = (a - g) / (a - b).

For a judge that decides every pair, or an RM that never scores exactly 0.5, ``b = 1 - a`` and
this is the familiar ``eta = (a - g) / (2a - 1)``; keeping ``b`` separate makes undecided judge
answers (which agree with neither label) exact. ``a - b`` is the signal's power to tell a right
label from a wrong one: at chance (its accuracy's Wilson interval holds 0.5) eta is not
identifiable from it, and the signal is left out, with a flag.

The usable signals' estimates are combined with inverse-variance weights; each variance is the
delta-method variance of ``(a - g) / (a - b)`` with ``a``, ``b`` multinomial on the gold set
and ``g`` binomial on the pool sample. The weights ignore the covariance between signals (their
errors may correlate); the interval of the combination is the bootstrap's, which keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .stats import Estimate, estimate, mean_rows


@dataclass
class SignalNoise:
    """One signal's view of the pool noise."""

    name: str
    agreement: float | None  # g: share of pool-sample pairs where it agrees with the given label
    power: float | None  # a - b on the gold set
    eta: Estimate
    se: float | None  # delta-method standard error
    used: bool
    reason: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "agreement": self.agreement, "power": self.power, "eta": self.eta.to_dict(),
                "se": self.se, "used": self.used, "reason": self.reason}


@dataclass
class NoiseEstimate:
    """The pool's label-noise rate: estimated, assumed, or not identifiable."""

    estimate: Estimate  # the combination of the usable signals (value None: not identifiable)
    per_signal: list[SignalNoise] = field(default_factory=list)
    assumed: float | None = None  # the rate the predictions use instead, when given
    estimator: str = "eta = (a - g) / (a - b) per signal, inverse-variance weighted across signals; bootstrap interval"
    flags: list[str] = field(default_factory=list)
    reason: str = ""  # why it is not identifiable

    @property
    def identifiable(self) -> bool:
        return self.estimate.value is not None

    @property
    def used(self) -> float | None:
        """The rate the predictions are made at."""
        if self.assumed is not None:
            return self.assumed
        return None if self.estimate.value is None else min(1.0, max(0.0, self.estimate.value))

    def to_dict(self) -> dict:
        return {"estimate": self.estimate.to_dict(), "identifiable": self.identifiable, "assumed": self.assumed,
                "used": self.used, "reason": self.reason, "estimator": self.estimator, "per_signal": [s.to_dict() for s in self.per_signal],
                "flags": list(self.flags)}


@dataclass
class SignalAgreement:
    """A signal's agreement indicators: on gold with the true and the reversed label, on the pool with the given label."""

    name: str
    gold_truth: np.ndarray  # bool (n_gold,)
    gold_reversed: np.ndarray  # bool (n_gold,)
    pool_given: np.ndarray  # bool (n_pool,)
    at_chance: bool
    chance_reason: str = ""


def _delta_se(a: float, b: float, g: float, n_gold: float, n_pool: float) -> float:
    d = a - b
    var_g = g * (1 - g) / n_pool
    var_a, var_b, cov_ab = a * (1 - a) / n_gold, b * (1 - b) / n_gold, -a * b / n_gold
    da, db = (g - b) / d**2, (a - g) / d**2
    return float(np.sqrt(var_g / d**2 + da * da * var_a + db * db * var_b + 2 * da * db * cov_ab))


def estimate_noise(signals: list[SignalAgreement], w_gold: np.ndarray, w_pool: np.ndarray, confidence: float,
                   assumed: float | None) -> tuple[NoiseEstimate, np.ndarray | None]:
    """The noise estimate and its bootstrap draws (rows as the weight matrices; None when not identifiable)."""
    per, draws, inv_var = [], [], []
    n_gold, n_pool = w_gold.shape[1], w_pool.shape[1]
    for s in signals:
        a = mean_rows(w_gold, s.gold_truth.astype(float))
        b = mean_rows(w_gold, s.gold_reversed.astype(float))
        g = mean_rows(w_pool, s.pool_given.astype(float)) if n_pool else np.full(len(w_gold), np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            eta = (a - g) / (a - b)
        a0, b0, g0 = float(a[0]), float(b[0]), float(g[0])
        if not n_pool:
            per.append(SignalNoise(s.name, None, a0 - b0, Estimate(None), None, False, "no pool sample"))
            continue
        if s.at_chance:
            per.append(SignalNoise(s.name, g0, a0 - b0, Estimate(None), None, False, s.chance_reason))
            continue
        se = _delta_se(a0, b0, g0, n_gold, n_pool)
        per.append(SignalNoise(s.name, g0, a0 - b0, estimate(eta, confidence), se, True))
        draws.append(eta)
        inv_var.append(1.0 / max(se, 1e-12) ** 2)
    flags = []
    if not draws:
        why = ("no pool sample" if not n_pool else
               f"no signal measured on the pool sample ({', '.join(s.name for s in signals)}) is better than chance on the gold set")
        flags.append(f"pool label noise not identifiable: {why}"
                     + ("" if assumed is not None else "; predictions need an assumed noise rate (noise_rate)"))
        return NoiseEstimate(Estimate(None), per, assumed, flags=flags, reason=why), None
    wts = np.asarray(inv_var) / np.sum(inv_var)
    combined = np.sum(np.stack(draws) * wts[:, None], axis=0)
    est = estimate(combined, confidence)
    for s in per:
        if s.used and s.se and abs(s.eta.value - est.value) > 3 * s.se:
            flags.append(f"{s.name} puts the pool noise at {s.eta.value:.3f}, more than 3 standard errors from the "
                         f"combined {est.value:.3f}: the signals do not behave on the pool as on the gold set")
    raw = [v for v in (est.value, est.low, est.high) if v is not None]
    if any(not 0.0 <= v <= 1.0 for v in raw):
        # A rate lies in [0, 1]: the estimate and its interval are reported clipped (as the predictions use them).
        flags.append(f"the noise estimate {est.text()} reaches outside [0, 1]: shown clipped to it "
                     "(the signals behave differently on the pool than on the gold set, or the samples are small)")
        clip = lambda v: None if v is None else min(1.0, max(0.0, v))  # noqa: E731
        est = Estimate(clip(est.value), clip(est.low), clip(est.high))
    return NoiseEstimate(est, per, assumed, flags=flags), combined
