"""Numeric helpers that several subsystems share (no torch, no numpy)."""

from __future__ import annotations

import math


def sigmoid(x: float) -> float:
    """The logistic function 1 / (1 + e^-x), exact to float precision for any finite or infinite ``x``.

    Never overflows: ``math.exp`` is only called on a non-positive argument. NaN gives
    0.5 (no evidence either way).
    """
    if x != x:
        return 0.5
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)
