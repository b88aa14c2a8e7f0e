"""The runner: runs a curation's steps in order and owns the run state, the ledger and the summary.

Resuming is the runner's job, not the steps': a step marked done in ``state.json`` is skipped; a
:class:`~synpref.curate.steps.base.BatchStep` resumes at its first unfinished batch. For every
batch the order is: the step writes its part files (each renamed into place), the runner writes the
batch's ledger part, then records the batch as done (an atomic rewrite of ``state.json``). A
``kill -9`` anywhere therefore loses at most the batch in progress, which the next invocation
redoes from its inputs; LLM answers already paid for come from the cache, and steps are
deterministic, so the redone batch decides exactly what it would have.

:class:`RunContext` is what the steps share: the config, the run directory, the device, the log,
LLM access, the engine (where a batch's heavy work runs: :mod:`synpref.curate.engine`), the pairs in
batches and what is aligned with them, the labels.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from .pairs import Attributes, Pairs
from .rm import RMSettings
from .steps.base import BatchStep, RunPaused, Step
from .util import Ledger, RunState, atomic_write_json

# The planner's hook: `synpref curate plan` (curate/planner.py) writes its predictions here, and the
# summary sets them beside what the run did (see plan_beside_actual).
PLAN_FILE = Path("plan") / "plan.json"


class RunContext:
    def __init__(self, cfg, run_dir: Path, *, device: str | None = None, progress: bool = False, engine=None):
        from .endpoints import RunLLM
        from .engine import LocalEngine

        self.cfg = cfg
        self.dir = Path(run_dir)
        self.device = device  # of every model the run loads; None: synpref.model's default
        self.progress = progress
        self.state = RunState(run_dir)
        self.llm = RunLLM(cfg, self.dir, self.log)
        self.engine = engine if engine is not None else LocalEngine()  # where the batches' heavy work runs (curate/engine.py)
        self._pairs: Pairs | None = None

    def log(self, msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        if self.progress:
            print(line, flush=True)
        with open(self.dir / "run.log", "a") as f:
            f.write(line + "\n")

    # -- the data, in batches ------------------------------------------------------------------
    @property
    def pairs(self) -> Pairs:
        if self._pairs is None:
            self._pairs = Pairs(self.dir)
        return self._pairs

    @property
    def attributes(self) -> Attributes:
        return Attributes(self.dir, self.pairs, self.cfg.attributes.enabled)

    def needs_embeddings(self) -> bool:
        return self.cfg.stage1.iterations > 0 or self.cfg.judge.max_examples > 0

    def vectors(self):
        """The pairs' embeddings, memory-mapped (row r = global pairs row r)."""
        import numpy as np

        return np.load(self.dir / "embed" / "vectors.npy", mmap_mode="r")

    def has_vectors(self) -> bool:
        return self.state.done("embed")

    # -- labels (small: the human-verified and LLM-labelled pairs, never the pool) -------------------
    def labels(self, kind: str) -> dict:
        p = self.dir / "labels" / f"{kind}.json"
        return json.loads(p.read_text()) if p.is_file() else {}

    def save_labels(self, kind: str, labels: dict) -> None:
        atomic_write_json(self.dir / "labels" / f"{kind}.json", labels)

    def gold(self) -> dict:
        """The human-verified pairs: ``labels/gold.json`` (Stage 1), else the gold pool of the config, labelled "A"."""
        gold = self.labels("gold")
        if gold:
            return gold
        return {pid: {"label": "A", "source": "human", "iteration": -1} for n in self.pairs.gold_range for pid in self.pairs.ids(n)}

    def rejected(self) -> set[str]:
        """Pairs the humans could not decide (or disagreed on): out for good."""
        return set(self.state.data.get("rejected", []))

    def rm_settings(self) -> RMSettings:
        return RMSettings(self.cfg.rm, self.cfg.seed, self.device, self.log)


