"""The model a run trains: loaded, with what to train (the whole model, the head, the top N layers
or LoRA adapters), dropout, activation checkpointing, and its placement over the processes."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
from torch import nn

from .config import TrainConfig
from .layout import PADDED, Layout


@dataclass
class TrainModel:
    """The reward model being trained and what the loop needs to know about it."""

    rm: object  # a synpref.model.RewardModel; rm.model is the (possibly peft-wrapped) classifier
    base_class: str  # the classifier's class name, before any LoRA wrapping
    head_modules: set[str]  # top-level modules of the reward head (their own learning rate)
    parameter_info: dict  # parameter counts and the layer stack trained (summary.json)
    checkpointing: bool  # activation checkpointing is on
    root: nn.Module | None  # the FSDP root when sharded, else None
    params: list[torch.nn.Parameter]  # the trainable parameters, in a fixed order
    layout: Layout = PADDED  # how micro-batches are laid out (chosen once the training pairs are known)
    engine: object = None  # the DeepSpeed engine around the model under a ZeRO launch (made with the optimizer)

    @property
    def model(self):
        return self.rm.model

    def finish(self) -> None:
        """After the last step: merge LoRA adapters into a plain model, switch checkpointing off."""
        self.rm.model = merge_lora(self.rm.model)
        if self.checkpointing:
            model = self.rm.model
            disable = getattr(model, "activation_checkpointing_disable", None) or getattr(model, "gradient_checkpointing_disable", None)
            if disable is not None:
                disable()


def prepare_model(cfg: TrainConfig, launch) -> TrainModel:
    """Load ``cfg.model`` for training on this process (``launch``: a :class:`~synpref.train.launch.Launch`)."""
    from ..model import RewardModel
    from ..text import TextPolicy

    policy = TextPolicy(cfg.max_length, cfg.length_policy, cfg.system_prompt)
    # Sharded: load on the CPU; fully_shard moves each process's shard to its device.
    rm = RewardModel.from_pretrained(cfg.model, policy=policy, device="cpu" if launch.sharded else launch.device)
    model = rm.model
    base_class = type(model).__name__
    head_modules = {n.split(".")[0] for n in head_parameter_names(model)}
    if launch.main:
        print(f"synpref train: {head_origin(cfg.model, rm, head_modules)}", file=sys.stderr)
    from ..model import uses_bf16
    from .layout import use_flash_attention

    use_flash_attention(cfg, model, launch.device, uses_bf16(launch.device, cfg.precision))
    info = set_trainable(model, freeze_backbone=cfg.freeze_backbone, top_layers=cfg.train_top_layers)
    if cfg.disable_dropout:
        disable_dropout(model)
    if cfg.lora:
        model = add_lora(model, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout, target_modules=cfg.lora_target_modules)
        rm.model = model
        info.update(count_parameters(model))
    checkpointing = cfg.gradient_checkpointing or (launch.sharded and launch.fsdp.activation_checkpointing)
    if checkpointing:
        enable_checkpointing(model)
    model.train()
    root = None
    if launch.sharded:  # every process loaded the same weights (a missing head is seeded): no broadcast needed
        from .sharding import shard_model

        root = shard_model(model, launch.device, launch.fsdp)
    elif launch.world > 1:  # identical start on every process
        with torch.no_grad():
            for p in model.parameters():
                torch.distributed.broadcast(p.data, src=0)
    params = [p for _, p in trainable_parameters(model)]
    return TrainModel(rm, base_class, head_modules, info, checkpointing, root, params)


def head_origin(reference: str, rm, head_modules: set[str]) -> str:
    """One line on where the reward head of the model to train comes from."""
    names = ", ".join(sorted(head_modules))
    if rm.new_head is not None:
        return f"{reference}: new reward head ({names}), initialised from a fixed seed, because {rm.new_head}"
    scale = ""
    if rm.meta.get("reward_std"):
        scale = f"; its rewards had mean {rm.meta['reward_mean']:.4g} and std {rm.meta['reward_std']:.4g} on its training data"
    return (f"{reference}: keeps its trained reward head ({names}, num_labels=1), not re-initialised: training starts "
            f"from its rewards and their scale{scale}")


def enable_checkpointing(model) -> None:
    """Activation checkpointing (non-reentrant), under either transformers name for it."""
    target = _base(model)
    if hasattr(target, "activation_checkpointing_enable"):  # transformers >= 5.x name
        target.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        target.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if hasattr(target.config, "use_cache"):
        target.config.use_cache = False


def _base(model):
    from ..model.reward_model import unwrapped

    return unwrapped(model)


def find_layer_list(model) -> tuple[str, nn.ModuleList]:
    """The transformer block stack, found generically.

    The largest (by parameter count) ``nn.ModuleList`` whose items all share one
    class: ``bert.encoder.layer`` for BERT-style encoders, ``model.layers`` for
    Llama-style decoders, ``transformer.h`` for GPT-2, and so on.
    """
    best = None
    for name, mod in _base(model).named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) > 0 and len({type(m) for m in mod}) == 1:
            size = sum(p.numel() for p in mod.parameters())
            if best is None or size > best[2]:
                best = (name, mod, size)
    if best is None:
        raise ValueError(f"{type(_base(model)).__name__}: no stack of transformer layers found")
    return best[0], best[1]


def disable_dropout(model: nn.Module) -> int:
    """Set every dropout probability to 0 (usual for reward models: the loss compares two
    forward passes, and dropout noise in either blurs the comparison). Returns how many
    dropout sites were switched off."""
    changed = 0
    for module in model.modules():
        if isinstance(module, nn.Dropout) and module.p:
            module.p = 0.0
            changed += 1
        elif isinstance(getattr(module, "attention_dropout", None), float) and module.attention_dropout:
            module.attention_dropout = 0.0  # Llama-style attention keeps a float, not a module
            changed += 1
    return changed


def head_parameter_names(model) -> list[str]:
    """Parameters outside the backbone: the reward head (``classifier``, ``score``)."""
    base = _base(model)
    prefix = base.base_model_prefix + "."
    return [n for n, _ in base.named_parameters() if not n.startswith(prefix)]


def set_trainable(model, *, freeze_backbone: bool = False, top_layers: int = 0) -> dict:
    """Freeze parameters in place; return counts and the layer stack used.

    ``freeze_backbone``: only the head trains. ``top_layers=N``: the head, the top N
    layers of the stack, and the backbone modules registered after the stack (the
    BERT pooler, a decoder's final norm) train; everything else is frozen.
    """
    base = _base(model)
    info = {"layers": None}
    if freeze_backbone or top_layers:
        head = set(head_parameter_names(base))
        names = [n for n, _ in base.named_parameters()]
        keep = set(head)
        if top_layers:
            stack_name, stack = find_layer_list(base)
            if top_layers > len(stack):
                raise ValueError(f"train_top_layers={top_layers} but the model has {len(stack)} layers")
            first = len(stack) - top_layers
            for i in range(first, len(stack)):
                keep.update(f"{stack_name}.{i}.{n}" for n, _ in stack[i].named_parameters())
            stack_params = [i for i, n in enumerate(names) if n.startswith(stack_name + ".")]
            after = max(stack_params) if stack_params else len(names)
            keep.update(n for n in names[after + 1 :])
            info["layers"] = {"stack": stack_name, "total": len(stack), "trained": list(range(first, len(stack)))}
        for n, p in base.named_parameters():
            p.requires_grad_(n in keep)
    info.update(count_parameters(model))
    return info


def count_parameters(model) -> dict:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"parameters": total, "trainable_parameters": trainable}


def add_lora(model, *, r: int, alpha: int, dropout: float, target_modules: list[str] | None):
    """Wrap in peft LoRA adapters (all linear layers of the backbone by default); the head trains fully."""
    from peft import LoraConfig, TaskType, get_peft_model

    base = _base(model)
    head = sorted({n.split(".")[0] for n in head_parameter_names(base)})
    cfg = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules) if target_modules else "all-linear",
        modules_to_save=head,
    )
    return get_peft_model(model, cfg)


def merge_lora(model):
    """A plain transformers model with the adapters merged in (no-op for non-peft models)."""
    if hasattr(model, "merge_and_unload"):
        return model.merge_and_unload()
    return model


def trainable_parameters(model) -> list[tuple[str, torch.nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]
