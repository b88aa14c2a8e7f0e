"""Stage 2's outcome on a pool with label-noise rate eta, from the decision rates given a right or a wrong label.

With ``X_r`` = P(decision X | label right) and ``X_w`` = P(X | label wrong) (cells.rates of the
two cell tables), on a pool where a share eta of the labels is wrong:

* P(X) = (1 - eta) X_r + eta X_w for keep, discard, flip and "sent to the judges";
* residual noise of the kept pairs = eta keep_w / keep (a kept pair keeps its label);
* with recycled flips the curated pairs are kept + flipped, and a flipped pair is wrong when its
  label was right: (eta keep_w + (1 - eta) flip_r) / (keep + flip);
* flip precision = eta flip_w / flip (a flip repairs a wrong label), flip recall = flip_w;
* detection (discard or flip) precision = eta (discard_w + flip_w) / (discard + flip), recall =
  discard_w + flip_w.

``flip_w / flip_r`` (the lift) needs no eta: at 1 the rule flips right and wrong labels alike and
flip precision equals the base rate eta, whatever eta is.
"""

from __future__ import annotations

import numpy as np

from .stats import ratio

PREDICTED = ("keep", "discard", "flip", "judged", "residual_noise_kept", "residual_noise_with_flips", "flip_precision",
             "flip_recall", "detection_precision", "detection_recall")


def predict(right: dict[str, np.ndarray], wrong: dict[str, np.ndarray], eta: np.ndarray) -> dict[str, np.ndarray]:
    """Every fraction in PREDICTED, for each row of the rates and of ``eta``."""
    ok = 1.0 - eta
    out = {k: ok * right[k] + eta * wrong[k] for k in ("keep", "discard", "flip", "judged")}
    out["residual_noise_kept"] = ratio(eta * wrong["keep"], out["keep"])
    out["residual_noise_with_flips"] = ratio(eta * wrong["keep"] + ok * right["flip"], out["keep"] + out["flip"])
    out["flip_precision"] = ratio(eta * wrong["flip"], out["flip"])
    out["flip_recall"] = np.broadcast_to(wrong["flip"], np.shape(eta)).astype(float)
    detected_w = wrong["discard"] + wrong["flip"]
    out["detection_precision"] = ratio(eta * detected_w, out["discard"] + out["flip"])
    out["detection_recall"] = np.broadcast_to(detected_w, np.shape(eta)).astype(float)
    return out
