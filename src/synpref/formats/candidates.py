"""Best-of-N candidate files: ``{"id"?, "prompt", "candidates" | "responses", "correct"?}``.

``prompt`` is a string or a message list; each candidate a string or a message list;
``correct`` (optional) one true/false (or 1/0) label per candidate. One ``best-of-n``
record per row, unlabelled without ``correct``; other scalar fields (``id``) go to ``meta``.
"""

from __future__ import annotations

from ..schema import Record
from .common import FormatError, context_and_candidates, flags, items, lookup, scalar_extras
from .registry import Reader, register


@register("candidates", priority=15)
class CandidatesReader(Reader):
    @staticmethod
    def matches(obj: dict) -> bool:
        return "prompt" in obj and ("candidates" in obj or "responses" in obj)

    def read(self, obj: dict, row: int):
        field = "candidates" if "candidates" in obj else "responses"
        values = items(obj, field)
        if not values:
            raise FormatError(f"field {field!r} is an empty list", field, "missing_field")
        fields = [f"{field}[{i}]" for i in range(len(values))]
        context, cands = context_and_candidates(lookup(obj, "prompt"), list(zip(values, fields)))
        correct = flags(obj, "correct", len(values)) if lookup(obj, "correct", None) is not None else None
        rec = Record(context, tuple(cands), "best-of-n", correct=correct, provenance=self.provenance(row), meta=scalar_extras(obj, ("prompt", field, "correct")))
        return [self.checked(rec, fields)]
