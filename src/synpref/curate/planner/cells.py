"""Stage 2's outcome cells, decided by the real rule, and their probabilities measured on the gold set.

A pool pair's Stage 2 decision depends on its signals only through three outcomes, each
relative to the pair's given label:

* current RM: CONFIDENT (``not needs_judge(p_cur, band)``), UNSURE (it agrees, ``p_cur > 0.5``,
  but within the band) or DISAGREE (``p_cur <= 0.5``);
* gold RM: AGREE (``p_gold > 0.5``) or DISAGREE;
* judges (the panel's vote, :func:`synpref.curate.judges.majority` of the endpoints' labels):
  AGREE, DISAGREE or UNDECIDED.

That is 3 x 2 x 3 = 18 cells. :func:`decision_table` puts one representative of each cell
through the configured rule's own :meth:`~synpref.curate.stages.Stage2Rule.decide` and
:meth:`~synpref.curate.stages.Stage2Rule.needs_judge` (``rule``: a name of
:data:`~synpref.curate.stages.STAGE2_RULES`; Skywork's :func:`~synpref.curate.stages.stage2_decide`
by default), so the planner predicts the rule the run applies. A rule that reads the pairs'
``objectivity`` (``attribute_gated``) decides within one objectivity at a time: its table is
per ``objectivity`` ("objective", "subjective"; None decides as "subjective"), and its
prediction is the mix of the two by the pool's objective share; :func:`check_cells` confirms on the gold pairs that a cell's representative and the
pair's own values get the same decision (it fails loudly if stages.py ever draws its lines
elsewhere).

Probabilities of the cells: the EMPIRICAL JOINT on the gold set, conditional on the label
being right or wrong. A gold pair is seen twice: with its true label (the "label right"
cell) and with the label reversed, probabilities ``1 - p`` and the judges' agreement
reversed (the "label wrong" cell): the RMs and the judges never see the label, so a pool
pair whose label is wrong looks to them exactly like a gold pair with its label reversed.
The empirical joint keeps every correlation between the signals (a judge that errs where
the current RM errs, an RM whose confidence tracks the gold RM's), which marginals plus
pairwise correlations cannot represent for three signals with 3-valued outcomes. It is not
smoothed: the empirical cell frequencies are unbiased for the cell probabilities, every
predicted fraction is a linear (or ratio-of-linear) function of them, so an empty cell
needs no pseudo-count (nothing is divided by a cell's probability), and a pseudo-count
would pull every prediction towards what a uniform table predicts. The sampling error of a
small gold set shows in the bootstrap intervals instead.

Assumptions, stated in the plan: the signals behave on the pool as on the gold set (same
distribution of pairs, same models), and whether a pool label is wrong is independent of
the signals' errors given the pair (label noise not concentrated on the pairs the signals
find hard).
"""

from __future__ import annotations

import numpy as np

from ..judges import majority
from ..stages import needs_judge, stage2_rule
from .inputs import LABELS

CONFIDENT, UNSURE, DISAGREE_CUR = 0, 1, 2
AGREE, DISAGREE = 0, 1
UNDECIDED = 2
CUR_NAMES = ("confident-agree", "unsure-agree", "disagree")
GOLD_NAMES = ("agree", "disagree")
JUDGE_NAMES = ("agree", "disagree", "undecided")
SHAPE = (3, 2, 3)
N_CELLS = 18
DECISIONS = ("keep", "discard", "flip")


def cur_cell(p: np.ndarray, band: float) -> np.ndarray:
    """The current RM's outcome for probabilities ``p`` of the label, with needs_judge's own test."""
    confident = ~np.vectorize(lambda x: needs_judge(float(x), band), otypes=[bool])(p) if p.size else np.zeros(0, bool)
    return np.where(confident, CONFIDENT, np.where(p > 0.5, UNSURE, DISAGREE_CUR)).astype(np.int8)


def gold_cell(p: np.ndarray) -> np.ndarray:
    return np.where(p > 0.5, AGREE, DISAGREE).astype(np.int8)


