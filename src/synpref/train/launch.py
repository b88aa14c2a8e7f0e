"""The processes of a training run: accelerate, the device, sharding, and the collectives the loop needs.

Works in one process or in each process of ``accelerate launch``. Data-parallel
(DDP-style): every process holds the whole model, takes its share of each optimizer
step's pairs, and the gradients are summed across processes before the step.
Sharded (an accelerate config with ``distributed_type: FSDP``): the same split of the
pairs, but the model is sharded with FSDP2 (see ``sharding.py``). DeepSpeed ZeRO 1-2
(``distributed_type: DEEPSPEED``): the same split, the optimizer state (and gradients)
partitioned by DeepSpeed's engine (see ``zero.py``).

The device is accelerate's. ``TrainConfig.device`` (``--device``) can move a
single-process run to another device (``cpu``, ``cuda:1``) and a multi-process run to
the CPU (``cpu``: data parallelism over gloo); under several processes every process
keeps the device accelerate assigns it (``cuda:<local rank>``), so a device index is
refused there.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch

from ..batching import default_batch_tokens
from .config import TrainConfig
from .sharding import FSDPOptions, check_compatible, fsdp_launch_options, max_across
from .zero import ZeroOptions, fix_cpu_process_count, zero_launch_options
from ..errors import UserValueError

SUPPORTED = ("synpref's trainer supports data parallelism (configs/accelerate/multi_gpu_ddp.yaml, cpu_2proc_gloo.yaml), "
             "FSDP (configs/accelerate/fsdp.yaml, cpu_2proc_fsdp.yaml) and DeepSpeed ZeRO stages 1-2 "
             "(configs/accelerate/deepspeed_zero1.yaml, deepspeed_zero2.yaml)")


@dataclass
class Launch:
    """This process's place in the run, and what the processes do together."""

    accelerator: object
    fsdp: FSDPOptions | None
    sharded: bool  # FSDP over several processes (one process: nothing to shard)
    zero: ZeroOptions | None = None  # DeepSpeed ZeRO (see zero.py)

    @property
    def collective_backward(self) -> bool:
        """Every forward or backward pass is a collective (FSDP; ZeRO-2 reduces in the backward pass), and the
        gradients come back averaged over the processes."""
        return self.sharded or (self.zero is not None and self.world > 1)

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def main(self) -> bool:
        """Only the main process writes files and logs."""
        return self.accelerator.is_main_process

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    @property
    def world(self) -> int:
        return self.accelerator.num_processes

    def wait(self) -> None:
        self.accelerator.wait_for_everyone()

    def autocast(self, precision: str):
        """A factory of the autocast context for ``precision`` on this device."""
        from ..model import autocast_context

        return lambda: autocast_context(self.device, precision)

    def default_batch_tokens(self) -> int:
        return default_batch_tokens(self.device.type)

    def lockstep(self, batches: Iterable[list[int]], filler: list[int]) -> list[tuple[list[int], bool]]:
        return lockstep(batches, filler, self.accelerator, self.collective_backward)

    def sum(self, values: Sequence[float]) -> list[float]:
        return sum_across(self.accelerator, values)

    def allreduce_grads(self, params: list[torch.nn.Parameter]) -> None:
        """Sum the gradients of ``params`` over the processes (data parallelism; FSDP reduces its own)."""
        if self.world <= 1 or not params:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1).float() for g in grads])
        torch.distributed.all_reduce(flat, op=torch.distributed.ReduceOp.SUM)
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p).to(p.dtype)
            offset += n


def start(cfg: TrainConfig) -> Launch:
    """Start accelerate for this process; refuse launches the trainer does not support."""
    from accelerate.utils import DistributedType

    zero = zero_launch_options()  # before accelerate imports deepspeed: an unsupported ZeRO setting fails here
    fsdp = fsdp_launch_options()
    accelerator = _accelerator(cfg.device, deepspeed=zero is not None)
    if zero is not None:
        fix_cpu_process_count(accelerator)
    if accelerator.distributed_type not in (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU,
                                            DistributedType.MULTI_XPU, DistributedType.MULTI_NPU, DistributedType.MULTI_MLU,
                                            DistributedType.FSDP, DistributedType.DEEPSPEED):
        raise UserValueError(f"{accelerator.distributed_type} is not supported: {SUPPORTED}.")
    launch = Launch(accelerator, fsdp, sharded=fsdp is not None and accelerator.num_processes > 1, zero=zero)
    if launch.sharded:
        check_compatible(cfg)
    torch.set_num_threads(_threads(cfg, accelerator))
    _warn_single_process_launch(accelerator)
    return launch


