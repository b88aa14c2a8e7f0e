"""The run directory's bookkeeping files: config.json, versions.json, data.json (summary.json and the
model are written by ``finalize``), and the check that a checkpoint in it belongs to these settings."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

import torch

from . import checkpoint as ckpt
from .config import TrainConfig
from .data import PairData

# Fields that may change between a run and its resumption (the checkpoint does not depend on them).
RESUMABLE_CHANGES = {"progress", "tensorboard", "log_every", "eval_every", "save_every", "num_threads", "run_dir", "device"}


def versions() -> dict:
    import transformers

    from .. import __version__

    out = {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
           "transformers": transformers.__version__, "synpref": __version__}
    for name in ("accelerate", "peft"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:  # optional: versions.json then lists what is installed
            pass
    return out


def write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


def changed_settings(previous: dict, cfg: TrainConfig) -> set[str]:
    """The settings of ``cfg`` that differ from a previous run's config.json and that a checkpoint depends on."""
    now = cfg.to_dict()
    return {k for k in set(previous) | set(now) if previous.get(k) != now.get(k)} - RESUMABLE_CHANGES


def finished_summary(cfg: TrainConfig, launch, records=None) -> dict | None:
    """The summary of the finished run in RUN_DIR when it trained with these settings on this data, else None.

    A finished run (RUN_DIR/model and summary.json written) of the same settings and data
    has nothing left to do; one of other settings or data is trained anew (the checkpoint
    check of :func:`prepare_run_dir` still refuses a checkpoint of other settings).
    """
    from .data import source_checksums

    run_dir = Path(cfg.run_dir)
    files = [run_dir / name for name in ("summary.json", "config.json", "data.json", "model/config.json")]
    if not all(f.is_file() for f in files):
        return None
    diff = changed_settings(json.loads((run_dir / "config.json").read_text()), cfg)
    previous = [{k: s.get(k) for k in ("path", "sha256")} for s in json.loads((run_dir / "data.json").read_text())["sources"]]
    other_data = not diff and previous != source_checksums(cfg.data, records)
    if diff or other_data:
        if launch.main and ckpt.latest_checkpoint(run_dir) is None:
            why = f"other settings ({', '.join(sorted(diff))})" if diff else "other data (see data.json)"
            print(f"synpref train: {run_dir} holds a finished run of {why}; training anew replaces it", file=sys.stderr)
        return None
    summary = json.loads((run_dir / "summary.json").read_text())
    if launch.main:
        print(f"synpref train: {run_dir} is complete ({summary.get('steps')} steps, model in {run_dir / 'model'}); "
              "nothing to do (use another run_dir, or delete this one, to train again)", file=sys.stderr)
    return summary


def prepare_run_dir(cfg: TrainConfig, launch) -> Path | None:
    """Create RUN_DIR, record the settings; return the checkpoint to resume from (None: a fresh run).

    A checkpoint written with other settings (beyond ``RESUMABLE_CHANGES``) is refused.
    """
    run_dir = Path(cfg.run_dir)
    old = run_dir / "config.json"
    if old.is_file() and ckpt.latest_checkpoint(run_dir) is not None:  # every process checks: no hang on error
        diff = changed_settings(json.loads(old.read_text()), cfg)
        if diff:
            raise ValueError(f"{run_dir} holds a checkpoint of a run with different settings ({', '.join(sorted(diff))}); "
                             "use another run_dir or delete it")
    launch.wait()
    if launch.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        ckpt.clean_partial(run_dir)
        write_json(old, cfg.to_dict())
        write_json(run_dir / "versions.json", versions())
    launch.wait()
    return ckpt.latest_checkpoint(run_dir)


def write_data_report(cfg: TrainConfig, data: PairData, policy) -> None:
    """RUN_DIR/data.json (sources with checksums, counts, text policy); say how many pairs the length policy dropped."""
    run_dir = Path(cfg.run_dir)
    write_json(run_dir / "data.json", {"sources": data.sources, "counts": data.counts, "text_policy": policy.to_dict(),
                                       "eval_fraction": cfg.eval_fraction})
    if data.counts["pairs_dropped_length"]:
        print(f"synpref train: {data.counts['pairs_dropped_length']} of {data.counts['pairs']} pairs dropped by the "
              f"length policy {cfg.length_policy!r} (max_length={cfg.max_length}); see {run_dir / 'data.json'}",
              file=sys.stderr)
