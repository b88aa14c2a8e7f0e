"""The Stage 2 rule for one pair, as a pure function (tested on its own).

Inputs are probabilities of the pair's CURRENT label ``label`` ("A": candidate 0
better, "B": candidate 1): ``p_cur`` from the current best RM, ``p_gold`` from the
gold RM (trained on all human-verified pairs), and ``judge`` (the judges' label or
None when undecided / not asked).

* The current RM agrees confidently (``p_cur > 0.5 + band``): **keep** iff the gold
  RM agrees too (``p_gold > 0.5``), else **discard**.
* Otherwise the pair is relabelled by the judges. **keep** iff the gold RM agrees
  with the label and either the judges or the current RM (``p_cur > 0.5``) do.
  Else, when the gold RM agrees with the FLIPPED label and either the judges or the
  current RM agree with it too, **flip** (the label is reversed: relabelled by the
  judges, or recycled by flipping); else **discard**.

Flipped pairs go to the curated output only with ``recycle_flips``; they are
always written to ``recycled/`` and the ledger.
"""

from __future__ import annotations


def other(label: str) -> str:
    return "B" if label == "A" else "A"


def needs_judge(p_cur: float, band: float = 0.0) -> bool:
    return not (p_cur > 0.5 + band)


def stage2_decide(label: str, p_cur: float, p_gold: float, judge: str | None, *, band: float = 0.0) -> tuple[str, str, str]:
    """``(decision, reason, final_label)``; decision in keep | flip | discard."""
    if not needs_judge(p_cur, band):
        if p_gold > 0.5:
            return "keep", "current RM confident and gold RM agree with the label", label
        return "discard", "current RM agrees but the gold RM disagrees with the label", label
    gold_ok, cur_ok = p_gold > 0.5, p_cur > 0.5
    if gold_ok and (judge == label or cur_ok):
        why = "judges" if judge == label else "current RM (judges " + ("undecided" if judge is None else "disagree") + ")"
        return "keep", f"current RM unsure/wrong; gold RM and {why} agree with the label", label
    flipped = other(label)
    if not gold_ok and (judge == flipped or not cur_ok):
        who = "judges" if judge == flipped else "current RM"
        return "flip", f"gold RM and {who} agree with the flipped label", flipped
    if gold_ok:
        return "discard", "gold RM agrees but neither the judges nor the current RM do", label
    return "discard", "gold RM disagrees with the label, nobody else supports the flip", label
