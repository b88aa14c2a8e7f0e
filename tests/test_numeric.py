"""The one sigmoid every subsystem uses (serving's /v1/compare, curation's label probabilities)."""

import math

from synpref.numeric import sigmoid


def test_sigmoid_is_exact_and_never_overflows():
    for x in (-30.0, -2.5, -1e-9, 0.0, 1e-9, 0.75, 30.0):
        assert math.isclose(sigmoid(x), 1.0 / (1.0 + math.exp(-x)), rel_tol=1e-15)
    for x in (0.3, 12.0, 700.0):
        assert math.isclose(sigmoid(x) + sigmoid(-x), 1.0, rel_tol=1e-15)
    # beyond math.exp's range (~709.78) on either side: no OverflowError, the right limits
    assert sigmoid(710.0) == 1.0 and sigmoid(1e308) == 1.0 and sigmoid(math.inf) == 1.0
    assert 0.0 < sigmoid(-710.0) < 1e-300 and sigmoid(-1e308) == 0.0 and sigmoid(-math.inf) == 0.0
    # small probabilities keep their precision (no clamping): e^-100 / (1 + e^-100)
    assert math.isclose(sigmoid(-100.0), math.exp(-100.0), rel_tol=1e-15)
    assert sigmoid(math.nan) == 0.5


def test_curation_uses_the_same_sigmoid():
    from synpref.curate import util

    assert util.sigmoid is sigmoid
