"""PPE (lmarena-ai Preference Proxy Evaluations): human preference and best-of-K correctness.

* ``ppe-preference`` (``PPE-Human-Preference-V1``): ``question_id``, ``winner``
  (``model_a`` / ``model_b`` / ``tie`` / ``tie (bothbad)``), ``prompt``, ``response_1``,
  ``response_2``, and optionally ``conversation_a`` / ``conversation_b`` (message lists,
  or JSON text of them) which, when both parse, are used instead (their shared turns
  become the context). A pair with the winner first, or a tie; ``meta['winner']``.
* ``ppe-correctness`` (``PPE-*-Best-of-K``): ``prompt``, ``response_1`` .. ``response_K``,
  ``scores`` (one 0/1 correctness label per response), ``sampled_conflict_pairs``
  (index pairs of responses that differ in correctness, kept as
  ``meta['conflict_pairs']``), ``question_id``, ``model_name``. One ``best-of-n`` record.
"""

from __future__ import annotations

import json

from ..schema import Record
from .common import FormatError, context_and_candidates, flags, lookup, scalar_extras, text
from .registry import Reader, register

TIE_WINNERS = ("tie", "tie (bothbad)")
WINNERS = ("model_a", "model_b", *TIE_WINNERS)
CONVERSATIONS = ("conversation_a", "conversation_b")


def _turns(value) -> list[dict] | None:
    """A message list (or its JSON text) as role/content dicts; None when it is not one."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, (list, tuple)) and value and all(isinstance(m, dict) and "role" in m and "content" in m for m in value):
        return [{"role": m["role"], "content": m["content"]} for m in value]
    return None


@register("ppe-preference", priority=45)
class PPEPreferenceReader(Reader):
    @staticmethod
    def matches(obj: dict) -> bool:
        return "winner" in obj and "response_1" in obj and "response_2" in obj

    def read(self, obj: dict, row: int):
        winner = text(obj, "winner")
        if winner not in WINNERS:
            raise FormatError(f"winner must be one of {list(WINNERS)}, got {winner!r}", "winner", "bad_label")
        conv_a, conv_b = (_turns(obj.get(f)) for f in CONVERSATIONS)
        if conv_a and conv_b:
            prompt, a, b = None, (conv_a, "conversation_a"), (conv_b, "conversation_b")
        else:
            prompt, a, b = lookup(obj, "prompt"), (lookup(obj, "response_1"), "response_1"), (lookup(obj, "response_2"), "response_2")
        first, second = (b, a) if winner == "model_b" else (a, b)
        meta = scalar_extras(obj, ("prompt", "response_1", "response_2", *CONVERSATIONS))
        return [self.pair(row, prompt, first, second, kind="tie" if winner in TIE_WINNERS else "pair", meta=meta)]


def response_fields(obj: dict) -> list[str]:
    """``response_1`` .. ``response_K`` in numeric order."""
    return sorted((k for k in obj if k.startswith("response_") and k[9:].isdigit()), key=lambda k: int(k[9:]))


@register("ppe-correctness", priority=45)
class PPECorrectnessReader(Reader):
    @staticmethod
    def matches(obj: dict) -> bool:
        return "prompt" in obj and "response_1" in obj and "scores" in obj

    def read(self, obj: dict, row: int):
        fields = response_fields(obj)
        correct = flags(obj, "scores", len(fields))
        pairs = []
        for n, pair in enumerate(lookup(obj, "sampled_conflict_pairs", None) or []):
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(i, int) and 0 <= i < len(fields) for i in pair)):
                raise FormatError(f"sampled_conflict_pairs[{n}] must be two response indices below {len(fields)}, got {pair!r}", f"sampled_conflict_pairs[{n}]", "invalid_record")
            pairs.append([int(pair[0]), int(pair[1])])
        context, cands = context_and_candidates(lookup(obj, "prompt"), [(lookup(obj, f), f) for f in fields])
        rec = Record(
            context,
            tuple(cands),
            "best-of-n",
            correct=correct,
            provenance=self.provenance(row),
            meta={**scalar_extras(obj, ("prompt", "scores", *fields)), "conflict_pairs": pairs},
        )
        return [self.checked(rec, fields)]
