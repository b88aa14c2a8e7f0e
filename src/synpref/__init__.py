"""synpref: curate preference data, train and evaluate Bradley-Terry reward models.

The entry points, at the top level::

    from synpref import RewardModel, TrainConfig, ingest, read_pool, train

They load on first use (PEP 562), so ``import synpref`` and the ``synpref`` command
stay fast and do not import torch. ``train`` and ``ingest`` are also the names of
the subpackage/module that hold them; those modules are callable, so
``train(TrainConfig(...))`` and ``ingest(sources, out_dir)`` work whichever of the two
Python hands back (see :func:`callable_module`).
"""

from __future__ import annotations

import sys
from importlib import import_module

__version__ = "0.1.0"

# name -> (module, attribute); attribute None: the module itself (a callable one).
_EXPORTS = {
    "RewardModel": (".model", "RewardModel"),
    "TrainConfig": (".train.config", "TrainConfig"),
    "train": (".train", None),
    "ingest": (".ingest", None),
    "read_pool": (".store.pool", "read_pool"),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = import_module(module, __name__)
    return value if attribute is None else getattr(value, attribute)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


def callable_module(module_name: str, function_name: str) -> None:
    """Make the module ``module_name`` callable as its own function ``function_name``.

    ``synpref.train`` is both the training subpackage and (as the package attribute
    Python binds on import) what ``from synpref import train`` returns; the same holds
    for ``synpref.ingest``. Calling the module calls the function, so the top-level
    name works as the function while ``import synpref.train.trainer`` keeps working.
    """
    module = sys.modules[module_name]

    class CallableModule(type(module)):
        def __call__(self, *args, **kwargs):
            return getattr(self, function_name)(*args, **kwargs)

    CallableModule.__name__ = CallableModule.__qualname__ = f"CallableModule[{function_name}]"
    CallableModule.__call__.__doc__ = f"Call :func:`{module_name}.{function_name}`."
    module.__class__ = CallableModule
