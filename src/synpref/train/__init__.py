"""Reward-model training: ``train(TrainConfig(...)) -> summary``.

See :class:`TrainConfig` for every option and for how an optimizer step is defined.
The config imports without torch (the CLI builds its options from it); the rest
loads on first use. The package itself is callable as :func:`train`, so
``from synpref import train; train(cfg)`` works (see ``synpref.callable_module``).
"""

from importlib import import_module

from .. import callable_module
from .config import TrainConfig

_LAZY = {
    "train": ".trainer",
    "evaluate": ".evaluation",
    "bradley_terry": ".losses",
    "reward_centering": ".losses",
    "pair_loss": ".losses",
    "find_layer_list": ".model_setup",
    "set_trainable": ".model_setup",
}

__all__ = ["TrainConfig", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


callable_module(__name__, "train")