class Runner:
    """Runs ``steps`` in order over ``ctx``; see the module docstring."""

    def __init__(self, ctx: RunContext, steps: list[Step]):
        self.ctx = ctx
        self.steps = steps
        self.ledger = Ledger(ctx.dir)
        from .budget import LLMBudget

        self.budget = LLMBudget(ctx, steps)

    def run(self) -> str:
        """Run every unfinished, enabled step; the run's status ("done" or why it waits)."""
        state = self.ctx.state
        for step in self.steps:
            if state.done(step.name) or not step.enabled(self.ctx):
                continue
            started = time.time()
            try:
                info = self._run_batches(step) if isinstance(step, BatchStep) else self._run_whole(step)
            except RunPaused as e:  # waiting for humans, or at the LLM budget: a clean stop before a batch
                status = f"{e.status}: {e}"
                self.ctx.log(status)
                return status
            finally:
                timings = state.data.setdefault("seconds", {})
                timings[step.name] = round(timings.get(step.name, 0.0) + time.time() - started, 3)
            state.mark(step.name, info)
        return "done"

    def _run_whole(self, step: Step) -> dict:
        done = step.run(self.ctx)
        if step.ledger:
            self.ledger.write_step(step.ledger, done.ledger)
        return done.info

    def _run_batches(self, step: BatchStep) -> dict:
        ctx, state = self.ctx, self.ctx.state
        todo = list(step.batches(ctx))
        first = state.batches_done(step.name)
        if first == 0 and step.ledger:
            self.ledger.clear_parts(step.ledger)
        if first:
            ctx.log(f"{step.name}: resuming at batch {first + 1} of {len(todo)}")
        step.begin(ctx, fresh=first == 0)
        last_report = time.time()
        try:
            for k in range(first, len(todo)):
                n = todo[k]
                self.budget.check(step, n, k, len(todo))
                done = step.run_batch(ctx, n)
                if step.ledger:
                    self.ledger.write_part(step.ledger, n, done.ledger)
                state.mark_batch(step.name, k, done.info)
                if time.time() - last_report > 30 or k + 1 == len(todo):
                    ctx.log(f"{step.name}: {k + 1}/{len(todo)} batches")
                    last_report = time.time()
        finally:
            step.end(ctx)
        info = step.finish(ctx, state.batch_totals(step.name))
        if step.ledger:
            self.ledger.merge_parts(step.ledger)
        return info

    # -- the summary ----------------------------------------------------------------------------------
    def summary(self, status: str) -> dict:
        from ..llm import LLMCache
        from .verification import import_verification

        ctx = self.ctx
        steps = ctx.state.data["steps"]
        decisions = Counter()
        for e in self.ledger.entries():
            decisions[f"{e['step']}:{e['decision']}"] += 1
        ver = import_verification(ctx.dir)
        summ = {
            "status": status,
            "run_dir": str(ctx.dir),
            "pairs_per_decision": dict(sorted(decisions.items())),
            "stage2": steps.get("stage2/decide"),
            "llm_this_invocation": ctx.llm.usage(),
            "llm_cumulative": LLMCache.read_totals(ctx.dir / "llm_cache.sqlite"),
            "human_decisions": {"pairs": len(ver["decisions"]), "counts": ver["counts"], "files": len(ver["files"])},
            "rm_gold_accuracy_per_iteration": {k.split("/")[1]: v["gold_accuracy"] for k, v in steps.items()
                                               if k.startswith("stage1/") and k.endswith("/train")},
            "best_rm": ctx.state.data.get("best_rm"),
            "prep": steps.get("prep"),
            "pairs": steps.get("pairs"),
            "seconds_per_step": ctx.state.data.get("seconds", {}),
        }
        engine = ctx.engine.report()
        if engine is not None:  # the Ray engine: per step, its batches' seconds in the actors and waited for on the driver
            summ["engine"] = engine
        plan = plan_beside_actual(ctx.dir, summ["stage2"])
        if plan is not None:
            summ["plan"] = plan
        atomic_write_json(ctx.dir / "summary.json", summ)
        return summ


def plan_beside_actual(run_dir: Path, stage2_counts: dict | None) -> dict | None:
    """The planner's predictions (``RUN_DIR/plan/plan.json``, when a plan was made for this run) beside
    what Stage 2 decided: ``{"file", "predicted", "actual"}``, ``actual`` holding the keep / discard /
    flip fractions (None before Stage 2 has decided). The plan file is the planner's; its
    ``predicted`` mapping is shown as it is, so the two can be read side by side."""
    path = Path(run_dir) / PLAN_FILE
    if not path.is_file():
        return None
    plan = json.loads(path.read_text())
    actual = None
    if stage2_counts:
        total = sum(stage2_counts.values())
        actual = {"pairs": total, **{f"{d}_fraction": round(stage2_counts.get(d, 0) / total, 4) if total else 0.0
                                      for d in ("keep", "discard", "flip")}}
    return {"file": str(path), "predicted": plan.get("predicted"), "actual": actual}
