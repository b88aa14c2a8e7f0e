"""Where the heavy steps run: ``local`` (this process, the default) or ``ray`` (a Ray cluster).

The local engine is the library as it is: nothing here is imported on that path and
Ray is not needed. The Ray engine (``pip install 'synpref[scale]'``) runs the same
functions on Ray Data (prep stages over the pool's Parquet shards, reward models as an
actor pool), so its outputs equal the local engine's; see docs/scaling.md.

:func:`open_engine` is the one entry point: ``None`` for ``local``, else a started
:class:`~synpref.engine.ray_cluster.RayCluster` (a context manager that stops the
Ray instance it started, or leaves a joined cluster running).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, fields

ENGINES = ("local", "ray")


class EngineError(ValueError):
    """The engine cannot start (Ray missing, a cluster address that does not answer): a user-facing error."""


@dataclass(frozen=True)
class EngineSettings:
    """How and where the heavy steps run (``--engine``, ``--ray-address``, ``--ray-actors``)."""

    name: str = field(default="local", metadata={"help": "local (this process) or ray (a Ray cluster; needs synpref[scale])."})
    address: str | None = field(default=None, metadata={"help": "Ray cluster to join (e.g. ray://head:10001 or auto); "
                                                                "none: start a local Ray instance with this machine's cores."})
    actors: int = field(default=0, metadata={"help": "Model actors (0: one per GPU, else one per 4 CPUs, at least 1)."})

    def __post_init__(self):
        if self.name not in ENGINES:
            raise EngineError(f"engine {self.name!r}: choose one of {', '.join(ENGINES)} (--engine)")
        if self.name == "local" and (self.address or self.actors):
            raise EngineError("--ray-address and --ray-actors need --engine ray")
        if self.actors < 0:
            raise EngineError(f"--ray-actors {self.actors}: give 0 (automatic) or a positive count")

    @classmethod
    def help(cls) -> dict[str, str]:
        return {f.name: f.metadata["help"] for f in fields(cls)}


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        return False
    return True


def open_engine(settings: EngineSettings):
    """A context manager giving ``None`` (local) or a started RayCluster (``ray``)."""
    if settings.name == "local":
        return contextlib.nullcontext(None)
    if not ray_available():
        raise EngineError("--engine ray needs Ray Data: pip install 'synpref[scale]' (or run without --engine ray)")
    from .ray_cluster import RayCluster

    return RayCluster(address=settings.address, actors=settings.actors)
