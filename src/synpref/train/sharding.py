"""Sharded data parallelism (FSDP2) for ``train()``.

``accelerate launch`` with ``distributed_type: FSDP`` passes the config's
``fsdp_config`` to the processes as ``FSDP_*`` environment variables. synpref does
not hand the model to ``accelerator.prepare``: it shards it itself with
``torch.distributed.fsdp.fully_shard`` (every transformer block, then a
:class:`~synpref.model.reward_model.RewardPooling` root holding the embeddings and
the head), which works the same with NCCL on GPUs and with gloo on a CPU (where
accelerate would fall back to plain multi-CPU data parallelism).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .model_setup import find_layer_list
from ..errors import UserValueError

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, str(default)).strip().lower()
    if value not in _TRUE | _FALSE:
        raise UserValueError(f"{name}={value!r}: expected true or false")
    return value in _TRUE


@dataclass(frozen=True)
class FSDPOptions:
    reshard_after_forward: bool = True
    activation_checkpointing: bool = False


def fsdp_launch_options() -> FSDPOptions | None:
    """The FSDP settings of the accelerate launch, or None when it did not ask for FSDP."""
    if not _env_flag("ACCELERATE_USE_FSDP", False):
        return None
    version = os.environ.get("FSDP_VERSION", "1")
    if version != "2":
        raise UserValueError(f"fsdp_version {version}: synpref shards with FSDP2; set fsdp_version: 2 in the accelerate config")
    if _env_flag("FSDP_OFFLOAD_PARAMS", False):
        raise UserValueError("fsdp_offload_params: true is not supported by synpref's trainer; set it to false")
    if _env_flag("FSDP_CPU_RAM_EFFICIENT_LOADING", False):  # transformers would then load real weights on rank 0 only
        raise UserValueError("fsdp_cpu_ram_efficient_loading: true is not supported by synpref's trainer (every process "
                         "loads the model on the CPU, then shards it); set it to false")
    reshard = os.environ.get("FSDP_RESHARD_AFTER_FORWARD", "true").strip().lower()
    if reshard not in _TRUE | _FALSE:
        raise UserValueError(f"fsdp_reshard_after_forward {reshard!r}: FSDP2 takes true or false")
    return FSDPOptions(reshard_after_forward=reshard in _TRUE,
                       activation_checkpointing=_env_flag("FSDP_ACTIVATION_CHECKPOINTING", False))


def check_compatible(cfg) -> None:
    if cfg.lora:
        raise UserValueError("lora is not supported with FSDP (the adapters would have to be merged across shards); "
                         "train LoRA with data parallelism (configs/accelerate/multi_gpu_ddp.yaml)")


def shard_model(model: torch.nn.Module, device: torch.device, options: FSDPOptions) -> torch.nn.Module:
    """Shard ``model`` over all processes; return the root module to call for rewards.

    Each transformer block is one FSDP unit; the root (embeddings, final norm, head)
    is another. ``model`` keeps its parameter names (now DTensors), so optimizers and
    ``requires_grad`` flags work on it as before; create the optimizer afterwards.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from ..model.reward_model import RewardPooling

    mesh = init_device_mesh(device.type, (torch.distributed.get_world_size(),))
    _, blocks = find_layer_list(model)
    for block in blocks:
        fully_shard(block, mesh=mesh, reshard_after_forward=options.reshard_after_forward)
    root = RewardPooling(model)
    fully_shard(root, mesh=mesh, reshard_after_forward=options.reshard_after_forward)
    return root


def max_across(value: int, device: torch.device) -> int:
    t = torch.tensor([value], dtype=torch.long, device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return int(t.item())


def _options(**kw):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kw)


def full_state(root: torch.nn.Module, optimizer=None, *, trainable_only: bool = False) -> tuple[dict, dict]:
    """Collective: the model's (and optimizer's) full state as CPU tensors on the main
    process (empty dicts elsewhere), keyed by the classifier's own parameter names."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_state_dict

    opts = _options(cpu_offload=True, ignore_frozen_params=trainable_only)
    if optimizer is None:
        model_state, optim_state = get_model_state_dict(root, options=opts), {}
    else:
        model_state, optim_state = get_state_dict(root, optimizer, options=opts)
    return _strip_root(model_state), optim_state


def load_full_state(root: torch.nn.Module, optimizer, model_state: dict, optim_state: dict) -> None:
    """Collective: every process passes the full state (as saved by ``full_state``)."""
    from torch.distributed.checkpoint.state_dict import set_state_dict

    set_state_dict(root, optimizer, model_state_dict={"model." + k: v for k, v in model_state.items()},
                   optim_state_dict=optim_state, options=_options(strict=False))


def _strip_root(state: dict) -> dict:
    return {k.removeprefix("model."): v for k, v in state.items()}