def _accelerator(device_flag: str | None, deepspeed: bool = False):
    """accelerate's Accelerator, on ``device_flag`` when one is given (see the module docstring).

    ``deepspeed``: a DeepSpeed launch, which accelerate runs only when not told to use the CPU (the engine then
    runs on the CPU of a machine without GPUs by itself)."""
    from accelerate import Accelerator

    from ..model.device import DeviceError, resolve_device

    wanted = resolve_device(device_flag) if device_flag else None  # every process checks: no hang on error
    several = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if wanted is not None and wanted.index is not None and several:
        raise DeviceError(f"--device {device_flag}: under `accelerate launch` with several processes each process uses "
                          "the device accelerate assigns it; pass --device cpu or leave --device out, and choose the "
                          "GPUs with CUDA_VISIBLE_DEVICES or accelerate's --gpu_ids")
    if wanted is not None and wanted.type == "cuda" and wanted.index is not None:
        torch.cuda.set_device(wanted)  # one process: accelerate's device is plain "cuda", the current one
    if deepspeed and wanted is not None and wanted.type == "cpu" and torch.cuda.is_available():
        raise DeviceError(f"--device {device_flag}: a DeepSpeed launch trains on the GPUs; leave --device out, or launch "
                          "with configs/accelerate/cpu_2proc_gloo.yaml for data parallelism on the CPU")
    cpu = not deepspeed and (_cpu_data_parallel() or (wanted is not None and wanted.type == "cpu"))
    accelerator = Accelerator(cpu=cpu)
    if wanted is not None and accelerator.device.type != wanted.type:
        raise DeviceError(f"--device {device_flag}: accelerate runs this launch on {accelerator.device}; pass --device "
                          f"{accelerator.device.type} or cpu, or leave --device out")
    return accelerator


def _cpu_data_parallel() -> bool:
    """Launched as several processes (torchrun / ``accelerate launch --multi_gpu``) on a machine without a GPU.

    accelerate only picks its multi-CPU (gloo) mode when told to use the CPU, and its
    ``--cpu`` flag alone starts ONE process on a single machine; so the multi-process
    CPU launch is ``accelerate launch --multi_gpu --num_processes N`` (or
    configs/accelerate/cpu_2proc_gloo.yaml), and here we switch to the CPU for it.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    xpu = getattr(torch, "xpu", None)
    return not torch.cuda.is_available() and not (xpu is not None and xpu.is_available())


def _warn_single_process_launch(accelerator) -> None:
    """``accelerate launch --num_processes N`` (or ``--cpu``) on a machine without GPUs starts ONE process.

    accelerate's simple launcher sets MASTER_ADDR when asked for several processes
    but starts only one; say so instead of silently training alone.
    """
    if accelerator.num_processes == 1 and "MASTER_ADDR" in os.environ and "WORLD_SIZE" not in os.environ \
            and "ACCELERATE_MIXED_PRECISION" in os.environ:
        print("synpref train: WARNING: accelerate was asked for several processes but started one (on a machine "
              "without GPUs, `accelerate launch --cpu/--num_processes N` runs a single process). Use "
              "`accelerate launch --multi_gpu --num_processes N ...` or "
              "--config_file configs/accelerate/cpu_2proc_gloo.yaml for data-parallel CPU training.", file=sys.stderr)


def _threads(cfg: TrainConfig, accelerator) -> int:
    if cfg.num_threads:
        return cfg.num_threads
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cores = os.cpu_count() or 1
    local = int(os.environ.get("LOCAL_WORLD_SIZE", accelerator.num_processes))
    return max(1, cores // max(1, local))


def lockstep(batches: Iterable[list[int]], filler: list[int], accelerator, sharded: bool) -> list[tuple[list[int], bool]]:
    """The micro-batches to run, each with whether it is real.

    Sharded, every forward and backward is a collective, so each process runs as many
    micro-batches as the busiest one: the extra ones repeat ``filler`` and are discarded.
    """
    runs = [(mb, True) for mb in batches]
    if sharded:
        runs += [(filler, False)] * (max_across(len(runs), accelerator.device) - len(runs))
    return runs


def sum_across(accelerator, values: Sequence[float]) -> list[float]:
    """``values`` summed over the processes (float64)."""
    t = torch.tensor(list(values), dtype=torch.float64, device=accelerator.device)
    if accelerator.num_processes > 1:
        t = accelerator.reduce(t, reduction="sum")
    return t.tolist()
