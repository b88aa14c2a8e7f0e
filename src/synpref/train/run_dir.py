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


def prepare_run_dir(cfg: TrainConfig, launch) -> Path | None:
    """Create RUN_DIR, record the settings; return the checkpoint to resume from (None: a fresh run).

    A checkpoint written with other settings (beyond ``RESUMABLE_CHANGES``) is refused.
    """
    run_dir = Path(cfg.run_dir)
    old = run_dir / "config.json"
    if old.is_file() and ckpt.latest_checkpoint(run_dir) is not None:  # every process checks: no hang on error
        prev = json.loads(old.read_text())
        diff = {k for k in set(prev) | set(cfg.to_dict()) if prev.get(k) != cfg.to_dict().get(k)} - RESUMABLE_CHANGES
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
