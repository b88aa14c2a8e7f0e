"""Resumable checkpoints, written atomically.

A checkpoint is ``RUN_DIR/checkpoints/checkpoint-<step>/`` holding

* ``state.pt``: the trainable parameters (frozen ones are reloaded from the base
  model), optimizer and scheduler state (a sharded run gathers full tensors into
  it, so it is the same kind of file);
* ``rng-<rank>.pt``: every process's Python, NumPy and torch RNG states;
* ``trainer_state.json``: step, epoch, position in the epoch's step list;
* ``zero/`` under DeepSpeed ZeRO: the engine's own checkpoint (each process's partition
  of the optimizer state and master weights).

Everything is written into ``checkpoints/.tmp-<step>`` first and the directory is
renamed into place only when complete, so a ``kill -9`` at any moment leaves either
the previous checkpoint or the new one, never a half-written one. Incomplete
``.tmp-*`` directories are removed on the next start.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

STATE = "state.pt"
TRAINER_STATE = "trainer_state.json"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _save(obj, path: Path) -> None:
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoints_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    root = checkpoints_dir(run_dir)
    if not root.is_dir():
        return None
    done = []
    for d in root.glob("checkpoint-*"):
        if (d / TRAINER_STATE).is_file() and (d / STATE).is_file():
            try:
                done.append((int(d.name.split("-", 1)[1]), d))
            except ValueError:
                continue
    return max(done)[1] if done else None


def clean_partial(run_dir: str | Path) -> None:
    root = checkpoints_dir(run_dir)
    if root.is_dir():
        for d in root.glob(".tmp-*"):
            shutil.rmtree(d, ignore_errors=True)


def _training_state(accelerator, model, optimizer, sharded_root, engine=None) -> tuple[dict, dict]:
    """Trainable parameters and optimizer state, complete on the main process (collective when sharded).

    Under DeepSpeed the optimizer state is the engine's (partitioned; saved by ``zero.save_engine``)."""
    if sharded_root is not None:
        from .sharding import full_state

        return full_state(sharded_root, optimizer, trainable_only=True)
    if not accelerator.is_main_process:
        return {}, {}
    optimizer_state = {} if engine is not None else optimizer.state_dict()
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}, optimizer_state


def save_checkpoint(accelerator, run_dir, *, step: int, model, optimizer, scheduler, trainer_state: dict, keep: int = 1,
                    sharded_root=None, engine=None) -> Path:
    """Collective: every process calls it (each writes its RNG state).

    ``sharded_root``: the FSDP root module when ``model`` is sharded (its state is gathered);
    ``engine``: the DeepSpeed engine under ZeRO (each process writes its partition).
    """
    root = checkpoints_dir(run_dir)
    tmp = root / f".tmp-{step}"
    final = root / f"checkpoint-{step}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    _save(rng_state(), tmp / f"rng-{accelerator.process_index}.pt")
    if engine is not None:
        from .zero import save_engine

        save_engine(engine, tmp)
    trainable, optimizer_state = _training_state(accelerator, model, optimizer, sharded_root, engine)
    if accelerator.is_main_process:
        _save({"model": trainable, "optimizer": optimizer_state, "scheduler": scheduler.state_dict()}, tmp / STATE)
        with open(tmp / TRAINER_STATE, "w") as f:
            json.dump({**trainer_state, "step": step, "num_processes": accelerator.num_processes,
                       "sharded": sharded_root is not None, "deepspeed": engine is not None}, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _fsync_dir(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
        older = sorted(
            (int(d.name.split("-", 1)[1]), d) for d in root.glob("checkpoint-*") if d != final and d.name.split("-", 1)[1].isdigit()
        )
        for _, d in older[: max(0, len(older) - (keep - 1))]:
            shutil.rmtree(d, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, path: Path, *, model, optimizer, scheduler, sharded_root=None, engine=None) -> dict:
    """Restore model, optimizer, scheduler and this process's RNG; return the trainer state.

    Collective when ``sharded_root`` is given (every process reads the full state and keeps its shard)
    or ``engine`` (DeepSpeed: every process reads its partition).
    """
    trainer_state = json.loads((path / TRAINER_STATE).read_text())
    if trainer_state.get("num_processes", 1) != accelerator.num_processes:
        raise RuntimeError(
            f"{path} was written by {trainer_state.get('num_processes')} process(es); resume with the same number "
            f"(now {accelerator.num_processes}) so the data order and RNG streams match"
        )
    was_sharded = trainer_state.get("sharded", False)
    if was_sharded != (sharded_root is not None):
        raise RuntimeError(f"{path} was written by {'an FSDP' if was_sharded else 'a data-parallel'} run; "
                           "resume it with the same kind of accelerate launch")
    if trainer_state.get("deepspeed", False) != (engine is not None):
        raise RuntimeError(f"{path} was written by {'a DeepSpeed' if engine is None else 'a non-DeepSpeed'} run; "
                           "resume it with the same kind of accelerate launch")
    state = torch.load(path / STATE, map_location="cpu", weights_only=False)
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in state["model"]]
    if missing:
        raise RuntimeError(f"{path}: checkpoint lacks trainable parameters {missing[:5]} (different training options?)")
    if sharded_root is not None:
        from .sharding import load_full_state

        load_full_state(sharded_root, optimizer, state["model"], state["optimizer"])
    elif engine is not None:  # the module, the partitioned optimizer state and its float32 master weights
        from .zero import load_engine

        load_engine(engine, path)
    else:
        with torch.no_grad():
            for n, t in state["model"].items():
                params[n].copy_(t)
        optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng_file = path / f"rng-{accelerator.process_index}.pt"
    set_rng_state(torch.load(rng_file, weights_only=False))
    return trainer_state
