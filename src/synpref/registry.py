"""One generic name -> class registry: ``@registry.register("name")`` and a lookup that names the known entries.

The format readers (``synpref.formats.registry.READERS``) and the benchmark metric
modules (``synpref.evaluate.registry.BENCHMARKS``) are both instances, so adding a
reader or a benchmark is one new module with one decorator::

    >>> widgets = Registry("widget")
    >>> @widgets.register("round", size=3)
    ... class Round:
    ...     pass
    >>> widgets.get("round").name, widgets.get("round").size
    ('round', 3)
    >>> widgets.get("square")
    Traceback (most recent call last):
    ...
    synpref.registry.UnknownNameError: unknown widget 'square'; known widgets: round
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T", bound=type)


class UnknownNameError(ValueError):
    """A name that no entry of a registry was registered under."""


class Registry(Generic[T]):
    """Classes registered under a name; ``register`` also sets ``cls.name`` and any given class attributes.

    ``kind`` names the entries in error messages ("format", "benchmark"); ``error`` is
    the exception raised for an unknown name; ``populate`` is called once before the
    first lookup (e.g. to import the modules that register the built-in entries).
    """

    def __init__(self, kind: str, *, error: type[UnknownNameError] = UnknownNameError, populate: Callable[[], object] | None = None):
        self.kind = kind
        self.error = error
        self._populate = populate
        self._entries: dict[str, T] = {}

    def register(self, name: str, **attributes) -> Callable[[T], T]:
        def deco(cls: T) -> T:
            existing = self._entries.get(name)
            if existing is not None and existing is not cls:
                raise ValueError(f"{self.kind} {name!r} is already registered by {existing.__qualname__}")
            cls.name = name
            for key, value in attributes.items():
                setattr(cls, key, value)
            self._entries[name] = cls
            return cls

        return deco

    def _ready(self) -> dict[str, T]:
        if self._populate is not None:
            populate, self._populate = self._populate, None
            populate()
        return self._entries

    def get(self, name: str) -> T:
        entries = self._ready()
        if name not in entries:
            raise self.error(f"unknown {self.kind} {name!r}; known {self.kind}s: {', '.join(self.names())}")
        return entries[name]

    def names(self) -> list[str]:
        return sorted(self._ready())

    def classes(self) -> list[T]:
        entries = self._ready()
        return [entries[n] for n in sorted(entries)]

    def __contains__(self, name: str) -> bool:
        return name in self._ready()
