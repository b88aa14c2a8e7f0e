"""TRL-style preference rows: ``prompt``/``chosen``/``rejected``.

Accepted shapes:

* strings: prompt is one user turn, chosen/rejected one assistant turn each;
* conversational: prompt is a message list, chosen/rejected lists of assistant
  messages (or whole conversations repeating the prompt);
* implicit prompt: no ``prompt``; chosen/rejected are whole conversations and
  their common prefix becomes the context.

Extra top-level scalar fields (``id``, ``category``, ``subset`` ...) go to ``meta``.
Subclasses change the label through :meth:`label`.
"""

from __future__ import annotations

from .common import FormatError, lookup, scalar_extras
from .registry import Reader, register

USED = ("prompt", "chosen", "rejected")


@register("prompt-chosen-rejected", priority=10)
class PromptChosenRejectedReader(Reader):
    @staticmethod
    def matches(obj: dict) -> bool:
        return "chosen" in obj and "rejected" in obj and ("prompt" in obj or isinstance(obj["chosen"], list))

    def label(self, obj: dict) -> tuple[str, float | None, dict]:
        """``(kind, margin, extra meta)``; plain rows are pairs without margin."""
        return "pair", None, {}

    def read(self, obj: dict, row: int):
        chosen, rejected = lookup(obj, "chosen"), lookup(obj, "rejected")
        prompt = lookup(obj, "prompt", None)
        if prompt is None and not isinstance(chosen, list):
            raise FormatError("missing field 'prompt' (needed unless chosen/rejected are whole conversations)", "prompt", "missing_field")
        kind, margin, extra = self.label(obj)
        meta = {**scalar_extras(obj, USED), **extra}
        return [self.pair(row, prompt, (chosen, "chosen"), (rejected, "rejected"), kind=kind, margin=margin, meta=meta)]