def judge_cell(judge_is_a: np.ndarray, label_is_a: np.ndarray) -> np.ndarray:
    """Panel outcome relative to the label: judge codes 1 = "A", 0 = "B", -1 = undecided."""
    agree = judge_is_a == label_is_a.astype(np.int8)
    return np.where(judge_is_a < 0, UNDECIDED, np.where(agree, AGREE, DISAGREE)).astype(np.int8)


def flat(cur: np.ndarray, gold: np.ndarray, judge: np.ndarray) -> np.ndarray:
    return np.ravel_multi_index((cur, gold, judge), SHAPE)


def panel_codes(judges: dict[str, np.ndarray], n: int) -> np.ndarray:
    """The panel's label per pair, voted with the run's own :func:`majority` (codes as in :func:`judge_cell`)."""
    if not judges:
        return np.full(n, -1, dtype=np.int8)
    names = {1: "A", 0: "B", -1: None}
    columns = np.stack(list(judges.values()), axis=1)
    combos, inverse = np.unique(columns, axis=0, return_inverse=True)
    voted = np.array([{"A": 1, "B": 0, None: -1}[majority([names[int(c)] for c in row])] for row in combos], dtype=np.int8)
    return voted[inverse.ravel()]


def _representatives(band: float) -> tuple[list[float | None], list[float]]:
    """A current-RM and a gold-RM probability inside each cell (None: the cell cannot occur)."""
    top = 0.5 + band
    cur = [(top + 1.0) / 2 if top < 1.0 else None, 0.5 + band / 2 if band > 0 else None, 0.25]
    return cur, [0.75, 0.25]


def decision_table(band: float, rule: str = "skywork", objectivity: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(decision code per cell, shape SHAPE, index into DECISIONS; judged per current-RM outcome, shape (3,)).

    Every cell is decided by the rule's ``decide(label="A", ..., objectivity)``; the judge's label is "A" when it
    agrees, "B" when it disagrees, None when undecided. An impossible current-RM outcome (no
    UNSURE cell when band is 0) is marked -1 and has probability 0.
    """
    decider = stage2_rule(rule, band)
    cur_rep, gold_rep = _representatives(band)
    judge_rep = ["A", "B", None]
    dec = np.full(SHAPE, -1, dtype=np.int8)
    judged = np.zeros(3, dtype=bool)
    for c, pc in enumerate(cur_rep):
        if pc is None:
            continue
        assert cur_cell(np.array([pc]), band)[0] == c, "a representative fell outside its cell"
        judged[c] = decider.needs_judge(pc, objectivity)
        for g, pg in enumerate(gold_rep):
            for j, lab in enumerate(judge_rep):
                dec[c, g, j] = DECISIONS.index(decider.decide("A", pc, pg, lab, objectivity)[0])
    return dec, judged


class CellModelError(RuntimeError):
    """The planner's cells no longer describe the rules of stages.py (a programming error, not a user's)."""


def check_cells(label_is_a: np.ndarray, p_cur: np.ndarray, p_gold: np.ndarray, judge: np.ndarray, cells: np.ndarray,
                dec: np.ndarray, band: float, rule: str = "skywork", objectivity: str | None = None) -> None:
    """Each pair decided with its own values must get its cell's decision."""
    decider = stage2_rule(rule, band)
    cd = dec.ravel()[cells]
    names = {1: "A", 0: "B", -1: None}
    for i in range(len(cells)):
        label = LABELS[0] if label_is_a[i] else LABELS[1]
        got = decider.decide(label, float(p_cur[i]), float(p_gold[i]), names[int(judge[i])], objectivity)[0]
        if cd[i] < 0 or DECISIONS[cd[i]] != got:
            raise CellModelError(f"pair {i}: the {rule} rule says {got} but its outcome cell "
                                 f"{np.unravel_index(cells[i], SHAPE)} says {DECISIONS[cd[i]] if cd[i] >= 0 else 'impossible'}: "
                                 "the planner's cells (curate/planner/cells.py) must follow curate/stages.py")


