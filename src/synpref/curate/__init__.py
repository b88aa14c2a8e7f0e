"""Skywork-Reward-V2's two-stage human-AI preference-data curation (arXiv 2507.01352).

Public API (see docs/curation.md):

* :func:`prep` - empty responses, exact and near-duplicate removal, 13-gram decontamination.
* :func:`annotate_attributes` / ``ATTRIBUTE_SCHEMA`` - the preference-attribute five-tuple.
* :class:`JudgePanel` / :class:`Judgement` - pairwise LLM judges: seeded order, self-consistency, cross-model vote.
* :class:`Embedder`, :class:`NeighbourIndex`, :func:`k_for` - retrieval.
* :func:`export_verification` / :func:`import_verification` - the file-based human verification contract.
* :func:`stage2_decide` - the Stage 2 rule for one pair.
* :func:`run_curation` / :func:`why` - the resumable run and its lineage query.

The run is a list of steps (:mod:`synpref.curate.steps`, one module each) that the runner
(:mod:`synpref.curate.runner`) runs, resumes batch by batch and records; reward-model work is in
:mod:`synpref.curate.rm`, the run's LLM access in :mod:`synpref.curate.endpoints`.
"""

from .attributes import ATTRIBUTE_SCHEMA, annotate_attributes
from .judges import JUDGE_SCHEMA, Judgement, JudgePanel
from .prep import prep
from .retrieval import Embedder, NeighbourIndex, k_for, pair_text
from .stages import stage2_decide
from .verification import export_verification, import_verification


def run_curation(*args, **kw):
    from .run import run_curation as _run

    return _run(*args, **kw)


def why(*args, **kw):
    from .run import why as _why

    return _why(*args, **kw)


__all__ = ["ATTRIBUTE_SCHEMA", "Embedder", "JUDGE_SCHEMA", "Judgement", "JudgePanel", "NeighbourIndex", "annotate_attributes",
           "export_verification", "import_verification", "k_for", "pair_text", "prep", "run_curation",
           "stage2_decide", "why"]
