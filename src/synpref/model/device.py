"""Which device a model runs on: ``default_device()``, or the ``--device`` override checked by ``resolve_device``.

Every command that loads a model (train, score, eval, serve, bon) takes the same
``--device`` option and passes it here, so one rule decides the device everywhere.
"""

from __future__ import annotations

import torch

# Device types with a torch module that reports availability (torch.cuda, torch.mps, torch.xpu, ...).
_ACCELERATORS = ("cuda", "mps", "xpu")


class DeviceError(ValueError):
    """``--device`` names no device, or one this machine does not have."""


def default_device() -> torch.device:
    """The GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(override: str | torch.device | None = None) -> torch.device:
    """``override`` (the ``--device`` option) checked against this machine, or :func:`default_device`.

    Raises :class:`DeviceError` naming ``--device`` for a name torch does not know, a
    device type synpref cannot run a model on, or a device this machine lacks.
    """
    if override is None or override == "":
        return default_device()
    try:
        device = torch.device(override)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(f"{str(override)!r} is not a device name; use --device cpu, cuda, cuda:N, mps or xpu") from None
    if device.type == "cpu":
        return device
    if device.type not in _ACCELERATORS:
        raise DeviceError(f"{str(override)!r}: synpref runs models on cpu, cuda, mps or xpu; choose one of them with --device")
    module = getattr(torch, device.type, None)
    if module is None or not module.is_available():
        raise DeviceError(f"{str(override)!r}: this machine has no {device.type} device (torch reports it unavailable); "
                          f"use --device cpu, or leave --device out to use {default_device()}")
    count = module.device_count() if hasattr(module, "device_count") else 1
    if device.index is not None and device.index >= count:
        raise DeviceError(f"{str(override)!r}: this machine has {count} {device.type} device(s), "
                          f"{device.type}:0 to {device.type}:{count - 1}; pick one of them with --device")
    return device