def gold_cells(truth_is_a: np.ndarray, p_gold: np.ndarray, p_cur: np.ndarray, panel: np.ndarray, band: float,
               dec: np.ndarray, check: bool = True, rule: str = "skywork", objectivity: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each gold pair's cell with its label right (the gold label) and with it wrong (reversed)."""
    wrong_is_a = ~truth_is_a
    right = flat(cur_cell(p_cur, band), gold_cell(p_gold), judge_cell(panel, truth_is_a))
    wrong = flat(cur_cell(1.0 - p_cur, band), gold_cell(1.0 - p_gold), judge_cell(panel, wrong_is_a))
    if check:
        check_cells(truth_is_a, p_cur, p_gold, panel, right, dec, band, rule, objectivity)
        check_cells(wrong_is_a, 1.0 - p_cur, 1.0 - p_gold, panel, wrong, dec, band, rule, objectivity)
    return right, wrong


def one_hot(cells: np.ndarray) -> np.ndarray:
    out = np.zeros((len(cells), N_CELLS))
    out[np.arange(len(cells)), cells] = 1.0
    return out


def rates(tables: np.ndarray, dec: np.ndarray, judged: np.ndarray) -> dict[str, np.ndarray]:
    """P(keep), P(discard), P(flip), P(judged) for each table (rows, 18) of cell probabilities."""
    t = tables.reshape(-1, *SHAPE)
    out = {name: (t * (dec == k)).sum(axis=(1, 2, 3)) for k, name in enumerate(DECISIONS)}
    out["judged"] = (t.sum(axis=(2, 3)) * judged).sum(axis=1)
    return out


def with_judge_accuracy(right: np.ndarray, wrong: np.ndarray, accuracy: float) -> tuple[np.ndarray, np.ndarray]:
    """The two cell tables with the panel's accuracy (among decided pairs) moved to ``accuracy``.

    Above the measured accuracy a share of the judges' wrong answers is replaced by the truth;
    below it a share of all its decided answers by a fair coin. The undecided rate and the
    other signals stay as measured (so does the correlation, shrunk by the replaced share).
    With the label right, a correct judge AGREES with it; with the label wrong it DISAGREES.
    """
    if not 0.5 <= accuracy <= 1.0:
        raise ValueError(f"a judge accuracy to sweep must be in [0.5, 1]; got {accuracy}")
    r, w = right.reshape(-1, *SHAPE).copy(), wrong.reshape(-1, *SHAPE).copy()
    per_row = (1, 2)
    correct = r[..., AGREE].sum(axis=per_row) + w[..., DISAGREE].sum(axis=per_row)
    decided = correct + r[..., DISAGREE].sum(axis=per_row) + w[..., AGREE].sum(axis=per_row)
    if np.any(decided <= 0):
        raise ValueError("the judges decided no gold pair: their accuracy cannot be varied")
    measured = correct / decided
    up = accuracy >= measured
    lam_up = np.where(measured >= 1.0, 0.0, (accuracy - measured) / np.where(measured >= 1.0, 1.0, 1.0 - measured))
    lam_down = np.where(up, 0.0, (measured - accuracy) / np.where(up, 1.0, measured - 0.5))
    lam_up, lam_down = lam_up[:, None, None] * up[:, None, None], lam_down[:, None, None]
    for t, ok, bad in ((r, AGREE, DISAGREE), (w, DISAGREE, AGREE)):
        c, e = t[..., ok].copy(), t[..., bad].copy()
        half = (c + e) / 2
        c, e = c + lam_up * e, (1 - lam_up) * e  # towards the truth (lam_up is 0 when going down)
        t[..., ok], t[..., bad] = (1 - lam_down) * c + lam_down * half, (1 - lam_down) * e + lam_down * half
    return r.reshape(-1, N_CELLS), w.reshape(-1, N_CELLS)


__all__ = ["CUR_NAMES", "CellModelError", "DECISIONS", "GOLD_NAMES", "JUDGE_NAMES", "N_CELLS", "SHAPE", "decision_table",
           "gold_cells", "one_hot", "panel_codes", "rates", "with_judge_accuracy"]
