"""Dahoas full-hh-rlhf: ``prompt`` is an HH transcript prefix ending in "\\n\\nAssistant:";
``chosen``/``rejected`` are the bare responses (``response`` repeats ``chosen`` and is ignored).
Responses are stripped like HH turns, so the same pair read from hh-rlhf gets the same id.
"""

from __future__ import annotations

from .common import parse_hh_transcript, scalar_extras, text
from .registry import Reader, register

USED = ("prompt", "response", "chosen", "rejected")


@register("dahoas", priority=30)
class DahoasReader(Reader):
    @staticmethod
    def matches(obj: dict) -> bool:
        return all(k in obj for k in USED) and isinstance(obj["prompt"], str)

    def read(self, obj: dict, row: int):
        context = parse_hh_transcript(obj.get("prompt"), "prompt")
        if context[-1].role == "assistant" and not context[-1].content:
            context = context[:-1]  # the open "Assistant:" the responses complete
        chosen, rejected = text(obj, "chosen").strip(), text(obj, "rejected").strip()
        meta = scalar_extras(obj, USED)
        return [self.pair(row, context, (chosen, "chosen"), (rejected, "rejected"), meta=meta)]
