"""What to train: freeze the backbone, train its top N layers, or add LoRA adapters."""

from __future__ import annotations

import torch
from torch import nn


def _base(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def backbone_of(model) -> nn.Module:
    base = _base(model)
    return getattr(base, base.base_model_prefix)


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
