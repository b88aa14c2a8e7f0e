"""``synpref curate run``: the whole pipeline as a resumable run directory (the steps run by the runner).

The steps are :mod:`synpref.curate.steps` (one module each), run in order by
:class:`synpref.curate.runner.Runner`, which skips finished steps, resumes a step that works in
batches at its first unfinished batch, writes the ledger and the summary. docs/curation.md
describes the run directory. :func:`why` answers from the ledger.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .config import ConfigError, changed_keys, load_config
from .runner import RunContext, Runner
from .steps import WaitingForHumans, pipeline
from .util import Ledger, atomic_write_text

__all__ = ["WaitingForHumans", "dry_run", "open_run", "run_curation", "why"]

# Keys a run directory lets change between invocations: the LLM budget (raise it and the run resumes).
RESUMABLE_KEYS = ("judge.max_calls", "judge.max_tokens")
_SAVED_HEADER = "# The complete config of this run (every key; `synpref curate config` explains each).\n"


def run_curation(config, run_dir, *, progress: bool = False, device: str | None = None, engine=None) -> dict:
    """Run (or resume) a curation; return the summary (also ``RUN_DIR/summary.json``).

    ``config``: a YAML path, a dict or a :class:`CurateConfig` (:class:`ConfigError` when it is not
    valid). ``device``: where the run's models train, score and embed (``cuda``, ``cuda:1``, ``cpu``);
    None: :func:`synpref.model.default_device`. The device is not part of the config, so
    a run can resume on another machine. ``engine``: None (this process) or a started
    :class:`~synpref.engine.ray_cluster.RayCluster`: the heavy batch work then runs on its actors
    (:mod:`synpref.engine.ray_curate`); the outputs are the same, and a run may resume on either.
    """
    run_dir = Path(run_dir)
    cfg = load_config(config)
    open_run(cfg, run_dir)
    from .engine import curate_engine

    ctx = RunContext(cfg, run_dir, device=device, progress=progress, engine=curate_engine(engine))
    runner = Runner(ctx, pipeline(cfg))
    try:
        return runner.summary(runner.run())
    finally:
        ctx.engine.close()
        ctx.llm.close()


def open_run(cfg, run_dir: Path) -> None:
    """Make ``run_dir`` a run directory of ``cfg`` (its saved config), or check that it is one
    (:class:`ConfigError` when it holds a run of another config or of an older layout).
    ``synpref curate run`` and ``synpref curate plan`` both start here, so a plan made in a run
    directory is a part of that run."""
    if not _same_run(cfg, run_dir):
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", _SAVED_HEADER + yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    _refuse_an_older_layout(run_dir)


def _same_run(cfg, run_dir: Path, *, save: bool = True) -> bool:
    """Whether ``run_dir`` holds a run of ``cfg`` already (a budget key may differ: with ``save`` the saved config
    then takes the new value); :class:`ConfigError` when it holds a run of another config."""
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        return False
    try:
        old = load_config(saved)
    except ConfigError as e:
        raise ConfigError(f"{run_dir} holds a run whose saved config no longer loads ({e}); use another RUN_DIR") from None
    changed = changed_keys(old, cfg)
    refused = [k for k in changed if k not in RESUMABLE_KEYS]
    if refused:
        raise ConfigError(f"{run_dir} holds a run with a different config ({', '.join(refused)}); use another RUN_DIR")
    if changed and save:
        atomic_write_text(saved, _SAVED_HEADER + yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return True


def dry_run(config, run_dir) -> dict:
    """What ``run_curation(config, run_dir)`` would send to the LLMs, step by step (pairs, calls, tokens), from what
    ``run_dir`` holds; nothing is called, trained or written (:func:`synpref.curate.budget.planned_spend`)."""
    from .budget import planned_spend

    run_dir = Path(run_dir)
    cfg = load_config(config)
    _same_run(cfg, run_dir, save=False)
    return planned_spend(RunContext(cfg, run_dir), pipeline(cfg))


def _refuse_an_older_layout(run_dir: Path) -> None:
    """A run directory from before the run was made of batch steps cannot be resumed by them."""
    import json

    state = run_dir / "state.json"
    if state.is_file():
        data = json.loads(state.read_text())
        if data.get("steps") and "batches" not in data:
            raise ConfigError(f"{run_dir} holds a run of an earlier synpref (its steps did not work in batches); "
                              "curate into a new RUN_DIR")


def why(run_dir, pair_id: str) -> dict:
    """Everything the run recorded about a pair (by its pool id or its output id): the final state and its history."""
    run_dir = Path(run_dir)
    hist = [e for e in Ledger(run_dir).entries() if e.get("pair_id") == pair_id or e.get("output_id") == pair_id]
    from .verification import import_verification

    human = import_verification(run_dir)["decisions"].get(pair_id)
    if not hist and human is None:
        return {"pair_id": pair_id, "status": "unknown", "explanation": "no step of this run recorded anything about this id"}
    last = hist[-1] if hist else {}
    final = last.get("decision", "human-decided")
    stage2 = {}
    if (run_dir / "config.yaml").is_file():
        stage2 = (yaml.safe_load((run_dir / "config.yaml").read_text()) or {}).get("stage2", {})
    recycle = bool(stage2.get("recycle_flips"))
    status = {"keep": "in", "gold": "in", "flip": "in (label flipped)" if recycle else "out (flipped copy in recycled/)",
              "removed": "out", "discard": "out", "discarded": "out", "silver": "pending (LLM-labelled silver)",
              "unlabelled": "pending"}.get(final, final)
    out = {"pair_id": pair_id, "status": status, "final_decision": final, "reason": last.get("reason")}
    if last.get("rule"):
        out["rule"] = _rule_used(last, float(stage2.get("band", 0.0)))
    return {**out, "history": hist, "human": human}


def _rule_used(entry: dict, band: float) -> dict:
    """The Stage 2 rule that decided a ledger entry: its name, what it does, the signals it read (their values for
    this pair) and its thresholds."""
    from .stages import stage2_rule

    rule = stage2_rule(entry["rule"], band)
    judge = entry.get("judge") or {}
    values = {"p_current": entry.get("p_current"), "p_gold": entry.get("p_gold"), "judge": judge.get("label"),
              "objectivity": entry.get("objectivity")}
    explained = rule.explain()
    explained["signals"] = {name: values[name] for name in rule.uses}
    return explained
