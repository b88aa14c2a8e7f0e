"""The steps of ``synpref curate run``, in order (one module each; docs/curation.md has the table).

===================  ==============================================================  =========
step                 what                                                            unit
===================  ==============================================================  =========
prep                 empty responses, duplicates, decontamination (curate/prep.py)   whole
pairs                the run's pairs once, in batches: gold pool, then pool          batch
attributes           preference attributes of each pair (LLM)                        batch
embed                embeddings, into a memory-mapped .npy                           batch
stage1/init          gold = gold pool, silver = a seeded sample of the pool          whole
stage1/seed          no gold pool: a first batch for the humans                      whole
stage1/iter-NN/...   train, retrieve, label (LLM, batches), verify (humans), merge   per step
stage2/rms           the gold RM and the current RM(s)                               per model
stage2/score         p(label) under the current and gold RMs                         batch
stage2/judge         the judges on the pairs the current RM is unsure about (LLM)    batch
stage2/decide        the Stage 2 rule                                                batch
stage2/write         curated/, recycled/, gold/ and the Stage 2 ledger               batch
===================  ==============================================================  =========

A step is a :class:`~synpref.curate.steps.base.Step` (or a ``BatchStep``); the
:class:`~synpref.curate.runner.Runner` runs them, resumes them and records what they did.
"""

from __future__ import annotations

from .attributes import AttributesStep
from .base import BatchStep, BudgetExhausted, Done, RunPaused, Step, WaitingForHumans
from .embed import EmbedStep
from .pairs import PairsStep
from .prep import PrepStep
from .stage1 import stage1_steps
from .stage2 import stage2_steps


def pipeline(cfg) -> list[Step]:
    """Every step of a run of ``cfg``, in order (a step the config disables is skipped when its turn comes).

    The planner hooks in here: a ``plan`` step (``synpref curate plan``) belongs after ``embed`` and
    Stage 1, once the gold set and the signals it measures exist, and before ``stage2/rms``, the
    first step of Stage 2's spending; it writes ``RUN_DIR/plan/plan.json``
    (:data:`synpref.curate.runner.PLAN_FILE`), which the summary sets beside what the run did.
    """
    return [PrepStep(), PairsStep(), AttributesStep(), EmbedStep(), *stage1_steps(cfg), *stage2_steps(cfg)]


__all__ = ["AttributesStep", "BatchStep", "BudgetExhausted", "Done", "EmbedStep", "PairsStep", "PrepStep", "RunPaused", "Step", "WaitingForHumans", "pipeline"]
