"""Benchmark registry: ``@register("name")`` metric modules and their shared interface.

A benchmark reads its published files (or hub dataset) through the format readers
(:mod:`synpref.formats.reading`, the one row -> record path) and turns each record
into an :class:`EvalItem` (``item``); it says which parts are missing
(``missing_parts``), and turns per-item rewards into scores. Scoring is split so the
bootstrap can resample: ``outcomes`` computes per-item numbers once; ``statistics``
aggregates them (vectorised) into named scores, ``score`` being the headline;
``strata`` names the group each item is resampled within.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..formats import FormatError, Rejection, expand_sources, make_reader, read_file, reason_of, records_from_rows
from ..registry import Registry, UnknownNameError
from ..schema import Record, RecordError
from .items import EvalItem, ScoredItem


class Benchmark(abc.ABC):
    """A benchmark defines ``item(self, rec, **context) -> EvalItem | None``: the item of one record, None when
    its protocol excludes it (PPE tie votes), ``FormatError`` naming the field for a record it cannot score.
    The default loading (:meth:`load_local`, :meth:`load_hub`) goes through it; a benchmark that loads its
    own way (overriding :meth:`load_local`, with no hub dataset) need not define it, which is checked when
    the class is defined."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    hub: ClassVar[tuple | None] = None  # (dataset id, split or tuple of splits)
    format: ClassVar[str] = ""  # the format reader its rows are read with
    reader_options: ClassVar[dict] = {}
    # A rejected row makes a published benchmark incomplete; for a user's file it is a note.
    rejections_make_incomplete: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not hasattr(cls, "item") and (cls.load_local is Benchmark.load_local or cls.hub is not None):
            raise TypeError(f"benchmark class {cls.__name__} defines no item(): define it, or override load_local "
                            "and give no hub dataset")

    # -- loading ---------------------------------------------------------------
    def load_local(self, folder: Path, rejected: list[Rejection]) -> list[EvalItem]:
        """Items from every data file in ``folder`` (a benchmark with a special layout overrides this)."""
        items = []
        for path in expand_sources([folder]):
            items += self.items(self.read(path, rejected), rejected)
        return items

    def load_hub(self, rejected: list[Rejection]) -> list[EvalItem]:
        if self.hub is None:
            raise FileNotFoundError(f"{self.name} has no hub dataset; give a local folder")
        from .sources import hub_rows

        dataset_id, split = self.hub
        return self.items_from_rows(hub_rows(dataset_id, split), dataset_id, rejected)

    def items_from_rows(self, rows: Iterable[dict], source: str, rejected: list[Rejection], **context) -> list[EvalItem]:
        """Items from in-memory rows (a hub dataset), through the same row -> record generator."""
        return self.items(self.records_from_rows(rows, source, rejected), rejected, **context)

    def read(self, path: Path, rejected: list[Rejection], *, format: str | None = None) -> Iterator[Record]:
        """Records of one file, read with this benchmark's format (or ``format``); rejections go to ``rejected``.

        Published rows are kept as published: an empty response or two identical
        candidates is scored (``allow_degenerate``), not dropped.
        """
        rows = read_file(path, format=format or self.format, options=self.reader_options, allow_degenerate=True)
        return _keep_records(rows, rejected)

    def records_from_rows(self, rows: Iterable[dict], source: str, rejected: list[Rejection]) -> Iterator[Record]:
        """Records of in-memory rows, read with this benchmark's format as :meth:`read` reads a file."""
        reader = make_reader(source, self.format, options=self.reader_options, allow_degenerate=True)
        return _keep_records(records_from_rows(enumerate(rows), reader, source=source), rejected)

    def items(self, records: Iterable[Record], rejected: list[Rejection], **context) -> list[EvalItem]:
        """``item(record, **context)`` for each record; one the benchmark refuses is rejected, one it excludes (None) skipped."""
        out = []
        for rec in records:
            try:
                item = self.item(rec, **context)
            except RecordError as e:
                prov = rec.provenance
                rejected.append(Rejection(prov.source, prov.row, reason_of(e), e.field, str(e), record=rec))
                continue
            if item is not None:
                out.append(item)
        return out

    def missing_parts(self, items: list[EvalItem]) -> list[str]:
        """Subsets/domains of the published benchmark that ``items`` lack (names, with counts)."""
        return []

    # -- scoring ---------------------------------------------------------------
    def strata(self, items: list[ScoredItem]) -> list[str]:
        return [it.subset for it in items]

    @abc.abstractmethod
    def outcomes(self, items: list[ScoredItem]) -> dict[str, np.ndarray]:
        """Per-item outcome arrays (correct, ties, ...) that :meth:`statistics` turns into scores."""

    @abc.abstractmethod
    def statistics(self, out: dict[str, np.ndarray], strata: np.ndarray, names: list[str]) -> dict[str, float]:
        """Named scores from outcomes; ``strata[i]`` indexes ``names``. Must contain ``score``."""

    def subset_keys(self, stats: dict[str, float]) -> list[str]:
        """Which statistics are the per-subset scores shown in bar charts and tables."""
        return [k for k in stats if k.startswith("subset/")]

    def extras(self, items: list[ScoredItem]) -> dict:
        """Tables/curves for the report (matrices, best-of-N curves)."""
        return {}


def _keep_records(rows: Iterable[Record | Rejection], rejected: list[Rejection]) -> Iterator[Record]:
    for out in rows:
        if isinstance(out, Rejection):
            rejected.append(out)
        else:
            yield out


def meta_field(rec: Record, key: str):
    """``rec.meta[key]``, or a ``missing_field`` error naming the source field."""
    value = rec.meta.get(key)
    if value is None:
        raise FormatError(f"field {key!r} is missing", key, "missing_field")
    return value


def _load_builtin() -> None:
    from . import benchmarks  # noqa: F401  (registers the built-in modules)


BENCHMARKS: Registry[type[Benchmark]] = Registry("benchmark", error=UnknownNameError, populate=_load_builtin)
register = BENCHMARKS.register


def get_benchmark(name: str) -> Benchmark:
    return BENCHMARKS.get(name)()


def known_benchmarks() -> list[str]:
    return BENCHMARKS.names()


# -- small vectorised helpers the metric modules share ---------------------------
def group_mean(values: np.ndarray, strata: np.ndarray, n_groups: int) -> np.ndarray:
    """Mean of ``values`` per stratum (NaN for an empty stratum)."""
    sums = np.bincount(strata, weights=values, minlength=n_groups)
    counts = np.bincount(strata, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts
