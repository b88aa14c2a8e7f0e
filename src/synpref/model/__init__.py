"""Reward models: loading (incl. GGUF conversion), the device, scoring, saving."""

from .device import DeviceError, default_device, resolve_device
from .loading import PACKAGED_MODELS, ModelNotFoundError, check_reference, convert_gguf, model_title, packaged_model_path, resolve
from .reward_model import RewardModel, autocast_context, bf16_supported, uses_bf16

__all__ = [
    "PACKAGED_MODELS",
    "DeviceError",
    "ModelNotFoundError",
    "RewardModel",
    "autocast_context",
    "bf16_supported",
    "check_reference",
    "convert_gguf",
    "default_device",
    "model_title",
    "packaged_model_path",
    "resolve",
    "resolve_device",
    "uses_bf16",
]
