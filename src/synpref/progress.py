"""Progress of a long phase, on stderr: a tqdm bar on a terminal, else a plain line every
``LINE_EVERY`` seconds and one at the end (a log file or a pipe gets lines, not carriage returns).

    bar = progress(total=n, desc="prep", unit="record")   # or progress(iterable, ...)
    bar.update(k); bar.close()
"""

from __future__ import annotations

import sys
import time
from typing import Iterable

LINE_EVERY = 30.0  # seconds between two lines when stderr is not a terminal


class ProgressLines:
    """tqdm's ``update``/``close``/iteration, printed as lines: ``desc: n/total unit (rate/s, elapsed)``."""

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
                 every: float = LINE_EVERY, stream=None):
        self.iterable, self.total, self.desc, self.unit, self.every = iterable, total, desc, unit.strip(), every
        self.stream = stream if stream is not None else sys.stderr
        self.n = 0
        self.start = self.last = time.monotonic()
        self.closed = False

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._line(now)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._line(time.monotonic())

    def _line(self, now: float) -> None:
        elapsed = now - self.start
        of = f"/{self.total:,}" if self.total is not None else ""
        rate = f", {self.n / elapsed:,.0f}/s" if elapsed > 0 else ""
        print(f"{self.desc}: {self.n:,}{of} {self.unit} ({elapsed:.0f} s{rate})", file=self.stream, flush=True)


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             enabled: bool = True):
    """A tqdm bar when stderr is a terminal, :class:`ProgressLines` when it is not, a silent tqdm when not ``enabled``."""
    from tqdm import tqdm

    if not enabled:
        return tqdm(iterable, total=total, disable=True)
    if sys.stderr.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, mininterval=1.0)
    return ProgressLines(iterable, total=total, desc=desc, unit=unit)
