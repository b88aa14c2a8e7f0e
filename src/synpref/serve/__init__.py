"""Serving: a micro-batching HTTP reward server (the offline ``synpref bon`` lives in ``synpref.evaluate.bon``).

* :func:`create_app` builds the FastAPI app around a :class:`~synpref.model.RewardModel`;
* :class:`MicroBatcher` is the one thread that owns the model and scores queued requests.

Imports of FastAPI/uvicorn happen inside the modules that need them, so
``import synpref.serve`` stays cheap and works without the ``serve`` extra.
"""

from .batcher import BatcherClosed, MicroBatcher
from .config import ServeConfig

__all__ = ["BatcherClosed", "MicroBatcher", "ServeConfig", "create_app"]


def __getattr__(name):  # lazy: the app pulls in FastAPI
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
