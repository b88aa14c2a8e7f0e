"""DeepSpeed ZeRO stages 1 and 2 for ``train()``, through accelerate's DeepSpeed plugin.

``accelerate launch`` with ``distributed_type: DEEPSPEED`` (configs/accelerate/
deepspeed_zero1.yaml, deepspeed_zero2.yaml) hands the processes the plugin's settings
as ``ACCELERATE_DEEPSPEED_*`` variables; accelerate's ``prepare`` builds the DeepSpeed
engine around the classifier and synpref's AdamW. ZeRO-1 partitions the optimizer
state over the processes, ZeRO-2 the gradients as well; every process still holds the
whole model, so rewards are read from the classifier's modules as in data parallelism.

synpref keeps its own step: a step's micro-batches vary in number (a token budget, not a
fixed batch size), so the engine's gradient-accumulation boundary is set by hand (the
last micro-batch of the step), and every process runs as many micro-batches as the
busiest one (ZeRO-2 reduces gradients in each backward pass: a collective). Checkpoints
hold the engine's own partitioned state (``engine.save_checkpoint``) next to synpref's.

Refused, each with its reason: ZeRO-3 (it partitions the parameters, gathered only inside
the engine's forward, which synpref's reward pooling does not call: use FSDP), offloading
(not tested with synpref), and a DeepSpeed ``mixed_precision`` (synpref's ``--precision``
decides bf16 autocast; DeepSpeed's fp16 would need loss scaling).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..errors import UserValueError

ENGINE_TAG = "zero"  # the folder of the engine's state inside a synpref checkpoint
FSDP_INSTEAD = "use FSDP for sharded parameters (configs/accelerate/fsdp.yaml, cpu_2proc_fsdp.yaml)"


@dataclass(frozen=True)
class ZeroOptions:
    stage: int


def zero_launch_options() -> ZeroOptions | None:
    """The ZeRO settings of the accelerate launch, or None when it did not ask for DeepSpeed.

    Raises ValueError naming the accelerate config key for what synpref does not support.
    """
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() != "true":
        return None
    if os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE"):
        raise UserValueError("deepspeed_config_file: synpref builds the DeepSpeed config from the accelerate config's "
                         "deepspeed_config keys (zero_stage, ...); put the settings there instead of a JSON file")
    stage = int(os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2"))
    if stage == 3:
        raise UserValueError("zero_stage: 3 partitions the parameters, which the DeepSpeed engine gathers only inside its "
                         "own forward; synpref reads rewards from the classifier's modules and supports ZeRO stages 1 "
                         f"and 2 (configs/accelerate/deepspeed_zero1.yaml, deepspeed_zero2.yaml); {FSDP_INSTEAD}")
    if stage not in (1, 2):
        raise UserValueError(f"zero_stage: {stage}: synpref supports ZeRO stages 1 and 2 (stage 0 is plain data parallelism: "
                         "configs/accelerate/multi_gpu_ddp.yaml)")
    for key in ("OFFLOAD_OPTIMIZER_DEVICE", "OFFLOAD_PARAM_DEVICE"):
        if os.environ.get(f"ACCELERATE_DEEPSPEED_{key}", "none").lower() not in ("none", ""):
            raise UserValueError(f"{key.lower()}: offloading is not supported by synpref's trainer; set it to none")
    precision = os.environ.get("ACCELERATE_MIXED_PRECISION", "no").lower()
    if precision != "no":
        raise UserValueError(f"mixed_precision: {precision} with DeepSpeed: set mixed_precision: 'no' in the accelerate "
                         "config and pass synpref train --precision bf16 (or auto): synpref runs bf16 autocast over "
                         "float32 weights itself")
    import importlib.util

    if importlib.util.find_spec("deepspeed") is None:
        raise UserValueError("the accelerate config asks for DeepSpeed (distributed_type: DEEPSPEED) but deepspeed is not "
                         "installed: pip install deepspeed (or synpref[deepspeed]), or launch with "
                         "configs/accelerate/multi_gpu_ddp.yaml or fsdp.yaml")
    return ZeroOptions(stage)


def fix_cpu_process_count(accelerator) -> None:
    """accelerate (1.x) on a CPU-only DeepSpeed launch lets DeepSpeed start the gloo process group but records
    one process (it finds no GPU backend); take the process numbers from torch.distributed."""
    from accelerate.state import AcceleratorState, PartialState

    dist = torch.distributed
    if not dist.is_initialized() or accelerator.num_processes == dist.get_world_size():
        return
    numbers = {"num_processes": dist.get_world_size(), "process_index": dist.get_rank(),
               "local_process_index": int(os.environ.get("LOCAL_RANK", dist.get_rank()))}
    PartialState._shared_state.update(numbers)
    AcceleratorState._shared_state.update(numbers)


def prepare_engine(accelerator, model, optimizer, max_grad_norm: float):
    """The DeepSpeed engine around ``model`` and ``optimizer`` (accelerate's ``prepare``)."""
    plugin = accelerator.state.deepspeed_plugin
    plugin.deepspeed_config.update({
        "train_micro_batch_size_per_gpu": 1,  # nominal: synpref's micro-batches are token budgets
        "gradient_accumulation_steps": 1,  # synpref sets the accumulation boundary itself
        "gradient_clipping": float(max_grad_norm or 0.0),
        "zero_allow_untested_optimizer": True,  # torch's AdamW, with synpref's parameter groups
        "steps_per_print": 10**9,
    })
    engine, _ = accelerator.prepare(model, optimizer)
    return engine


def save_engine(engine, folder) -> None:
    """Collective: the engine's module, partitioned optimizer state and fp32 master weights into ``folder``."""
    engine.save_checkpoint(str(folder), tag=ENGINE_TAG, save_latest=False)


def load_engine(engine, folder) -> None:
    """Collective: restore what :func:`save_engine` wrote (the learning-rate schedule is synpref's own)."""
    path, _ = engine.load_checkpoint(str(folder), tag=ENGINE_TAG, load_optimizer_states=True,
                                     load_lr_scheduler_states=False)
    if path is None:
        raise RuntimeError(f"{folder}: no DeepSpeed engine state ({ENGINE_TAG}/) to resume from")
