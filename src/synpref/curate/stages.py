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

That is Skywork's rule, the default. ``stage2.rule`` names the one a run applies, from
:data:`STAGE2_RULES` (docs/curation.md describes each and what the planner predicts for it):
a rule says which pairs the judges see (:meth:`Stage2Rule.needs_judge`) and decides each pair
(:meth:`Stage2Rule.decide`) from the signals it :attr:`~Stage2Rule.uses`.
"""

from __future__ import annotations

import abc

from ..registry import Registry


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


# -- the rules a config can name (stage2.rule) -----------------------------------------------------
STAGE2_RULES: Registry = Registry("Stage 2 rule")


class Stage2Rule(abc.ABC):
    """A Stage 2 rule: which pairs the judges see and the decision for each pair (``(decision, reason, final_label)``).

    ``objectivity`` is the pair's preference attribute (``"objective"``, ``"subjective"``, None when
    the pair has no attributes); a rule that does not use it ignores it.
    """

    name: str = ""
    summary: str = ""  # one line, shown by `synpref curate why`
    uses: tuple[str, ...] = ()  # the signals it decides on

    def __init__(self, band: float = 0.0):
        self.band = float(band)

    def thresholds(self) -> dict:
        return {"band": self.band, "p_current_confident_above": 0.5 + self.band, "p_gold_agrees_above": 0.5}

    @abc.abstractmethod
    def needs_judge(self, p_cur: float, objectivity: str | None = None) -> bool:
        """Whether the judges are asked about a pair the current RM gives ``p_cur`` for its label."""

    @abc.abstractmethod
    def decide(self, label: str, p_cur: float, p_gold: float, judge: str | None, objectivity: str | None = None) -> tuple[str, str, str]:
        """``(decision, reason, final_label)`` of one pair."""

    def explain(self) -> dict:
        """The rule's name, what it does, the signals and the thresholds it decides with."""
        return {"name": self.name, "summary": self.summary, "signals": list(self.uses), "thresholds": self.thresholds()}


@STAGE2_RULES.register("skywork")
class SkyworkRule(Stage2Rule):
    summary = ("Skywork-Reward-V2: a confident current RM is checked by the gold RM; an unsure one sends the pair to the "
               "judges, and the gold RM with the judges or the current RM keeps, flips or discards it")
    uses = ("p_current", "p_gold", "judge")

    def needs_judge(self, p_cur: float, objectivity: str | None = None) -> bool:
        return needs_judge(p_cur, self.band)

    def decide(self, label, p_cur, p_gold, judge, objectivity=None):
        return stage2_decide(label, p_cur, p_gold, judge, band=self.band)


@STAGE2_RULES.register("attribute_gated")
class AttributeGatedRule(Stage2Rule):
    """Objective pairs (a verifiable answer) are decided by the judges: **keep** when they agree with
    the label, **flip** when they agree with the flipped one; undecided judges leave the pair to the
    gold RM. Subjective pairs, and pairs without attributes, are gated by the gold RM: **keep** iff it
    agrees with the label (``p_gold > 0.5``), else **discard**; they never flip and are not judged."""

    summary = ("judges decide objective pairs (keep / flip); the gold RM gates subjective pairs and pairs without "
               "attributes (keep / discard); the current RM is not used")
    uses = ("objectivity", "judge", "p_gold")

    def thresholds(self) -> dict:
        return {"judged_when_objectivity": "objective", "p_gold_agrees_above": 0.5}

    def needs_judge(self, p_cur: float, objectivity: str | None = None) -> bool:
        return objectivity == "objective"

    def decide(self, label, p_cur, p_gold, judge, objectivity=None):
        if objectivity == "objective":
            if judge == label:
                return "keep", "objective pair: the judges agree with the label", label
            if judge == other(label):
                return "flip", "objective pair: the judges agree with the flipped label", judge
            gate = "objective pair, judges undecided: "
        else:
            gate = ("subjective" if objectivity == "subjective" else "no attributes") + ": "
        if p_gold > 0.5:
            return "keep", gate + "the gold RM agrees with the label", label
        return "discard", gate + "the gold RM disagrees with the label", label


def stage2_rule(name: str = "skywork", band: float = 0.0) -> Stage2Rule:
    """The rule registered as ``name`` (:class:`synpref.registry.UnknownNameError` names the known ones)."""
    return STAGE2_RULES.get(name)(band)
