"""Intervals: Wilson for a measured proportion, Poisson-bootstrap percentiles for everything derived.

The bootstrap is vectorised: row 0 of a weight matrix is all ones (the point estimate) and
rows 1.. are independent Poisson(1) weights per pair, so a statistic that is a ratio of
weighted sums is computed for every resample at once with one matrix product. (Poisson
weights rather than a multinomial draw: the resamples of the gold set and the pool sample
stay independent and each pair's weight is drawn once; for a few hundred pairs or more the
two bootstraps agree.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from .inputs import finite_or_none


@dataclass
class Estimate:
    value: float | None
    low: float | None = None
    high: float | None = None

    def to_dict(self) -> dict:
        return {"value": finite_or_none(self.value), "ci": [finite_or_none(self.low), finite_or_none(self.high)]}

    def contains(self, x: float) -> bool:
        """Whether ``x`` is inside the interval (False when there is none)."""
        return self.low is not None and self.high is not None and self.low <= x <= self.high

    def text(self, digits: int = 3) -> str:
        if self.value is None:
            return "n/a"
        v = f"{self.value:.{digits}f}"
        return v if self.low is None or self.high is None else f"{v} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def z_of(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(successes: int, n: int, confidence: float) -> Estimate:
    """The proportion with its Wilson score interval (exact coverage is close to nominal even near 0, 1 or small n)."""
    if n == 0:
        return Estimate(None)
    z = z_of(confidence)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half))


def weights(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(1 + resamples, n): ones, then Poisson(1) bootstrap weights."""
    w = np.ones((1 + resamples, n))
    if resamples and n:
        w[1:] = rng.poisson(1.0, size=(resamples, n))
    return w


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0 (an undefined ratio, reported as n/a)."""
    num, den = np.broadcast_arrays(np.asarray(num, dtype=float), np.asarray(den, dtype=float))
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def mean_rows(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Weighted mean of ``x`` (n,) or (n, k) for every weight row: (rows,) or (rows, k)."""
    return ratio(w @ x, w.sum(axis=1) if x.ndim == 1 else w.sum(axis=1)[:, None])


def estimate(draws: np.ndarray, confidence: float) -> Estimate:
    """Row 0 is the point estimate; the interval is the percentile interval of rows 1..."""
    value = float(draws[0])
    rest = draws[1:]
    rest = rest[np.isfinite(rest)]
    if not math.isfinite(value) or rest.size < 2:
        return Estimate(value if math.isfinite(value) else None)
    lo, hi = np.percentile(rest, [50 * (1 - confidence), 50 * (1 + confidence)])
    return Estimate(value, float(lo), float(hi))


def phi(w: np.ndarray, e1: np.ndarray, e2: np.ndarray) -> np.ndarray:
    """Phi coefficient of two error indicators (bool, n) for every weight row; NaN when a margin is empty."""
    a, b = e1.astype(float), e2.astype(float)
    n11, n1_, n_1, n = w @ (a * b), w @ a, w @ b, w.sum(axis=1)
    cov = n11 * n - n1_ * n_1
    return ratio(cov, np.sqrt(n1_ * (n - n1_) * n_1 * (n - n_1)))
