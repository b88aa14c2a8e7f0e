"""``synpref curate run --engine ray``: the heavy work of a run's batches on Ray actors; the driver keeps
the runner (state, ledger, budget checks, per-batch resume) as on the local engine.

* **Model steps** (``stage2/score``, ``embed``): a pool of :class:`BatchWorker` actors, started at
  the run's first model step and kept to its end (``num_gpus`` per actor when the cluster has GPUs:
  :func:`~synpref.engine.ray_cluster.plan_actors`). For each step :class:`RayBatchMap` has every
  actor load the step's work spec once (the step's own function: the current and gold RMs with
  their token-budget batches, or the embedder). Batch k goes to actor
  k mod the pool size; while the runner writes batch k the next batches (two per actor) are
  already on their way, so the actors keep busy. Results are taken by batch number, each once.
* **LLM steps** (``attributes``, Stage 1's ``label``, ``stage2/judge``): :class:`LLMPool` starts
  async :class:`LLMWorker` actors; a batch's pairs are split into one slice per actor, each
  endpoint's ``concurrency`` divided between the actors (the total in flight per endpoint is the
  configured one). Each actor runs the project's one client (:class:`synpref.llm.LLMClient`) and
  judge panel (:class:`synpref.curate.judges.JudgePanel`) with a :class:`RemoteCache`: every
  answer goes to the run's cache (``RUN_DIR/llm_cache.sqlite``, owned by one :class:`CacheActor` on
  the driver's node) as it arrives and every question is looked up there first, so a task retried
  after its actor died pays only for the calls that were in flight. A batch is sent only after the
  runner's budget check for it, as locally.
* **Faults**: actors restart when killed (``max_restarts=-1``) and their pending tasks are retried
  (``max_task_retries=-1``); the steps' functions are deterministic, so a retried batch gives the
  same result, and the driver takes each batch's result once. A killed driver resumes like the
  local engine: the runner redoes the unfinished batch.

:meth:`RayCurateEngine.report` gives, per step, the batches, the seconds inside the actors' functions
and the seconds the driver waited for them (``summary.json``'s ``engine``).
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import time
import uuid
from collections import defaultdict
from typing import Callable, Sequence

from .ray_cluster import RayCluster

LOOKAHEAD_PER_ACTOR = 2  # model batches in flight per actor (one computing, one queued)


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# -- model steps ---------------------------------------------------------------------------------------
class BatchWorker:
    """One Ray actor, kept for the whole run: each model step loads its work spec into it once
    (:meth:`load`, replacing the previous step's), then applies it to one batch's payload per call.
    Kept so that the libraries are imported once a run, not once a step; a restarted actor (after
    a kill) loads the current spec again before its retried call."""

    def __init__(self, threads: int | None):
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.worker = _worker_name()
        self.spec = self.fn = None

    def load(self, spec) -> str:
        if spec != self.spec:
            self.fn = None  # the previous step's models go before the next step's load
            import gc

            gc.collect()
            self.fn, self.spec = spec.load(), spec
        return self.worker

    def run(self, spec, payload):
        self.load(spec)  # a no-op but after a restart
        start = time.perf_counter()
        out = self.fn(payload)
        return out, time.perf_counter() - start, self.worker

    def unload(self) -> None:
        self.fn = self.spec = None
        import gc

        gc.collect()


class StepTimes:
    """What one step's batches cost: inside the actors, and on the driver waiting for them."""

    def __init__(self):
        self.batches = 0
        self.worker_seconds = 0.0
        self.wait_seconds = 0.0
        self.payload_seconds = 0.0
        self.items = 0
        self.workers: dict[str, float] = defaultdict(float)

    def to_dict(self) -> dict:
        return {"batches": self.batches, "items": self.items, "worker_seconds": round(self.worker_seconds, 3),
                "wait_seconds": round(self.wait_seconds, 3), "payload_seconds": round(self.payload_seconds, 3),
                "workers": len(self.workers), "seconds_per_worker": {k: round(v, 3) for k, v in sorted(self.workers.items())}}


def _size(out) -> int:
    try:
        return len(out)
    except TypeError:
        return 0


class RayBatchMap:
    """A step's work spec on an actor pool (see the module docstring); ``self(n)`` is batch n's result."""

    def __init__(self, actors: list, spec, payload: Callable[[int], object], order: Sequence[int], *, times: StepTimes):
        import ray

        self.actors = actors[: max(1, min(len(actors), len(order) or 1))]
        self.spec = spec
        ray.get([a.load.remote(spec) for a in self.actors])  # every actor holds the step's models before the first batch
        self.payload = payload
        self.order = list(order)
        self.position = {n: i for i, n in enumerate(self.order)}
        self.in_flight: dict[int, object] = {}
        self.window = LOOKAHEAD_PER_ACTOR * len(self.actors)
        self.times = times

    def _submit(self, n: int) -> None:
        start = time.perf_counter()
        payload = self.payload(n)
        self.times.payload_seconds += time.perf_counter() - start
        actor = self.actors[self.position.get(n, 0) % len(self.actors)]
        self.in_flight[n] = actor.run.remote(self.spec, payload)

    def __call__(self, n: int):
        import ray

        i = self.position[n]
        for m in self.order[i : i + self.window]:
            if m not in self.in_flight:
                self._submit(m)
        ref = self.in_flight.pop(n)
        start = time.perf_counter()
        out, seconds, worker = ray.get(ref)
        self.times.wait_seconds += time.perf_counter() - start
        self.times.batches += 1
        self.times.items += _size(out)
        self.times.worker_seconds += seconds
        self.times.workers[worker] += seconds
        return out

    def once(self, payload):
        import ray

        out, _seconds, _worker = ray.get(self.actors[0].run.remote(self.spec, payload))
        return out

    def close(self) -> None:
        """The step is over: the actors drop its models (they stay, for the next model step)."""
        import ray

        self.in_flight = {}
        ray.get([a.unload.remote() for a in self.actors])
        self.actors = []


# -- the LLM steps -----------------------------------------------------------------------------------------
class CacheActor:
    """The run's answer cache (:class:`synpref.llm.LLMCache`), opened once, on the driver's node."""

    def __init__(self, path: str):
        from ..llm import LLMCache

        self.cache = LLMCache(path)

    def get_many(self, keys: list[str]) -> list:
        return self.cache.get_many(keys)

    def put_many(self, rows: list[tuple]) -> None:
        self.cache.put_many(rows)


class _Coalesced:
    """Calls of one argument, awaited one by one, sent to ``send`` (a list of arguments -> a list of
    results) together: those made while a send is in flight go in the next one. Each caller gets
    its own result, or the send's exception, when the send that carried its argument returns."""

    def __init__(self, send: Callable):
        self.send = send
        self.pending: list = []
        self.flushing = False
        self.loop = None

    async def __call__(self, arg):
        loop = asyncio.get_running_loop()
        if self.flushing and self.loop is not loop:  # a send left behind by a closed loop: start afresh
            self.pending, self.flushing = [], False
        fut = loop.create_future()
        self.pending.append((arg, fut))
        if not self.flushing:
            self.loop = loop
            self.flushing = True
            asyncio.ensure_future(self._flush())
        return await fut

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)  # the other calls of this turn of the loop join the first send
            while self.pending:
                batch, self.pending = self.pending, []
                try:
                    results = await self.send([a for a, _ in batch])
                except asyncio.CancelledError:  # the loop is closing: so are its callers
                    for _, fut in batch + self.pending:
                        fut.cancel()
                    self.pending = []
                    raise
                except Exception as e:  # noqa: BLE001 - handed to every caller of this send
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(e)
                    continue
                for (_, fut), result in zip(batch, results):
                    if not fut.done():  # a cancelled caller
                        fut.set_result(result)
        finally:
            self.flushing = False


