"""RUN_DIR/metrics.jsonl, one JSON line per logged step, mirrored to TensorBoard when it can be.

metrics.jsonl is the record of a run; TensorBoard is a view of it. A TensorBoard
failure (not installed, unwritable folder, a write error mid-run) switches the view
off with one line saying so, and never stops the run or loses a metric.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

METRICS_FILE = "metrics.jsonl"


class MetricsLog:
    """Call it with a metrics dict (which has a ``step``); a no-op outside the main process."""

    def __init__(self, run_dir: Path, *, main: bool, resumed_at: int | None, tensorboard: bool):
        """``resumed_at``: the step of the checkpoint this invocation resumes from (None: a fresh start)."""
        self.path = Path(run_dir) / METRICS_FILE
        self.main = main
        self.writer = None
        if not main:
            return
        if resumed_at is not None and self.path.exists():  # forget lines past the checkpoint
            kept = [l for l in self.path.read_text().splitlines() if l.strip() and json.loads(l).get("step", 0) <= resumed_at]
            self.path.write_text("".join(l + "\n" for l in kept))
        elif resumed_at is None and self.path.exists():
            self.path.unlink()
        if tensorboard:
            self.writer = _tensorboard_writer(Path(run_dir) / "tensorboard", purge_step=resumed_at)

    def __call__(self, record: dict) -> None:
        if not self.main:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is None:
            return
        try:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self.writer.add_scalar(k.replace("eval_", "eval/") if k.startswith("eval_") else f"train/{k}", v,
                                           record["step"])
        except Exception as e:  # a view of metrics.jsonl: losing it must not end the run
            _tensorboard_off(f"stopped at step {record['step']}", e)
            self._close_writer()

    def close(self) -> None:
        self._close_writer()

    def _close_writer(self) -> None:
        writer, self.writer = self.writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception as e:
                _tensorboard_off("could not finish its event file", e)


def _tensorboard_writer(folder: Path, purge_step: int | None):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        _tensorboard_off("is off for this run", e, hint="pip install tensorboard, or pass --no-tensorboard")
        return None
    try:
        return SummaryWriter(str(folder), purge_step=purge_step)
    except Exception as e:
        _tensorboard_off("is off for this run", e, hint=f"make {folder} a writable folder or pass --no-tensorboard")
        return None


def _tensorboard_off(what: str, error: Exception, hint: str = "") -> None:
    print(f"synpref train: WARNING: TensorBoard logging {what} because {type(error).__name__}: {error}; every metric is "
          f"still in {METRICS_FILE}" + (f" ({hint})" if hint else ""), file=sys.stderr)
