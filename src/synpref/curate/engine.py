"""Where a run's heavy batch work happens: in this process (:class:`LocalEngine`, the default) or on
Ray (:class:`synpref.engine.ray_curate.RayCurateEngine`, ``synpref curate run --engine ray``).

The runner does not change with the engine: it still checks the LLM budget before each batch,
calls the step's ``run_batch``, writes the batch's ledger part and marks the batch done. What the
engine decides is where the work *inside* a batch runs:

* :meth:`batch_map` (reward-model scoring, embedding): a *work spec* (a small picklable object whose
  ``load()`` gives ``fn(payload) -> result``, the step's own code) applied to each batch's payload.
  Locally ``fn`` runs here; on Ray it runs on a pool of actors (a model per actor), the next
  batches' payloads sent ahead while the driver writes the current one. Same function, same inputs:
  same results.
* :meth:`panel` and :meth:`annotate` (LLM judging, attributes): locally the run's panel and client;
  on Ray the batch's pairs are split over async actors with each endpoint's concurrency shared
  between them, every answer cached (``RUN_DIR/llm_cache.sqlite``) as it arrives. An LLM batch is
  never sent ahead: the budget check before it must see what the batch before it paid.
"""

from __future__ import annotations

from typing import Callable, Sequence


class LocalBatchMap:
    """``spec``'s function over each batch's payload, in this process."""

    def __init__(self, spec, payload: Callable[[int], object]):
        self.fn = spec.load()
        self.payload = payload

    def __call__(self, n: int):
        return self.fn(self.payload(n))

    def once(self, payload):
        """The function on one payload outside the batches (e.g. asking the model its dimension)."""
        return self.fn(payload)

    def close(self) -> None:
        self.fn = None


class LocalEngine:
    name = "local"

    def batch_map(self, ctx, step: str, spec, payload: Callable[[int], object], order: Sequence[int]):
        return LocalBatchMap(spec, payload)

    def panel(self, ctx, step: str = "judge"):
        return ctx.llm.panel()

    def annotate(self, ctx, records: list, *, max_chars: int) -> list[dict]:
        from .attributes import annotate_attributes

        return annotate_attributes(ctx.llm.clients()[0], records, max_chars=max_chars)

    def report(self) -> dict | None:
        return None

    def close(self) -> None:
        pass


def curate_engine(cluster):
    """The engine of a run: local for ``cluster`` None, else the Ray engine on the started cluster."""
    if cluster is None:
        return LocalEngine()
    from ..engine.ray_curate import RayCurateEngine

    return RayCurateEngine(cluster)