class RemoteCache:
    """The cache interface :class:`synpref.llm.LLMClient` uses, answered by the :class:`CacheActor` (awaited).
    Lookups and writes made at the same time travel to the actor together (one round trip per group,
    not per call); a write still returns only once its answer is committed, so a killed run repays
    only the calls in flight."""

    def __init__(self, actor):
        self.actor = actor
        self._get = _Coalesced(self._get_many)
        self._put = _Coalesced(self._put_many)

    async def _get_many(self, keys: list[str]) -> list:
        return await self.actor.get_many.remote(keys)

    async def _put_many(self, rows: list[tuple]) -> list:
        await self.actor.put_many.remote(rows)
        return [None] * len(rows)

    async def aget(self, key: str):
        return await self._get(key)

    async def aput(self, key: str, model: str, text: str, prompt_tokens: int, completion_tokens: int) -> None:
        await self._put((key, model, text, prompt_tokens, completion_tokens))


class LLMWorker:
    """An async Ray actor: the run's endpoints (its share of each one's concurrency) on the shared cache."""

    def __init__(self, endpoints: list[dict], cache_name: str):
        import ray

        self.endpoints = endpoints
        self.cache = RemoteCache(ray.get_actor(cache_name))  # by name: a restarted actor finds it again
        self.worker = _worker_name()

    def _clients(self, only_first: bool = False):
        from ..llm import Endpoint, LLMClient

        eps = self.endpoints[:1] if only_first else self.endpoints
        return [LLMClient(Endpoint.from_dict(e), self.cache) for e in eps]

    @staticmethod
    def _usage(clients) -> dict:
        return {c.endpoint.label: c.usage.to_dict() for c in clients}

    async def judge(self, items: list[dict], panel_settings: dict):
        from ..curate.judges import JudgePanel

        start = time.perf_counter()
        panel = JudgePanel(self._clients(), **panel_settings)
        judgements = await panel._judge_all(items)
        return [j.to_dict() for j in judgements], self._usage(panel.clients), time.perf_counter() - start, self.worker

    async def attributes(self, records: list, max_chars: int):
        from ..curate.attributes import _annotate_all

        start = time.perf_counter()
        (client,) = self._clients(only_first=True)
        out = await _annotate_all(client, records, max_chars=max_chars)
        return out, self._usage([client]), time.perf_counter() - start, self.worker


