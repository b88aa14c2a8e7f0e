"""Anthropic HH-RLHF: ``chosen``/``rejected`` are whole "\\n\\nHuman: ...\\n\\nAssistant: ..." transcripts.

The turns both transcripts share become the context; the differing tails (usually
the last assistant turn) become the candidates, chosen first.
"""

from __future__ import annotations

from .common import parse_hh_transcript, scalar_extras
from .registry import Reader, register


@register("hh-rlhf", priority=20)
class HHRLHFReader(Reader):
    @staticmethod
    def matches(obj: dict) -> bool:
        chosen = obj.get("chosen")
        return "prompt" not in obj and isinstance(chosen, str) and "\n\nHuman:" in chosen and isinstance(obj.get("rejected"), str)

    def read(self, obj: dict, row: int):
        chosen = parse_hh_transcript(obj.get("chosen"), "chosen")
        rejected = parse_hh_transcript(obj.get("rejected"), "rejected")
        meta = scalar_extras(obj, ("chosen", "rejected"))
        return [self.pair(row, None, (chosen, "chosen"), (rejected, "rejected"), meta=meta)]
