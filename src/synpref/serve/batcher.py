"""Dynamic micro-batching: one thread owns the model and scores queued requests together.

Each request puts its already-encoded items on a queue with a future. The
scoring thread takes the oldest request, then keeps collecting until
``max_wait_ms`` have passed since that request was taken or the collected
items hold ``max_batch_tokens`` tokens, and scores everything with
``RewardModel.score_encoded`` (length-sorted, token-budget batches: the same
rule as offline scoring, so a reward never depends on what it was batched
with). With batching off, every request is scored alone.

Rewards are always raw here; normalisation is the caller's business.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from ..text import Encoded

_STOP = object()


class BatcherClosed(RuntimeError):
    """The batcher is shutting down and takes no new work."""


@dataclass
class _Job:
    items: Sequence[Encoded | None]
    future: Future
    tokens: int


class MicroBatcher:
    def __init__(
        self,
        rm,
        *,
        batching: bool = True,
        max_batch_tokens: int = 0,
        max_wait_ms: float = 5.0,
        precision: str = "fp32",
        metrics=None,
    ):
        self.rm = rm
        self.batching = batching
        self.max_batch_tokens = max_batch_tokens or rm.default_batch_tokens
        self.max_wait = max_wait_ms / 1000.0
        self.precision = precision
        self.metrics = metrics
        self._queue: queue.Queue = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="synpref-scorer", daemon=True)

    # -- public -------------------------------------------------------------
    def start(self) -> MicroBatcher:
        self._thread.start()
        return self

    def submit(self, items: Sequence[Encoded | None]) -> Future:
        """Queue encoded items; the future resolves to their raw rewards (NaN for None)."""
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise BatcherClosed("the server is shutting down")
            tokens = sum(len(e) for e in items if e is not None)
            self._queue.put(_Job(items, future, tokens))
        return future

    async def score(self, items: Sequence[Encoded | None]) -> list[float]:
        return await asyncio.wrap_future(self.submit(items))

    def queue_depth(self) -> int:
        return self._queue.qsize()

    def close(self, timeout: float | None = None) -> None:
        """Refuse new work, score everything already queued, then stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- scoring thread -----------------------------------------------------
    def _run(self) -> None:
        stopping = False
        while not stopping:
            job = self._queue.get()
            if job is _STOP:
                break
            jobs = [job]
            if self.batching:
                stopping = self._collect(jobs)
            self._score(jobs)

    def _collect(self, jobs: list[_Job]) -> bool:
        """Add queued jobs to ``jobs`` until the wait or the token budget runs out.

        Returns True when the stop marker was met (everything before it is in ``jobs``
        or was already scored, because the queue is FIFO).
        """
        deadline = time.monotonic() + self.max_wait
        tokens = jobs[0].tokens
        while tokens < self.max_batch_tokens:
            try:
                remaining = deadline - time.monotonic()
                job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                return False
            if job is _STOP:
                return True
            jobs.append(job)
            tokens += job.tokens
        return False

    def _score(self, jobs: list[_Job]) -> None:
        flat = [e for job in jobs for e in job.items]
        try:
            rewards = self.rm.score_encoded(flat, max_batch_tokens=self.max_batch_tokens, precision=self.precision)
        except Exception as e:  # noqa: BLE001 (hand any failure to every waiting request)
            for job in jobs:
                _resolve(job.future, exception=e)
            return
        if self.metrics is not None:
            self.metrics.batch_scored(len(jobs), len(flat), sum(job.tokens for job in jobs))
        start = 0
        for job in jobs:
            _resolve(job.future, result=rewards[start : start + len(job.items)])
            start += len(job.items)


def _resolve(future: Future, result=None, exception: BaseException | None = None) -> None:
    """Settle a future unless its caller gave up (client disconnected: future cancelled)."""
    if not future.set_running_or_notify_cancel():
        return
    if exception is not None:
        future.set_exception(exception)
    else:
        future.set_result(result)
