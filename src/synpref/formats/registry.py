"""Format registry: ``@register("name")`` readers, lookup and detection.

A reader is a class built once per source file (``Reader(source=path, **options)``)
whose ``read(obj, row)`` turns one source object into a list of records, and
whose ``finish()`` flushes anything buffered (only grouping readers buffer).
``matches(obj)`` says whether an object looks like this format; :func:`detect`
asks every reader, most specific (highest ``priority``) first.

Rows become records only through :mod:`synpref.formats.reading`, which adds the
guards every caller gets (unparseable rows, non-objects, over-long fields, reader
bugs, schema validation).
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Sequence

from ..registry import Registry, UnknownNameError
from ..schema import Provenance, Record, RecordError
from .common import checked, pair_record


class UnknownFormatError(UnknownNameError):
    """No registered format matches a row (or an unknown format name was asked for)."""


class Reader(abc.ABC):
    name: ClassVar[str] = ""
    priority: ClassVar[int] = 0  # detection order: higher is tried first

    def __init__(self, source: str = "", *, allow_degenerate: bool = False):
        """``allow_degenerate`` keeps records with an empty response or two identical candidates
        (published benchmark rows are scored as published); preference data for training never does."""
        self.source = str(source)
        self.allow_degenerate = allow_degenerate

    @staticmethod
    def matches(obj: dict) -> bool:
        return False

    @abc.abstractmethod
    def read(self, obj: dict, row: int) -> list[Record | RecordError]:
        """Records from one object. A returned RecordError rejects one record, a raised one the row."""

    def finish(self) -> list[Record | RecordError]:
        return []

    # -- helpers every reader builds its records with ------------------------------
    def provenance(self, row: int) -> Provenance:
        return Provenance(source=self.source, row=row, format=self.name)

    def pair(self, row: int, prompt: Any, first: tuple[Any, str], second: tuple[Any, str], **kw) -> Record:
        """A checked pair (``first`` preferred) or tie; see :func:`synpref.formats.common.pair_record`."""
        return pair_record(self.provenance(row), prompt, first, second, allow_degenerate=self.allow_degenerate, **kw)

    def checked(self, rec: Record, candidate_fields: Sequence[str]) -> Record:
        return checked(rec, candidate_fields, allow_degenerate=self.allow_degenerate)


READERS: Registry[type[Reader]] = Registry("format", error=UnknownFormatError)


def register(name: str, *, priority: int = 0):
    return READERS.register(name, priority=priority)


def known_formats() -> list[str]:
    return READERS.names()


def get_reader(name: str) -> type[Reader]:
    return READERS.get(name)


def detect(obj, *, where: str = "") -> str:
    """Name of the most specific format whose reader matches ``obj``'s fields."""
    if isinstance(obj, dict):
        for cls in sorted(READERS.classes(), key=lambda c: (-c.priority, c.name)):
            if cls.matches(obj):
                return cls.name
        seen = ", ".join(sorted(map(str, obj))) or "(none)"
    else:
        seen = f"(not an object: {type(obj).__name__})"
    prefix = f"{where}: " if where else ""
    raise UnknownFormatError(
        f"{prefix}no known format matches a row with fields [{seen}]; known formats: {', '.join(known_formats())}. "
        "Name the format (synpref ingest --format NAME) or map the fields "
        "(synpref ingest --map prompt=... --map chosen=... --map rejected=...)."
    )
