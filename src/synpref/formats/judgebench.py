"""JudgeBench: ``question``, ``response_A``, ``response_B``, ``label`` "A>B" or "B>A".

A pair with the winner first; ``meta['original_order']`` says which response each
candidate was (["A", "B"] or ["B", "A"]). Any other label is quarantined (field ``label``).
"""

from __future__ import annotations

from .common import FormatError, scalar_extras, text
from .registry import Reader, register

USED = ("question", "response_A", "response_B", "label")


@register("judgebench", priority=40)
class JudgeBenchReader(Reader):
    @staticmethod
    def matches(obj: dict) -> bool:
        return all(k in obj for k in USED)

    def read(self, obj: dict, row: int):
        label = text(obj, "label")
        if label not in ("A>B", "B>A"):
            raise FormatError(f"label must be 'A>B' or 'B>A', got {label!r}", "label", "bad_label")
        a = (text(obj, "response_A"), "response_A")
        b = (text(obj, "response_B"), "response_B")
        first, second = (a, b) if label == "A>B" else (b, a)
        meta = {**scalar_extras(obj, USED[:3]), "original_order": ["A", "B"] if label == "A>B" else ["B", "A"]}
        return [self.pair(row, text(obj, "question"), first, second, prompt_field="question", meta=meta)]