def split_concurrency(total: int, workers: int) -> list[int]:
    """``total`` requests in flight shared by ``workers`` (each at least 1): the first ``total % workers`` get one more."""
    base, extra = divmod(max(1, total), workers)
    return [max(1, base + (1 if i < extra else 0)) for i in range(workers)]


def slices(items: list, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous (begin, end) slices of ``items``, sizes differing by at most one (empty ones left out)."""
    size, extra = divmod(len(items), parts)
    out, begin = [], 0
    for i in range(parts):
        end = begin + size + (1 if i < extra else 0)
        if end > begin:
            out.append((begin, end))
        begin = end
    return out


class LLMPool:
    """The async LLM actors of a run and its cache actor (see the module docstring)."""

    def __init__(self, ctx, count: int, times: Callable[[str], StepTimes]):
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        clients = ctx.llm.clients()  # the run's endpoints (the embedded judge started here when none is named)
        self.driver_clients = {c.endpoint.label: c for c in clients}
        here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
        cache_name = f"synpref-llm-cache-{uuid.uuid4().hex}"
        self.cache = ray.remote(CacheActor).options(name=cache_name, num_cpus=0, scheduling_strategy=here, max_restarts=-1,
                                                     max_task_retries=-1).remote(str(ctx.llm.cache_path.resolve()))
        self.count = max(1, count)
        shares = [split_concurrency(c.endpoint.concurrency, self.count) for c in clients]
        worker = ray.remote(LLMWorker).options(num_cpus=0, scheduling_strategy="SPREAD", max_restarts=-1, max_task_retries=-1)
        self.actors = []
        for i in range(self.count):
            eps = [{**c.endpoint.to_dict(), "concurrency": share[i]} for c, share in zip(clients, shares)]
            self.actors.append(worker.remote(eps, cache_name))
        self.times = times

    def _run(self, step: str, method: str, items: list, *args) -> list:
        import ray

        times = self.times(step)
        parts = slices(items, len(self.actors))
        refs = [getattr(self.actors[i], method).remote(items[b:e], *args) for i, (b, e) in enumerate(parts)]
        start = time.perf_counter()
        results = ray.get(refs)
        times.wait_seconds += time.perf_counter() - start
        out = []
        for values, usage, seconds, worker in results:
            out.extend(values)
            times.worker_seconds += seconds
            times.workers[worker] += seconds
            for label, u in usage.items():  # the calls paid on the actors, in this invocation's usage
                from ..llm import Usage

                self.driver_clients[label].usage.add(Usage(**u))
        times.batches += 1
        times.items += len(items)
        if len(out) != len(items):
            raise RuntimeError(f"{step}: the LLM actors returned {len(out)} answers for {len(items)} pairs")
        return out

    def judge_many(self, step: str, items: list[dict], panel_settings: dict):
        from ..curate.judges import Judgement

        return [Judgement.from_dict(d) for d in self._run(step, "judge", items, panel_settings)]

    def attributes(self, step: str, records: list, max_chars: int) -> list[dict]:
        return self._run(step, "attributes", records, max_chars)

    def close(self) -> None:
        import ray

        for a in self.actors:
            ray.kill(a, no_restart=True)
        ray.kill(self.cache, no_restart=True)
        self.actors = []


class RayPanel:
    """A judge panel whose ``judge_many`` runs on the :class:`LLMPool` (what the steps' ``judge_pairs`` calls)."""

    def __init__(self, pool: LLMPool, step: str, settings: dict):
        self.pool, self.step, self.settings = pool, step, settings

    def judge_many(self, items: list[dict]):
        return self.pool.judge_many(self.step, items, self.settings)


# -- the engine -------------------------------------------------------------------------------------------
class RayCurateEngine:
    name = "ray"

    def __init__(self, cluster: RayCluster):
        self.cluster = cluster
        self._llm: LLMPool | None = None
        self._times: dict[str, StepTimes] = {}
        self._models: dict[tuple, list] = {}  # the model actors by (cpus, gpus) each: started at the first model step

    def model_actors(self, device: str | None) -> list:
        import ray

        plan = self.cluster.actor_plan(device)
        key = (plan.num_cpus, plan.num_gpus)
        if key not in self._models:
            actor = ray.remote(BatchWorker).options(num_cpus=plan.num_cpus, num_gpus=plan.num_gpus, max_restarts=-1, max_task_retries=-1)
            self._models[key] = [actor.remote(plan.threads if not plan.num_gpus else None) for _ in range(plan.count)]
        return self._models[key]

    def times(self, step: str) -> StepTimes:
        return self._times.setdefault(step, StepTimes())

    def batch_map(self, ctx, step: str, spec, payload, order):
        return RayBatchMap(self.model_actors(ctx.device), spec, payload, order, times=self.times(step))

    def llm_actors(self) -> int:
        """Async LLM actors: one per 4 of the cluster's cores, at least 2 (a killed one does not stall a batch's
        other slice), at most 16. They wait on the network: they ask Ray for no CPU."""
        return max(2, min(16, math.ceil(self.cluster.cpu_workers() / 4)))

    def _pool(self, ctx) -> LLMPool:
        if self._llm is None:
            self._llm = LLMPool(ctx, self.llm_actors(), self.times)
        return self._llm

    def panel(self, ctx, step: str = "judge"):
        return RayPanel(self._pool(ctx), step, ctx.llm.panel_settings())

    def annotate(self, ctx, records: list, *, max_chars: int) -> list[dict]:
        return self._pool(ctx).attributes("attributes", records, max_chars) if records else []

    def report(self) -> dict:
        return {"name": "ray", "resources": {k: v for k, v in self.cluster.resources().items() if k in ("CPU", "GPU")},
                "model_actors": self.cluster.actor_plan().count, "llm_actors": self.llm_actors(),
                "steps": {k: v.to_dict() for k, v in self._times.items()}}

    def close(self) -> None:
        import ray

        if self._llm is not None:
            self._llm.close()
            self._llm = None
        for actors in self._models.values():
            for a in actors:
                ray.kill(a, no_restart=True)
        self._models = {}
