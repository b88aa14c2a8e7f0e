"""Start or join Ray, and size actor pools from the cluster's resources.

Without an address a local instance is started with this machine's cores, listening
on 127.0.0.1 only (no other machine can reach or join it), without a dashboard, and
stopped on exit. With an address (``auto``, ``HOST:PORT`` or ``ray://HOST:10001``) the cluster is
joined and left running. A Ray already initialised in this process (a test, a notebook)
is used as it is and left running.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from dataclasses import dataclass

from . import EngineError

log = logging.getLogger(__name__)

CPUS_PER_CPU_ACTOR = 4  # a reward model on CPUs: one actor per 4 cores by default (torch threads within)


@dataclass(frozen=True)
class ActorPlan:
    """How many model actors, and the resources each one asks Ray for."""

    count: int
    num_cpus: float
    num_gpus: float

    @property
    def threads(self) -> int:
        """torch threads inside one CPU actor (its share of the cores)."""
        return max(1, math.floor(self.num_cpus))


class RayCluster:
    """A started Ray (context manager); ``stop()`` ends only an instance this object started."""

    def __init__(self, address: str | None = None, actors: int = 0, *, num_cpus: int | None = None,
                 object_store_bytes: int | None = None):
        self.address = address
        self.actors = actors
        self.num_cpus = num_cpus
        self.object_store_bytes = object_store_bytes
        self._owned = False

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> "RayCluster":
        import ray

        if ray.is_initialized():
            log.info("using the Ray instance already running in this process")
        elif self.address:
            try:
                ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=True,
                         runtime_env=_WORKER_ENV)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise EngineError(f"could not join the Ray cluster at {self.address} ({e}); "
                                  "check --ray-address (ray status on the head node prints it)") from None
        else:
            with _loopback_only():
                ray.init(
                    num_cpus=self.num_cpus or _machine_cores(),
                    include_dashboard=False,
                    _node_ip_address="127.0.0.1",
                    object_store_memory=self.object_store_bytes,
                    logging_level=logging.WARNING,
                    log_to_driver=True,
                    runtime_env=_WORKER_ENV,
                )
            self._owned = True
        _configure_ray_data()
        return self

    def stop(self) -> None:
        if self._owned:
            import ray

            ray.shutdown()
            self._owned = False

    def __enter__(self) -> "RayCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- resources ---------------------------------------------------------------
    def resources(self) -> dict[str, float]:
        import ray

        return ray.cluster_resources()

    def actor_plan(self, device: str | None = None) -> ActorPlan:
        return plan_actors(self.resources(), self.actors, device)

    def cpu_workers(self) -> int:
        """Stateless stage parallelism: the cluster's cores."""
        return max(1, int(self.resources().get("CPU", 1)))


def plan_actors(resources: dict[str, float], actors: int = 0, device: str | None = None) -> ActorPlan:
    """One actor per GPU (``num_gpus=1``) when the cluster has GPUs and ``device`` is not cpu;
    else CPU actors splitting the cluster's cores. ``actors`` (``--ray-actors``) sets the count;
    more actors than GPUs share them."""
    gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
    if gpus and not (device and str(device).startswith("cpu")):
        count = actors or gpus
        return ActorPlan(count=count, num_cpus=1, num_gpus=min(1.0, gpus / count))
    count = actors or max(1, cpus // min(CPUS_PER_CPU_ACTOR, cpus))
    return ActorPlan(count=count, num_cpus=cpus / count, num_gpus=0)


def stdout_to_stderr() -> None:
    """In each Ray worker: what it prints goes to stderr, so the driver's stdout carries only the command's output
    (a summary JSON a script parses); Ray forwards worker stderr to the driver's stderr, prefixed by the worker."""
    import sys

    sys.stdout = sys.stderr


_WORKER_ENV = {"worker_process_setup_hook": "synpref.engine.ray_cluster.stdout_to_stderr"}


def _machine_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def _loopback_only():
    """Make a local instance listen on 127.0.0.1 only.

    On Linux Ray replaces a node address of 127.0.0.1 by the machine's reachable address
    (its servers then listen on that interface); its single-machine mode (the default on
    macOS and Windows) keeps the loopback address. That mode is a module constant of Ray,
    switched on here for the duration of ``ray.init``.
    """
    try:
        from ray._private import ray_constants
    except ImportError:
        ray_constants = None
    if ray_constants is None or not hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):
        log.warning("this Ray version has no single-machine switch: the local Ray instance listens on the node's address")
        yield
        return
    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


def _configure_ray_data() -> None:
    """Outputs in input order (scores map back by position; prep writes in pool order), no progress bars."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
